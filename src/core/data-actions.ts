/**
 * Data actions, named exactly as Azure names them (Microsoft.KeyVault resource provider
 * operations, "DataAction" list; Microsoft.Authorization for role management). A built-in or
 * custom role grants an action when one of its patterns matches the name, so the names must be
 * Azure's for Azure's roles to mean here what they mean there.
 *
 * Azure has no separate data actions for soft-deleted objects: an operation on one needs the
 * action of the access-policy permission it requires (listing deleted secrets needs `list`, so
 * `secrets/readMetadata/action`; reading one deleted secret needs `get`, so
 * `secrets/getSecret/action`; deleted keys `keys/read`), and recover and purge are
 * `{secrets,keys,certificates}/recover/action` and `…/purge/action`. The `readDeleted` entries
 * below (what listing deleted objects needs) are therefore the same strings as live reads.
 *
 * The one decision that uses them is `authorize` in src/access/authorize.ts.
 */
export const SecretActions = {
  get: 'Microsoft.KeyVault/vaults/secrets/getSecret/action',
  set: 'Microsoft.KeyVault/vaults/secrets/setSecret/action',
  readMetadata: 'Microsoft.KeyVault/vaults/secrets/readMetadata/action',
  update: 'Microsoft.KeyVault/vaults/secrets/update/action',
  delete: 'Microsoft.KeyVault/vaults/secrets/delete',
  backup: 'Microsoft.KeyVault/vaults/secrets/backup/action',
  restore: 'Microsoft.KeyVault/vaults/secrets/restore/action',
  recover: 'Microsoft.KeyVault/vaults/secrets/recover/action',
  readDeleted: 'Microsoft.KeyVault/vaults/secrets/readMetadata/action',
  purge: 'Microsoft.KeyVault/vaults/secrets/purge/action',
} as const;

export const KeyActions = {
  read: 'Microsoft.KeyVault/vaults/keys/read',
  create: 'Microsoft.KeyVault/vaults/keys/create/action',
  import: 'Microsoft.KeyVault/vaults/keys/import/action',
  update: 'Microsoft.KeyVault/vaults/keys/update/action',
  delete: 'Microsoft.KeyVault/vaults/keys/delete',
  backup: 'Microsoft.KeyVault/vaults/keys/backup/action',
  restore: 'Microsoft.KeyVault/vaults/keys/restore/action',
  encrypt: 'Microsoft.KeyVault/vaults/keys/encrypt/action',
  decrypt: 'Microsoft.KeyVault/vaults/keys/decrypt/action',
  wrap: 'Microsoft.KeyVault/vaults/keys/wrap/action',
  unwrap: 'Microsoft.KeyVault/vaults/keys/unwrap/action',
  sign: 'Microsoft.KeyVault/vaults/keys/sign/action',
  verify: 'Microsoft.KeyVault/vaults/keys/verify/action',
  release: 'Microsoft.KeyVault/vaults/keys/release/action',
  rotate: 'Microsoft.KeyVault/vaults/keys/rotate/action',
  getRotationPolicy: 'Microsoft.KeyVault/vaults/keyrotationpolicies/read',
  setRotationPolicy: 'Microsoft.KeyVault/vaults/keyrotationpolicies/write',
  readDeleted: 'Microsoft.KeyVault/vaults/keys/read',
  recover: 'Microsoft.KeyVault/vaults/keys/recover/action',
  purge: 'Microsoft.KeyVault/vaults/keys/purge/action',
  // Not an Azure Key Vault action (GetRandomBytes is Managed HSM's `managedHsm/rng/action`): the
  // vault-flavoured name, so `Microsoft.KeyVault/vaults/*` (Key Vault Administrator) covers it.
  random: 'Microsoft.KeyVault/vaults/rng/action',
} as const;

export const CertificateActions = {
  read: 'Microsoft.KeyVault/vaults/certificates/read',
  create: 'Microsoft.KeyVault/vaults/certificates/create/action',
  import: 'Microsoft.KeyVault/vaults/certificates/import/action',
  update: 'Microsoft.KeyVault/vaults/certificates/update/action',
  delete: 'Microsoft.KeyVault/vaults/certificates/delete',
  backup: 'Microsoft.KeyVault/vaults/certificates/backup/action',
  restore: 'Microsoft.KeyVault/vaults/certificates/restore/action',
  recover: 'Microsoft.KeyVault/vaults/certificates/recover/action',
  readDeleted: 'Microsoft.KeyVault/vaults/certificates/read',
  purge: 'Microsoft.KeyVault/vaults/certificates/purge/action',
  /** Certificate issuers (Azure: "Read/Write/Delete Certificate Issuer"). */
  readIssuers: 'Microsoft.KeyVault/vaults/certificatecas/read',
  writeIssuers: 'Microsoft.KeyVault/vaults/certificatecas/write',
  deleteIssuers: 'Microsoft.KeyVault/vaults/certificatecas/delete',
  /** Certificate contacts: Azure has the one action ("Manage Certificate Contact") for all of it. */
  manageContacts: 'Microsoft.KeyVault/vaults/certificatecontacts/write',
} as const;

/**
 * Role management. On Azure these are control-plane actions (a role lists them under `actions`,
 * e.g. Key Vault Data Access Administrator); here they guard the vault's own role API, and a role
 * grants them from `actions` or `dataActions` alike (see src/access/roles.ts).
 */
export const RoleActions = {
  readAssignments: 'Microsoft.Authorization/roleAssignments/read',
  writeAssignments: 'Microsoft.Authorization/roleAssignments/write',
  deleteAssignments: 'Microsoft.Authorization/roleAssignments/delete',
  readDefinitions: 'Microsoft.Authorization/roleDefinitions/read',
  writeDefinitions: 'Microsoft.Authorization/roleDefinitions/write',
  deleteDefinitions: 'Microsoft.Authorization/roleDefinitions/delete',
} as const;

/**
 * Reading the vault's audit trail (query, export, verification). Not a `…/read` action on
 * purpose: Key Vault Reader's wildcard over every `Microsoft.KeyVault/vaults/…/read` must not reach the audit trail;
 * Key Vault Administrator (`vaults/*`) and Key Vault Auditor hold it.
 */
export const AuditActions = {
  read: 'Microsoft.KeyVault/vaults/auditEvents/read/action',
} as const;

/**
 * Webhook subscriptions to the vault's events (src/events/). Not Azure Key Vault actions (Azure
 * subscribes through Event Grid's control plane): vault-flavoured names, so Key Vault
 * Administrator's `Microsoft.KeyVault/vaults/*` covers them. Reading shows no secret and only the
 * endpoint's base URL, so Key Vault Reader's `vaults/*\/read` reaching it is harmless; every
 * change (and rotating the signing secret, redelivering dead letters) is `write`.
 */
export const EventSubscriptionActions = {
  read: 'Microsoft.KeyVault/vaults/eventSubscriptions/read',
  write: 'Microsoft.KeyVault/vaults/eventSubscriptions/write',
} as const;

type ValuesOf<T> = T[keyof T];

export type DataAction =
  | ValuesOf<typeof SecretActions>
  | ValuesOf<typeof KeyActions>
  | ValuesOf<typeof CertificateActions>
  | ValuesOf<typeof RoleActions>
  | ValuesOf<typeof AuditActions>
  | ValuesOf<typeof EventSubscriptionActions>;

/**
 * Every action this service ever authorizes. What a role "grants" is evaluated over this set: a
 * wildcard can match nothing else that matters here.
 */
export const ALL_DATA_ACTIONS: readonly DataAction[] = [
  ...new Set<DataAction>([
    ...Object.values(SecretActions),
    ...Object.values(KeyActions),
    ...Object.values(CertificateActions),
    ...Object.values(RoleActions),
    ...Object.values(AuditActions),
    ...Object.values(EventSubscriptionActions),
  ]),
];
