/**
 * Role-based access control over real HTTP shapes: Managed HSM's data-plane RBAC API on each vault
 * (what @azure/keyvault-admin's KeyVaultAccessControlClient sends; the package is not on the
 * registry here, so the requests are written out as its REST reference has them), the same
 * through the management API, deny by default, time-bound assignments, and the escalation rules.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { forgetAuthorization } from '../../src/access/authorize';
import { BuiltInRoleIds } from '../../src/access/roles';
import { d1Stats, database } from '../../src/storage/db';
import { RoleActions, SecretActions } from '../../src/core/data-actions';
import { findVault, forgetVault } from '../../src/storage/vaults';
import { APEX, admin, call, env, json, newVault, tokenFor, vaultOrigin } from './helpers';
import { rows } from './identity-helpers';

const API74 = 'api-version=7.4';
const AUTH = 'providers/Microsoft.Authorization';
const defId = (guid: string) => `/providers/Microsoft.Authorization/roleDefinitions/${guid}`;
const R = BuiltInRoleIds;

type Creds = { tenantId: string; clientId: string; clientSecret: string };
type App = Creds & { objectId: string; token: string };

let adminCreds: Creds;
let adminToken: string;
let adminObjectId: string;

beforeAll(async () => {
  adminCreds = await admin();
  adminToken = await tokenFor(adminCreds);
  adminObjectId = (
    await rows<{ object_id: string }>('select object_id from applications where client_id = ?', adminCreds.clientId)
  )[0]!.object_id;
});

async function newApp(displayName = 'rbac test app'): Promise<App> {
  const res = await call('POST', `${APEX}/management/applications`, { token: adminToken, body: { displayName } });
  expect(res.status).toBe(201);
  const body = await json(res);
  const creds = { tenantId: adminCreds.tenantId, clientId: body.clientId, clientSecret: body.clientSecret };
  return { ...creds, objectId: body.objectId, token: await tokenFor(creds) };
}

/** The vault-host URL of `{scope}/providers/…` the way the SDK writes it (`//providers` for '/'). */
const rbacUrl = (vault: string, scope: string, rest: string, query = API74) =>
  `${vaultOrigin(vault)}/${scope}/${AUTH}/${rest}?${query}`;

/** Management API: assign a role (administrators; no escalation rules). */
async function grant(vault: string, principalId: string, roleId: string, scope = '/', extra: Record<string, unknown> = {}) {
  const name = crypto.randomUUID();
  const res = await call(
    'PUT',
    `${APEX}/management/vaults/${vault}/${AUTH}/roleAssignments/${name}?scope=${encodeURIComponent(scope)}`,
    {
      token: adminToken,
      body: { properties: { roleDefinitionId: defId(roleId), principalId, ...extra } },
    },
  );
  expect(res.status, await res.clone().text()).toBe(201);
  return name;
}

async function putSecret(vault: string, name: string, value = 'v') {
  const res = await call('PUT', `${vaultOrigin(vault)}/secrets/${name}?${API74}`, { token: adminToken, body: { value } });
  expect(res.status).toBe(200);
}

const getSecret = (vault: string, name: string, token: string) =>
  call('GET', `${vaultOrigin(vault)}/secrets/${name}?${API74}`, { token });

async function expectForbidden(res: Response, inner = 'ForbiddenByRbac') {
  const text = await res.text();
  expect(res.status, text).toBe(403);
  const body = JSON.parse(text);
  expect(body.error.code).toBe('Forbidden');
  expect(body.error.innererror?.code).toBe(inner);
  return body.error.message as string;
}

describe('deny by default', () => {
  let vault: string;
  beforeAll(async () => {
    vault = await newVault(adminToken);
    await putSecret(vault, 'a', 'secret-value-a');
  });

  it("makes the creating administrator the vault's Key Vault Administrator at the vault scope", async () => {
    const res = await call('GET', `${APEX}/management/vaults/${vault}/${AUTH}/roleAssignments`, { token: adminToken });
    expect(res.status).toBe(200);
    const { value } = await json(res);
    expect(value).toHaveLength(1);
    expect(value[0].properties).toEqual({ scope: '/', roleDefinitionId: defId(R.administrator), principalId: adminObjectId });
  });

  it("refuses a fresh application everything, in Azure's shape, without revealing anything", async () => {
    const app = await newApp();
    const message = await expectForbidden(await getSecret(vault, 'a', app.token));
    expect(message).toContain('Caller is not authorized to perform action on resource.');
    expect(message).toContain(`Caller: appid=${app.clientId};oid=${app.objectId}`);
    expect(message).toContain(`Action: '${SecretActions.get}'`);
    expect(message).toContain(`Resource: '/providers/microsoft.keyvault/vaults/${vault}/secrets/a'`);
    expect(message).toContain('Assignment: (not found)');
    expect(message).not.toContain('secret-value-a');
    await expectForbidden(await call('GET', `${vaultOrigin(vault)}/secrets?${API74}`, { token: app.token }));
    await expectForbidden(
      await call('PUT', `${vaultOrigin(vault)}/secrets/b?${API74}`, { token: app.token, body: { value: 'x' } }),
    );
    await expectForbidden(await call('POST', `${vaultOrigin(vault)}/rng?${API74}`, { token: app.token, body: { count: 8 } }));
    await expectForbidden(await call('GET', rbacUrl(vault, '', 'roleAssignments'), { token: app.token }));
    await expectForbidden(await call('GET', rbacUrl(vault, '', 'roleDefinitions'), { token: app.token }));
  });

  it('grants at once in this isolate, only at the scope given, and revokes at once', async () => {
    await putSecret(vault, 'b');
    const app = await newApp();
    const name = await grant(vault, app.objectId, R.secretsUser, '/secrets/a');
    expect((await getSecret(vault, 'a', app.token)).status).toBe(200);
    expect((await getSecret(vault, 'A', app.token)).status).toBe(200);
    await expectForbidden(await getSecret(vault, 'b', app.token));
    await expectForbidden(await call('GET', `${vaultOrigin(vault)}/secrets?${API74}`, { token: app.token }));
    await expectForbidden(
      await call('PUT', `${vaultOrigin(vault)}/secrets/a?${API74}`, { token: app.token, body: { value: 'x' } }),
    );

    const del = await call('DELETE', `${APEX}/management/vaults/${vault}/${AUTH}/roleAssignments/${name}`, { token: adminToken });
    expect(del.status).toBe(200);
    await expectForbidden(await getSecret(vault, 'a', app.token));
  });

  it('lets a collection scope cover its objects and nothing else', async () => {
    const app = await newApp();
    await grant(vault, app.objectId, R.secretsOfficer, '/secrets');
    expect((await getSecret(vault, 'a', app.token)).status).toBe(200);
    expect((await call('GET', `${vaultOrigin(vault)}/secrets?${API74}`, { token: app.token })).status).toBe(200);
    expect(
      (await call('PUT', `${vaultOrigin(vault)}/secrets/c?${API74}`, { token: app.token, body: { value: 'x' } })).status,
    ).toBe(200);
    await expectForbidden(await call('GET', `${vaultOrigin(vault)}/keys?${API74}`, { token: app.token }));
    // Soft-deleted secrets are the same objects: recover and purge need the Officer's actions only.
    expect((await call('DELETE', `${vaultOrigin(vault)}/secrets/c?${API74}`, { token: app.token })).status).toBe(200);
    expect((await call('GET', `${vaultOrigin(vault)}/deletedsecrets/c?${API74}`, { token: app.token })).status).toBe(200);
    expect((await call('DELETE', `${vaultOrigin(vault)}/deletedsecrets/c?${API74}`, { token: app.token })).status).toBe(204);
  });

  it('stops granting when a time-bound assignment expires, without any write', async () => {
    const app = await newApp();
    const expiresOn = new Date(Date.now() + 1500).toISOString();
    const name = await grant(vault, app.objectId, R.secretsUser, '/', { expiresOn });
    const got = await json(
      await call('GET', `${APEX}/management/vaults/${vault}/${AUTH}/roleAssignments/${name}`, { token: adminToken }),
    );
    expect(got.properties.expiresOn).toBe(new Date(Math.floor(Date.parse(expiresOn) / 1000) * 1000).toISOString());
    expect((await getSecret(vault, 'a', app.token)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 2100));
    await expectForbidden(await getSecret(vault, 'a', app.token));
  });

  it('stops granting for an assignment whose expiry is already past', async () => {
    const app = await newApp();
    const name = await grant(vault, app.objectId, R.secretsUser);
    expect((await getSecret(vault, 'a', app.token)).status).toBe(200);
    await env.DB.prepare('update role_assignments set expires_at = ? where id = ?')
      .bind(Math.floor(Date.now() / 1000) - 1, name)
      .run();
    forgetAuthorization((await findVault(database(env.DB), vault))!.id);
    await expectForbidden(await getSecret(vault, 'a', app.token));
  });

  it('refuses an expiry in the past or that is not a date', async () => {
    for (const expiresOn of [new Date(Date.now() - 60_000).toISOString(), 'tomorrow']) {
      const res = await call('PUT', `${APEX}/management/vaults/${vault}/${AUTH}/roleAssignments/${crypto.randomUUID()}`, {
        token: adminToken,
        body: { properties: { roleDefinitionId: defId(R.secretsUser), principalId: crypto.randomUUID(), expiresOn } },
      });
      expect(res.status, expiresOn).toBe(400);
    }
  });
});

describe('the role API on the vault host (Managed HSM shapes)', () => {
  let vault: string;
  let manager: App;

  beforeAll(async () => {
    vault = await newVault(adminToken);
    manager = await newApp('access manager');
    // Data Access Administrator manages assignments; Administrator supplies what it may grant.
    await grant(vault, manager.objectId, R.dataAccessAdministrator);
    await grant(vault, manager.objectId, R.administrator);
  });

  it('creates (201), reads and deletes an assignment at the vault scope as the SDK sends it', async () => {
    const principal = (await newApp('assignee')).objectId;
    const name = crypto.randomUUID();
    const put = await call('PUT', rbacUrl(vault, '', `roleAssignments/${name}`), {
      token: manager.token,
      body: { properties: { roleDefinitionId: defId(R.secretsUser), principalId: principal } },
    });
    expect(put.status).toBe(201);
    const created = await json(put);
    expect(created).toEqual({
      id: `/providers/Microsoft.Authorization/roleAssignments/${name}`,
      name,
      type: 'Microsoft.Authorization/roleAssignments',
      properties: { scope: '/', roleDefinitionId: defId(R.secretsUser), principalId: principal },
    });
    const get = await call('GET', rbacUrl(vault, '', `roleAssignments/${name}`), { token: manager.token });
    expect(get.status).toBe(200);
    expect(await json(get)).toEqual(created);
    // The same PUT again answers the same assignment; a different one under the name is a conflict.
    const again = await call('PUT', rbacUrl(vault, '', `roleAssignments/${name}`), {
      token: manager.token,
      body: { properties: { roleDefinitionId: defId(R.secretsUser), principalId: principal } },
    });
    expect(again.status).toBe(201);
    const changed = await call('PUT', rbacUrl(vault, '', `roleAssignments/${name}`), {
      token: manager.token,
      body: { properties: { roleDefinitionId: defId(R.secretsOfficer), principalId: principal } },
    });
    expect(changed.status).toBe(409);
    const twin = await call('PUT', rbacUrl(vault, '', `roleAssignments/${crypto.randomUUID()}`), {
      token: manager.token,
      body: { properties: { roleDefinitionId: R.secretsUser, principalId: principal } },
    });
    expect(twin.status).toBe(409);
    expect((await json(twin)).error.code).toBe('RoleAssignmentExists');

    const del = await call('DELETE', rbacUrl(vault, '', `roleAssignments/${name}`), { token: manager.token });
    expect(del.status).toBe(200);
    expect(await json(del)).toEqual(created);
    const gone = await call('GET', rbacUrl(vault, '', `roleAssignments/${name}`), { token: manager.token });
    expect(gone.status).toBe(404);
    expect((await json(gone)).error.code).toBe('RoleAssignmentNotFound');
  });

  it('creates at a collection and at an object scope, with scoped ids', async () => {
    const name = crypto.randomUUID();
    const res = await call('PUT', rbacUrl(vault, '/keys', `roleAssignments/${name}`), {
      token: manager.token,
      body: { properties: { roleDefinitionId: defId(R.cryptoUser), principalId: (await newApp('key user')).objectId } },
    });
    expect(res.status).toBe(201);
    const body = await json(res);
    expect(body.id).toBe(`/keys/providers/Microsoft.Authorization/roleAssignments/${name}`);
    expect(body.properties.scope).toBe('/keys');
    // Read at another scope: not there.
    expect((await call('GET', rbacUrl(vault, '', `roleAssignments/${name}`), { token: manager.token })).status).toBe(404);

    const objectName = crypto.randomUUID();
    const one = await call('PUT', rbacUrl(vault, '/secrets/Db-Password', `roleAssignments/${objectName}`), {
      token: manager.token,
      body: { properties: { roleDefinitionId: defId(R.secretsUser), principalId: (await newApp('secret user')).objectId } },
    });
    expect(one.status).toBe(201);
    expect((await json(one)).properties.scope).toBe('/secrets/Db-Password');
    expect(
      (await call('GET', rbacUrl(vault, '/secrets/db-password', `roleAssignments/${objectName}`), { token: manager.token }))
        .status,
    ).toBe(200);
  });

  it('refuses names that are not GUIDs, scopes that cannot exist and unknown roles', async () => {
    const body = { properties: { roleDefinitionId: defId(R.secretsUser), principalId: crypto.randomUUID() } };
    expect((await call('PUT', rbacUrl(vault, '', 'roleAssignments/not-a-guid'), { token: manager.token, body })).status).toBe(
      400,
    );
    expect(
      (
        await call('PUT', rbacUrl(vault, '/secrets/bad_name', `roleAssignments/${crypto.randomUUID()}`), {
          token: manager.token,
          body,
        })
      ).status,
    ).toBe(400);
    const unknown = await call('PUT', rbacUrl(vault, '', `roleAssignments/${crypto.randomUUID()}`), {
      token: manager.token,
      body: { properties: { roleDefinitionId: defId(crypto.randomUUID()), principalId: crypto.randomUUID() } },
    });
    expect(unknown.status).toBe(400);
    expect((await json(unknown)).error.code).toBe('RoleDefinitionDoesNotExist');
    const noPrincipal = await call('PUT', rbacUrl(vault, '', `roleAssignments/${crypto.randomUUID()}`), {
      token: manager.token,
      body: { properties: { roleDefinitionId: defId(R.secretsUser) } },
    });
    expect(noPrincipal.status).toBe(400);
  });

  it('refuses principals that do not exist (400 PrincipalNotFound), as Azure does', async () => {
    const app = await newApp('known principal');
    const unknownId = crypto.randomUUID();
    const assign = (
      principalId: string,
      url = rbacUrl(vault, '', `roleAssignments/${crypto.randomUUID()}`),
      token = manager.token,
    ) => call('PUT', url, { token, body: { properties: { roleDefinitionId: defId(R.secretsUser), principalId } } });
    const unknown = await assign(unknownId);
    expect(unknown.status).toBe(400);
    const error = (await json(unknown)).error;
    expect(error.code).toBe('PrincipalNotFound');
    expect(error.message).toBe(
      `Principal ${unknownId.replace(/-/g, '')} does not exist in the directory ${adminCreds.tenantId}. Check that you have the correct principal ID.`,
    );
    // An application's client id where its object id belongs: refused, and told so.
    const byClientId = await assign(app.clientId);
    expect(byClientId.status).toBe(400);
    const clientError = (await json(byClientId)).error;
    expect(clientError.code).toBe('PrincipalNotFound');
    expect(clientError.message).toContain('client (application) id');
    // The management API refuses them too; a deleted application is no principal either.
    const mgmt = (principalId: string) =>
      assign(principalId, `${APEX}/management/vaults/${vault}/${AUTH}/roleAssignments/${crypto.randomUUID()}`, adminToken);
    expect((await json(await mgmt(unknownId))).error.code).toBe('PrincipalNotFound');
    const gone = await newApp('deleted principal');
    expect((await call('DELETE', `${APEX}/management/applications/${gone.clientId}`, { token: adminToken })).status).toBe(204);
    expect((await json(await mgmt(gone.objectId))).error.code).toBe('PrincipalNotFound');
    // Nothing was stored; the object id works.
    const listed = await json(await call('GET', rbacUrl(vault, '', 'roleAssignments'), { token: manager.token }));
    expect(listed.value.some((a: any) => [unknownId, app.clientId, gone.objectId].includes(a.properties.principalId))).toBe(
      false,
    );
    expect((await assign(app.objectId)).status).toBe(201);
    // Whoever may not assign learns nothing about which principals exist.
    await expectForbidden(await assign(unknownId, undefined, app.token));
  });

  it('lists with atScope() and principalId filters, paged with absolute nextLinks', async () => {
    const v = await newVault(adminToken);
    const p = (await newApp('listed')).objectId;
    const atRoot = await grant(v, p, R.secretsUser, '/');
    const atSecrets = await grant(v, p, R.secretsOfficer, '/secrets');
    const atObject = await grant(v, p, R.reader, '/secrets/x');
    const atKeys = await grant(v, (await newApp('listed other')).objectId, R.cryptoUser, '/keys');
    await grant(v, manager.objectId, R.reader);
    const list = async (scope: string, query: string) => {
      const res = await call('GET', rbacUrl(v, scope, 'roleAssignments', `${API74}${query}`), { token: manager.token });
      expect(res.status, await res.clone().text()).toBe(200);
      return json(res);
    };
    const names = (body: { value: { name: string }[] }) => body.value.map((a) => a.name).sort();

    // No filter: at, above and below the scope.
    const all = await list('/secrets', '');
    expect(all.value.map((a: any) => a.properties.scope).sort()).toEqual(['/', '/', '/', '/secrets', '/secrets/x']);
    expect(names(all)).toEqual(expect.arrayContaining([atRoot, atSecrets, atObject]));
    expect(names(await list('', ''))).toContain(atKeys);
    // atScope(): at or above only.
    const at = await list('/secrets', `&%24filter=${encodeURIComponent('atScope()')}`);
    expect(at.value.map((a: any) => a.properties.scope).sort()).toEqual(expect.arrayContaining(['/', '/secrets']));
    expect(at.value.some((a: any) => a.name === atObject || a.name === atKeys)).toBe(false);
    // principalId eq: one principal's, at, above and below.
    expect(names(await list('/secrets', `&%24filter=${encodeURIComponent(`principalId eq '${p}'`)}`))).toEqual(
      [atRoot, atSecrets, atObject].sort(),
    );
    expect(names(await list('', `&%24filter=${encodeURIComponent(`principalId eq '${p}'`)}`))).toEqual(
      [atRoot, atSecrets, atObject].sort(),
    );
    expect(names(await list('', `&%24filter=${encodeURIComponent(`atScope() and principalId eq '${p}'`)}`))).toEqual([atRoot]);
    // An unsupported filter is a 400.
    const bad = await call(
      'GET',
      rbacUrl(v, '', 'roleAssignments', `${API74}&%24filter=${encodeURIComponent("roleName eq 'x'")}`),
      { token: manager.token },
    );
    expect(bad.status).toBe(400);

    // Paging: every item once, the filter carried along.
    const seen: string[] = [];
    let url: string | null = rbacUrl(
      v,
      '',
      'roleAssignments',
      `${API74}&maxresults=2&%24filter=${encodeURIComponent(`principalId eq '${p}'`)}`,
    );
    let pages = 0;
    while (url) {
      const res = await call('GET', url, { token: manager.token });
      expect(res.status).toBe(200);
      const body = await json(res);
      expect(body.value.length).toBeLessThanOrEqual(2);
      seen.push(...body.value.map((a: any) => a.name));
      url = body.nextLink;
      if (url) expect(url.startsWith(vaultOrigin(v))).toBe(true);
      pages++;
    }
    expect(pages).toBe(2);
    expect(seen.sort()).toEqual([atRoot, atSecrets, atObject].sort());
  });

  it("lists the built-in role definitions with Azure's names, ids and permissions, and filters by roleName", async () => {
    const res = await call('GET', rbacUrl(vault, '', 'roleDefinitions'), { token: manager.token });
    expect(res.status).toBe(200);
    const { value } = await json(res);
    const builtIns = value.filter((d: any) => d.properties.type === 'AKVBuiltInRole');
    expect(builtIns).toHaveLength(12); // Azure's eleven and Key Vault Auditor
    const officer = builtIns.find((d: any) => d.name === R.secretsOfficer);
    expect(officer).toMatchObject({
      id: defId(R.secretsOfficer),
      type: 'Microsoft.Authorization/roleDefinitions',
      properties: {
        roleName: 'Key Vault Secrets Officer',
        type: 'AKVBuiltInRole',
        assignableScopes: ['/'],
        permissions: [{ dataActions: ['Microsoft.KeyVault/vaults/secrets/*'], notDataActions: [] }],
      },
    });
    const daa = builtIns.find((d: any) => d.name === R.dataAccessAdministrator);
    expect(daa.properties.permissions[0].condition).toContain('GuidEquals');

    const filtered = await call(
      'GET',
      rbacUrl(vault, '', 'roleDefinitions', `${API74}&%24filter=${encodeURIComponent("roleName eq 'Key Vault Secrets User'")}`),
      {
        token: manager.token,
      },
    );
    expect((await json(filtered)).value.map((d: any) => d.name)).toEqual([R.secretsUser]);
    const one = await call('GET', rbacUrl(vault, '/keys', `roleDefinitions/${R.cryptoUser}`), { token: manager.token });
    expect(one.status).toBe(200);
    expect((await json(one)).properties.roleName).toBe('Key Vault Crypto User');
    expect(
      (await call('GET', rbacUrl(vault, '', `roleDefinitions/${crypto.randomUUID()}`), { token: manager.token })).status,
    ).toBe(404);
  });

  it('defines custom roles with wildcards and notDataActions, and they decide like built-in ones', async () => {
    const roleId = crypto.randomUUID();
    const put = await call('PUT', `${APEX}/management/vaults/${vault}/${AUTH}/roleDefinitions/${roleId}`, {
      token: adminToken,
      body: {
        properties: {
          roleName: `writer without read ${roleId.slice(0, 8)}`,
          description: 'Sets secrets, never reads their values.',
          type: 'CustomRole',
          permissions: [
            {
              dataActions: ['Microsoft.KeyVault/vaults/secrets/*'],
              notDataActions: ['Microsoft.KeyVault/vaults/secrets/getSecret/action'],
            },
          ],
          assignableScopes: ['/'],
        },
      },
    });
    expect(put.status, await put.clone().text()).toBe(201);
    const created = await json(put);
    expect(created).toEqual({
      id: defId(roleId),
      name: roleId,
      type: 'Microsoft.Authorization/roleDefinitions',
      properties: {
        roleName: `writer without read ${roleId.slice(0, 8)}`,
        description: 'Sets secrets, never reads their values.',
        type: 'CustomRole',
        permissions: [
          {
            actions: [],
            notActions: [],
            dataActions: ['Microsoft.KeyVault/vaults/secrets/*'],
            notDataActions: ['Microsoft.KeyVault/vaults/secrets/getSecret/action'],
          },
        ],
        assignableScopes: ['/'],
      },
    });
    expect(await json(await call('GET', rbacUrl(vault, '', `roleDefinitions/${roleId}`), { token: manager.token }))).toEqual(
      created,
    );

    const writer = await newApp('writer');
    // The manager holds everything the role grants (Administrator), so it may assign it.
    const assign = await call('PUT', rbacUrl(vault, '', `roleAssignments/${crypto.randomUUID()}`), {
      token: manager.token,
      body: { properties: { roleDefinitionId: defId(roleId), principalId: writer.objectId } },
    });
    // ...but Data Access Administrator's condition covers built-in roles only.
    await expectForbidden(assign);
    await grant(vault, writer.objectId, roleId);
    expect(
      (await call('PUT', `${vaultOrigin(vault)}/secrets/w?${API74}`, { token: writer.token, body: { value: 'x' } })).status,
    ).toBe(200);
    await expectForbidden(await getSecret(vault, 'w', writer.token));

    // A definition with assignments cannot be deleted; a role name is unique.
    const del = await call('DELETE', `${APEX}/management/vaults/${vault}/${AUTH}/roleDefinitions/${roleId}`, {
      token: adminToken,
    });
    expect(del.status).toBe(409);
    const dup = await call('PUT', `${APEX}/management/vaults/${vault}/${AUTH}/roleDefinitions/${crypto.randomUUID()}`, {
      token: adminToken,
      body: { properties: { roleName: 'Key Vault Secrets User', permissions: [] } },
    });
    expect(dup.status).toBe(409);
    const unknownAction = await call('PUT', `${APEX}/management/vaults/${vault}/${AUTH}/roleDefinitions/${crypto.randomUUID()}`, {
      token: adminToken,
      body: { properties: { roleName: 'bogus', permissions: [{ dataActions: ['Microsoft.Storage/*'] }] } },
    });
    expect(unknownAction.status).toBe(400);
    const builtIn = await call('PUT', `${APEX}/management/vaults/${vault}/${AUTH}/roleDefinitions/${R.secretsUser}`, {
      token: adminToken,
      body: { properties: { roleName: 'mine now', permissions: [] } },
    });
    expect(builtIn.status).toBe(400);
  });

  it('keeps the management API to administrators', async () => {
    const app = await newApp();
    expect((await call('GET', `${APEX}/management/vaults/${vault}/${AUTH}/roleAssignments`, { token: app.token })).status).toBe(
      403,
    );
    const res = await call('PUT', `${APEX}/management/vaults/${vault}/${AUTH}/roleAssignments/${crypto.randomUUID()}`, {
      token: app.token,
      body: { properties: { roleDefinitionId: defId(R.administrator), principalId: app.objectId } },
    });
    expect(res.status).toBe(403);
    expect(
      (await call('GET', `${APEX}/management/vaults/nosuchvault1/${AUTH}/roleAssignments`, { token: adminToken })).status,
    ).toBe(404);
  });
});

describe('escalation attempts are refused', () => {
  let vault: string;
  beforeAll(async () => {
    vault = await newVault(adminToken);
    await putSecret(vault, 's');
  });

  // Assignments need a principal that exists (PrincipalNotFound otherwise): a fresh application each.
  const principal = async () => (await newApp('assignee')).objectId;

  const assignVia = (app: App, scope: string, roleDefinitionId: string, principalId: string) =>
    call('PUT', rbacUrl(vault, scope, `roleAssignments/${crypto.randomUUID()}`), {
      token: app.token,
      body: { properties: { roleDefinitionId, principalId } },
    });

  it('a Secrets Officer assigning roles (it lacks roleAssignments/write)', async () => {
    const officer = await newApp('officer');
    await grant(vault, officer.objectId, R.secretsOfficer);
    const message = await expectForbidden(await assignVia(officer, '', defId(R.secretsUser), officer.objectId));
    expect(message).toContain(`Action: '${RoleActions.writeAssignments}'`);
    await expectForbidden(await assignVia(officer, '/secrets', defId(R.secretsOfficer), await principal()));
    // Nor an Administrator, whose data actions are Microsoft.KeyVault/vaults/* only.
    const administrator = await newApp('administrator');
    await grant(vault, administrator.objectId, R.administrator);
    await expectForbidden(await assignVia(administrator, '', defId(R.secretsUser), await principal()));
  });

  it('a Data Access Administrator assigning Administrator (or anything it does not hold)', async () => {
    const daa = await newApp('data access administrator');
    await grant(vault, daa.objectId, R.dataAccessAdministrator);
    const message = await expectForbidden(await assignVia(daa, '', defId(R.administrator), daa.objectId));
    expect(message).toContain('Key Vault Administrator');
    await expectForbidden(await assignVia(daa, '', defId(R.secretsUser), await principal()));
    // Its condition: never another Data Access Administrator, never a role outside the list.
    await expectForbidden(await assignVia(daa, '', defId(R.dataAccessAdministrator), await principal()));
    // With Secrets Officer it may hand out Secrets User, within what it holds.
    await grant(vault, daa.objectId, R.secretsOfficer);
    expect((await assignVia(daa, '', defId(R.secretsUser), await principal())).status).toBe(201);
    await expectForbidden(await assignVia(daa, '', defId(R.administrator), await principal()));
    await expectForbidden(await assignVia(daa, '', defId(R.cryptoUser), await principal()));
    // Certificate User's secrets actions it holds, but the condition does not list that role.
    await grant(vault, daa.objectId, R.administrator);
    await expectForbidden(await assignVia(daa, '', defId(R.certificateUser), await principal()));
    expect((await assignVia(daa, '', defId(R.administrator), await principal())).status).toBe(201);
  });

  it('assigning at a wider scope than one holds', async () => {
    const scoped = await newApp('scoped manager');
    await grant(vault, scoped.objectId, R.dataAccessAdministrator, '/secrets');
    await grant(vault, scoped.objectId, R.secretsOfficer, '/secrets');
    await expectForbidden(await assignVia(scoped, '', defId(R.secretsUser), await principal()));
    await expectForbidden(await assignVia(scoped, '/keys', defId(R.secretsUser), await principal()));
    expect((await assignVia(scoped, '/secrets', defId(R.secretsUser), await principal())).status).toBe(201);
    expect((await assignVia(scoped, '/secrets/s', defId(R.secretsUser), await principal())).status).toBe(201);

    // Management at an object scope only: the collection is wider.
    const narrow = await newApp('narrow manager');
    await grant(vault, narrow.objectId, R.dataAccessAdministrator, '/secrets/s');
    await grant(vault, narrow.objectId, R.secretsOfficer, '/secrets/s');
    await expectForbidden(await assignVia(narrow, '/secrets', defId(R.secretsUser), await principal()));
    expect((await assignVia(narrow, '/secrets/s', defId(R.secretsUser), await principal())).status).toBe(201);
  });

  it('assigning a custom role (or a built-in one) with an action one lacks, including to oneself', async () => {
    // An assigner by custom role: may assign any role (no condition), holds only readMetadata.
    const assignerRole = crypto.randomUUID();
    const metadataRole = crypto.randomUUID();
    const valueRole = crypto.randomUUID();
    const define = async (id: string, name: string, dataActions: string[]) => {
      const res = await call('PUT', `${APEX}/management/vaults/${vault}/${AUTH}/roleDefinitions/${id}`, {
        token: adminToken,
        body: { properties: { roleName: `${name} ${id.slice(0, 8)}`, permissions: [{ dataActions }] } },
      });
      expect(res.status, await res.clone().text()).toBe(201);
    };
    await define(assignerRole, 'assigner', [
      RoleActions.writeAssignments,
      RoleActions.readAssignments,
      SecretActions.readMetadata,
    ]);
    await define(metadataRole, 'metadata reader', [SecretActions.readMetadata]);
    await define(valueRole, 'value reader', [SecretActions.readMetadata, SecretActions.get]);
    const assigner = await newApp('custom assigner');
    await grant(vault, assigner.objectId, assignerRole);

    expect((await assignVia(assigner, '', defId(metadataRole), await principal())).status).toBe(201);
    const message = await expectForbidden(await assignVia(assigner, '', defId(valueRole), await principal()));
    expect(message).toContain(SecretActions.get);
    await expectForbidden(await assignVia(assigner, '', defId(valueRole), assigner.objectId));
    await expectForbidden(await assignVia(assigner, '', defId(R.secretsUser), assigner.objectId));
    await expectForbidden(await assignVia(assigner, '/secrets/s', defId(R.secretsOfficer), assigner.objectId));
    // And still nothing to read.
    await expectForbidden(await getSecret(vault, 's', assigner.token));
  });

  it('widening a role through its definition', async () => {
    const definerRole = crypto.randomUUID();
    const res = await call('PUT', `${APEX}/management/vaults/${vault}/${AUTH}/roleDefinitions/${definerRole}`, {
      token: adminToken,
      body: {
        properties: {
          roleName: `definer ${definerRole.slice(0, 8)}`,
          permissions: [{ dataActions: [RoleActions.writeDefinitions, SecretActions.readMetadata] }],
        },
      },
    });
    expect(res.status).toBe(201);
    const definer = await newApp('definer');
    await grant(vault, definer.objectId, definerRole);
    // Rewriting its own role to read values: refused; a role within what it holds: allowed.
    const widen = await call('PUT', rbacUrl(vault, '', `roleDefinitions/${definerRole}`), {
      token: definer.token,
      body: {
        properties: {
          roleName: `definer ${definerRole.slice(0, 8)}`,
          permissions: [{ dataActions: [RoleActions.writeDefinitions, 'Microsoft.KeyVault/vaults/secrets/*'] }],
        },
      },
    });
    await expectForbidden(widen);
    const narrow = await call('PUT', rbacUrl(vault, '', `roleDefinitions/${crypto.randomUUID()}`), {
      token: definer.token,
      body: {
        properties: {
          roleName: `narrow ${definerRole.slice(0, 8)}`,
          permissions: [{ dataActions: [SecretActions.readMetadata] }],
        },
      },
    });
    expect(narrow.status).toBe(201);
    await expectForbidden(await getSecret(vault, 's', definer.token));
  });

  it('deleting a vault-wide role with delete rights at one object only', async () => {
    const wide = crypto.randomUUID();
    const put = await call('PUT', `${APEX}/management/vaults/${vault}/${AUTH}/roleDefinitions/${wide}`, {
      token: adminToken,
      body: {
        properties: {
          roleName: `wide ${wide.slice(0, 8)}`,
          permissions: [{ dataActions: [SecretActions.readMetadata] }],
          assignableScopes: ['/'],
        },
      },
    });
    expect(put.status).toBe(201);
    const deleterRole = crypto.randomUUID();
    expect(
      (
        await call('PUT', `${APEX}/management/vaults/${vault}/${AUTH}/roleDefinitions/${deleterRole}`, {
          token: adminToken,
          body: {
            properties: {
              roleName: `deleter ${deleterRole.slice(0, 8)}`,
              permissions: [{ dataActions: [RoleActions.deleteDefinitions, RoleActions.readDefinitions] }],
            },
          },
        })
      ).status,
    ).toBe(201);
    const deleter = await newApp('narrow deleter');
    await grant(vault, deleter.objectId, deleterRole, '/secrets/x');
    // Addressed at the object it holds rights on, the role still reaches the whole vault.
    const message = await expectForbidden(
      await call('DELETE', rbacUrl(vault, 'secrets/x', `roleDefinitions/${wide}`), { token: deleter.token }),
    );
    expect(message).toContain(`scope '/'`);
    expect((await call('GET', rbacUrl(vault, '', `roleDefinitions/${wide}`), { token: adminToken })).status).toBe(200);
    // With the delete action at '/' it may.
    await grant(vault, deleter.objectId, deleterRole, '/');
    expect((await call('DELETE', rbacUrl(vault, 'secrets/x', `roleDefinitions/${wide}`), { token: deleter.token })).status).toBe(
      200,
    );
    expect((await call('GET', rbacUrl(vault, '', `roleDefinitions/${wide}`), { token: adminToken })).status).toBe(404);
  });

  it('removing access one could not grant', async () => {
    const daa = await newApp('remover');
    await grant(vault, daa.objectId, R.dataAccessAdministrator);
    await grant(vault, daa.objectId, R.secretsUser);
    const list = await json(
      await call(
        'GET',
        rbacUrl(vault, '', 'roleAssignments', `${API74}&%24filter=${encodeURIComponent(`principalId eq '${adminObjectId}'`)}`),
        { token: daa.token },
      ),
    );
    const creatorAssignment = list.value.find((a: any) => a.properties.roleDefinitionId === defId(R.administrator));
    expect(creatorAssignment).toBeDefined();
    await expectForbidden(
      await call('DELETE', rbacUrl(vault, '', `roleAssignments/${creatorAssignment.name}`), { token: daa.token }),
    );
    // One within its reach it may remove.
    const victim = (await newApp('victim')).objectId;
    const name = await grant(vault, victim, R.secretsUser);
    expect((await call('DELETE', rbacUrl(vault, '', `roleAssignments/${name}`), { token: daa.token })).status).toBe(200);
  });
});

describe('access policies instead of roles (enableRbacAuthorization false)', () => {
  it("decides by the caller's access policy and ignores role assignments", async () => {
    const vault = await newVault(adminToken);
    await putSecret(vault, 'p');
    const db = database(env.DB);
    const record = (await findVault(db, vault))!;
    const reader = await newApp('policy reader');
    const roleHolder = await newApp('role holder');
    await grant(vault, roleHolder.objectId, R.secretsUser);
    await env.DB.prepare('update vaults set enable_rbac_authorization = 0 where id = ?').bind(record.id).run();
    await env.DB.prepare('insert into access_policies (vault_id, object_id, permissions, updated_at) values (?, ?, ?, ?)')
      .bind(record.id, reader.objectId, JSON.stringify({ secrets: ['get'] }), 0)
      .run();
    forgetVault(vault);
    forgetAuthorization(record.id);

    expect((await getSecret(vault, 'p', reader.token)).status).toBe(200);
    const message = await expectForbidden(
      await call('PUT', `${vaultOrigin(vault)}/secrets/p?${API74}`, { token: reader.token, body: { value: 'x' } }),
      'AccessDenied',
    );
    expect(message).toContain(
      `'appid=${reader.clientId};oid=${reader.objectId}' does not have secrets set permission on key vault '${vault}'`,
    );
    await expectForbidden(await getSecret(vault, 'p', roleHolder.token), 'AccessDenied');
  });
});

describe('the hot path', () => {
  it('serves a warm authorized read by a role holder with no D1 query', async () => {
    const vault = await newVault(adminToken);
    await putSecret(vault, 'hot', 'hot-value');
    const app = await newApp('hot reader');
    await grant(vault, app.objectId, R.secretsUser, '/secrets/hot');
    expect((await getSecret(vault, 'hot', app.token)).status).toBe(200); // warm: vault, assignments, data key, sealed row
    const before = d1Stats.statements;
    for (let i = 0; i < 10; i++) expect((await getSecret(vault, 'hot', app.token)).status).toBe(200);
    expect(d1Stats.statements - before).toBe(0);
  });
});
