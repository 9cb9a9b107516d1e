/**
 * The legacy access-policy model: which of Azure's access-policy permissions each data action
 * needs. Names and mapping follow Azure Key Vault (Microsoft.KeyVault/vaults
 * properties.accessPolicies[].permissions, api-version 2023-07-01, storage permissions left out),
 * and the permission each data-plane operation documents ("This operation requires the
 * secrets/list permission", ...).
 *
 * Some of Azure's RBAC data actions cover operations that access policies tell apart:
 * `keys/read` (get a key or a deleted key: `get`; list keys, versions or deleted keys: `list`),
 * likewise `certificates/read`, and `certificatecas/read` (getissuers / listissuers). Given only
 * the action, the answer is the `get`-side permission: the one every policy that uses keys holds
 * (Azure's own customer-managed-key recipe is get, wrapKey, unwrapKey, with no list), at the cost
 * that holding `get` would also let a principal list. Given the operation (its audit name, e.g.
 * `KeyList`, `KeyListVersions`, `KeyListDeleted`: any name containing `List`), listing needs
 * `list` exactly as on Azure; src/access/authorize.ts passes it.
 *
 * `rng` (GetRandomBytes) has no access-policy permission on Azure (it is a Managed HSM operation);
 * here it needs the key permission `all`.
 */
import type { DataAction } from '../core/data-actions';

export type PolicyPermissions = { keys?: string[]; secrets?: string[]; certificates?: string[] };

export type PolicyCollection = 'keys' | 'secrets' | 'certificates';

/** Azure's access-policy permission names, as Azure spells them, for validation. */
export const POLICY_PERMISSIONS: { keys: readonly string[]; secrets: readonly string[]; certificates: readonly string[] } = {
  keys: [
    'all',
    'backup',
    'create',
    'decrypt',
    'delete',
    'encrypt',
    'get',
    'getrotationpolicy',
    'import',
    'list',
    'purge',
    'recover',
    'release',
    'restore',
    'rotate',
    'setrotationpolicy',
    'sign',
    'unwrapKey',
    'update',
    'verify',
    'wrapKey',
  ],
  secrets: ['all', 'backup', 'delete', 'get', 'list', 'purge', 'recover', 'restore', 'set'],
  certificates: [
    'all',
    'backup',
    'create',
    'delete',
    'deleteissuers',
    'get',
    'getissuers',
    'import',
    'list',
    'listissuers',
    'managecontacts',
    'manageissuers',
    'purge',
    'recover',
    'restore',
    'setissuers',
    'update',
  ],
};

type Requirement = { collection: PolicyCollection; permission: string; whenListing?: string };

const keys = (permission: string, whenListing?: string): Requirement => ({ collection: 'keys', permission, whenListing });
const secrets = (permission: string, whenListing?: string): Requirement => ({ collection: 'secrets', permission, whenListing });
const certificates = (permission: string, whenListing?: string): Requirement => ({
  collection: 'certificates',
  permission,
  whenListing,
});

/**
 * Keyed by the data action's value (Azure's RBAC data action names), so certificate actions map
 * by name whichever constant defines them. An action missing here is granted by no policy.
 */
const REQUIREMENTS: ReadonlyMap<string, Requirement> = new Map([
  // Secrets. Azure has no separate actions for deleted secrets: reading one (or listing them) is
  // readMetadata, which needs `list`, as Azure's list operations do.
  ['Microsoft.KeyVault/vaults/secrets/getSecret/action', secrets('get')],
  ['Microsoft.KeyVault/vaults/secrets/readMetadata/action', secrets('list')],
  ['Microsoft.KeyVault/vaults/secrets/setSecret/action', secrets('set')],
  // Update Secret "requires the secrets/set permission".
  ['Microsoft.KeyVault/vaults/secrets/update/action', secrets('set')],
  ['Microsoft.KeyVault/vaults/secrets/delete', secrets('delete')],
  ['Microsoft.KeyVault/vaults/secrets/backup/action', secrets('backup')],
  ['Microsoft.KeyVault/vaults/secrets/restore/action', secrets('restore')],
  ['Microsoft.KeyVault/vaults/secrets/recover/action', secrets('recover')],
  ['Microsoft.KeyVault/vaults/secrets/purge/action', secrets('purge')],
  // Keys. keys/read is get, list, list versions, and reading deleted keys.
  ['Microsoft.KeyVault/vaults/keys/read', keys('get', 'list')],
  ['Microsoft.KeyVault/vaults/keys/create/action', keys('create')],
  ['Microsoft.KeyVault/vaults/keys/import/action', keys('import')],
  ['Microsoft.KeyVault/vaults/keys/update/action', keys('update')],
  ['Microsoft.KeyVault/vaults/keys/delete', keys('delete')],
  ['Microsoft.KeyVault/vaults/keys/backup/action', keys('backup')],
  ['Microsoft.KeyVault/vaults/keys/restore/action', keys('restore')],
  ['Microsoft.KeyVault/vaults/keys/encrypt/action', keys('encrypt')],
  ['Microsoft.KeyVault/vaults/keys/decrypt/action', keys('decrypt')],
  ['Microsoft.KeyVault/vaults/keys/wrap/action', keys('wrapKey')],
  ['Microsoft.KeyVault/vaults/keys/unwrap/action', keys('unwrapKey')],
  ['Microsoft.KeyVault/vaults/keys/sign/action', keys('sign')],
  ['Microsoft.KeyVault/vaults/keys/verify/action', keys('verify')],
  ['Microsoft.KeyVault/vaults/keys/release/action', keys('release')],
  ['Microsoft.KeyVault/vaults/keys/rotate/action', keys('rotate')],
  // Azure enforces these two (its 403 reads "does not have keys getrotationpolicy permission"),
  // though the REST reference still says keys/get and keys/update.
  ['Microsoft.KeyVault/vaults/keyrotationpolicies/read', keys('getrotationpolicy')],
  ['Microsoft.KeyVault/vaults/keyrotationpolicies/write', keys('setrotationpolicy')],
  ['Microsoft.KeyVault/vaults/keys/recover/action', keys('recover')],
  ['Microsoft.KeyVault/vaults/keys/purge/action', keys('purge')],
  ['Microsoft.KeyVault/vaults/rng/action', keys('all')],
  // Certificates. certificates/read is get, list, list versions, deleted certificates, and the
  // certificate policy and pending operation (which Azure reads with get and changes with update).
  ['Microsoft.KeyVault/vaults/certificates/read', certificates('get', 'list')],
  ['Microsoft.KeyVault/vaults/certificates/create/action', certificates('create')],
  ['Microsoft.KeyVault/vaults/certificates/import/action', certificates('import')],
  ['Microsoft.KeyVault/vaults/certificates/update/action', certificates('update')],
  ['Microsoft.KeyVault/vaults/certificates/delete', certificates('delete')],
  ['Microsoft.KeyVault/vaults/certificates/backup/action', certificates('backup')],
  ['Microsoft.KeyVault/vaults/certificates/restore/action', certificates('restore')],
  ['Microsoft.KeyVault/vaults/certificates/recover/action', certificates('recover')],
  ['Microsoft.KeyVault/vaults/certificates/purge/action', certificates('purge')],
  // Contacts: get, set and delete all "require the certificates/managecontacts permission".
  ['Microsoft.KeyVault/vaults/certificatecontacts/write', certificates('managecontacts')],
  // Issuers: each has its own permission, and manageissuers grants them all (below).
  ['Microsoft.KeyVault/vaults/certificatecas/read', certificates('getissuers', 'listissuers')],
  ['Microsoft.KeyVault/vaults/certificatecas/write', certificates('setissuers')],
  ['Microsoft.KeyVault/vaults/certificatecas/delete', certificates('deleteissuers')],
  // Role management (Microsoft.Authorization/...) is no access-policy matter: no policy grants it.
]);

/** Permissions that another permission grants too (besides `all`, which grants its collection). */
const IMPLIED_BY: Readonly<Record<string, readonly string[]>> = {
  getissuers: ['manageissuers'],
  listissuers: ['manageissuers'],
  setissuers: ['manageissuers'],
  deleteissuers: ['manageissuers'],
};

/** Whether an operation (its audit name) lists rather than reads one object. */
function isListing(operation: string | undefined): boolean {
  return operation !== undefined && /List/.test(operation);
}

/**
 * The access-policy permission a data action needs, or undefined when no policy can grant it.
 * `operation` (the audit name) tells listing from reading where one action covers both.
 */
export function permissionFor(
  action: DataAction,
  operation?: string,
): { collection: 'keys' | 'secrets' | 'certificates'; permission: string } | undefined {
  const found = REQUIREMENTS.get(action);
  if (!found) return undefined;
  const permission = found.whenListing && isListing(operation) ? found.whenListing : found.permission;
  return { collection: found.collection, permission };
}

// Policies are small; their lowercased sets are built once per policy object.
const lowered = new WeakMap<string[], ReadonlySet<string>>();

function grantedSet(list: string[]): ReadonlySet<string> {
  let set = lowered.get(list);
  if (!set) {
    set = new Set(list.map((p) => (typeof p === 'string' ? p.toLowerCase() : '')));
    lowered.set(list, set);
  }
  return set;
}

/**
 * Whether an access policy allows a data action: the permission it needs, or `all` of its
 * collection (as Azure's `all` grants every permission of a collection). Names compare without case.
 */
export function policyAllows(policy: PolicyPermissions | undefined, action: DataAction, operation?: string): boolean {
  const needed = permissionFor(action, operation);
  if (!policy || !needed) return false;
  const list = policy[needed.collection];
  if (!Array.isArray(list) || list.length === 0) return false;
  const granted = grantedSet(list);
  if (granted.has('all') || granted.has(needed.permission.toLowerCase())) return true;
  return (IMPLIED_BY[needed.permission] ?? []).some((p) => granted.has(p));
}

/**
 * Validates permissions as a client sends them (names in any case, as Azure accepts them) and
 * returns them with Azure's spelling, deduplicated, every collection present. Returns the reason
 * for a bad one as a string.
 */
export function normalizePolicyPermissions(input: unknown): PolicyPermissions | string {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    return 'permissions must be an object with keys, secrets and certificates arrays.';
  }
  const out: Required<PolicyPermissions> = { keys: [], secrets: [], certificates: [] };
  for (const [collection, value] of Object.entries(input as Record<string, unknown>)) {
    if (collection === 'storage') {
      if (value === undefined || value === null || (Array.isArray(value) && value.length === 0)) continue;
      return 'Storage account permissions are not supported by this vault service.';
    }
    if (collection !== 'keys' && collection !== 'secrets' && collection !== 'certificates') {
      return `permissions has an unknown collection '${collection.slice(0, 64)}'.`;
    }
    if (value === undefined || value === null) continue;
    if (!Array.isArray(value)) return `permissions.${collection} must be an array of permission names.`;
    const allowed = POLICY_PERMISSIONS[collection];
    for (const name of value) {
      const canonical = typeof name === 'string' ? allowed.find((p) => p.toLowerCase() === name.toLowerCase()) : undefined;
      if (!canonical) {
        return `'${String(name).slice(0, 64)}' is not a ${collection} permission; allowed: ${allowed.join(', ')}.`;
      }
      if (!out[collection].includes(canonical)) out[collection].push(canonical);
    }
  }
  return out;
}
