/**
 * Access policies of vaults in the legacy model (enableRbacAuthorization false): one row per
 * principal (object id) with Azure's permission lists. Every write drops this isolate's cached
 * authorization decisions for the vault, so a change applies at once here (other isolates see it
 * when their cache entry expires).
 */
import { and, asc, count, eq } from 'drizzle-orm';
import type { Database } from '../storage/db';
import { accessPolicies } from '../storage/schema';
import { badParameter, notFound } from '../core/errors';
import { type VaultRecord } from '../core/vault';
import { forgetAuthorization } from './authorize';
import { normalizePolicyPermissions, type PolicyPermissions } from './policy-permissions';

/** Azure Key Vault's limit of access policies per vault. */
export const MAX_ACCESS_POLICIES = 1024;

export interface AccessPolicy {
  tenantId: string;
  objectId: string;
  permissions: Required<PolicyPermissions>;
  updatedAt: number;
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A principal's object id: a GUID, compared and stored lowercase. */
export function normalizeObjectId(objectId: unknown): string {
  if (typeof objectId !== 'string' || !GUID.test(objectId)) throw badParameter('objectId must be a GUID.');
  return objectId.toLowerCase();
}

/** Validated permissions with Azure's spelling; 400 BadParameter otherwise. */
export function validatePermissions(input: unknown): Required<PolicyPermissions> {
  const result = normalizePolicyPermissions(input);
  if (typeof result === 'string') throw badParameter(result);
  return { keys: result.keys ?? [], secrets: result.secrets ?? [], certificates: result.certificates ?? [] };
}

function rowToPolicy(vault: VaultRecord, row: typeof accessPolicies.$inferSelect): AccessPolicy {
  const stored = JSON.parse(row.permissions) as PolicyPermissions;
  return {
    tenantId: vault.tenantId,
    objectId: row.objectId,
    permissions: { keys: stored.keys ?? [], secrets: stored.secrets ?? [], certificates: stored.certificates ?? [] },
    updatedAt: row.updatedAt,
  };
}

export async function listAccessPolicies(db: Database, vault: VaultRecord): Promise<AccessPolicy[]> {
  const rows = await db
    .select()
    .from(accessPolicies)
    .where(eq(accessPolicies.vaultId, vault.id))
    .orderBy(asc(accessPolicies.objectId))
    .all();
  return rows.map((row) => rowToPolicy(vault, row));
}

export async function getAccessPolicy(db: Database, vault: VaultRecord, objectId: string): Promise<AccessPolicy | undefined> {
  const row = await db
    .select()
    .from(accessPolicies)
    .where(and(eq(accessPolicies.vaultId, vault.id), eq(accessPolicies.objectId, normalizeObjectId(objectId))))
    .get();
  return row ? rowToPolicy(vault, row) : undefined;
}

const empty = (p: Required<PolicyPermissions>) => p.keys.length + p.secrets.length + p.certificates.length === 0;

type PolicyEntry = { objectId: string; permissions: Required<PolicyPermissions> };

/**
 * The statements that write `entries` (already validated), replacing each principal's row; with
 * `dropEmpty`, a policy left without any permission is deleted instead.
 */
function writeStatements(db: Database, vaultId: string, entries: PolicyEntry[], dropEmpty = false) {
  const now = Math.floor(Date.now() / 1000);
  return entries.map(({ objectId, permissions }) =>
    dropEmpty && empty(permissions)
      ? db.delete(accessPolicies).where(and(eq(accessPolicies.vaultId, vaultId), eq(accessPolicies.objectId, objectId)))
      : db
          .insert(accessPolicies)
          .values({ vaultId, objectId, permissions: JSON.stringify(permissions), updatedAt: now })
          .onConflictDoUpdate({
            target: [accessPolicies.vaultId, accessPolicies.objectId],
            set: { permissions: JSON.stringify(permissions), updatedAt: now },
          }),
  );
}

async function policyCount(db: Database, vault: VaultRecord): Promise<number> {
  const [row] = await db.select({ n: count() }).from(accessPolicies).where(eq(accessPolicies.vaultId, vault.id)).all();
  return row?.n ?? 0;
}

const tooMany = () => badParameter(`A vault may hold at most ${MAX_ACCESS_POLICIES} access policies.`);

/** Creates or replaces one principal's policy. */
export async function setAccessPolicy(
  db: Database,
  vault: VaultRecord,
  objectId: string,
  permissions: unknown,
): Promise<{ policy: AccessPolicy; created: boolean }> {
  const id = normalizeObjectId(objectId);
  const validated = validatePermissions(permissions);
  const created = (await getAccessPolicy(db, vault, id)) === undefined;
  if (created && (await policyCount(db, vault)) >= MAX_ACCESS_POLICIES) throw tooMany();
  const now = Math.floor(Date.now() / 1000);
  const json = JSON.stringify(validated);
  const row = await db
    .insert(accessPolicies)
    .values({ vaultId: vault.id, objectId: id, permissions: json, updatedAt: now })
    .onConflictDoUpdate({ target: [accessPolicies.vaultId, accessPolicies.objectId], set: { permissions: json, updatedAt: now } })
    .returning()
    .get();
  forgetAuthorization(vault.id);
  return { policy: rowToPolicy(vault, row), created };
}

export async function deleteAccessPolicy(db: Database, vault: VaultRecord, objectId: string): Promise<void> {
  const id = normalizeObjectId(objectId);
  const deleted = await db
    .delete(accessPolicies)
    .where(and(eq(accessPolicies.vaultId, vault.id), eq(accessPolicies.objectId, id)))
    .returning({ objectId: accessPolicies.objectId })
    .all();
  forgetAuthorization(vault.id);
  if (deleted.length === 0) throw notFound('NotFound', `Vault ${vault.name} has no access policy for ${id}.`);
}

export type AccessPolicyUpdateKind = 'add' | 'replace' | 'remove';

/**
 * Validates access policies as Azure's API takes them, [{tenantId?, objectId, permissions}]:
 * the tenant (when given) must be the vault's; entries for the same principal are merged.
 */
export function parsePolicyEntries(input: unknown, tenantId: string): PolicyEntry[] {
  if (!Array.isArray(input)) throw badParameter('accessPolicies must be an array.');
  if (input.length > MAX_ACCESS_POLICIES) throw tooMany();
  const byObject = new Map<string, Required<PolicyPermissions>>();
  for (const entry of input) {
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry))
      throw badParameter('Each access policy must be an object.');
    const e = entry as Record<string, unknown>;
    if (e.tenantId !== undefined && (typeof e.tenantId !== 'string' || e.tenantId.toLowerCase() !== tenantId.toLowerCase())) {
      throw badParameter(`An access policy's tenantId must be the vault's tenant (${tenantId}).`);
    }
    const id = normalizeObjectId(e.objectId);
    const validated = validatePermissions(e.permissions);
    const previous = byObject.get(id);
    byObject.set(id, previous ? merge(previous, validated, 'add') : validated);
  }
  return [...byObject].map(([objectId, permissions]) => ({ objectId, permissions }));
}

/**
 * Azure's "Update Access Policy" (PUT …/accessPolicies/{add|replace|remove}), per principal named:
 * `add` merges the given permissions into its policy, `replace` sets them, `remove` takes them
 * away, and a policy left without any permission by `remove` is deleted. Principals not named are
 * untouched.
 * All of it in one batch.
 */
export async function updateAccessPolicies(
  db: Database,
  vault: VaultRecord,
  kind: AccessPolicyUpdateKind,
  input: unknown,
): Promise<AccessPolicy[]> {
  const entries = parsePolicyEntries(input, vault.tenantId);
  const current = new Map((await listAccessPolicies(db, vault)).map((p) => [p.objectId, p.permissions]));
  const writes: PolicyEntry[] = [];
  let size = current.size;
  for (const { objectId, permissions } of entries) {
    const before = current.get(objectId);
    let after: Required<PolicyPermissions>;
    if (kind === 'replace') after = permissions;
    else if (kind === 'add') after = before ? merge(before, permissions, 'add') : permissions;
    else if (before) after = merge(before, permissions, 'remove');
    else continue; // nothing to take away from a principal without a policy
    if (!before) size++;
    else if (kind === 'remove' && empty(after)) size--;
    writes.push({ objectId, permissions: after });
  }
  if (size > MAX_ACCESS_POLICIES) throw tooMany();
  if (writes.length > 0) await db.batch(writeStatements(db, vault.id, writes, kind === 'remove') as [never]);
  forgetAuthorization(vault.id);
  return listAccessPolicies(db, vault);
}

function merge(
  a: Required<PolicyPermissions>,
  b: Required<PolicyPermissions>,
  kind: 'add' | 'remove',
): Required<PolicyPermissions> {
  const one = (x: string[], y: string[]) =>
    kind === 'add' ? [...x, ...y.filter((p) => !x.includes(p))] : x.filter((p) => !y.includes(p));
  return { keys: one(a.keys, b.keys), secrets: one(a.secrets, b.secrets), certificates: one(a.certificates, b.certificates) };
}

/** Statements that write the initial policies of a new vault (from parsePolicyEntries). */
export function initialPolicyStatements(db: Database, vaultId: string, entries: PolicyEntry[]) {
  return writeStatements(db, vaultId, entries);
}
