/**
 * The one authorization decision every data-plane request goes through (src/http/operation.ts).
 * Deny by default: a request is allowed only where a live role assignment of the caller, at a
 * scope covering what the request touches, has a role granting its exact data action; or, on a
 * vault that uses access policies instead (enableRbacAuthorization false), where the caller's
 * access policy holds the permission the action needs.
 *
 * Warm, it reads nothing from D1: the vault's assignments, custom roles and policies come from
 * the isolate's cache, no older than the vault's read-cache bound (see store.ts for how changes
 * propagate). Expiry is checked here, at every
 * decision, never at load time.
 */
import type { Caller } from '../identity/tokens';
import type { Database } from '../storage/db';
import type { DataAction } from '../core/data-actions';
import { forbidden, type VaultError } from '../core/errors';
import { readCacheMs, type VaultRecord } from '../core/vault';
import { permissionFor, policyAllows } from './policy-permissions';
import { roleGrants } from './roles';
import { scopeCovers } from './scopes';
import { loadAuthorization, roleById, type AssignmentRecord, type VaultAuthorization } from './store';

/** What granted a request, for the audit trail (roleDefinitionId is the role's GUID). */
export type AuthorizationDecision =
  { by: 'rbac'; assignmentId: string; roleDefinitionId: string } | { by: 'policy'; objectId: string };

export interface Scope {
  vault: VaultRecord;
  tenantId: string;
  /** What the request touches: '/', '/secrets', '/secrets/{name}', '/keys', '/rng', … */
  path: string;
  /**
   * The operation's audit name (e.g. `SecretList`), optional: access policies tell listing from
   * reading one object where RBAC has one action for both.
   */
  operation?: string;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** Whether an assignment still grants at `now` (Unix seconds): no expiry, or one still ahead. */
export const isLive = (a: Pick<AssignmentRecord, 'expiresAt'>, now: number) => a.expiresAt == null || a.expiresAt > now;

/** A principal's assignments that grant at `now`. */
export function liveAssignments(data: VaultAuthorization, principalId: string, now = nowSeconds()): AssignmentRecord[] {
  return (data.byPrincipal.get(principalId.toLowerCase()) ?? []).filter((a) => isLive(a, now));
}

/** The assignment that grants `action` on `path` to a principal, if any. */
export function findGrant(
  data: VaultAuthorization,
  principalId: string,
  action: string,
  path: string,
  now = nowSeconds(),
): AssignmentRecord | undefined {
  for (const a of data.byPrincipal.get(principalId.toLowerCase()) ?? []) {
    if (!isLive(a, now) || !scopeCovers(a.scope, path)) continue;
    const role = roleById(data, a.roleDefinitionId);
    if (role && roleGrants(role, action)) return a;
  }
  return undefined;
}

/** Whether a principal holds `action` on `path` through its role assignments. */
export const holds = (data: VaultAuthorization, principalId: string, action: string, path: string, now = nowSeconds()) =>
  findGrant(data, principalId, action, path, now) !== undefined;

const PROPAGATION =
  'If role assignments, deny assignments or role definitions were changed recently, please observe propagation time.';

const callerText = (caller: Caller) => `appid=${caller.appId};oid=${caller.objectId}`;

/** Azure's resource form for the message, lowercased as Azure writes it. */
function resourceOf(vault: VaultRecord, path: string): string {
  const tail = path === '/' ? '' : path.slice(0, 300);
  return `/providers/microsoft.keyvault/vaults/${vault.name}${tail}`.toLowerCase();
}

/**
 * Azure's RBAC refusal: 403 Forbidden, innererror ForbiddenByRbac, and its message layout
 * (caller, action, resource, assignment, decision reason, vault). Names and ids only.
 */
export function rbacRefusal(
  caller: Caller,
  action: string,
  vault: VaultRecord,
  path: string,
  reason = 'DeniedWithNoValidRBAC',
): VaultError {
  const message = [
    'Caller is not authorized to perform action on resource.',
    PROPAGATION,
    `Caller: ${callerText(caller)}`,
    `Action: '${action}'`,
    `Resource: '${resourceOf(vault, path)}'`,
    'Assignment: (not found)',
    'DenyAssignmentId: null',
    `DecisionReason: '${reason}' `,
    `Vault: ${vault.name}`,
    '',
  ].join('\r\n');
  return forbidden(message, 'ForbiddenByRbac');
}

/** Azure's access-policy refusal: 403 Forbidden, innererror AccessDenied. */
function policyRefusal(caller: Caller, action: DataAction, scope: Scope): VaultError {
  const needed = permissionFor(action, scope.operation);
  const what = needed ? `${needed.collection} ${needed.permission} permission` : `permission to perform '${action}'`;
  return forbidden(
    `The user, group or application '${callerText(caller)}' does not have ${what} on key vault '${scope.vault.name}'. ` +
      'For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287',
    'AccessDenied',
  );
}

export async function authorize(db: Database, caller: Caller, action: DataAction, scope: Scope): Promise<AuthorizationDecision> {
  // Another tenant's principal holds nothing here, whatever its object id.
  if (caller.tenantId !== scope.tenantId || caller.tenantId !== scope.vault.tenantId) {
    throw rbacRefusal(caller, action, scope.vault, scope.path);
  }
  const data = await loadAuthorization(db, scope.vault.id, readCacheMs(scope.vault));
  if (scope.vault.enableRbacAuthorization === false) {
    const policy = data.policies.get(caller.objectId.toLowerCase());
    if (!policyAllows(policy, action, scope.operation)) throw policyRefusal(caller, action, scope);
    return { by: 'policy', objectId: caller.objectId };
  }
  const grant = findGrant(data, caller.objectId, action, scope.path);
  if (!grant) throw rbacRefusal(caller, action, scope.vault, scope.path);
  return { by: 'rbac', assignmentId: grant.id, roleDefinitionId: grant.roleDefinitionId };
}

/** Forgets this isolate's copy of a vault's assignments, roles and policies (call after every write). */
export { forgetAuthorization } from './store';
