/**
 * Role definitions of a vault: the eleven built-in roles and the vault's custom roles (Managed
 * HSM's data-plane shape: `{properties: {roleName, description, type, permissions,
 * assignableScopes}}`; built-in roles have type `AKVBuiltInRole` as there).
 *
 * Custom roles take `dataActions`/`notDataActions` with Azure's wildcards (`*` anywhere, e.g.
 * `Microsoft.KeyVault/vaults/secrets/*`, `Microsoft.KeyVault/vaults/*\/read`, `*`); every
 * `dataActions` pattern must match at least one action this vault has. `actions`/`notActions`
 * are kept and count only for `Microsoft.Authorization/…` (role management), as for built-ins.
 *
 * A principal writing a definition through the vault must hold, at each of its assignable
 * scopes, every action the definition grants: otherwise it could widen a role it (or anyone)
 * already holds. Deleting one likewise needs the delete action at each of its assignable scopes.
 * A definition with assignments cannot be deleted.
 */
import { and, eq, isNull, or } from 'drizzle-orm';
import * as z from 'zod';
import type { Database } from '../storage/db';
import { violatedConstraint } from '../storage/errors';
import { roleAssignments, roleDefinitions } from '../storage/schema';
import { ALL_DATA_ACTIONS, RoleActions } from '../core/data-actions';
import { badParameter, conflict, forbidden, notFound, VaultError } from '../core/errors';
import type { Page } from '../core/paging';
import { readCacheMs, type VaultRecord } from '../core/vault';
import { assertGuidName, type Actor } from './assignments';
import { holds } from './authorize';
import { pageById, parseFilter } from './listing';
import {
  actionMatches,
  BUILT_IN_ROLES,
  builtInRole,
  grantedActions,
  roleDefinitionResourceId,
  type Permission,
  type RoleDefinition,
} from './roles';
import { parseScope, scopeCovers } from './scopes';
import { customRole, forgetAuthorization, loadAuthorization } from './store';

const pattern = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[A-Za-z0-9.*/_-]+$/, 'action patterns are letters, digits, dots, slashes, hyphens, underscores and *');
const patterns = z.array(pattern).max(200).nullable().optional();

export const roleDefinitionBody = z.object({
  properties: z.object({
    roleName: z.string().min(1).max(128).nullable().optional(),
    description: z.string().max(2048).nullable().optional(),
    type: z.string().max(32).nullable().optional(),
    permissions: z
      .array(z.object({ actions: patterns, notActions: patterns, dataActions: patterns, notDataActions: patterns }))
      .max(10)
      .nullable()
      .optional(),
    assignableScopes: z.array(z.string().max(300)).max(20).nullable().optional(),
  }),
});
export type RoleDefinitionInput = z.infer<typeof roleDefinitionBody>;

/** Azure's RoleDefinition (Data Access Administrator's condition shown in its permission, as Azure does). */
export function roleDefinitionShape(r: RoleDefinition) {
  return {
    id: roleDefinitionResourceId(r.id),
    name: r.id,
    type: 'Microsoft.Authorization/roleDefinitions',
    properties: {
      roleName: r.roleName,
      description: r.description,
      type: r.roleType,
      permissions: r.permissions.map((p) => ({
        actions: p.actions,
        notActions: p.notActions,
        dataActions: p.dataActions,
        notDataActions: p.notDataActions,
        ...(r.condition ? { conditionVersion: '2.0', condition: r.condition } : {}),
      })),
      assignableScopes: r.assignableScopes,
    },
  };
}

const dedupe = (list: string[] | null | undefined) => [...new Set(list ?? [])];

function normalizePermissions(input: RoleDefinitionInput['properties']['permissions']): Permission[] {
  return (input ?? []).map((p) => {
    const permission: Permission = {
      actions: dedupe(p.actions),
      notActions: dedupe(p.notActions),
      dataActions: dedupe(p.dataActions),
      notDataActions: dedupe(p.notDataActions),
    };
    for (const d of permission.dataActions) {
      if (!ALL_DATA_ACTIONS.some((a) => actionMatches(d, a))) {
        throw badParameter(`The data action '${d}' matches no data action of this vault service.`);
      }
    }
    return permission;
  });
}

async function vaultCustomRows(db: Database, vault: VaultRecord) {
  return db
    .select()
    .from(roleDefinitions)
    .where(or(eq(roleDefinitions.vaultId, vault.id), isNull(roleDefinitions.vaultId)))
    .all();
}

/** GET: a built-in role, or a custom role of this vault (or of the whole deployment). */
export async function getRoleDefinition(db: Database, vault: VaultRecord, rawName: string): Promise<RoleDefinition> {
  const id = assertGuidName(rawName, 'role definition');
  const builtIn = builtInRole(id);
  if (builtIn) return builtIn;
  const row = await db.select().from(roleDefinitions).where(eq(roleDefinitions.id, id)).get();
  if (!row || (row.vaultId !== null && row.vaultId !== vault.id)) {
    throw notFound('RoleDefinitionNotFound', `The role definition '${id}' was not found.`);
  }
  return customRole(row);
}

/** PUT: creates or replaces the custom role `name` (a GUID) of this vault. */
export async function putRoleDefinition(
  db: Database,
  vault: VaultRecord,
  actor: Actor,
  scope: string,
  rawName: string,
  input: RoleDefinitionInput,
): Promise<RoleDefinition> {
  const id = assertGuidName(rawName, 'role definition');
  if (builtInRole(id)) throw badParameter(`'${id}' is a built-in role definition; built-in roles cannot be changed.`);
  const { properties } = input;
  if (properties.type != null && properties.type.toLowerCase() !== 'customrole') {
    throw badParameter("properties.type must be 'CustomRole': only custom roles can be defined.");
  }
  const roleName = (properties.roleName ?? id).trim();
  if (roleName === '') throw badParameter('properties.roleName must not be empty.');
  const assignableScopes = dedupe((properties.assignableScopes?.length ? properties.assignableScopes : [scope]).map(parseScope));
  for (const s of assignableScopes) {
    if (!scopeCovers(scope, s))
      throw badParameter(`The assignable scope '${s}' is outside the scope '${scope}' the role is defined at.`);
  }
  const permissions = normalizePermissions(properties.permissions);
  const now = Math.floor(Date.now() / 1000);

  const rows = await vaultCustomRows(db, vault);
  const current = await db.select().from(roleDefinitions).where(eq(roleDefinitions.id, id)).get();
  if (current && current.vaultId !== vault.id) throw conflict(`The role definition name '${id}' is already in use.`);
  const clash =
    BUILT_IN_ROLES.find((r) => r.roleName.toLowerCase() === roleName.toLowerCase()) ??
    rows.find((r) => r.id !== id && r.roleName.toLowerCase() === roleName.toLowerCase());
  if (clash)
    throw new VaultError(409, 'RoleDefinitionWithSameNameExists', `A role definition named '${roleName}' already exists.`);

  const role: RoleDefinition = {
    id,
    roleName,
    description: properties.description ?? '',
    roleType: 'CustomRole',
    permissions,
    assignableScopes,
    vaultId: vault.id,
    createdAt: current?.createdAt ?? now,
    updatedAt: now,
  };
  if (actor.kind === 'principal') {
    const data = await loadAuthorization(db, vault.id, readCacheMs(vault));
    for (const s of assignableScopes) {
      const missing = grantedActions(role).filter((a) => !holds(data, actor.caller.objectId, a, s));
      if (missing.length > 0) {
        throw forbidden(
          `The role definition cannot be written: it grants '${missing[0]}'${missing.length > 1 ? ` and ${missing.length - 1} more` : ''} ` +
            `at scope '${s}', which the caller (appid=${actor.caller.appId};oid=${actor.caller.objectId}) does not hold there.`,
          'ForbiddenByRbac',
        );
      }
    }
  }
  if (current) {
    const assigned = await db
      .select({ scope: roleAssignments.scope })
      .from(roleAssignments)
      .where(and(eq(roleAssignments.vaultId, vault.id), eq(roleAssignments.roleDefinitionId, id)))
      .all();
    const outside = assigned.find((a) => !assignableScopes.some((s) => scopeCovers(s, a.scope)));
    if (outside) throw badParameter(`The role is assigned at '${outside.scope}', which the new assignable scopes do not cover.`);
  }

  const values = {
    id,
    vaultId: vault.id,
    roleName,
    description: role.description,
    permissions: JSON.stringify(permissions),
    assignableScopes: JSON.stringify(assignableScopes),
    createdAt: role.createdAt!,
    updatedAt: now,
  };
  try {
    await db
      .insert(roleDefinitions)
      .values(values)
      .onConflictDoUpdate({
        target: roleDefinitions.id,
        set: {
          roleName,
          description: values.description,
          permissions: values.permissions,
          assignableScopes: values.assignableScopes,
          updatedAt: now,
        },
        setWhere: eq(roleDefinitions.vaultId, vault.id),
      });
  } catch (err) {
    if (violatedConstraint(err) === 'unique') throw conflict(`The role definition name '${id}' is already in use.`);
    throw err;
  }
  forgetAuthorization(vault.id);
  return role;
}

/**
 * DELETE: removes a custom role of this vault that nothing is assigned; answers what it was. As
 * for writing, a principal must hold the delete action at every scope the role is assignable at:
 * the scope the request is addressed to says nothing about how far the role reaches.
 */
export async function deleteRoleDefinition(
  db: Database,
  vault: VaultRecord,
  actor: Actor,
  rawName: string,
): Promise<RoleDefinition> {
  const role = await getRoleDefinition(db, vault, rawName);
  if (role.roleType !== 'CustomRole' || role.vaultId !== vault.id) {
    throw badParameter(`'${role.id}' is not a custom role of this vault and cannot be deleted here.`);
  }
  if (actor.kind === 'principal') {
    const data = await loadAuthorization(db, vault.id, readCacheMs(vault));
    const outside = role.assignableScopes.find((s) => !holds(data, actor.caller.objectId, RoleActions.deleteDefinitions, s));
    if (outside !== undefined) {
      throw forbidden(
        `The role definition cannot be deleted: it is assignable at scope '${outside}', where the caller ` +
          `(appid=${actor.caller.appId};oid=${actor.caller.objectId}) does not hold '${RoleActions.deleteDefinitions}'.`,
        'ForbiddenByRbac',
      );
    }
  }
  const assigned = await db
    .select({ id: roleAssignments.id })
    .from(roleAssignments)
    .where(and(eq(roleAssignments.vaultId, vault.id), eq(roleAssignments.roleDefinitionId, role.id)))
    .get();
  if (assigned) {
    throw new VaultError(
      409,
      'RoleDefinitionHasAssignments',
      `The role definition '${role.id}' is assigned (e.g. '${assigned.id}'); delete its assignments first.`,
    );
  }
  await db.delete(roleDefinitions).where(and(eq(roleDefinitions.id, role.id), eq(roleDefinitions.vaultId, vault.id)));
  forgetAuthorization(vault.id);
  return role;
}

/**
 * GET list at `scope`: the role definitions applicable at the scope and above (built-in roles
 * everywhere; custom roles whose assignable scopes cover it), with `atScopeAndBelow()` also those
 * assignable only below it; `roleName eq '…'` (without case) and `type eq '…'` narrow it.
 */
export async function listRoleDefinitions(
  db: Database,
  vault: VaultRecord,
  scope: string,
  filter: string | null | undefined,
  max: number,
  skipToken: string | null | undefined,
): Promise<Page<RoleDefinition>> {
  const terms = parseFilter(filter, { functions: ['atScopeAndBelow'], properties: ['roleName', 'type'] });
  const below = terms.some((t) => t.name === 'atScopeAndBelow');
  const names = terms.filter((t) => t.name === 'roleName').map((t) => t.value!.toLowerCase());
  const types = terms.filter((t) => t.name === 'type').map((t) => t.value!.toLowerCase());
  const all = [...BUILT_IN_ROLES, ...(await vaultCustomRows(db, vault)).map(customRole)];
  const applicable = all.filter(
    (r) =>
      r.assignableScopes.some((s) => scopeCovers(s, scope) || (below && scopeCovers(scope, s))) &&
      names.every((n) => r.roleName.toLowerCase() === n) &&
      types.every((t) => r.roleType.toLowerCase() === t),
  );
  return pageById(applicable, max, skipToken);
}
