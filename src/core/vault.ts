/**
 * The vault record every layer passes around, and the rule for vault names. Declared here rather
 * than inferred from the drizzle schema so the core depends on nothing of the project; the schema
 * (src/storage/schema.ts) is checked against it at compile time.
 */
export interface VaultRecord {
  id: string;
  name: string;
  tenantId: string;
  softDeleteRetentionDays: number;
  purgeProtection: boolean;
  createdAt: number;
  /** true: role assignments decide (Azure's default); false: the vault's access policies do. */
  enableRbacAuthorization: boolean;
  /** JSON {defaultAction, ipRules: [{value}]}; null = every address allowed. */
  networkAcls: string | null;
  /**
   * How stale an isolate's copy of this vault's objects, authorization data and callers may be
   * (seconds, 0 = no read cache): the consistency bound in the README, "Read caching".
   */
  readCacheSeconds: number;
}

/** The read-cache bound of a new vault, and the largest a vault may set. */
export const DEFAULT_READ_CACHE_SECONDS = 10;
export const MAX_READ_CACHE_SECONDS = 300;

/** A vault's read-cache bound in milliseconds, for IsolateCache's maxAgeMs. */
export const readCacheMs = (vault: Pick<VaultRecord, 'readCacheSeconds'>): number => vault.readCacheSeconds * 1000;

// A vault name is the first DNS label of its host: Azure's rule (3–24 characters, letters, digits
// and single hyphens, starting with a letter, not ending with a hyphen), lowercased.
const VAULT_NAME = /^[a-z](?!.*--)[a-z0-9-]{1,22}[a-z0-9]$/;

export function isValidVaultName(name: string): boolean {
  return VAULT_NAME.test(name);
}
