/**
 * Legacy access policies: permissions by name, get/list told apart, model switching, and their
 * audit records.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { forgetAuthorization } from '../../src/access/authorize';
import { normalizePolicyPermissions, permissionFor, policyAllows, POLICY_PERMISSIONS } from '../../src/access/policy-permissions';
import { BuiltInRoleIds } from '../../src/access/roles';
import { CertificateActions, KeyActions, RoleActions, SecretActions, type DataAction } from '../../src/core/data-actions';
import { API, APEX, admin, call, env, json, tokenFor, vaultOrigin } from './helpers';
import { count, rows, sleep } from './identity-helpers';

type Creds = { tenantId: string; clientId: string; clientSecret: string };

describe('access-policy permissions', () => {
  it("maps every secret, key and certificate action to one of Azure's permission names", () => {
    for (const [collection, actions] of [
      ['secrets', SecretActions],
      ['keys', KeyActions],
      ['certificates', CertificateActions],
    ] as const) {
      for (const action of Object.values(actions) as DataAction[]) {
        const needed = permissionFor(action);
        expect(needed, action).toBeDefined();
        expect(needed!.collection, action).toBe(collection);
        expect(POLICY_PERMISSIONS[collection], action).toContain(needed!.permission);
      }
    }
    // Role management is not an access-policy matter.
    for (const action of Object.values(RoleActions)) expect(permissionFor(action), action).toBeUndefined();
  });

  it("uses Azure's permission for each operation", () => {
    const p = (action: DataAction, operation?: string) => {
      const needed = permissionFor(action, operation)!;
      return `${needed.collection}/${needed.permission}`;
    };
    expect(p(SecretActions.get)).toBe('secrets/get');
    expect(p(SecretActions.readMetadata)).toBe('secrets/list');
    expect(p(SecretActions.set)).toBe('secrets/set');
    expect(p(SecretActions.update)).toBe('secrets/set');
    expect(p(SecretActions.delete)).toBe('secrets/delete');
    expect(p(SecretActions.recover)).toBe('secrets/recover');
    expect(p(SecretActions.purge)).toBe('secrets/purge');
    expect(p(SecretActions.backup)).toBe('secrets/backup');
    expect(p(SecretActions.restore)).toBe('secrets/restore');
    expect(p(KeyActions.read, 'KeyGet')).toBe('keys/get');
    expect(p(KeyActions.read, 'KeyGetDeleted')).toBe('keys/get');
    expect(p(KeyActions.read, 'KeyList')).toBe('keys/list');
    expect(p(KeyActions.read, 'KeyListVersions')).toBe('keys/list');
    expect(p(KeyActions.read, 'KeyListDeleted')).toBe('keys/list');
    // Without the operation: the get side (what a key user's policy holds).
    expect(p(KeyActions.read)).toBe('keys/get');
    expect(p(KeyActions.wrap)).toBe('keys/wrapKey');
    expect(p(KeyActions.unwrap)).toBe('keys/unwrapKey');
    expect(p(KeyActions.getRotationPolicy)).toBe('keys/getrotationpolicy');
    expect(p(KeyActions.setRotationPolicy)).toBe('keys/setrotationpolicy');
    expect(p(KeyActions.rotate)).toBe('keys/rotate');
    expect(p(KeyActions.random)).toBe('keys/all');
    expect(p(CertificateActions.read, 'CertificateList')).toBe('certificates/list');
    expect(p(CertificateActions.manageContacts)).toBe('certificates/managecontacts');
    expect(p(CertificateActions.readIssuers, 'CertificateIssuerList')).toBe('certificates/listissuers');
    expect(p(CertificateActions.readIssuers, 'CertificateIssuerGet')).toBe('certificates/getissuers');
  });

  it('allows what a policy holds, everything of a collection with all, and nothing else', () => {
    const reader = { secrets: ['get'] };
    expect(policyAllows(reader, SecretActions.get)).toBe(true);
    expect(policyAllows(reader, SecretActions.readMetadata)).toBe(false);
    expect(policyAllows(reader, SecretActions.set)).toBe(false);
    expect(policyAllows(reader, KeyActions.read)).toBe(false);
    expect(policyAllows(undefined, SecretActions.get)).toBe(false);
    expect(policyAllows({}, SecretActions.get)).toBe(false);
    const all = { secrets: ['all'] };
    for (const action of Object.values(SecretActions)) expect(policyAllows(all, action)).toBe(true);
    expect(policyAllows(all, KeyActions.sign)).toBe(false);
    expect(policyAllows({ keys: ['all'] }, KeyActions.random)).toBe(true);
    expect(policyAllows({ keys: ['get', 'list', 'sign'] }, KeyActions.random)).toBe(false);
    // Names compare without case (Azure takes "Get", "UnwrapKey").
    expect(policyAllows({ keys: ['UnwrapKey'] }, KeyActions.unwrap)).toBe(true);
    expect(policyAllows({ secrets: ['GET'] }, SecretActions.get)).toBe(true);
    // manageissuers grants every issuer operation.
    expect(policyAllows({ certificates: ['manageissuers'] }, CertificateActions.deleteIssuers)).toBe(true);
    expect(policyAllows({ certificates: ['getissuers'] }, CertificateActions.writeIssuers)).toBe(false);
    // A list-only key policy lists but does not get.
    expect(policyAllows({ keys: ['list'] }, KeyActions.read, 'KeyList')).toBe(true);
    expect(policyAllows({ keys: ['list'] }, KeyActions.read, 'KeyGet')).toBe(false);
    expect(policyAllows({ keys: ['get'] }, KeyActions.read, 'KeyList')).toBe(false);
  });

  it('validates and normalizes permission lists', () => {
    expect(normalizePolicyPermissions({ keys: ['Get', 'wrapkey', 'get'], secrets: ['LIST'] })).toEqual({
      keys: ['get', 'wrapKey'],
      secrets: ['list'],
      certificates: [],
    });
    expect(normalizePolicyPermissions({ storage: [] })).toEqual({ keys: [], secrets: [], certificates: [] });
    for (const bad of [
      null,
      [],
      'get',
      { secrets: ['sign'] },
      { keys: ['set'] },
      { secrets: 'get' },
      { secrets: [1] },
      { blobs: [] },
      { storage: ['get'] },
    ]) {
      expect(typeof normalizePolicyPermissions(bad), JSON.stringify(bad)).toBe('string');
    }
  });
});

/** Waits for the queue to deliver the audit events of a correlation id to the consumer. */
async function audited(correlationId: string, timeoutMs = 15_000): Promise<Record<string, unknown>[]> {
  const [table] = await rows<{ name: string }>(
    "select name from sqlite_master where type = 'table' and name in ('audit_records', 'audit_events') order by name = 'audit_records' desc limit 1",
  );
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await rows(`select * from ${table!.name} where correlation_id = ?`, correlationId);
    if (found.length > 0 || Date.now() > deadline) return found;
    await sleep(100);
  }
}

describe('a vault that uses access policies', () => {
  let creds: Creds;
  let token: string;
  let adminObjectId: string;
  let vault: string;
  let origin: string;
  let vaultId: string;
  let user: Creds & { objectId: string };
  let userToken: string;

  const mgmt = (method: string, path: string, body?: unknown, t = token, headers: Record<string, string> = {}) =>
    call(method, `${APEX}/management/vaults/${vault}${path}`, { token: t, body, headers });
  const setPolicy = (permissions: unknown, objectId = user.objectId) =>
    mgmt('PUT', `/accessPolicies/${objectId}`, { permissions });
  const asUser = (method: string, path: string, body?: unknown) =>
    call(method, `${origin}${path}${path.includes('?') ? '&' : '?'}${API}`, { token: userToken, body });

  async function expectRefused(res: Response) {
    expect(res.status).toBe(403);
    const body = await json(res);
    expect(body.error.code).toBe('Forbidden');
    expect(body.error.message).toContain(user.objectId);
  }

  async function newApp(displayName: string) {
    const res = await call('POST', `${APEX}/management/applications`, { token, body: { displayName } });
    const body = await json(res);
    const app = {
      tenantId: creds.tenantId,
      clientId: body.clientId,
      clientSecret: body.clientSecret,
      objectId: body.objectId as string,
    };
    return { app, token: await tokenFor(app) };
  }

  beforeAll(async () => {
    creds = await admin();
    token = await tokenFor(creds);
    adminObjectId = (await json(await call('GET', `${APEX}/management/applications/${creds.clientId}`, { token }))).objectId;
    vault = `ap${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`.slice(0, 24);
    const created = await call('PUT', `${APEX}/management/vaults/${vault}`, {
      token,
      body: {
        enableRbacAuthorization: false,
        accessPolicies: [{ tenantId: creds.tenantId, objectId: adminObjectId, permissions: { secrets: ['all'], keys: ['all'] } }],
      },
    });
    expect(created.status).toBe(201);
    const body = await json(created);
    vaultId = body.id;
    expect(body.properties.enableRbacAuthorization).toBe(false);
    expect(body.properties.accessPolicies).toEqual([
      { tenantId: creds.tenantId, objectId: adminObjectId, permissions: { keys: ['all'], secrets: ['all'], certificates: [] } },
    ]);
    origin = vaultOrigin(vault);
    // The administrator's own policy lets it fill the vault.
    expect((await call('PUT', `${origin}/secrets/db-password?${API}`, { token, body: { value: 's3cr3t' } })).status).toBe(200);
    expect((await call('POST', `${origin}/keys/signer/create?${API}`, { token, body: { kty: 'EC', crv: 'P-256' } })).status).toBe(
      200,
    );
    ({ app: user, token: userToken } = await newApp('policy user'));
  });

  it('lets a principal with secrets [get] get a secret, but not list or set', async () => {
    const res = await setPolicy({ secrets: ['get'] });
    expect(res.status).toBe(201);
    expect(await json(res)).toEqual({
      tenantId: creds.tenantId,
      objectId: user.objectId,
      permissions: { keys: [], secrets: ['get'], certificates: [] },
    });
    const got = await asUser('GET', '/secrets/db-password');
    expect(got.status).toBe(200);
    expect((await json(got)).value).toBe('s3cr3t');
    const listed = await asUser('GET', '/secrets');
    await expectRefused(listed);
    await expectRefused(await asUser('PUT', '/secrets/db-password', { value: 'overwritten' }));
    await expectRefused(await asUser('DELETE', '/secrets/db-password'));
    await expectRefused(await asUser('GET', '/keys/signer'));
    // Nothing was written by the refused set.
    expect((await json(await asUser('GET', '/secrets/db-password'))).value).toBe('s3cr3t');
  });

  it('grants every secret operation with all, and replacing the policy applies at once', async () => {
    expect((await setPolicy({ secrets: ['all'] })).status).toBe(200);
    expect((await asUser('GET', '/secrets')).status).toBe(200);
    expect((await asUser('PUT', '/secrets/user-made', { value: 'x' })).status).toBe(200);
    expect((await asUser('GET', '/secrets/user-made/versions')).status).toBe(200);
    await expectRefused(await asUser('GET', '/keys'));
    expect((await setPolicy({ secrets: ['list'] })).status).toBe(200);
    expect((await asUser('GET', '/secrets')).status).toBe(200);
    await expectRefused(await asUser('GET', '/secrets/db-password'));
  });

  it('applies key permissions per operation: sign without verify, get without sign', async () => {
    const digest = 'A'.repeat(43);
    expect((await setPolicy({ keys: ['sign'] })).status).toBe(200);
    const signed = await asUser('POST', '/keys/signer/sign', { alg: 'ES256', value: digest });
    expect(signed.status).toBe(200);
    const signature = (await json(signed)).value;
    await expectRefused(await asUser('POST', '/keys/signer/verify', { alg: 'ES256', digest, value: signature }));
    await expectRefused(await asUser('GET', '/keys/signer'));
    await expectRefused(await asUser('POST', '/keys/other/create', { kty: 'EC' }));
    await expectRefused(await asUser('GET', '/keys/signer/rotationpolicy'));

    expect((await setPolicy({ keys: ['Get', 'Verify', 'GetRotationPolicy'] })).status).toBe(200);
    expect((await asUser('GET', '/keys/signer')).status).toBe(200);
    const verified = await asUser('POST', '/keys/signer/verify', { alg: 'ES256', digest, value: signature });
    expect(verified.status).toBe(200);
    expect((await json(verified)).value).toBe(true);
    expect((await asUser('GET', '/keys/signer/rotationpolicy')).status).toBe(200);
    await expectRefused(await asUser('PUT', '/keys/signer/rotationpolicy', { lifetimeActions: [] }));
    await expectRefused(await asUser('POST', '/keys/signer/sign', { alg: 'ES256', value: digest }));
    await expectRefused(await asUser('POST', '/rng', { count: 8 }));
  });

  it('refuses at once when the policy is deleted', async () => {
    expect((await setPolicy({ secrets: ['get'] })).status).toBe(200);
    expect((await asUser('GET', '/secrets/db-password')).status).toBe(200);
    const del = await mgmt('DELETE', `/accessPolicies/${user.objectId}`);
    expect(del.status).toBe(204);
    await expectRefused(await asUser('GET', '/secrets/db-password'));
    expect(await count('access_policies', 'vault_id = ? and object_id = ?', vaultId, user.objectId)).toBe(0);
    expect((await mgmt('DELETE', `/accessPolicies/${user.objectId}`)).status).toBe(404);
  });

  it('lists and reads policies; the vault shows its model and policies', async () => {
    await setPolicy({ secrets: ['get', 'list'] });
    const list = await json(await mgmt('GET', '/accessPolicies'));
    expect(list.value).toContainEqual({
      tenantId: creds.tenantId,
      objectId: user.objectId,
      permissions: { keys: [], secrets: ['get', 'list'], certificates: [] },
    });
    expect(list.value.map((p: { objectId: string }) => p.objectId)).toContain(adminObjectId);
    const one = await mgmt('GET', `/accessPolicies/${user.objectId.toUpperCase()}`);
    expect(one.status).toBe(200);
    expect((await json(one)).permissions.secrets).toEqual(['get', 'list']);
    expect((await mgmt('GET', `/accessPolicies/${crypto.randomUUID()}`)).status).toBe(404);
    const shown = await json(await mgmt('GET', ''));
    expect(shown.properties.enableRbacAuthorization).toBe(false);
    expect(shown.properties.accessPolicies).toEqual(list.value);
  });

  it('refuses invalid policies with 400 and keeps the old one', async () => {
    await setPolicy({ secrets: ['get'] });
    for (const permissions of [
      { secrets: ['sign'] },
      { keys: ['set'] },
      { certificates: ['wrapKey'] },
      { secrets: 'get' },
      { vaults: ['get'] },
      { storage: ['get'] },
      [],
      'all',
    ]) {
      const res = await setPolicy(permissions);
      expect(res.status, JSON.stringify(permissions)).toBe(400);
      expect((await json(res)).error.code).toBe('BadParameter');
    }
    expect((await mgmt('PUT', '/accessPolicies/not-a-guid', { permissions: { secrets: ['get'] } })).status).toBe(400);
    expect((await mgmt('PUT', `/accessPolicies/${user.objectId}`, {})).status).toBe(400);
    expect((await mgmt('PUT', `/accessPolicies/${user.objectId}`, '{bad')).status).toBe(400);
    expect((await asUser('GET', '/secrets/db-password')).status).toBe(200);
    await expectRefused(await asUser('GET', '/secrets'));
  });

  it("takes Azure's add, replace and remove", async () => {
    const put = (kind: string, permissions: unknown, objectId = user.objectId) =>
      mgmt('PUT', `/accessPolicies/${kind}`, {
        properties: { accessPolicies: [{ tenantId: creds.tenantId, objectId, permissions }] },
      });
    const mine = async () => (await json(await mgmt('GET', `/accessPolicies/${user.objectId}`))).permissions;

    expect((await put('replace', { secrets: ['get'] })).status).toBe(200);
    expect(await mine()).toEqual({ keys: [], secrets: ['get'], certificates: [] });
    const added = await put('add', { secrets: ['list', 'get'], keys: ['sign'] });
    expect(added.status).toBe(200);
    expect((await json(added)).properties.accessPolicies).toContainEqual({
      tenantId: creds.tenantId,
      objectId: user.objectId,
      permissions: { keys: ['sign'], secrets: ['get', 'list'], certificates: [] },
    });
    expect((await asUser('GET', '/secrets')).status).toBe(200);
    expect((await put('remove', { secrets: ['list'] })).status).toBe(200);
    expect(await mine()).toEqual({ keys: ['sign'], secrets: ['get'], certificates: [] });
    await expectRefused(await asUser('GET', '/secrets'));
    // Removing everything removes the policy.
    expect((await put('remove', { secrets: ['get'], keys: ['sign'] })).status).toBe(200);
    expect((await mgmt('GET', `/accessPolicies/${user.objectId}`)).status).toBe(404);
    await expectRefused(await asUser('GET', '/secrets/db-password'));
    // Another tenant's policy, or a bad name, is refused whole.
    const otherTenant = await mgmt('PUT', '/accessPolicies/add', {
      properties: {
        accessPolicies: [{ tenantId: crypto.randomUUID(), objectId: user.objectId, permissions: { secrets: ['get'] } }],
      },
    });
    expect(otherTenant.status).toBe(400);
    expect((await put('add', { secrets: ['bogus'] })).status).toBe(400);
    expect((await mgmt('GET', `/accessPolicies/${user.objectId}`)).status).toBe(404);
  });

  it('is managed by administrators only', async () => {
    const before = await count('access_policies', 'vault_id = ?', vaultId);
    for (const [method, path, body] of [
      ['GET', '/accessPolicies'],
      ['GET', `/accessPolicies/${user.objectId}`],
      ['PUT', `/accessPolicies/${user.objectId}`, { permissions: { secrets: ['all'] } }],
      ['DELETE', `/accessPolicies/${adminObjectId}`],
      [
        'PUT',
        '/accessPolicies/add',
        { properties: { accessPolicies: [{ objectId: user.objectId, permissions: { secrets: ['all'] } }] } },
      ],
      ['PATCH', '', { enableRbacAuthorization: true }],
    ] as const) {
      const res = await mgmt(method, path, body, userToken);
      expect(res.status, `${method} ${path}`).toBe(403);
    }
    expect(await count('access_policies', 'vault_id = ?', vaultId)).toBe(before);
    expect((await json(await mgmt('GET', ''))).properties.enableRbacAuthorization).toBe(false);
    // Without a token: the challenge.
    expect((await call('PATCH', `${APEX}/management/vaults/${vault}`, { body: { enableRbacAuthorization: true } })).status).toBe(
      401,
    );
  });
});

describe('switching the authorization model', () => {
  let creds: Creds;
  let token: string;

  beforeAll(async () => {
    creds = await admin();
    token = await tokenFor(creds);
  });

  it(
    'is an administrator action, audited as VaultAuthorizationModelChange; policies and role assignments each count only in their model',
    { timeout: 60_000 },
    async () => {
      const adminObjectId = (await json(await call('GET', `${APEX}/management/applications/${creds.clientId}`, { token })))
        .objectId;
      const name = `sw${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`.slice(0, 24);
      const created = await json(
        await call('PUT', `${APEX}/management/vaults/${name}`, {
          token,
          body: {
            enableRbacAuthorization: false,
            accessPolicies: [{ objectId: adminObjectId, permissions: { secrets: ['all'] } }],
          },
        }),
      );
      const origin = vaultOrigin(name);
      expect((await call('PUT', `${origin}/secrets/s?${API}`, { token, body: { value: 'v' } })).status).toBe(200);

      const res = await call('POST', `${APEX}/management/applications`, { token, body: { displayName: 'switch user' } });
      const app = await json(res);
      const userToken = await tokenFor({ tenantId: creds.tenantId, clientId: app.clientId, clientSecret: app.clientSecret });
      const read = () => call('GET', `${origin}/secrets/s?${API}`, { token: userToken });

      // The user has a role assignment (Key Vault Secrets User on the vault) and no policy: refused.
      await env.DB.prepare(
        'insert into role_assignments (id, vault_id, scope, role_definition_id, principal_id, created_at) values (?, ?, ?, ?, ?, ?)',
      )
        .bind(crypto.randomUUID(), created.id, '/', BuiltInRoleIds.secretsUser, app.objectId, Math.floor(Date.now() / 1000))
        .run();
      forgetAuthorization(created.id);
      expect((await read()).status).toBe(403);

      // A non-administrator may not switch; the attempt is audited.
      const attemptId = crypto.randomUUID();
      const attempt = await call('PATCH', `${APEX}/management/vaults/${name}`, {
        token: userToken,
        body: { enableRbacAuthorization: true },
        headers: { 'x-ms-client-request-id': attemptId },
      });
      expect(attempt.status).toBe(403);
      expect((await read()).status).toBe(403);

      // The administrator switches to RBAC: the assignment now counts, at once.
      const switchId = crypto.randomUUID();
      const switched = await call('PATCH', `${APEX}/management/vaults/${name}`, {
        token,
        body: { enableRbacAuthorization: true },
        headers: { 'x-ms-client-request-id': switchId },
      });
      expect(switched.status).toBe(200);
      expect((await json(switched)).properties.enableRbacAuthorization).toBe(true);
      expect((await read()).status).toBe(200);

      // A policy counts for nothing on an RBAC vault: drop the assignment, give a policy.
      await env.DB.prepare('delete from role_assignments where vault_id = ?').bind(created.id).run();
      forgetAuthorization(created.id);
      expect(
        (
          await call('PUT', `${APEX}/management/vaults/${name}/accessPolicies/${app.objectId}`, {
            token,
            body: { permissions: { secrets: ['get'] } },
          })
        ).status,
      ).toBe(201);
      expect((await read()).status).toBe(403);

      // Back to policies (Azure's ARM shape this time): the policy counts again.
      const backId = crypto.randomUUID();
      const back = await call('PATCH', `${APEX}/management/vaults/${name}`, {
        token,
        body: { properties: { enableRbacAuthorization: false } },
        headers: { 'x-ms-client-request-id': backId },
      });
      expect(back.status).toBe(200);
      expect((await read()).status).toBe(200);

      // A PATCH that changes nothing of the model is an ordinary VaultPatch.
      const sameId = crypto.randomUUID();
      expect(
        (
          await call('PATCH', `${APEX}/management/vaults/${name}`, {
            token,
            body: { enableRbacAuthorization: false },
            headers: { 'x-ms-client-request-id': sameId },
          })
        ).status,
      ).toBe(200);

      const [attemptEvent] = await audited(attemptId);
      expect(attemptEvent).toMatchObject({ operation: 'VaultPatch', status: 403 });
      const [switchEvent] = await audited(switchId);
      expect(switchEvent).toMatchObject({ operation: 'VaultAuthorizationModelChange', status: 200 });
      const [backEvent] = await audited(backId);
      expect(backEvent).toMatchObject({ operation: 'VaultAuthorizationModelChange', status: 200 });
      const [sameEvent] = await audited(sameId);
      expect(sameEvent).toMatchObject({ operation: 'VaultPatch', status: 200 });
    },
  );

  it('validates PATCH: unknown properties, a changed retention, and disabling purge protection are refused', async () => {
    const name = `pv${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`.slice(0, 24);
    expect(
      (await call('PUT', `${APEX}/management/vaults/${name}`, { token, body: { softDeleteRetentionInDays: 30 } })).status,
    ).toBe(201);
    const patch = (body: unknown) => call('PATCH', `${APEX}/management/vaults/${name}`, { token, body });
    for (const body of [
      { enableRbacAuthorisation: false },
      { enableRbacAuthorization: 'false' },
      { softDeleteRetentionInDays: 60 },
      { softDeleteRetentionInDays: 3 },
      { properties: { enableRbacAuthorization: false, extra: 1 } },
      '[]',
      '{bad',
    ]) {
      const res = await patch(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect((await json(res)).error.code).toBe('BadParameter');
    }
    expect((await patch({ softDeleteRetentionInDays: 30 })).status).toBe(200);
    const on = await patch({ enablePurgeProtection: true });
    expect(on.status).toBe(200);
    expect((await json(on)).properties.enablePurgeProtection).toBe(true);
    expect((await patch({ enablePurgeProtection: false })).status).toBe(400);
    const shown = await json(await call('GET', `${APEX}/management/vaults/${name}`, { token }));
    expect(shown.properties).toMatchObject({
      enableRbacAuthorization: true,
      enablePurgeProtection: true,
      softDeleteRetentionInDays: 30,
    });
    expect(
      (await call('PATCH', `${APEX}/management/vaults/nosuchvault${Date.now().toString(36)}`, { token, body: {} })).status,
    ).toBe(404);
  });

  it('refuses invalid access policies at creation and creates nothing', async () => {
    const name = `bp${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`.slice(0, 24);
    for (const accessPolicies of [
      [{ objectId: 'nope', permissions: { secrets: ['get'] } }],
      [{ objectId: crypto.randomUUID(), permissions: { secrets: ['fly'] } }],
      [{ objectId: crypto.randomUUID(), tenantId: crypto.randomUUID(), permissions: {} }],
      { objectId: crypto.randomUUID() },
    ]) {
      const res = await call('PUT', `${APEX}/management/vaults/${name}`, {
        token,
        body: { enableRbacAuthorization: false, accessPolicies },
      });
      expect(res.status, JSON.stringify(accessPolicies)).toBe(400);
    }
    expect(await count('vaults', 'name = ?', name)).toBe(0);
  });
});
