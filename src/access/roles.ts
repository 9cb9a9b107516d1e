/**
 * Role definitions: Azure's built-in Key Vault roles (names, ids, descriptions and permissions
 * exactly as Azure publishes them in "Azure built-in roles for Security"), custom roles, and how
 * a role's permissions are evaluated against an action.
 *
 * Evaluation follows Azure: an action is granted by a permission block when one of its
 * `dataActions` matches and none of its `notDataActions` does; `*` matches any run of characters
 * (slashes included) and names compare without case. Role management actions
 * (`Microsoft.Authorization/…`) are control-plane actions on Azure, listed under `actions`
 * (Data Access Administrator: `roleAssignments/write`; most roles: `Microsoft.Authorization/*\/read`);
 * for those, `actions`/`notActions` count as well. Other control-plane actions never grant data
 * actions (Data Access Administrator's `Microsoft.KeyVault/vaults/*\/read` reads no secret).
 */
import { ALL_DATA_ACTIONS, AuditActions, RoleActions, type DataAction } from '../core/data-actions';

export interface Permission {
  actions: string[];
  notActions: string[];
  dataActions: string[];
  notDataActions: string[];
}

export type RoleType = 'AKVBuiltInRole' | 'CustomRole';

export interface RoleDefinition {
  /** The definition's GUID (its `name`). */
  id: string;
  roleName: string;
  description: string;
  roleType: RoleType;
  permissions: Permission[];
  assignableScopes: string[];
  /**
   * An ABAC condition on role management, as Data Access Administrator has: assignments this role
   * lets its holder create or delete must be of one of these roles. Undefined: no condition.
   */
  assignableRoles?: readonly string[];
  /** Azure's condition text, shown as Azure shows it. */
  condition?: string;
  /** Custom roles: the vault they belong to (null: every vault of the deployment). */
  vaultId?: string | null;
  createdAt?: number;
  updatedAt?: number;
}

export const ROLE_DEFINITION_PREFIX = '/providers/Microsoft.Authorization/roleDefinitions/';

/** Azure's form of a role definition id. */
export const roleDefinitionResourceId = (id: string) => `${ROLE_DEFINITION_PREFIX}${id}`;

export const BuiltInRoleIds = {
  administrator: '00482a5a-887f-4fb3-b363-3b7fe8e74483',
  reader: '21090545-7ca7-4776-b22c-e363652d74d2',
  secretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7',
  secretsUser: '4633458b-17de-408a-b874-0445c86b69e6',
  cryptoOfficer: '14b46e9e-c2b7-41b4-b07b-48a6ebf60603',
  cryptoUser: '12338af0-0e69-4776-bea7-57ae8d297424',
  cryptoServiceEncryptionUser: 'e147488a-f6f5-4113-8e2d-b22465e65bf6',
  cryptoServiceReleaseUser: '08bbd89e-9f13-488c-ac41-acfcb10c90ab',
  certificatesOfficer: 'a4417e6f-fecd-4de8-b567-7b0420556985',
  certificateUser: 'db79e9a7-68ee-4b58-9aeb-b90e7c24fcba',
  dataAccessAdministrator: '8b54135c-b56d-4d72-a534-26097cfdc8d8',
  /** This service's own (Azure has no such role): the audit trail, nothing else. Fixed id. */
  auditor: '5c3a1f0e-7d2b-4e8a-9c61-3f4b2a9d8e17',
} as const;

const RBAC_ONLY = " Only works for key vaults that use the 'Azure role-based access control' permission model.";

/** The control-plane actions most Key Vault roles carry (read the vault, its roles and assignments). */
const READER_ACTIONS = [
  'Microsoft.Authorization/*/read',
  'Microsoft.Insights/alertRules/*',
  'Microsoft.Resources/deployments/*',
  'Microsoft.Resources/subscriptions/resourceGroups/read',
  'Microsoft.Support/*',
  'Microsoft.KeyVault/checkNameAvailability/read',
  'Microsoft.KeyVault/deletedVaults/read',
  'Microsoft.KeyVault/locations/*/read',
  'Microsoft.KeyVault/vaults/*/read',
  'Microsoft.KeyVault/operations/read',
];

function builtIn(
  id: string,
  roleName: string,
  description: string,
  p: Partial<Permission>,
  extra: Partial<RoleDefinition> = {},
): RoleDefinition {
  return {
    id,
    roleName,
    description,
    roleType: 'AKVBuiltInRole',
    permissions: [
      {
        actions: p.actions ?? [],
        notActions: p.notActions ?? [],
        dataActions: p.dataActions ?? [],
        notDataActions: p.notDataActions ?? [],
      },
    ],
    assignableScopes: ['/'],
    ...extra,
  };
}

/** The roles Data Access Administrator may assign and remove (its condition's GUID list). */
const DATA_ACCESS_ASSIGNABLE = [
  BuiltInRoleIds.administrator,
  BuiltInRoleIds.certificatesOfficer,
  BuiltInRoleIds.cryptoOfficer,
  BuiltInRoleIds.cryptoServiceEncryptionUser,
  BuiltInRoleIds.cryptoUser,
  BuiltInRoleIds.reader,
  BuiltInRoleIds.secretsOfficer,
  BuiltInRoleIds.secretsUser,
] as const;

const guidList = DATA_ACCESS_ASSIGNABLE.join(', ');
const DATA_ACCESS_CONDITION =
  `((!(ActionMatches{'Microsoft.Authorization/roleAssignments/write'})) OR (@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals{${guidList}})) AND ` +
  `((!(ActionMatches{'Microsoft.Authorization/roleAssignments/delete'})) OR (@Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals{${guidList}}))`;

export const BUILT_IN_ROLES: readonly RoleDefinition[] = [
  builtIn(
    BuiltInRoleIds.administrator,
    'Key Vault Administrator',
    `Perform all data plane operations on a key vault and all objects in it, including certificates, keys, and secrets. Cannot manage key vault resources or manage role assignments.${RBAC_ONLY}`,
    { actions: READER_ACTIONS, dataActions: ['Microsoft.KeyVault/vaults/*'] },
  ),
  builtIn(BuiltInRoleIds.certificateUser, 'Key Vault Certificate User', `Read certificate contents.${RBAC_ONLY}`, {
    dataActions: [
      'Microsoft.KeyVault/vaults/certificates/read',
      'Microsoft.KeyVault/vaults/secrets/getSecret/action',
      'Microsoft.KeyVault/vaults/secrets/readMetadata/action',
      'Microsoft.KeyVault/vaults/keys/read',
    ],
  }),
  builtIn(
    BuiltInRoleIds.certificatesOfficer,
    'Key Vault Certificates Officer',
    `Perform any action on the certificates of a key vault, except manage permissions.${RBAC_ONLY}`,
    {
      actions: READER_ACTIONS,
      dataActions: [
        'Microsoft.KeyVault/vaults/certificatecas/*',
        'Microsoft.KeyVault/vaults/certificates/*',
        'Microsoft.KeyVault/vaults/certificatecontacts/write',
      ],
    },
  ),
  builtIn(
    BuiltInRoleIds.cryptoOfficer,
    'Key Vault Crypto Officer',
    `Perform any action on the keys of a key vault, except manage permissions.${RBAC_ONLY}`,
    {
      actions: READER_ACTIONS,
      dataActions: ['Microsoft.KeyVault/vaults/keys/*', 'Microsoft.KeyVault/vaults/keyrotationpolicies/*'],
    },
  ),
  builtIn(
    BuiltInRoleIds.cryptoServiceEncryptionUser,
    'Key Vault Crypto Service Encryption User',
    `Read metadata of keys and perform wrap/unwrap operations.${RBAC_ONLY}`,
    {
      actions: [
        'Microsoft.EventGrid/eventSubscriptions/write',
        'Microsoft.EventGrid/eventSubscriptions/read',
        'Microsoft.EventGrid/eventSubscriptions/delete',
      ],
      dataActions: [
        'Microsoft.KeyVault/vaults/keys/read',
        'Microsoft.KeyVault/vaults/keys/wrap/action',
        'Microsoft.KeyVault/vaults/keys/unwrap/action',
      ],
    },
  ),
  builtIn(BuiltInRoleIds.cryptoServiceReleaseUser, 'Key Vault Crypto Service Release User', `Release keys.${RBAC_ONLY}`, {
    dataActions: ['Microsoft.KeyVault/vaults/keys/release/action'],
  }),
  builtIn(BuiltInRoleIds.cryptoUser, 'Key Vault Crypto User', `Perform cryptographic operations using keys.${RBAC_ONLY}`, {
    dataActions: [
      'Microsoft.KeyVault/vaults/keys/read',
      'Microsoft.KeyVault/vaults/keys/update/action',
      'Microsoft.KeyVault/vaults/keys/backup/action',
      'Microsoft.KeyVault/vaults/keys/encrypt/action',
      'Microsoft.KeyVault/vaults/keys/decrypt/action',
      'Microsoft.KeyVault/vaults/keys/wrap/action',
      'Microsoft.KeyVault/vaults/keys/unwrap/action',
      'Microsoft.KeyVault/vaults/keys/sign/action',
      'Microsoft.KeyVault/vaults/keys/verify/action',
    ],
  }),
  builtIn(
    BuiltInRoleIds.dataAccessAdministrator,
    'Key Vault Data Access Administrator',
    'Manage access to Azure Key Vault by adding or removing role assignments for the Key Vault Administrator, Key Vault Certificates Officer, Key Vault Crypto Officer, Key Vault Crypto Service Encryption User, Key Vault Crypto User, Key Vault Reader, Key Vault Secrets Officer, or Key Vault Secrets User roles. Includes an ABAC condition to constrain role assignments.',
    {
      actions: [
        'Microsoft.Authorization/roleAssignments/write',
        'Microsoft.Authorization/roleAssignments/delete',
        'Microsoft.Authorization/*/read',
        'Microsoft.Resources/deployments/*',
        'Microsoft.Resources/subscriptions/resourceGroups/read',
        'Microsoft.Resources/subscriptions/read',
        'Microsoft.Management/managementGroups/read',
        'Microsoft.Resources/deployments/*',
        'Microsoft.Support/*',
        'Microsoft.KeyVault/vaults/*/read',
      ],
    },
    { assignableRoles: DATA_ACCESS_ASSIGNABLE, condition: DATA_ACCESS_CONDITION },
  ),
  builtIn(
    BuiltInRoleIds.reader,
    'Key Vault Reader',
    `Read metadata of key vaults and its certificates, keys, and secrets. Cannot read sensitive values such as secret contents or key material.${RBAC_ONLY}`,
    {
      actions: READER_ACTIONS,
      dataActions: ['Microsoft.KeyVault/vaults/*/read', 'Microsoft.KeyVault/vaults/secrets/readMetadata/action'],
    },
  ),
  builtIn(
    BuiltInRoleIds.secretsOfficer,
    'Key Vault Secrets Officer',
    `Perform any action on the secrets of a key vault, except manage permissions.${RBAC_ONLY}`,
    { actions: READER_ACTIONS, dataActions: ['Microsoft.KeyVault/vaults/secrets/*'] },
  ),
  // Not one of Azure's roles: reading the audit trail is this service's data action. It reads the
  // trail and who holds which role (an access review needs both), and no object or its metadata.
  builtIn(
    BuiltInRoleIds.auditor,
    'Key Vault Auditor',
    `Read and export the audit trail of a key vault, and read its role assignments and definitions. Cannot read secrets, keys or certificates, their metadata, or change anything.${RBAC_ONLY}`,
    { actions: ['Microsoft.Authorization/*/read'], dataActions: [AuditActions.read] },
  ),
  builtIn(BuiltInRoleIds.secretsUser, 'Key Vault Secrets User', `Read secret contents.${RBAC_ONLY}`, {
    dataActions: ['Microsoft.KeyVault/vaults/secrets/getSecret/action', 'Microsoft.KeyVault/vaults/secrets/readMetadata/action'],
  }),
];

const builtInById = new Map(BUILT_IN_ROLES.map((r) => [r.id, r]));

export function builtInRole(id: string): RoleDefinition | undefined {
  return builtInById.get(id.toLowerCase());
}

/**
 * Whether an action pattern (Azure's wildcard syntax) matches an action name: `*` is any run of
 * characters, the rest compares without case. Matched without regular expressions, in time
 * proportional to the product of the lengths at worst, whatever a custom role's pattern is.
 */
export function actionMatches(pattern: string, action: string): boolean {
  const p = pattern.toLowerCase();
  const s = action.toLowerCase();
  let pi = 0;
  let si = 0;
  let star = -1;
  let mark = 0;
  while (si < s.length) {
    if (pi < p.length && p[pi] === '*') {
      star = pi++;
      mark = si;
    } else if (pi < p.length && p[pi] === s[si]) {
      pi++;
      si++;
    } else if (star !== -1) {
      pi = star + 1;
      si = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.length && p[pi] === '*') pi++;
  return pi === p.length;
}

const matchesAny = (patterns: readonly string[], action: string) => patterns.some((p) => actionMatches(p, action));

const CONTROL_PLANE_GRANTABLE = /^Microsoft\.Authorization\//i;

/** Whether one permission block grants an action. */
export function permissionGrants(p: Permission, action: string): boolean {
  if (matchesAny(p.dataActions, action) && !matchesAny(p.notDataActions, action)) return true;
  return CONTROL_PLANE_GRANTABLE.test(action) && matchesAny(p.actions, action) && !matchesAny(p.notActions, action);
}

/** Whether a role grants an action (any of its permission blocks does). */
export function roleGrants(role: RoleDefinition, action: string): boolean {
  return role.permissions.some((p) => permissionGrants(p, action));
}

// Built-in roles' action sets never change: computed once.
const grantedCache = new WeakMap<RoleDefinition, readonly DataAction[]>();

/** Every action of this service a role grants. */
export function grantedActions(role: RoleDefinition): readonly DataAction[] {
  let granted = grantedCache.get(role);
  if (!granted) {
    granted = ALL_DATA_ACTIONS.filter((a) => roleGrants(role, a));
    grantedCache.set(role, granted);
  }
  return granted;
}

/** Whether a role's condition lets its holder create or delete an assignment of `roleId`. */
export function conditionAllows(role: RoleDefinition, roleId: string): boolean {
  return role.assignableRoles === undefined || role.assignableRoles.includes(roleId.toLowerCase());
}

/** Whether a role can manage assignments at all (holds roleAssignments/write or /delete). */
export function managesAssignments(role: RoleDefinition): boolean {
  return roleGrants(role, RoleActions.writeAssignments) || roleGrants(role, RoleActions.deleteAssignments);
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const isGuid = (s: string) => GUID.test(s);

/**
 * The GUID a role definition id names. Accepts Azure's forms: `/providers/Microsoft.Authorization/
 * roleDefinitions/{guid}`, the same under a scope (`/keys/providers/…`, Managed HSM's
 * `Microsoft.KeyVault/providers/…`), or the bare GUID. Undefined when it is none of these.
 */
export function parseRoleDefinitionId(value: string): string | undefined {
  const match = /^(?:.*\/providers\/Microsoft\.Authorization\/roleDefinitions\/)?([^/]+)$/i.exec(value.trim());
  const id = match?.[1];
  return id && isGuid(id) ? id.toLowerCase() : undefined;
}
