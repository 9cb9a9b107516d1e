/**
 * Role assignments of a vault: Managed HSM's data-plane RBAC API (what @azure/keyvault-admin's
 * KeyVaultAccessControlClient speaks), on each vault and through the management API.
 *
 * Who may change them. On the vault host (actor `principal`), creating or deleting an assignment
 * needs, at a scope covering the assignment's scope:
 *  1. `Microsoft.Authorization/roleAssignments/write` (or `/delete`), from an assignment whose
 *     role's condition (Data Access Administrator's) allows the role being assigned or removed;
 *  2. every action the role grants: nobody grants or takes away what they do not hold themselves.
 * So a Secrets Officer cannot assign roles, a Data Access Administrator cannot assign Key Vault
 * Administrator unless it also holds everything Administrator grants, and nobody assigns at a
 * scope wider than their own. Administrators of the deployment (actor `administrator`, the
 * management API) are the deployment's owners and are not limited this way.
 *
 * Our extension: an assignment may carry `properties.expiresOn` (ISO 8601); from then on it
 * grants nothing (checked at every decision) and stays listed until deleted.
 */
import { and, eq } from 'drizzle-orm';
import * as z from 'zod';
import { findPrincipal } from '../identity/applications';
import type { Caller } from '../identity/tokens';
import type { Database } from '../storage/db';
import { violatedConstraint } from '../storage/errors';
import { roleAssignments, roleDefinitions } from '../storage/schema';
import { RoleActions } from '../core/data-actions';
import { badParameter, conflict, forbidden, notFound, VaultError } from '../core/errors';
import type { Page } from '../core/paging';
import { readCacheMs, type VaultRecord } from '../core/vault';
import { holds, isLive, liveAssignments, rbacRefusal } from './authorize';
import { pageById, parseFilter } from './listing';
import {
  builtInRole,
  conditionAllows,
  grantedActions,
  isGuid,
  parseRoleDefinitionId,
  roleDefinitionResourceId,
  roleGrants,
  type RoleDefinition,
} from './roles';
import { sameScope, scopeCovers } from './scopes';
import {
  customRole,
  forgetAuthorization,
  loadAuthorization,
  roleById,
  type AssignmentRecord,
  type VaultAuthorization,
} from './store';

export type Actor = { kind: 'administrator' } | { kind: 'principal'; caller: Caller };

/** Per vault, as a bound on what each isolate keeps in memory (Azure: 4,000 per subscription). */
export const MAX_ASSIGNMENTS_PER_VAULT = 2000;

export const assignmentBody = z.object({
  properties: z.object({
    roleDefinitionId: z.string().min(1).max(512),
    principalId: z.string().min(1).max(64),
    expiresOn: z.string().max(64).nullable().optional(),
  }),
});
export type AssignmentInput = z.infer<typeof assignmentBody>;

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** `{scope}/providers/Microsoft.Authorization/{kind}/{name}`, the vault scope written as nothing. */
export const providerPath = (scope: string, kind: 'roleAssignments' | 'roleDefinitions', name: string) =>
  `${scope === '/' ? '' : scope}/providers/Microsoft.Authorization/${kind}/${name}`;

/** Azure's RoleAssignment, plus `expiresOn` when the assignment is time-bound. */
export function assignmentShape(a: AssignmentRecord) {
  return {
    id: providerPath(a.scope, 'roleAssignments', a.id),
    name: a.id,
    type: 'Microsoft.Authorization/roleAssignments',
    properties: {
      scope: a.scope,
      roleDefinitionId: roleDefinitionResourceId(a.roleDefinitionId),
      principalId: a.principalId,
      ...(a.expiresAt != null ? { expiresOn: new Date(a.expiresAt * 1000).toISOString() } : {}),
    },
  };
}

export function assertGuidName(name: string, what: string): string {
  if (!isGuid(name)) throw badParameter(`The ${what} name '${name.slice(0, 64)}' is not valid: it must be a GUID.`);
  return name.toLowerCase();
}

/** The built-in role, or the vault's (or the deployment's) custom role, read fresh from D1. */
export async function findRole(db: Database, vault: VaultRecord, id: string): Promise<RoleDefinition | undefined> {
  const builtIn = builtInRole(id);
  if (builtIn) return builtIn;
  const row = await db.select().from(roleDefinitions).where(eq(roleDefinitions.id, id)).get();
  return row && (row.vaultId === null || row.vaultId === vault.id) ? customRole(row) : undefined;
}

function parseExpiry(raw: string | null | undefined, now: number): number | null {
  if (raw === undefined || raw === null) return null;
  const ms = /^\d{4}-\d{2}-\d{2}T/.test(raw) ? Date.parse(raw) : NaN;
  if (!Number.isFinite(ms)) throw badParameter(`properties.expiresOn '${raw.slice(0, 64)}' is not an ISO 8601 date and time.`);
  const at = Math.floor(ms / 1000);
  if (at <= now) throw badParameter('properties.expiresOn must be in the future.');
  if (at > 253402300799) throw badParameter('properties.expiresOn is too far in the future.');
  return at;
}

const describeRole = (role: RoleDefinition) => `'${role.roleName}' (${role.id})`;

/**
 * The no-self-escalation rule for a principal creating (`write`) or deleting (`delete`) an
 * assignment of `role` at `scope`. Throws 403 ForbiddenByRbac when it does not hold.
 */
export function assertMayManage(
  data: VaultAuthorization,
  caller: Caller,
  vault: VaultRecord,
  kind: 'write' | 'delete',
  scope: string,
  role: RoleDefinition,
  now = nowSeconds(),
): void {
  const action = kind === 'write' ? RoleActions.writeAssignments : RoleActions.deleteAssignments;
  const managing = liveAssignments(data, caller.objectId, now).flatMap((a) => {
    const r = scopeCovers(a.scope, scope) ? roleById(data, a.roleDefinitionId) : undefined;
    return r && roleGrants(r, action) ? [r] : [];
  });
  if (managing.length === 0) throw rbacRefusal(caller, action, vault, scope);
  if (!managing.some((r) => conditionAllows(r, role.id))) {
    throw forbidden(
      `The role assignment cannot be ${kind === 'write' ? 'created' : 'deleted'}: the condition on the caller's role ` +
        `(${managing.map((r) => `'${r.roleName}'`).join(', ')}) does not allow managing assignments of ${describeRole(role)}.`,
      'ForbiddenByRbac',
    );
  }
  const missing = grantedActions(role).filter((a) => !holds(data, caller.objectId, a, scope, now));
  if (missing.length > 0) {
    const more = missing.length > 1 ? ` and ${missing.length - 1} more` : '';
    throw forbidden(
      `The role assignment cannot be ${kind === 'write' ? 'created' : 'deleted'}: ${describeRole(role)} grants ` +
        `'${missing[0]}'${more} at scope '${scope}', which the caller (appid=${caller.appId};oid=${caller.objectId}) ` +
        'does not hold there. Nobody can grant or revoke access they do not have.',
      'ForbiddenByRbac',
    );
  }
}

async function vaultAssignments(db: Database, vault: VaultRecord): Promise<AssignmentRecord[]> {
  return db.select().from(roleAssignments).where(eq(roleAssignments.vaultId, vault.id)).all();
}

const sameAssignment = (a: AssignmentRecord, scope: string, roleId: string, principalId: string) =>
  sameScope(a.scope, scope) && a.roleDefinitionId === roleId && a.principalId.toLowerCase() === principalId;

/**
 * PUT: creates the assignment `name` (a GUID) of a role to a principal at `scope` (already
 * canonical). A repeated PUT of the same assignment answers it again (and may change only its
 * expiry); anything else under an existing name is a conflict, as are two names for one grant.
 */
export async function createRoleAssignment(
  db: Database,
  vault: VaultRecord,
  actor: Actor,
  scope: string,
  rawName: string,
  input: AssignmentInput,
): Promise<AssignmentRecord> {
  const now = nowSeconds();
  const name = assertGuidName(rawName, 'role assignment');
  const { properties } = input;
  const roleId = parseRoleDefinitionId(properties.roleDefinitionId);
  if (!roleId)
    throw badParameter(
      `properties.roleDefinitionId '${properties.roleDefinitionId.slice(0, 128)}' does not name a role definition.`,
    );
  if (!isGuid(properties.principalId))
    throw badParameter('properties.principalId must be the object id (a GUID) of a principal.');
  const principalId = properties.principalId.toLowerCase();
  const expiresAt = parseExpiry(properties.expiresOn, now);
  const role = await findRole(db, vault, roleId);
  if (!role)
    throw new VaultError(400, 'RoleDefinitionDoesNotExist', `The role definition '${roleId}' does not exist in this vault.`);
  if (!role.assignableScopes.some((s) => scopeCovers(s, scope))) {
    throw badParameter(
      `${describeRole(role)} cannot be assigned at scope '${scope}'; its assignable scopes are ${role.assignableScopes.join(', ')}.`,
    );
  }
  if (actor.kind === 'principal') {
    assertMayManage(await loadAuthorization(db, vault.id, readCacheMs(vault)), actor.caller, vault, 'write', scope, role, now);
  }
  // As Azure: an assignment to nobody is refused, not stored to grant nothing (checked after the
  // caller's rights, so only those who may assign learn whether a principal exists).
  const principal = await findPrincipal(db, vault.tenantId, principalId);
  if (!principal.found) {
    throw new VaultError(
      400,
      'PrincipalNotFound',
      `Principal ${principalId.replace(/-/g, '')} does not exist in the directory ${vault.tenantId}. Check that you have the correct principal ID.` +
        (principal.isClientId
          ? ' It is the client (application) id of an application: role assignments take its object id.'
          : ''),
    );
  }

  const existing = await vaultAssignments(db, vault);
  const same = existing.find((a) => a.id === name);
  if (same) {
    if (!sameAssignment(same, scope, role.id, principalId)) {
      throw conflict(
        `The role assignment '${name}' already exists with another scope, role or principal; it cannot be changed, only deleted.`,
      );
    }
    if (same.expiresAt === expiresAt) return same;
    const updated = await db.update(roleAssignments).set({ expiresAt }).where(eq(roleAssignments.id, name)).returning().get();
    forgetAuthorization(vault.id);
    return updated ?? same;
  }
  const twin = existing.find((a) => sameAssignment(a, scope, role.id, principalId) && isLive(a, now));
  if (twin) throw new VaultError(409, 'RoleAssignmentExists', `The role assignment already exists (as '${twin.id}').`);
  if (existing.length >= MAX_ASSIGNMENTS_PER_VAULT) {
    throw new VaultError(
      409,
      'RoleAssignmentLimitExceeded',
      `A vault holds at most ${MAX_ASSIGNMENTS_PER_VAULT} role assignments.`,
    );
  }
  const row: AssignmentRecord = {
    id: name,
    vaultId: vault.id,
    scope,
    roleDefinitionId: role.id,
    principalId,
    expiresAt,
    createdAt: now,
    createdBy: actor.kind === 'principal' ? actor.caller.objectId : null,
    lastUsedAt: null,
  };
  try {
    await db.insert(roleAssignments).values(row);
  } catch (err) {
    // The name is a global key: taken in another vault, or by a concurrent PUT.
    if (violatedConstraint(err) === 'unique') throw conflict(`The role assignment name '${name}' is already in use.`);
    throw err;
  }
  forgetAuthorization(vault.id);
  return row;
}

/** GET: the assignment `name` of this vault; with `scope`, only if it is at that scope. */
export async function getRoleAssignment(
  db: Database,
  vault: VaultRecord,
  rawName: string,
  scope?: string,
): Promise<AssignmentRecord> {
  const name = assertGuidName(rawName, 'role assignment');
  const row = await db
    .select()
    .from(roleAssignments)
    .where(and(eq(roleAssignments.id, name), eq(roleAssignments.vaultId, vault.id)))
    .get();
  if (!row || (scope !== undefined && !sameScope(row.scope, scope))) {
    throw notFound(
      'RoleAssignmentNotFound',
      `The role assignment '${name}' was not found${scope ? ` at scope '${scope}'` : ''}.`,
    );
  }
  return row;
}

/** DELETE: removes the assignment and answers what it was. */
export async function deleteRoleAssignment(
  db: Database,
  vault: VaultRecord,
  actor: Actor,
  rawName: string,
  scope?: string,
): Promise<AssignmentRecord> {
  const row = await getRoleAssignment(db, vault, rawName, scope);
  if (actor.kind === 'principal') {
    // A role that no longer exists grants nothing; its assignment is removable by any manager.
    const role = (await findRole(db, vault, row.roleDefinitionId)) ?? {
      id: row.roleDefinitionId,
      roleName: row.roleDefinitionId,
      description: '',
      roleType: 'CustomRole' as const,
      permissions: [],
      assignableScopes: ['/'],
    };
    assertMayManage(await loadAuthorization(db, vault.id, readCacheMs(vault)), actor.caller, vault, 'delete', row.scope, role);
  }
  await db.delete(roleAssignments).where(and(eq(roleAssignments.id, row.id), eq(roleAssignments.vaultId, vault.id)));
  forgetAuthorization(vault.id);
  return row;
}

/**
 * GET list at `scope`, as Azure filters it: no filter lists assignments at, above and below the
 * scope; `atScope()` at or above it; `principalId eq '{id}'` one principal's, at, above or below.
 */
export async function listRoleAssignments(
  db: Database,
  vault: VaultRecord,
  scope: string,
  filter: string | null | undefined,
  max: number,
  skipToken: string | null | undefined,
): Promise<Page<AssignmentRecord>> {
  const terms = parseFilter(filter, { functions: ['atScope'], properties: ['principalId'] });
  const atScope = terms.some((t) => t.name === 'atScope');
  const principals = terms.filter((t) => t.name === 'principalId').map((t) => t.value!.toLowerCase());
  const rows = (await vaultAssignments(db, vault)).filter((a) => {
    const aboveOrAt = scopeCovers(a.scope, scope);
    if (atScope ? !aboveOrAt : !aboveOrAt && !scopeCovers(scope, a.scope)) return false;
    return principals.every((p) => a.principalId.toLowerCase() === p);
  });
  return pageById(rows, max, skipToken);
}
