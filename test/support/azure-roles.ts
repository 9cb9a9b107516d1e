/**
 * What Azure Key Vault allows, written down from Azure's published definitions and nothing else
 * (this file must not import the product's src/access): the built-in roles' dataActions and
 * notDataActions, Azure's wildcard rule, the data action and the access-policy permission each
 * data-plane operation requires, and the scope each request is evaluated at. The authorization
 * matrix (test/e2e/authorization-matrix*.e2e.test.ts) compares the vault against these tables.
 *
 * Sources (checked Nov 2026):
 *  - Roles: learn.microsoft.com/azure/role-based-access-control/built-in-roles/security (the JSON
 *    of each role: id, dataActions, notDataActions).
 *  - Data actions of Microsoft.KeyVault: learn.microsoft.com/azure/role-based-access-control/
 *    permissions/security#microsoftkeyvault. Key Vault (unlike Managed HSM) has no deletedSecrets/
 *    deletedKeys data actions: recover and purge are `secrets/recover/action`, `secrets/purge/
 *    action`, `keys/recover/action`, `keys/purge/action`.
 *  - Permission each operation requires: the Key Vault REST reference ("This operation requires
 *    the secrets/get permission", …). Reading a deleted object needs `get`, listing deleted objects
 *    `list`; updating a secret's attributes needs `set`.
 *  - Access-policy permission → data action: Microsoft's mapping shipped with the Key Vault
 *    team's Access Policy to RBAC compare tool (github.com/Azure/KeyVault-AccessPolicyToRBAC-
 *    CompareTool, AcessPolicyRBACMapping.csv), which the rbac-migration page links: secrets get →
 *    getSecret/action, secrets list → readMetadata/action, keys get and list → keys/read,
 *    GetRotationPolicy → keyrotationpolicies/read, SetRotationPolicy → keyrotationpolicies/write.
 *    An operation's RBAC data action is the data action of the permission it needs (so
 *    getDeletedSecret needs getSecret/action and listDeletedSecrets readMetadata/action), except
 *    where the data-action list names the operation itself (updateSecret → secrets/update/action).
 *  - Rotation policies: the REST reference still says keys/get and keys/update, but Azure's access
 *    policies have had getrotationpolicy/setrotationpolicy since 2021 and RBAC checks
 *    keyrotationpolicies/* (which is why Key Vault Crypto Officer carries it); both are used here.
 *  - Random bytes: Azure publishes GetRandomBytes for Managed HSM only
 *    (`Microsoft.KeyVault/managedHsm/rng/action`, at scope '/'); no Key Vault data action or
 *    access-policy permission exists. The matrix assumes the Key Vault analogue
 *    `Microsoft.KeyVault/vaults/rng/action` at the vault scope, which only a `vaults/*` wildcard
 *    (Key Vault Administrator) grants, and leaves it out of the access-policy matrix.
 */

export interface AzureRoleDefinition {
  /** The role definition's GUID (its `name`). */
  id: string;
  roleName: string;
  dataActions: readonly string[];
  notDataActions: readonly string[];
}

/** `/providers/Microsoft.Authorization/roleDefinitions/{guid}`, as role assignments name a role. */
export const roleDefinitionId = (role: AzureRoleDefinition): string =>
  `/providers/Microsoft.Authorization/roleDefinitions/${role.id}`;

const role = (id: string, roleName: string, dataActions: string[], notDataActions: string[] = []): AzureRoleDefinition => ({
  id,
  roleName,
  dataActions,
  notDataActions,
});

/** The eleven built-in Key Vault data-plane roles, as Azure publishes them. */
export const AZURE_KEY_VAULT_ROLES: readonly AzureRoleDefinition[] = [
  role('00482a5a-887f-4fb3-b363-3b7fe8e74483', 'Key Vault Administrator', ['Microsoft.KeyVault/vaults/*']),
  role('21090545-7ca7-4776-b22c-e363652d74d2', 'Key Vault Reader', [
    'Microsoft.KeyVault/vaults/*/read',
    'Microsoft.KeyVault/vaults/secrets/readMetadata/action',
  ]),
  role('b86a8fe4-44ce-4948-aee5-eccb2c155cd7', 'Key Vault Secrets Officer', ['Microsoft.KeyVault/vaults/secrets/*']),
  role('4633458b-17de-408a-b874-0445c86b69e6', 'Key Vault Secrets User', [
    'Microsoft.KeyVault/vaults/secrets/getSecret/action',
    'Microsoft.KeyVault/vaults/secrets/readMetadata/action',
  ]),
  role('14b46e9e-c2b7-41b4-b07b-48a6ebf60603', 'Key Vault Crypto Officer', [
    'Microsoft.KeyVault/vaults/keys/*',
    'Microsoft.KeyVault/vaults/keyrotationpolicies/*',
  ]),
  role('12338af0-0e69-4776-bea7-57ae8d297424', 'Key Vault Crypto User', [
    'Microsoft.KeyVault/vaults/keys/read',
    'Microsoft.KeyVault/vaults/keys/update/action',
    'Microsoft.KeyVault/vaults/keys/backup/action',
    'Microsoft.KeyVault/vaults/keys/encrypt/action',
    'Microsoft.KeyVault/vaults/keys/decrypt/action',
    'Microsoft.KeyVault/vaults/keys/wrap/action',
    'Microsoft.KeyVault/vaults/keys/unwrap/action',
    'Microsoft.KeyVault/vaults/keys/sign/action',
    'Microsoft.KeyVault/vaults/keys/verify/action',
  ]),
  role('e147488a-f6f5-4113-8e2d-b22465e65bf6', 'Key Vault Crypto Service Encryption User', [
    'Microsoft.KeyVault/vaults/keys/read',
    'Microsoft.KeyVault/vaults/keys/wrap/action',
    'Microsoft.KeyVault/vaults/keys/unwrap/action',
  ]),
  role('08bbd89e-9f13-488c-ac41-acfcb10c90ab', 'Key Vault Crypto Service Release User', [
    'Microsoft.KeyVault/vaults/keys/release/action',
  ]),
  role('a4417e6f-fecd-4de8-b567-7b0420556985', 'Key Vault Certificates Officer', [
    'Microsoft.KeyVault/vaults/certificatecas/*',
    'Microsoft.KeyVault/vaults/certificates/*',
    'Microsoft.KeyVault/vaults/certificatecontacts/write',
  ]),
  role('db79e9a7-68ee-4b58-9aeb-b90e7c24fcba', 'Key Vault Certificate User', [
    'Microsoft.KeyVault/vaults/certificates/read',
    'Microsoft.KeyVault/vaults/secrets/getSecret/action',
    'Microsoft.KeyVault/vaults/secrets/readMetadata/action',
    'Microsoft.KeyVault/vaults/keys/read',
  ]),
  // Control plane only (role assignments, under an ABAC condition): no data actions at all.
  role('8b54135c-b56d-4d72-a534-26097cfdc8d8', 'Key Vault Data Access Administrator', []),
];

export function azureRole(roleName: string): AzureRoleDefinition {
  const found = AZURE_KEY_VAULT_ROLES.find((r) => r.roleName === roleName);
  if (!found) throw new Error(`no built-in role ${roleName}`);
  return found;
}

/**
 * Azure's action wildcard: `*` stands for any run of characters, `/` included
 * (`Microsoft.KeyVault/vaults/*\/read` matches `…/vaults/deletedSecrets/read` and
 * `…/vaults/keys/read`); everything else compares case-insensitively.
 */
export function actionMatches(pattern: string, action: string): boolean {
  const body = pattern
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${body}$`, 'i').test(action);
}

/** A role grants an action when a dataAction matches it and no notDataAction does. */
export function roleGrants(def: AzureRoleDefinition, action: string): boolean {
  return def.dataActions.some((p) => actionMatches(p, action)) && !def.notDataActions.some((p) => actionMatches(p, action));
}

/**
 * Whether an assignment at `assignmentScope` applies to a request evaluated at `requestScope`
 * (both vault-relative: '/', '/secrets', '/keys/{name}', …): the vault scope covers everything,
 * otherwise the same path or one below it. Scopes compare case-insensitively, as Azure resource
 * ids and Key Vault object names do; '/keys/a' does not cover '/keys/ab'.
 */
export function scopeCovers(assignmentScope: string, requestScope: string): boolean {
  const a = assignmentScope.toLowerCase().replace(/\/+$/, '');
  const r = requestScope.toLowerCase().replace(/\/+$/, '');
  if (a === '') return true;
  return r === a || r.startsWith(`${a}/`);
}

// ------------------------------------------------------------------------------ data actions

const kv = (suffix: string) => `Microsoft.KeyVault/vaults/${suffix}`;

/** Key Vault's data actions for secrets, keys and rotation policies (permissions/security.md). */
export const AZURE_DATA_ACTIONS = {
  secrets: {
    getSecret: kv('secrets/getSecret/action'),
    setSecret: kv('secrets/setSecret/action'),
    readMetadata: kv('secrets/readMetadata/action'),
    update: kv('secrets/update/action'),
    delete: kv('secrets/delete'),
    backup: kv('secrets/backup/action'),
    restore: kv('secrets/restore/action'),
    recover: kv('secrets/recover/action'),
    purge: kv('secrets/purge/action'),
  },
  keys: {
    read: kv('keys/read'),
    create: kv('keys/create/action'),
    import: kv('keys/import/action'),
    update: kv('keys/update/action'),
    delete: kv('keys/delete'),
    backup: kv('keys/backup/action'),
    restore: kv('keys/restore/action'),
    recover: kv('keys/recover/action'),
    purge: kv('keys/purge/action'),
    encrypt: kv('keys/encrypt/action'),
    decrypt: kv('keys/decrypt/action'),
    wrap: kv('keys/wrap/action'),
    unwrap: kv('keys/unwrap/action'),
    sign: kv('keys/sign/action'),
    verify: kv('keys/verify/action'),
    release: kv('keys/release/action'),
    rotate: kv('keys/rotate/action'),
    getRotationPolicy: kv('keyrotationpolicies/read'),
    setRotationPolicy: kv('keyrotationpolicies/write'),
  },
  /** Assumed (see the header): Managed HSM's rng action, named for vaults. */
  rng: kv('rng/action'),
} as const;

// --------------------------------------------------------------------------- access policies

/** Access-policy permissions as Azure's vault API spells them (compared case-insensitively). */
export const ACCESS_POLICY_PERMISSIONS = {
  secrets: ['get', 'list', 'set', 'delete', 'backup', 'restore', 'recover', 'purge'],
  keys: [
    'get',
    'list',
    'update',
    'create',
    'import',
    'delete',
    'recover',
    'backup',
    'restore',
    'decrypt',
    'encrypt',
    'unwrapKey',
    'wrapKey',
    'verify',
    'sign',
    'purge',
    'release',
    'rotate',
    'getrotationpolicy',
    'setrotationpolicy',
  ],
} as const;

export interface AccessPolicyPermissions {
  keys?: string[];
  secrets?: string[];
  certificates?: string[];
}

/** `all` grants every permission of its collection; otherwise the named permission must be listed. */
export function policyGrants(
  policy: AccessPolicyPermissions | undefined,
  collection: 'keys' | 'secrets',
  permission: string,
): boolean {
  const granted = (policy?.[collection] ?? []).map((p) => p.toLowerCase());
  return granted.includes('all') || granted.includes(permission.toLowerCase());
}

// -------------------------------------------------------------------------------- operations

/** Where a request is evaluated: one named object, its collection, or the vault. */
export type RequestLevel = 'object' | 'collection' | 'vault';

export interface AzureOperation {
  /** e.g. `secrets.get`; the matrix names its SDK call by this id. */
  id: string;
  collection: 'secrets' | 'keys';
  level: RequestLevel;
  /** The data action Azure RBAC checks. */
  action: string;
  /** The access-policy permission Azure checks; absent where Azure has none (random bytes). */
  permission?: string;
}

const S = AZURE_DATA_ACTIONS.secrets;
const K = AZURE_DATA_ACTIONS.keys;
const op = (id: string, level: RequestLevel, action: string, permission?: string): AzureOperation => ({
  id,
  collection: id.startsWith('secrets.') ? 'secrets' : 'keys',
  level,
  action,
  permission,
});

/** Every data-plane operation of secrets and keys with what Azure requires for it. */
export const AZURE_OPERATIONS: readonly AzureOperation[] = [
  op('secrets.get', 'object', S.getSecret, 'get'),
  op('secrets.set', 'object', S.setSecret, 'set'),
  op('secrets.list', 'collection', S.readMetadata, 'list'),
  op('secrets.listVersions', 'object', S.readMetadata, 'list'),
  op('secrets.update', 'object', S.update, 'set'),
  op('secrets.delete', 'object', S.delete, 'delete'),
  op('secrets.getDeleted', 'object', S.getSecret, 'get'),
  op('secrets.listDeleted', 'collection', S.readMetadata, 'list'),
  op('secrets.recover', 'object', S.recover, 'recover'),
  op('secrets.purge', 'object', S.purge, 'purge'),
  op('secrets.backup', 'object', S.backup, 'backup'),
  op('secrets.restore', 'collection', S.restore, 'restore'),

  op('keys.get', 'object', K.read, 'get'),
  op('keys.list', 'collection', K.read, 'list'),
  op('keys.listVersions', 'object', K.read, 'list'),
  op('keys.create', 'object', K.create, 'create'),
  op('keys.import', 'object', K.import, 'import'),
  op('keys.update', 'object', K.update, 'update'),
  op('keys.delete', 'object', K.delete, 'delete'),
  op('keys.getDeleted', 'object', K.read, 'get'),
  op('keys.listDeleted', 'collection', K.read, 'list'),
  op('keys.recover', 'object', K.recover, 'recover'),
  op('keys.purge', 'object', K.purge, 'purge'),
  op('keys.backup', 'object', K.backup, 'backup'),
  op('keys.restore', 'collection', K.restore, 'restore'),
  op('keys.encrypt', 'object', K.encrypt, 'encrypt'),
  op('keys.decrypt', 'object', K.decrypt, 'decrypt'),
  op('keys.sign', 'object', K.sign, 'sign'),
  op('keys.verify', 'object', K.verify, 'verify'),
  op('keys.wrapKey', 'object', K.wrap, 'wrapKey'),
  op('keys.unwrapKey', 'object', K.unwrap, 'unwrapKey'),
  op('keys.rotate', 'object', K.rotate, 'rotate'),
  op('keys.getRotationPolicy', 'object', K.getRotationPolicy, 'getrotationpolicy'),
  op('keys.updateRotationPolicy', 'object', K.setRotationPolicy, 'setrotationpolicy'),
  op('keys.getRandomBytes', 'vault', AZURE_DATA_ACTIONS.rng),
];

export function azureOperation(id: string): AzureOperation {
  const found = AZURE_OPERATIONS.find((o) => o.id === id);
  if (!found) throw new Error(`no operation ${id}`);
  return found;
}

/** The vault-relative scope a request on `objectName` (for object-level operations) is evaluated at. */
export function requestScope(operation: AzureOperation, objectName?: string): string {
  if (operation.level === 'vault') return '/';
  if (operation.level === 'collection') return `/${operation.collection}`;
  if (!objectName) throw new Error(`${operation.id} needs an object name`);
  return `/${operation.collection}/${objectName}`;
}

/** Azure RBAC's answer: some assignment of the principal covers the request and its role grants the action. */
export function rbacAllows(
  assignments: readonly { role: AzureRoleDefinition; scope: string }[],
  operation: AzureOperation,
  objectName?: string,
): boolean {
  const scope = requestScope(operation, objectName);
  return assignments.some((a) => scopeCovers(a.scope, scope) && roleGrants(a.role, operation.action));
}

/** Azure's access-policy answer (vault-wide; no object scopes in that model). */
export function accessPolicyAllows(policy: AccessPolicyPermissions | undefined, operation: AzureOperation): boolean {
  if (!operation.permission) return false;
  return policyGrants(policy, operation.collection, operation.permission);
}
