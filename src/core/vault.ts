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
}

// A vault name is the first DNS label of its host: Azure's rule (3–24 characters, letters, digits
// and single hyphens, starting with a letter, not ending with a hyphen), lowercased.
const VAULT_NAME = /^[a-z](?!.*--)[a-z0-9-]{1,22}[a-z0-9]$/;

export function isValidVaultName(name: string): boolean {
  return VAULT_NAME.test(name);
}
