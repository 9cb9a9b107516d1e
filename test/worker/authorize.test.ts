/**
 * The authorization decision: built-in and custom roles, wildcards, notDataActions, scopes,
 * expiry, access policies.
 */
import { describe, expect, it } from 'vitest';
import { authorize, findGrant, holds } from '../../src/access/authorize';
import {
  actionMatches,
  BUILT_IN_ROLES,
  BuiltInRoleIds,
  builtInRole,
  conditionAllows,
  grantedActions,
  parseRoleDefinitionId,
  roleGrants,
  type RoleDefinition,
} from '../../src/access/roles';
import { parseScope, scopeCovers } from '../../src/access/scopes';
import type { AssignmentRecord, VaultAuthorization } from '../../src/access/store';
import { database } from '../../src/storage/db';
import {
  ALL_DATA_ACTIONS,
  AuditActions,
  CertificateActions,
  EventSubscriptionActions,
  KeyActions,
  RoleActions,
  SecretActions,
} from '../../src/core/data-actions';
import { VaultError } from '../../src/core/errors';
import { type VaultRecord } from '../../src/core/vault';
import { env } from './helpers';

/** The pure evaluation behind every decision: wildcards, notDataActions, scopes, expiry, tenants. */

const kv = (suffix: string) => `Microsoft.KeyVault/vaults/${suffix}`;
const role = (id: string) => builtInRole(id)!;
const sorted = (list: readonly string[]) => [...new Set(list)].sort();

const PRINCIPAL = '11111111-2222-3333-4444-555555555555';
const now = 1_800_000_000;

function assignment(roleDefinitionId: string, scope: string, extra: Partial<AssignmentRecord> = {}): AssignmentRecord {
  return {
    id: crypto.randomUUID(),
    vaultId: 'v',
    scope,
    roleDefinitionId,
    principalId: PRINCIPAL,
    expiresAt: null,
    createdAt: now - 100,
    createdBy: null,
    lastUsedAt: null,
    ...extra,
  };
}

function data(assignments: AssignmentRecord[], custom: RoleDefinition[] = []): VaultAuthorization {
  return {
    byPrincipal: new Map([[PRINCIPAL, assignments]]),
    customRoles: new Map(custom.map((r) => [r.id, r])),
    policies: new Map(),
  };
}

const custom = (dataActions: string[], notDataActions: string[] = [], extra: Partial<RoleDefinition> = {}): RoleDefinition => ({
  id: crypto.randomUUID(),
  roleName: 'custom',
  description: '',
  roleType: 'CustomRole',
  permissions: [{ actions: [], notActions: [], dataActions, notDataActions }],
  assignableScopes: ['/'],
  ...extra,
});

describe('action wildcards (Azure: * is any run of characters, case-insensitive)', () => {
  it('matches literally, without case', () => {
    expect(actionMatches(kv('secrets/getSecret/action'), kv('secrets/getsecret/ACTION'))).toBe(true);
    expect(actionMatches(kv('secrets/getSecret/action'), kv('secrets/setSecret/action'))).toBe(false);
    // Dots are literal, not regex wildcards.
    expect(actionMatches('Microsoft.KeyVault/vaults/keys/read', 'MicrosoftXKeyVault/vaults/keys/read')).toBe(false);
  });

  it('lets * span slashes, at the end, in the middle or alone', () => {
    expect(actionMatches(kv('secrets/*'), kv('secrets/getSecret/action'))).toBe(true);
    expect(actionMatches(kv('secrets/*'), kv('keys/read'))).toBe(false);
    expect(actionMatches(kv('*/read'), kv('keys/read'))).toBe(true);
    expect(actionMatches(kv('*/read'), kv('keyrotationpolicies/read'))).toBe(true);
    expect(actionMatches(kv('*/read'), kv('secrets/readMetadata/action'))).toBe(false);
    expect(actionMatches(kv('*'), kv('rng/action'))).toBe(true);
    expect(actionMatches(kv('*'), RoleActions.writeAssignments)).toBe(false);
    expect(actionMatches('*', RoleActions.writeAssignments)).toBe(true);
    expect(actionMatches('Microsoft.Authorization/*/read', RoleActions.readDefinitions)).toBe(true);
    expect(actionMatches('Microsoft.Authorization/*/read', RoleActions.writeDefinitions)).toBe(false);
  });

  it('matches a pathological pattern quickly (no backtracking blow-up)', () => {
    const started = Date.now();
    expect(actionMatches(`${'*a'.repeat(120)}*b`, `Microsoft.KeyVault/vaults/${'a'.repeat(200)}`)).toBe(false);
    expect(actionMatches('*a*', 'xay')).toBe(true);
    expect(actionMatches('**', '')).toBe(true);
    expect(actionMatches('a*', '')).toBe(false);
    expect(Date.now() - started).toBeLessThan(100);
  });

  it('subtracts notDataActions from dataActions', () => {
    const r = custom([kv('secrets/*')], [kv('secrets/getSecret/action'), kv('secrets/*/purge/*')]);
    expect(roleGrants(r, SecretActions.set)).toBe(true);
    expect(roleGrants(r, SecretActions.readMetadata)).toBe(true);
    expect(roleGrants(r, SecretActions.get)).toBe(false);
    expect(roleGrants(r, SecretActions.purge)).toBe(true); // `secrets/*/purge/*` needs a segment before purge
    const noPurge = custom([kv('*')], ['*/purge/action']);
    expect(roleGrants(noPurge, SecretActions.purge)).toBe(false);
    expect(roleGrants(noPurge, KeyActions.purge)).toBe(false);
    expect(roleGrants(noPurge, KeyActions.sign)).toBe(true);
  });

  it('grants role management from actions only for Microsoft.Authorization (other control-plane actions grant no data)', () => {
    const r: RoleDefinition = {
      ...custom([]),
      permissions: [
        {
          actions: ['Microsoft.KeyVault/vaults/*', 'Microsoft.Authorization/roleAssignments/*'],
          notActions: ['Microsoft.Authorization/*/delete'],
          dataActions: [],
          notDataActions: [],
        },
      ],
    };
    expect(roleGrants(r, SecretActions.get)).toBe(false);
    expect(roleGrants(r, RoleActions.writeAssignments)).toBe(true);
    expect(roleGrants(r, RoleActions.deleteAssignments)).toBe(false);
    expect(roleGrants(custom([RoleActions.writeAssignments]), RoleActions.writeAssignments)).toBe(true);
  });
});

describe('built-in roles, as Azure publishes them', () => {
  it('has the eleven roles with Azure names and ids, and Key Vault Auditor', () => {
    expect(BUILT_IN_ROLES.map((r) => [r.roleName, r.id]).sort()).toEqual(
      [
        ['Key Vault Administrator', '00482a5a-887f-4fb3-b363-3b7fe8e74483'],
        ['Key Vault Certificate User', 'db79e9a7-68ee-4b58-9aeb-b90e7c24fcba'],
        ['Key Vault Certificates Officer', 'a4417e6f-fecd-4de8-b567-7b0420556985'],
        ['Key Vault Crypto Officer', '14b46e9e-c2b7-41b4-b07b-48a6ebf60603'],
        ['Key Vault Crypto Service Encryption User', 'e147488a-f6f5-4113-8e2d-b22465e65bf6'],
        ['Key Vault Crypto Service Release User', '08bbd89e-9f13-488c-ac41-acfcb10c90ab'],
        ['Key Vault Crypto User', '12338af0-0e69-4776-bea7-57ae8d297424'],
        ['Key Vault Data Access Administrator', '8b54135c-b56d-4d72-a534-26097cfdc8d8'],
        ['Key Vault Reader', '21090545-7ca7-4776-b22c-e363652d74d2'],
        ['Key Vault Secrets Officer', 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'],
        ['Key Vault Secrets User', '4633458b-17de-408a-b874-0445c86b69e6'],
        // This service's own role (not Azure's): the audit trail only.
        ['Key Vault Auditor', '5c3a1f0e-7d2b-4e8a-9c61-3f4b2a9d8e17'],
      ].sort(),
    );
    for (const r of BUILT_IN_ROLES) {
      expect(r.roleType).toBe('AKVBuiltInRole');
      expect(r.assignableScopes).toEqual(['/']);
    }
  });

  const authReads = [RoleActions.readAssignments, RoleActions.readDefinitions];
  const secrets = Object.values(SecretActions);
  const keys = Object.values(KeyActions).filter((a) => a !== KeyActions.random);
  const certificates = Object.values(CertificateActions);

  // Every action of this service each role grants, written out by hand from Azure's JSON.
  const expected: Record<string, string[]> = {
    // vaults/* also covers reading the audit trail (AuditActions.read); Reader's vaults/…/read does not.
    // Both reach event subscriptions: Administrator manages them, Reader reads them (no secret, no query string).
    [BuiltInRoleIds.administrator]: [
      ...secrets,
      ...keys,
      KeyActions.random,
      ...certificates,
      ...authReads,
      AuditActions.read,
      EventSubscriptionActions.read,
      EventSubscriptionActions.write,
    ],
    [BuiltInRoleIds.reader]: [
      KeyActions.read,
      KeyActions.getRotationPolicy,
      SecretActions.readMetadata,
      CertificateActions.read,
      CertificateActions.readIssuers,
      EventSubscriptionActions.read,
      ...authReads,
    ],
    [BuiltInRoleIds.secretsOfficer]: [...secrets, ...authReads],
    [BuiltInRoleIds.secretsUser]: [SecretActions.get, SecretActions.readMetadata],
    [BuiltInRoleIds.cryptoOfficer]: [...keys, ...authReads],
    [BuiltInRoleIds.cryptoUser]: [
      KeyActions.read,
      KeyActions.update,
      KeyActions.backup,
      KeyActions.encrypt,
      KeyActions.decrypt,
      KeyActions.wrap,
      KeyActions.unwrap,
      KeyActions.sign,
      KeyActions.verify,
    ],
    [BuiltInRoleIds.cryptoServiceEncryptionUser]: [KeyActions.read, KeyActions.wrap, KeyActions.unwrap],
    [BuiltInRoleIds.cryptoServiceReleaseUser]: [KeyActions.release],
    [BuiltInRoleIds.certificatesOfficer]: [...certificates, ...authReads],
    [BuiltInRoleIds.certificateUser]: [CertificateActions.read, SecretActions.get, SecretActions.readMetadata, KeyActions.read],
    [BuiltInRoleIds.dataAccessAdministrator]: [RoleActions.writeAssignments, RoleActions.deleteAssignments, ...authReads],
    // The trail, and who holds which role; no secret, key or certificate, not even their metadata.
    [BuiltInRoleIds.auditor]: [AuditActions.read, ...authReads],
  };

  for (const r of BUILT_IN_ROLES) {
    it(`${r.roleName} grants exactly its actions`, () => {
      expect(sorted(grantedActions(r))).toEqual(sorted(expected[r.id]!));
      for (const action of ALL_DATA_ACTIONS) expect(roleGrants(r, action), action).toBe(expected[r.id]!.includes(action));
    });
  }

  it('gives no built-in role the right to write role definitions, and Administrator no right to assign', () => {
    for (const r of BUILT_IN_ROLES) {
      expect(roleGrants(r, RoleActions.writeDefinitions), r.roleName).toBe(false);
      expect(roleGrants(r, RoleActions.deleteDefinitions), r.roleName).toBe(false);
    }
    expect(roleGrants(role(BuiltInRoleIds.administrator), RoleActions.writeAssignments)).toBe(false);
  });

  it('limits Data Access Administrator to the eight roles of its condition', () => {
    const daa = role(BuiltInRoleIds.dataAccessAdministrator);
    for (const id of [
      BuiltInRoleIds.administrator,
      BuiltInRoleIds.certificatesOfficer,
      BuiltInRoleIds.cryptoOfficer,
      BuiltInRoleIds.cryptoServiceEncryptionUser,
      BuiltInRoleIds.cryptoUser,
      BuiltInRoleIds.reader,
      BuiltInRoleIds.secretsOfficer,
      BuiltInRoleIds.secretsUser,
    ]) {
      expect(conditionAllows(daa, id)).toBe(true);
    }
    for (const id of [
      BuiltInRoleIds.dataAccessAdministrator,
      BuiltInRoleIds.certificateUser,
      BuiltInRoleIds.cryptoServiceReleaseUser,
      crypto.randomUUID(),
    ]) {
      expect(conditionAllows(daa, id)).toBe(false);
    }
    expect(daa.condition).toContain("ActionMatches{'Microsoft.Authorization/roleAssignments/write'}");
    expect(conditionAllows(role(BuiltInRoleIds.secretsOfficer), BuiltInRoleIds.administrator)).toBe(true);
  });

  it('reads role definition ids in every form Azure writes them', () => {
    const id = BuiltInRoleIds.secretsUser;
    for (const form of [
      id,
      id.toUpperCase(),
      `/providers/Microsoft.Authorization/roleDefinitions/${id}`,
      `/keys/providers/Microsoft.Authorization/roleDefinitions/${id}`,
      `Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/${id}`,
    ]) {
      expect(parseRoleDefinitionId(form), form).toBe(id);
    }
    expect(parseRoleDefinitionId('Key Vault Secrets User')).toBeUndefined();
    expect(parseRoleDefinitionId('/providers/Microsoft.Authorization/roleDefinitions/not-a-guid')).toBeUndefined();
  });
});

describe('scopes', () => {
  it('covers the scope itself and what is below it', () => {
    expect(scopeCovers('/', '/')).toBe(true);
    expect(scopeCovers('/', '/secrets/a')).toBe(true);
    expect(scopeCovers('/', '/rng')).toBe(true);
    expect(scopeCovers('/secrets', '/secrets')).toBe(true);
    expect(scopeCovers('/secrets', '/secrets/a')).toBe(true);
    expect(scopeCovers('/secrets', '/keys/a')).toBe(false);
    expect(scopeCovers('/secrets', '/')).toBe(false);
    expect(scopeCovers('/secrets/a', '/secrets/a')).toBe(true);
    expect(scopeCovers('/secrets/a', '/secrets/A')).toBe(true);
    expect(scopeCovers('/secrets/a', '/secrets/ab')).toBe(false);
    expect(scopeCovers('/secrets/a', '/secrets')).toBe(false);
    expect(scopeCovers('/keys', '/rng')).toBe(false);
  });

  it('maps deleted objects and deeper paths onto their objects', () => {
    expect(scopeCovers('/secrets/a', '/deletedsecrets/a')).toBe(true);
    expect(scopeCovers('/keys', '/deletedkeys')).toBe(true);
    expect(scopeCovers('/certificates/c', '/certificates/c/pending')).toBe(true);
    expect(scopeCovers('/certificates/c', '/certificates/d/pending')).toBe(false);
  });

  it('accepts only the vault, a collection or one object', () => {
    expect(parseScope('/')).toBe('/');
    expect(parseScope('')).toBe('/');
    expect(parseScope('/Keys')).toBe('/keys');
    expect(parseScope('/secrets/My-Secret')).toBe('/secrets/My-Secret');
    for (const bad of ['/rng', '/secrets/a/b', '/secrets/bad_name', '/foo']) {
      expect(() => parseScope(bad), bad).toThrow(VaultError);
    }
  });
});

describe('decisions over assignments', () => {
  const secretsUser = BuiltInRoleIds.secretsUser;

  it('denies by default', () => {
    expect(findGrant(data([]), PRINCIPAL, SecretActions.get, '/secrets/a', now)).toBeUndefined();
    expect(
      findGrant(data([assignment(secretsUser, '/')]), crypto.randomUUID(), SecretActions.get, '/secrets/a', now),
    ).toBeUndefined();
  });

  it("grants exactly the role's actions at covered scopes", () => {
    const a = assignment(secretsUser, '/secrets/a');
    const d = data([a]);
    expect(findGrant(d, PRINCIPAL, SecretActions.get, '/secrets/a', now)).toBe(a);
    expect(findGrant(d, PRINCIPAL, SecretActions.get, '/secrets/A', now)).toBe(a);
    expect(holds(d, PRINCIPAL, SecretActions.get, '/secrets/b', now)).toBe(false);
    expect(holds(d, PRINCIPAL, SecretActions.readMetadata, '/secrets', now)).toBe(false);
    expect(holds(d, PRINCIPAL, SecretActions.set, '/secrets/a', now)).toBe(false);
    // Principal ids compare without case.
    expect(holds(d, PRINCIPAL.toUpperCase(), SecretActions.get, '/secrets/a', now)).toBe(true);
  });

  it('evaluates expiry at decision time', () => {
    const a = assignment(secretsUser, '/', { expiresAt: now + 60 });
    const d = data([a]);
    expect(holds(d, PRINCIPAL, SecretActions.get, '/secrets/a', now)).toBe(true);
    expect(holds(d, PRINCIPAL, SecretActions.get, '/secrets/a', now + 59)).toBe(true);
    expect(holds(d, PRINCIPAL, SecretActions.get, '/secrets/a', now + 60)).toBe(false);
    // Another, unexpired assignment still grants.
    const both = data([a, assignment(BuiltInRoleIds.secretsOfficer, '/secrets')]);
    expect(holds(both, PRINCIPAL, SecretActions.get, '/secrets/a', now + 3600)).toBe(true);
  });

  it('uses custom roles, and grants nothing for a role that does not exist', () => {
    const r = custom([kv('keys/sign/action')]);
    expect(holds(data([assignment(r.id, '/keys')], [r]), PRINCIPAL, KeyActions.sign, '/keys/k', now)).toBe(true);
    expect(holds(data([assignment(r.id, '/keys')], []), PRINCIPAL, KeyActions.sign, '/keys/k', now)).toBe(false);
  });

  it('refuses a caller of another tenant before reading anything', async () => {
    const vault = { id: crypto.randomUUID(), name: 'v', tenantId: 'tenant-a', enableRbacAuthorization: true } as VaultRecord;
    const caller = { tenantId: 'tenant-b', objectId: PRINCIPAL, appId: 'app' };
    const err = await authorize(database(env.DB), caller, SecretActions.get, {
      vault,
      tenantId: 'tenant-a',
      path: '/secrets/a',
    }).catch((e) => e);
    expect(err).toBeInstanceOf(VaultError);
    expect(err.status).toBe(403);
    expect(err.code).toBe('Forbidden');
    expect(err.innerCode).toBe('ForbiddenByRbac');
    expect(err.message).toContain('Caller is not authorized to perform action on resource.');
    expect(err.message).toContain(`Action: '${SecretActions.get}'`);
    expect(err.message).toContain("Resource: '/providers/microsoft.keyvault/vaults/v/secrets/a'");
  });
});
