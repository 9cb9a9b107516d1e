/**
 * What one vault's authorization decisions read: its role assignments, its custom role
 * definitions and its access policies, loaded together (one D1 batch) and kept per isolate.
 *
 * Propagation. Writes through this isolate forget the vault's entry at once, so a grant or a
 * revocation is in force for the next request here. Other isolates keep what they loaded for up
 * to the vault's read-cache bound (readCacheSeconds, default 10 s; 0 reads D1 at every decision)
 * and only then see the change, much as Azure asks callers to "observe propagation time" after
 * changing role assignments (its window is minutes). Expiry of a time-bound assignment is not
 * subject to that window: it is evaluated at each decision.
 */
import { eq, isNull, or } from 'drizzle-orm';
import { IsolateCache } from '../core/cache';
import { MAX_READ_CACHE_SECONDS } from '../core/vault';
import type { Database } from '../storage/db';
import { accessPolicies, roleAssignments, roleDefinitions } from '../storage/schema';
import type { PolicyPermissions } from './policy-permissions';
import { builtInRole, type Permission, type RoleDefinition } from './roles';

export type AssignmentRecord = typeof roleAssignments.$inferSelect;

export interface VaultAuthorization {
  /** Assignments by principal (object id, lowercased). */
  byPrincipal: ReadonlyMap<string, readonly AssignmentRecord[]>;
  /** Custom role definitions by GUID (lowercased). */
  customRoles: ReadonlyMap<string, RoleDefinition>;
  /** Access policies by object id (lowercased). */
  policies: ReadonlyMap<string, PolicyPermissions>;
}

// The longest any vault lets an entry live; each load asks for its vault's own, shorter bound.
export const CACHE_TTL_MS = MAX_READ_CACHE_SECONDS * 1000;
const MAX_ENTRIES = 10_000;

type RoleDefinitionRow = typeof roleDefinitions.$inferSelect;

function parseJson<T>(text: string, fallback: T): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    return fallback;
  }
}

const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : []);

/** A stored custom role definition, as the evaluator and the API see it. */
export function customRole(row: RoleDefinitionRow): RoleDefinition {
  const permissions = parseJson<unknown[]>(row.permissions, []).map((p): Permission => {
    const block = (p ?? {}) as Record<string, unknown>;
    return {
      actions: strings(block.actions),
      notActions: strings(block.notActions),
      dataActions: strings(block.dataActions),
      notDataActions: strings(block.notDataActions),
    };
  });
  return {
    id: row.id,
    roleName: row.roleName,
    description: row.description ?? '',
    roleType: 'CustomRole',
    permissions,
    assignableScopes: strings(parseJson<unknown>(row.assignableScopes, ['/'])),
    vaultId: row.vaultId,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

function build(
  assignments: AssignmentRecord[],
  definitions: RoleDefinitionRow[],
  policies: (typeof accessPolicies.$inferSelect)[],
): VaultAuthorization {
  const byPrincipal = new Map<string, AssignmentRecord[]>();
  for (const a of assignments) {
    const key = a.principalId.toLowerCase();
    const list = byPrincipal.get(key);
    if (list) list.push(a);
    else byPrincipal.set(key, [a]);
  }
  return {
    byPrincipal,
    customRoles: new Map(definitions.map((d) => [d.id.toLowerCase(), customRole(d)])),
    policies: new Map(policies.map((p) => [p.objectId.toLowerCase(), parseJson<PolicyPermissions>(p.permissions, {})])),
  };
}

/** The built-in role or the vault's (or the deployment's) custom role with this GUID. */
export function roleById(data: VaultAuthorization, id: string): RoleDefinition | undefined {
  return builtInRole(id) ?? data.customRoles.get(id.toLowerCase());
}

// A forget during a load keeps that load from storing what it read (core/cache.ts); past half its
// bound an entry is renewed in the background, so warm requests never wait for this batch.
const cache = new IsolateCache<VaultAuthorization>({
  name: 'authorization',
  ttlMs: CACHE_TTL_MS,
  maxEntries: MAX_ENTRIES,
  refreshAhead: true,
});

async function loadFromD1(db: Database, vaultId: string): Promise<VaultAuthorization> {
  const [assignments, definitions, policies] = await db.batch([
    db.select().from(roleAssignments).where(eq(roleAssignments.vaultId, vaultId)),
    db
      .select()
      .from(roleDefinitions)
      .where(or(eq(roleDefinitions.vaultId, vaultId), isNull(roleDefinitions.vaultId))),
    db.select().from(accessPolicies).where(eq(accessPolicies.vaultId, vaultId)),
  ]);
  return build(assignments, definitions, policies);
}

/**
 * The vault's authorization data: from this isolate's cache when loaded less than `maxAgeMs` ago
 * (no D1 query), otherwise one D1 batch for a burst of concurrent requests.
 */
export async function loadAuthorization(db: Database, vaultId: string, maxAgeMs = CACHE_TTL_MS): Promise<VaultAuthorization> {
  return (await cache.load(vaultId, () => loadFromD1(db, vaultId), { maxAgeMs }))!;
}

/**
 * Forgets this isolate's copy of a vault's authorization data. Call it after every write to the
 * vault's role assignments, role definitions or access policies.
 */
export function forgetAuthorization(vaultId: string): void {
  cache.forget(vaultId);
}
