/**
 * Creating, changing, listing and deleting vaults: what the management API does to a vault as a
 * whole (its settings, first data key, initial access and, on delete, its HSM objects).
 */
import { and, asc, eq, gt, isNotNull } from 'drizzle-orm';
import { parseNetworkAcls } from '../access/network';
import { initialPolicyStatements, parsePolicyEntries } from '../access/policies';
import { BuiltInRoleIds } from '../access/roles';
import type { BridgeClient } from '../crypto/bridge-client';
import type { DataKeyManager } from '../crypto/data-keys';
import type { Database } from '../storage/db';
import { violatedConstraint } from '../storage/errors';
import { dataKeys, keyVersions, roleAssignments, vaults } from '../storage/schema';
import { forgetVault } from '../storage/vaults';
import { DEFAULT_READ_CACHE_SECONDS, isValidVaultName, MAX_READ_CACHE_SECONDS, type VaultRecord } from '../core/vault';
import { badParameter, conflict, forbidden, notFound } from '../core/errors';

export interface CreateVaultInput {
  name: string;
  softDeleteRetentionInDays?: number;
  enablePurgeProtection?: boolean;
  /** true (the default, as on Azure): role assignments decide; false: access policies do. */
  enableRbacAuthorization?: boolean;
  /** Azure's networkAcls ({defaultAction, ipRules, bypass}); validated here. null/absent: no firewall. */
  networkAcls?: unknown;
  /** Azure's accessPolicies ([{tenantId, objectId, permissions}]); validated here. */
  accessPolicies?: unknown;
  /** Seconds cached reads may lag writes made elsewhere (0–300, default 10; README, Read caching). */
  readCacheSeconds?: number;
}

function checkRetention(retention: number): void {
  if (!Number.isInteger(retention) || retention < 7 || retention > 90) {
    throw badParameter('softDeleteRetentionInDays must be an integer from 7 to 90.');
  }
}

function checkReadCache(seconds: number): void {
  if (!Number.isInteger(seconds) || seconds < 0 || seconds > MAX_READ_CACHE_SECONDS) {
    throw badParameter(`readCacheSeconds must be an integer from 0 (no read cache) to ${MAX_READ_CACHE_SECONDS}.`);
  }
}

const storedAcls = (input: unknown): string | null =>
  input === undefined || input === null ? null : JSON.stringify(parseNetworkAcls(input));

function creatorAssignment(db: Database, vault: VaultRecord, creatorObjectId: string | undefined) {
  if (!creatorObjectId) return [];
  const principalId = creatorObjectId.toLowerCase();
  return [
    db.insert(roleAssignments).values({
      id: crypto.randomUUID(),
      vaultId: vault.id,
      scope: '/',
      roleDefinitionId: BuiltInRoleIds.administrator,
      principalId,
      createdAt: vault.createdAt,
      createdBy: principalId,
    }),
  ];
}

/**
 * Creates a vault. `creatorObjectId`, the principal creating it, is made its Key Vault
 * Administrator at the vault scope in the same batch, so whoever creates a vault can use it.
 */
export async function createVault(
  db: Database,
  keys: DataKeyManager,
  tenantId: string,
  input: CreateVaultInput,
  creatorObjectId?: string,
): Promise<VaultRecord> {
  const name = input.name.toLowerCase();
  if (!isValidVaultName(name)) {
    throw badParameter(
      'Vault names are 3-24 characters of letters, digits and single hyphens, start with a letter and do not end with a hyphen.',
    );
  }
  const retention = input.softDeleteRetentionInDays ?? 90;
  checkRetention(retention);
  const networkAcls = storedAcls(input.networkAcls);
  const readCacheSeconds = input.readCacheSeconds ?? DEFAULT_READ_CACHE_SECONDS;
  checkReadCache(readCacheSeconds);
  const policies =
    input.accessPolicies === undefined || input.accessPolicies === null ? [] : parsePolicyEntries(input.accessPolicies, tenantId);
  if (await db.select({ id: vaults.id }).from(vaults).where(eq(vaults.name, name)).get()) {
    throw conflict(`Vault ${name} already exists.`);
  }
  const vault: VaultRecord = {
    id: crypto.randomUUID(),
    name,
    tenantId,
    softDeleteRetentionDays: retention,
    purgeProtection: input.enablePurgeProtection ?? false,
    createdAt: Math.floor(Date.now() / 1000),
    enableRbacAuthorization: input.enableRbacAuthorization ?? true,
    networkAcls,
    readCacheSeconds,
  };
  // The first data key is wrapped before anything is written: with the bridge down, nothing is.
  const { row } = await keys.prepare(vault.id);
  try {
    await db.batch([
      db.insert(vaults).values(vault),
      db.insert(dataKeys).values(row),
      ...initialPolicyStatements(db, vault.id, policies),
      ...creatorAssignment(db, vault, creatorObjectId),
    ]);
  } catch (err) {
    if (violatedConstraint(err) === 'unique') throw conflict(`Vault ${name} already exists.`);
    throw err;
  }
  return vault;
}

export interface VaultUpdate {
  enableRbacAuthorization?: boolean;
  /** Azure's networkAcls, validated here; null removes the firewall. */
  networkAcls?: unknown;
  softDeleteRetentionInDays?: number;
  enablePurgeProtection?: boolean;
  readCacheSeconds?: number;
}

/**
 * Changes a vault's properties, with Azure's rules: the soft-delete retention is fixed at creation,
 * and purge protection, once on, stays on. Returns the vault before and after; this isolate's
 * cached record is dropped so its next request sees the change.
 */
export async function updateVault(
  db: Database,
  name: string,
  update: VaultUpdate,
): Promise<{ before: VaultRecord; after: VaultRecord }> {
  const before = await db.select().from(vaults).where(eq(vaults.name, name.toLowerCase())).get();
  if (!before) throw notFound('VaultNotFound', `Vault ${name} was not found.`);
  const set: Partial<VaultRecord> = {};
  if (update.softDeleteRetentionInDays !== undefined) {
    checkRetention(update.softDeleteRetentionInDays);
    if (update.softDeleteRetentionInDays !== before.softDeleteRetentionDays) {
      throw badParameter('softDeleteRetentionInDays is set when a vault is created and cannot be changed.');
    }
  }
  if (update.enablePurgeProtection !== undefined) {
    if (before.purgeProtection && !update.enablePurgeProtection) {
      throw badParameter('Purge protection cannot be disabled once it is enabled.');
    }
    set.purgeProtection = update.enablePurgeProtection;
  }
  if (update.enableRbacAuthorization !== undefined) set.enableRbacAuthorization = update.enableRbacAuthorization;
  if (update.networkAcls !== undefined) set.networkAcls = storedAcls(update.networkAcls);
  if (update.readCacheSeconds !== undefined) {
    checkReadCache(update.readCacheSeconds);
    set.readCacheSeconds = update.readCacheSeconds;
  }
  const after =
    Object.keys(set).length === 0 ? before : await db.update(vaults).set(set).where(eq(vaults.id, before.id)).returning().get();
  if (!after) throw notFound('VaultNotFound', `Vault ${name} was not found.`);
  forgetVault(before.name);
  return { before, after };
}

export async function listVaults(db: Database, after: string | undefined, limit: number): Promise<VaultRecord[]> {
  const query = db.select().from(vaults);
  return (after ? query.where(gt(vaults.name, after)) : query).orderBy(asc(vaults.name)).limit(limit).all();
}

/**
 * Deletes a vault and everything in it. A vault under purge protection cannot be deleted: that
 * would purge its objects before their retention ends.
 */
export async function deleteVault(db: Database, bridge: BridgeClient, name: string): Promise<void> {
  const vault = await db.select().from(vaults).where(eq(vaults.name, name.toLowerCase())).get();
  if (!vault) throw notFound('VaultNotFound', `Vault ${name} was not found.`);
  if (vault.purgeProtection) {
    throw forbidden(`Vault ${name} has purge protection enabled and cannot be deleted.`);
  }
  // HSM keys' token objects first: with the bridge down nothing is deleted, and a retry after a
  // failure below finds them gone already (destroy is idempotent).
  const handles = await db
    .select({ handle: keyVersions.hsmHandle })
    .from(keyVersions)
    .where(and(eq(keyVersions.vaultId, vault.id), isNotNull(keyVersions.hsmHandle)))
    .all();
  for (const { handle } of handles) await bridge.destroyKey(handle!);
  // Secrets, keys and their versions go with the vault (ON DELETE CASCADE); its data keys after them.
  await db.batch([db.delete(vaults).where(eq(vaults.id, vault.id)), db.delete(dataKeys).where(eq(dataKeys.scope, vault.id))]);
  forgetVault(name);
}
