/** The management API: bootstrap once, applications, vaults, and what administrators alone may do. */
import { beforeAll, describe, expect, it } from 'vitest';
import { BridgeClient } from '../../src/crypto/bridge-client';
import { API, APEX, BOOTSTRAP_SECRET, admin, call, env, json, tokenFor, vaultOrigin } from './helpers';
import { clientCredentials, count, expectChallenge, rows, sha256Hex, tokenRequest } from './identity-helpers';

type Creds = { tenantId: string; clientId: string; clientSecret: string };

const bootstrapCall = (secret: string | undefined, env?: Record<string, unknown>) =>
  call('POST', `${APEX}/management/bootstrap`, {
    headers: secret === undefined ? {} : { authorization: `Bootstrap ${secret}` },
    body: {},
    env: env as never,
  });

/** Everything a bootstrap writes, to prove a refused one wrote nothing. */
async function identitySnapshot() {
  return {
    settings: await rows('select key, value from settings order by key'),
    applications: await count('applications'),
    clientSecrets: await count('client_secrets'),
    signingKeys: await count('signing_keys'),
    dataKeys: await count('data_keys'),
  };
}

let uniq = 0;
/** A vault name no other test (or earlier run on shared storage) uses. */
const vaultName = (prefix = 'm') =>
  `${prefix}${Date.now().toString(36)}${(uniq++).toString(36)}${Math.floor(Math.random() * 36 ** 4).toString(36)}`.slice(0, 24);

describe('bootstrap', () => {
  it('refuses a wrong, missing or mis-typed bootstrap secret and writes nothing', async () => {
    const before = await identitySnapshot();
    for (const presented of [`${BOOTSTRAP_SECRET}x`, 'short', BOOTSTRAP_SECRET.slice(0, -1)]) {
      const res = await bootstrapCall(presented);
      expect(res.status, presented).toBe(401);
      const text = await res.text();
      expect(JSON.parse(text).error.code).toBe('Unauthorized');
      expect(text).not.toContain(BOOTSTRAP_SECRET);
    }
    expect((await bootstrapCall(undefined)).status).toBe(401);
    const bearer = await call('POST', `${APEX}/management/bootstrap`, {
      headers: { authorization: `Bearer ${BOOTSTRAP_SECRET}` },
      body: {},
    });
    expect(bearer.status).toBe(401);
    expect(await identitySnapshot()).toEqual(before);
  });

  it('is refused when no bootstrap secret is configured, or a too-short one', async () => {
    const before = await identitySnapshot();
    const disabled = await bootstrapCall(BOOTSTRAP_SECRET, { BOOTSTRAP_SECRET: undefined });
    expect(disabled.status).toBe(403);
    const weak = await bootstrapCall('tooshort', { BOOTSTRAP_SECRET: 'tooshort' });
    expect(weak.status).toBe(500);
    expect((await json(weak)).error.code).toBe('ConfigurationError');
    expect(await identitySnapshot()).toEqual(before);
  });

  it('bootstraps once with the right secret (or finds it already done), then answers 409', async () => {
    const tenantBefore = await rows<{ value: string }>(`select value from settings where key = 'tenant_id'`);
    // Two at once: exactly one may win, and the loser writes nothing.
    const [first, second] = await Promise.all([bootstrapCall(BOOTSTRAP_SECRET), bootstrapCall(BOOTSTRAP_SECRET)]);
    const res = first!.status === 201 ? first! : second!;
    if (tenantBefore.length === 0) {
      // This file bootstrapped the deployment: check what it created.
      expect([first!.status, second!.status].sort()).toEqual([201, 409]);
      expect(await count('settings', `key = 'tenant_id'`)).toBe(1);
      expect(await count('applications')).toBe(1);
      expect(await count('client_secrets')).toBe(1);
      expect(await count('data_keys')).toBe(1);
      expect(res.status).toBe(201);
      expect(res.headers.get('cache-control')).toBe('no-store');
      const body = await json(res);
      expect(body.tenantId).toMatch(/^[0-9a-f-]{36}$/);
      expect(body.clientSecret).toMatch(/^ekv~/);
      const [tenant] = await rows<{ value: string }>(`select value from settings where key = 'tenant_id'`);
      expect(tenant!.value).toBe(body.tenantId);
      const [app] = await rows<{ is_admin: number }>('select is_admin from applications where client_id = ?', body.clientId);
      expect(app!.is_admin).toBe(1);
      expect(await count('signing_keys')).toBe(1);
      expect((await tokenRequest(body.tenantId, clientCredentials(body))).status).toBe(200);
    } else {
      expect([first!.status, second!.status]).toEqual([409, 409]);
    }
    const before = await identitySnapshot();
    const again = await bootstrapCall(BOOTSTRAP_SECRET);
    expect(again.status).toBe(409);
    expect((await json(again)).error.code).toBe('Conflict');
    expect(await identitySnapshot()).toEqual(before);
  });

  it('answers a wrong secret with 401 (not 409) once bootstrapped, revealing nothing', async () => {
    await admin();
    expect((await bootstrapCall('x'.repeat(40))).status).toBe(401);
  });
});

describe('management API', () => {
  let creds: Creds;
  let token: string;
  let user: Creds & { objectId: string; secretId: string };
  let userToken: string;

  async function createApp(body: unknown = { displayName: 'mgmt test app' }) {
    return call('POST', `${APEX}/management/applications`, { token, body });
  }

  beforeAll(async () => {
    creds = await admin();
    token = await tokenFor(creds);
    const res = await createApp({ displayName: 'non-admin' });
    const body = await json(res);
    user = {
      tenantId: creds.tenantId,
      clientId: body.clientId,
      clientSecret: body.clientSecret,
      objectId: body.objectId,
      secretId: body.secret.id,
    };
    userToken = await tokenFor(user);
  });

  const endpoints = (): [string, string, unknown?][] => [
    ['GET', '/management/applications'],
    ['POST', '/management/applications', { displayName: 'x' }],
    ['GET', `/management/applications/${creds.clientId}`],
    ['DELETE', `/management/applications/${user.clientId}`],
    ['POST', `/management/applications/${user.clientId}/secrets`, {}],
    ['DELETE', `/management/applications/${user.clientId}/secrets/${user.secretId}`],
    ['GET', '/management/vaults'],
    ['PUT', `/management/vaults/${vaultName('na')}`, {}],
    ['GET', '/management/vaults/anything'],
    ['DELETE', '/management/vaults/anything'],
    ['GET', '/management/stats'],
    ['DELETE', '/management/caches'],
  ];

  describe('authentication and authorization', () => {
    it('challenges every endpoint without a token, before validating anything', async () => {
      for (const [method, path, body] of endpoints()) {
        const res = await call(method, `${APEX}${path}`, { body });
        await expectChallenge(res, creds.tenantId);
      }
      // Not even a malformed body is looked at.
      await expectChallenge(await call('POST', `${APEX}/management/applications`, { body: '{oops' }), creds.tenantId);
    });

    it('challenges path variants too (trailing slash, unknown sub-paths)', async () => {
      for (const [method, path] of [
        ['GET', '/management/applications/'],
        ['POST', '/management/applications/'],
        ['GET', '/management/vaults/'],
        ['GET', '/management/no-such-thing'],
        ['DELETE', `/management/applications/${creds.clientId}/`],
      ] as const) {
        const res = await call(method, `${APEX}${path}`, { body: method === 'POST' ? { displayName: 'sneaky' } : undefined });
        await expectChallenge(res, creds.tenantId);
      }
      expect(await count('applications', `display_name = 'sneaky'`)).toBe(0);
    });

    it('challenges a management call on a port with that port as the resource', async () => {
      const res = await call('GET', 'https://vault.localhost:8443/management/vaults');
      await expectChallenge(res, creds.tenantId, 'https://vault.localhost:8443');
    });

    it('refuses an invalid token with the challenge', async () => {
      await expectChallenge(await call('GET', `${APEX}/management/applications`, { token: 'not-a-token' }), creds.tenantId);
    });

    it('refuses a non-administrator application with 403 and writes nothing', async () => {
      const before = { apps: await count('applications'), secrets: await count('client_secrets'), vaults: await count('vaults') };
      for (const [method, path, body] of endpoints()) {
        const res = await call(method, `${APEX}${path}`, { token: userToken, body });
        expect(res.status, `${method} ${path}`).toBe(403);
        expect((await json(res)).error.code).toBe('Forbidden');
      }
      expect({
        apps: await count('applications'),
        secrets: await count('client_secrets'),
        vaults: await count('vaults'),
      }).toEqual(before);
      // The user's own secret survived its attempt to remove it.
      expect((await tokenRequest(creds.tenantId, clientCredentials(user))).status).toBe(200);
    });

    it('refuses an administrator once it is deleted, even with a token still in date', async () => {
      const res = await createApp({ displayName: 'short-lived admin', isAdmin: true });
      const other = await json(res);
      const otherToken = await tokenFor({ ...creds, clientId: other.clientId, clientSecret: other.clientSecret });
      expect((await call('GET', `${APEX}/management/vaults`, { token: otherToken })).status).toBe(200);
      expect((await call('DELETE', `${APEX}/management/applications/${other.clientId}`, { token })).status).toBe(204);
      // Its token no longer authenticates at all: a deleted application's tokens are revoked.
      expect((await call('GET', `${APEX}/management/vaults`, { token: otherToken })).status).toBe(401);
    });
  });

  describe('applications', () => {
    it('creates an application and returns its client secret once', async () => {
      const res = await createApp({ displayName: 'created app' });
      expect(res.status).toBe(201);
      expect(res.headers.get('cache-control')).toBe('no-store');
      const body = await json(res);
      expect(body).toMatchObject({ tenantId: creds.tenantId, displayName: 'created app', isAdmin: false });
      expect(body.clientId).toMatch(/^[0-9a-f-]{36}$/);
      expect(body.objectId).toMatch(/^[0-9a-f-]{36}$/);
      expect(body.clientSecret).toMatch(/^ekv~[A-Za-z0-9_-]{43}$/);
      expect(body.secret).toEqual({
        id: expect.any(String),
        hint: body.clientSecret.slice(4, 7),
        createdAt: expect.any(Number),
        expiresAt: null,
      });
      expect(body.secret).not.toHaveProperty('digest');
      // The secret works for tokens, as that application.
      const t = await tokenFor({ ...creds, clientId: body.clientId, clientSecret: body.clientSecret });
      expect(t.split('.')).toHaveLength(3);
    });

    it('stores client secrets only as their SHA-256 digest', async () => {
      const body = await json(await createApp({ displayName: 'digest check' }));
      const stored = await rows<Record<string, unknown>>('select * from client_secrets where client_id = ?', body.clientId);
      expect(stored).toHaveLength(1);
      expect(stored[0]!.digest).not.toBe(body.clientSecret);
      expect(stored[0]!.digest).toBe(await sha256Hex(body.clientSecret));
      expect(stored[0]!.digest).toMatch(/^[0-9a-f]{64}$/);
      // No column of any row holds the secret itself (or its random part).
      const everything = JSON.stringify([
        await rows('select * from client_secrets'),
        await rows('select * from applications'),
        await rows('select * from settings'),
      ]);
      expect(everything).not.toContain(body.clientSecret);
      expect(everything).not.toContain(body.clientSecret.slice(4));
    });

    it('lists applications without secrets or digests', async () => {
      const body = await json(await createApp({ displayName: 'listed app' }));
      const digest = await sha256Hex(body.clientSecret);
      const res = await call('GET', `${APEX}/management/applications`, { token });
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(text).not.toContain(body.clientSecret);
      expect(text).not.toContain(digest);
      const list = JSON.parse(text);
      expect(list.nextLink).toBeNull();
      const item = list.value.find((a: { clientId: string }) => a.clientId === body.clientId);
      expect(item).toEqual({
        clientId: body.clientId,
        objectId: body.objectId,
        tenantId: creds.tenantId,
        displayName: 'listed app',
        isAdmin: false,
        createdAt: expect.any(Number),
      });
      expect(list.value.some((a: { clientId: string }) => a.clientId === creds.clientId)).toBe(true);
    });

    it('gets an application with its secrets as hints only', async () => {
      const body = await json(await createApp({ displayName: 'got app' }));
      const digest = await sha256Hex(body.clientSecret);
      const res = await call('GET', `${APEX}/management/applications/${body.clientId}`, { token });
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(text).not.toContain(body.clientSecret);
      expect(text).not.toContain(digest);
      const got = JSON.parse(text);
      expect(got.clientId).toBe(body.clientId);
      expect(got).not.toHaveProperty('clientSecret');
      expect(got.secrets).toEqual([
        { id: body.secret.id, hint: body.clientSecret.slice(4, 7), createdAt: expect.any(Number), expiresAt: null },
      ]);
    });

    it('answers 404 for an unknown application', async () => {
      const id = crypto.randomUUID();
      const get = await call('GET', `${APEX}/management/applications/${id}`, { token });
      expect(get.status).toBe(404);
      expect((await json(get)).error.code).toBe('NotFound');
      expect((await call('DELETE', `${APEX}/management/applications/${id}`, { token })).status).toBe(404);
      expect((await call('POST', `${APEX}/management/applications/${id}/secrets`, { token, body: {} })).status).toBe(404);
      expect(
        (await call('DELETE', `${APEX}/management/applications/${id}/secrets/${crypto.randomUUID()}`, { token })).status,
      ).toBe(404);
      expect(await count('client_secrets', 'client_id = ?', id)).toBe(0);
    });

    it('adds a client secret that gets tokens, and lists both', async () => {
      const app = await json(await createApp({ displayName: 'two secrets' }));
      const res = await call('POST', `${APEX}/management/applications/${app.clientId}/secrets`, {
        token,
        body: { expiresInDays: 30 },
      });
      expect(res.status).toBe(201);
      expect(res.headers.get('cache-control')).toBe('no-store');
      const added = await json(res);
      expect(added.clientSecret).toMatch(/^ekv~/);
      expect(added.clientSecret).not.toBe(app.clientSecret);
      expect(added.secret.hint).toBe(added.clientSecret.slice(4, 7));
      expect(added.secret.expiresAt).toBe(added.secret.createdAt + 30 * 86400);
      expect(
        (await tokenRequest(creds.tenantId, clientCredentials({ clientId: app.clientId, clientSecret: added.clientSecret })))
          .status,
      ).toBe(200);
      const got = await json(await call('GET', `${APEX}/management/applications/${app.clientId}`, { token }));
      expect(got.secrets.map((s: { id: string }) => s.id).sort()).toEqual([app.secret.id, added.secret.id].sort());
    });

    it('adds a client secret with no body at all', async () => {
      const app = await json(await createApp({ displayName: 'no body' }));
      const res = await call('POST', `${APEX}/management/applications/${app.clientId}/secrets`, { token });
      expect(res.status).toBe(201);
    });

    it('refuses bad client secret lifetimes and writes nothing', async () => {
      const app = await json(await createApp({ displayName: 'bad lifetimes' }));
      for (const body of [
        { expiresInDays: 0 },
        { expiresInDays: -1 },
        { expiresInDays: 731 },
        { expiresInDays: 1.5 },
        { expiresInDays: '30' },
        '{bad',
        '[]',
      ]) {
        const res = await call('POST', `${APEX}/management/applications/${app.clientId}/secrets`, { token, body });
        expect(res.status, JSON.stringify(body)).toBe(400);
        expect((await json(res)).error.code).toBe('BadParameter');
      }
      expect(await count('client_secrets', 'client_id = ?', app.clientId)).toBe(1);
    });

    it('removes a client secret', async () => {
      const app = await json(await createApp({ displayName: 'secret removed' }));
      const del = await call('DELETE', `${APEX}/management/applications/${app.clientId}/secrets/${app.secret.id}`, { token });
      expect(del.status).toBe(204);
      expect(await count('client_secrets', 'id = ?', app.secret.id)).toBe(0);
      expect((await json(await call('GET', `${APEX}/management/applications/${app.clientId}`, { token }))).secrets).toEqual([]);
      expect(
        (await call('DELETE', `${APEX}/management/applications/${app.clientId}/secrets/${app.secret.id}`, { token })).status,
      ).toBe(404);
      expect((await tokenRequest(creds.tenantId, clientCredentials(app))).status).toBe(401);
    });

    it('does not remove a secret through another application', async () => {
      const a = await json(await createApp({ displayName: 'a' }));
      const b = await json(await createApp({ displayName: 'b' }));
      const res = await call('DELETE', `${APEX}/management/applications/${a.clientId}/secrets/${b.secret.id}`, { token });
      expect(res.status).toBe(404);
      expect(await count('client_secrets', 'id = ?', b.secret.id)).toBe(1);
    });

    it('deletes an application with its secrets', async () => {
      const app = await json(await createApp({ displayName: 'deleted app' }));
      const del = await call('DELETE', `${APEX}/management/applications/${app.clientId}`, { token });
      expect(del.status).toBe(204);
      expect(await del.text()).toBe('');
      expect((await call('GET', `${APEX}/management/applications/${app.clientId}`, { token })).status).toBe(404);
      expect((await call('DELETE', `${APEX}/management/applications/${app.clientId}`, { token })).status).toBe(404);
      expect(await count('applications', 'client_id = ?', app.clientId)).toBe(0);
      expect(await count('client_secrets', 'client_id = ?', app.clientId)).toBe(0);
      const list = await json(await call('GET', `${APEX}/management/applications`, { token }));
      expect(list.value.some((a: { clientId: string }) => a.clientId === app.clientId)).toBe(false);
    });

    it('does not let an application delete itself', async () => {
      const res = await call('DELETE', `${APEX}/management/applications/${creds.clientId}`, { token });
      expect(res.status).toBe(409);
      expect((await json(res)).error.code).toBe('Conflict');
      expect(await count('applications', 'client_id = ?', creds.clientId)).toBe(1);
      expect((await call('GET', `${APEX}/management/applications`, { token })).status).toBe(200);
    });

    it('refuses bad bodies with 400 BadParameter and writes nothing', async () => {
      const before = { apps: await count('applications'), secrets: await count('client_secrets') };
      const bodies: unknown[] = [
        '{not json',
        '',
        'null',
        '[]',
        '"a string"',
        {},
        { displayName: '' },
        { displayName: 'x'.repeat(257) },
        { displayName: 123 },
        { displayName: null },
        { displayName: ['a'] },
        { displayName: 'ok', isAdmin: 'yes' },
        { displayName: 'ok', isAdmin: 1 },
        { displayName: 'ok', expiresInDays: 'soon' },
        { displayName: 'ok', expiresInDays: 1.5 },
        { displayName: 'ok', expiresInDays: 0 },
        { displayName: 'ok', expiresInDays: 10_000 },
      ];
      for (const body of bodies) {
        const res = await call('POST', `${APEX}/management/applications`, {
          token,
          body,
          headers: { 'content-type': 'application/json' },
        });
        expect(res.status, JSON.stringify(body)).toBe(400);
        expect((await json(res)).error.code, JSON.stringify(body)).toBe('BadParameter');
      }
      expect({ apps: await count('applications'), secrets: await count('client_secrets') }).toEqual(before);
    });

    it('does not let a __proto__ key in the body make an administrator', async () => {
      const res = await createApp(
        '{"displayName":"proto","__proto__":{"isAdmin":true},"constructor":{"prototype":{"isAdmin":true}}}',
      );
      expect(res.status).toBe(201);
      const body = await json(res);
      expect(body.isAdmin).toBe(false);
      const [row] = await rows<{ is_admin: number }>('select is_admin from applications where client_id = ?', body.clientId);
      expect(row!.is_admin).toBe(0);
      const t = await tokenFor({ ...creds, clientId: body.clientId, clientSecret: body.clientSecret });
      expect((await call('GET', `${APEX}/management/applications`, { token: t })).status).toBe(403);
    });

    it('accepts a display name of exactly 256 characters', async () => {
      const res = await createApp({ displayName: 'y'.repeat(256) });
      expect(res.status).toBe(201);
    });

    it('refuses an oversized body', async () => {
      const res = await createApp(JSON.stringify({ displayName: 'big', pad: 'x'.repeat(300 * 1024) }));
      expect(res.status).toBe(400);
    });

    it('creates administrators that may use the management API', async () => {
      const body = await json(await createApp({ displayName: 'second admin', isAdmin: true }));
      expect(body.isAdmin).toBe(true);
      const t = await tokenFor({ ...creds, clientId: body.clientId, clientSecret: body.clientSecret });
      expect((await call('GET', `${APEX}/management/applications`, { token: t })).status).toBe(200);
    });
  });

  describe('vaults', () => {
    const put = (name: string, body?: unknown) => call('PUT', `${APEX}/management/vaults/${name}`, { token, body });

    it('creates a vault with the default settings', async () => {
      const name = vaultName();
      const res = await put(name);
      expect(res.status).toBe(201);
      const body = await json(res);
      expect(body).toEqual({
        id: expect.any(String),
        name,
        tenantId: creds.tenantId,
        vaultUri: `https://${name}.vault.localhost`,
        properties: {
          enableSoftDelete: true,
          softDeleteRetentionInDays: 90,
          enablePurgeProtection: false,
          enableRbacAuthorization: true,
          networkAcls: null,
          accessPolicies: [],
        },
        // This service's read-cache bound (README, Read caching), beside Azure's properties.
        readCacheSeconds: 10,
        createdAt: expect.any(Number),
      });
      const [row] = await rows<Record<string, unknown>>('select * from vaults where name = ?', name);
      expect(row).toMatchObject({ id: body.id, soft_delete_retention_days: 90, purge_protection: 0 });
      // Its first data key exists, wrapped (the bridge was called).
      expect(await count('data_keys', 'scope = ?', body.id)).toBe(1);
      // And it serves.
      expect((await call('GET', `${vaultOrigin(name)}/secrets?${API}`, { token })).status).toBe(200);
    });

    it('creates a vault with the given settings', async () => {
      const name = vaultName();
      const res = await put(name, { softDeleteRetentionInDays: 7, enablePurgeProtection: true });
      expect(res.status).toBe(201);
      expect((await json(res)).properties).toEqual({
        enableSoftDelete: true,
        softDeleteRetentionInDays: 7,
        enablePurgeProtection: true,
        enableRbacAuthorization: true,
        networkAcls: null,
        accessPolicies: [],
      });
      const [row] = await rows<Record<string, unknown>>('select * from vaults where name = ?', name);
      expect(row).toMatchObject({ soft_delete_retention_days: 7, purge_protection: 1 });
    });

    it('refuses a retention outside 7..90 days, or of the wrong type, and writes nothing', async () => {
      const before = await count('vaults');
      for (const body of [
        { softDeleteRetentionInDays: 6 },
        { softDeleteRetentionInDays: 91 },
        { softDeleteRetentionInDays: 0 },
        { softDeleteRetentionInDays: 30.5 },
        { softDeleteRetentionInDays: '30' },
        { enablePurgeProtection: 'true' },
        '{bad json',
        '[]',
      ]) {
        const name = vaultName();
        const res = await put(name, body);
        expect(res.status, JSON.stringify(body)).toBe(400);
        expect((await json(res)).error.code).toBe('BadParameter');
        expect(await count('vaults', 'name = ?', name)).toBe(0);
      }
      expect(await count('vaults')).toBe(before);
    });

    it('accepts the retention bounds 7 and 90', async () => {
      expect((await put(vaultName(), { softDeleteRetentionInDays: 7 })).status).toBe(201);
      expect((await put(vaultName(), { softDeleteRetentionInDays: 90 })).status).toBe(201);
    });

    it('refuses invalid names and writes nothing', async () => {
      const before = await count('vaults');
      for (const name of ['a', 'ab', '1abc', 'ab--cd', 'abc-', '-abc', 'a'.repeat(25), 'ab_cd', 'ab.cd', 'ab%20cd']) {
        const res = await put(name);
        expect(res.status, name).toBe(400);
        expect((await json(res)).error.code, name).toBe('BadParameter');
      }
      expect(await count('vaults')).toBe(before);
    });

    it('accepts names of 3 and 24 characters', async () => {
      const long = vaultName('l').padEnd(24, '0');
      expect(long).toHaveLength(24);
      expect((await put(long)).status).toBe(201);
      // A 3-character name may exist already when storage is shared: either created or taken.
      const res = await put('z9z');
      expect([201, 409]).toContain(res.status);
      expect(await count('vaults', 'name = ?', 'z9z')).toBe(1);
    });

    it('lowercases names and refuses an existing name in any case with 409', async () => {
      const name = vaultName();
      const res = await put(name.toUpperCase());
      expect(res.status).toBe(201);
      expect((await json(res)).name).toBe(name);
      const dup = await put(name);
      expect(dup.status).toBe(409);
      expect((await json(dup)).error.code).toBe('Conflict');
      expect((await put(name.toUpperCase())).status).toBe(409);
      expect(await count('vaults', 'name = ?', name)).toBe(1);
    });

    it('gets and lists vaults', async () => {
      const name = vaultName();
      const created = await json(await put(name, { softDeleteRetentionInDays: 30 }));
      const got = await call('GET', `${APEX}/management/vaults/${name}`, { token });
      expect(got.status).toBe(200);
      expect(await json(got)).toEqual(created);
      expect((await call('GET', `${APEX}/management/vaults/${name.toUpperCase()}`, { token })).status).toBe(200);
      const list = await json(await call('GET', `${APEX}/management/vaults`, { token }));
      expect(list.nextLink).toBeNull();
      // The list leaves out each vault's access policies (GET …/accessPolicies has them).
      const { accessPolicies, ...listed } = created.properties;
      expect(accessPolicies).toEqual([]);
      expect(list.value).toContainEqual({ ...created, properties: listed });
      const missing = await call('GET', `${APEX}/management/vaults/${vaultName('nx')}`, { token });
      expect(missing.status).toBe(404);
      expect((await json(missing)).error.code).toBe('VaultNotFound');
    });

    it('keeps the port in vaultUri', async () => {
      const name = vaultName();
      const res = await call('PUT', `https://vault.localhost:8443/management/vaults/${name}`, {
        token: await tokenReq8443(),
        body: {},
      });
      expect(res.status).toBe(201);
      expect((await json(res)).vaultUri).toBe(`https://${name}.vault.localhost:8443`);
    });

    async function tokenReq8443() {
      const res = await call('POST', `https://vault.localhost:8443/${creds.tenantId}/oauth2/v2.0/token`, {
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(clientCredentials(creds, { scope: 'https://vault.localhost:8443/.default' })).toString(),
      });
      expect(res.status).toBe(200);
      return (await json(res)).access_token as string;
    }

    it('deletes a vault and everything in it; its host then answers VaultNotFound', async () => {
      const name = vaultName();
      const created = await json(await put(name));
      const set = await call('PUT', `${vaultOrigin(name)}/secrets/doomed?${API}`, { token, body: { value: 'v' } });
      expect(set.status).toBe(200);
      const del = await call('DELETE', `${APEX}/management/vaults/${name}`, { token });
      expect(del.status).toBe(204);
      const after = await call('GET', `${vaultOrigin(name)}/secrets/doomed?${API}`, { token });
      expect(after.status).toBe(404);
      expect((await json(after)).error.code).toBe('VaultNotFound');
      const list = await call('GET', `${vaultOrigin(name)}/secrets?${API}`, { token });
      expect((await json(list)).error.code).toBe('VaultNotFound');
      expect((await call('GET', `${APEX}/management/vaults/${name}`, { token })).status).toBe(404);
      expect((await call('DELETE', `${APEX}/management/vaults/${name}`, { token })).status).toBe(404);
      expect(await count('vaults', 'id = ?', created.id)).toBe(0);
      expect(await count('secrets', 'vault_id = ?', created.id)).toBe(0);
      expect(await count('secret_versions', 'vault_id = ?', created.id)).toBe(0);
      expect(await count('data_keys', 'scope = ?', created.id)).toBe(0);
    });

    it('destroys the token objects of the vault HSM keys; with the bridge down it deletes nothing', async () => {
      const name = vaultName();
      const created = await json(await put(name));
      const made = await call('POST', `${vaultOrigin(name)}/keys/hsm/create?${API}`, { token, body: { kty: 'EC-HSM' } });
      expect(made.status).toBe(200);
      const handle = (await json(made)).key.kid.split('/').pop();
      const bridge = new BridgeClient(env.BRIDGE_URL, env.BRIDGE_HMAC_SECRET);
      const down = await call('DELETE', `${APEX}/management/vaults/${name}`, {
        token,
        env: { BRIDGE_URL: 'http://127.0.0.1:9' } as never,
      });
      expect(down.status).toBe(503);
      expect(await count('key_versions', 'vault_id = ?', created.id)).toBe(1);
      expect((await bridge.sign(handle, 'ES256', new Uint8Array(32))).length).toBe(64);

      expect((await call('DELETE', `${APEX}/management/vaults/${name}`, { token })).status).toBe(204);
      expect(await count('key_versions', 'vault_id = ?', created.id)).toBe(0);
      await expect(bridge.sign(handle, 'ES256', new Uint8Array(32))).rejects.toMatchObject({ code: 'DataIntegrityError' });
    });

    it('a deleted name can be created again, as a new and empty vault', async () => {
      const name = vaultName();
      const first = await json(await put(name));
      await call('PUT', `${vaultOrigin(name)}/secrets/old?${API}`, { token, body: { value: 'v' } });
      expect((await call('DELETE', `${APEX}/management/vaults/${name}`, { token })).status).toBe(204);
      const second = await put(name);
      expect(second.status).toBe(201);
      expect((await json(second)).id).not.toBe(first.id);
      expect((await call('GET', `${vaultOrigin(name)}/secrets/old?${API}`, { token })).status).toBe(404);
    });

    it('refuses to delete a vault under purge protection', async () => {
      const name = vaultName();
      await put(name, { enablePurgeProtection: true });
      const del = await call('DELETE', `${APEX}/management/vaults/${name}`, { token });
      expect(del.status).toBe(403);
      expect((await json(del)).error.code).toBe('Forbidden');
      expect(await count('vaults', 'name = ?', name)).toBe(1);
      expect((await call('GET', `${vaultOrigin(name)}/secrets?${API}`, { token })).status).toBe(200);
    });

    it('writes nothing when the bridge is down', async () => {
      const name = vaultName();
      const res = await call('PUT', `${APEX}/management/vaults/${name}`, {
        token,
        body: {},
        env: { BRIDGE_URL: 'http://127.0.0.1:9' },
      });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).not.toBeNull();
      expect(await count('vaults', 'name = ?', name)).toBe(0);
    });
  });

  describe('stats', () => {
    it('returns the per-isolate counters to administrators', async () => {
      const res = await call('GET', `${APEX}/management/stats`, { token });
      expect(res.status).toBe(200);
      const body = await json(res);
      expect(body).toEqual({
        d1Statements: expect.any(Number),
        d1AuditStatements: expect.any(Number),
        d1RefreshStatements: expect.any(Number),
        bridgeCalls: expect.any(Number),
        dataKeyCache: { size: expect.any(Number), hits: expect.any(Number), misses: expect.any(Number) },
      });
      expect(body.d1Statements).toBeGreaterThan(0);
      // The counters move: another request runs more D1 statements.
      const again = await json(await call('GET', `${APEX}/management/stats`, { token }));
      expect(again.d1Statements).toBeGreaterThan(body.d1Statements);
    });

    it("drops the isolate's caches on request: the data-key cache is empty afterwards", async () => {
      const res = await call('DELETE', `${APEX}/management/caches`, { token });
      expect(res.status).toBe(204);
      expect((await json(await call('GET', `${APEX}/management/stats`, { token }))).dataKeyCache.size).toBe(0);
      expect((await call('DELETE', `${APEX}/management/caches`, { token: userToken })).status).toBe(403);
    });

    it('is for administrators only', async () => {
      expect((await call('GET', `${APEX}/management/stats`, { token: userToken })).status).toBe(403);
      await expectChallenge(await call('GET', `${APEX}/management/stats`), creds.tenantId);
    });
  });
});

describe('the last administrator', () => {
  // Only the two administrators made here count while these tests run; the file's others are
  // demoted meanwhile and promoted again afterwards.
  let demoted: string[] = [];
  let a: Creds & { secretId: string; token: string };
  let b: Creds & { secretId: string; token: string };

  async function newAdmin(token: string, displayName: string) {
    const res = await call('POST', `${APEX}/management/applications`, { token, body: { displayName, isAdmin: true } });
    expect(res.status).toBe(201);
    const body = await json(res);
    const creds = {
      tenantId: body.tenantId as string,
      clientId: body.clientId as string,
      clientSecret: body.clientSecret as string,
    };
    return { ...creds, secretId: body.secret.id as string, token: await tokenFor(creds) };
  }

  beforeAll(async () => {
    const creds = await admin();
    const token = await tokenFor(creds);
    a = await newAdmin(token, 'admin a');
    b = await newAdmin(token, 'admin b');
    demoted = (
      await rows<{ client_id: string }>(
        'select client_id from applications where is_admin = 1 and client_id not in (?, ?)',
        a.clientId,
        b.clientId,
      )
    ).map((r) => r.client_id);
    await env.DB.prepare('update applications set is_admin = 0 where is_admin = 1 and client_id not in (?, ?)')
      .bind(a.clientId, b.clientId)
      .run();
    return async () => {
      for (const id of demoted) await env.DB.prepare('update applications set is_admin = 1 where client_id = ?').bind(id).run();
    };
  });

  const admins = async () =>
    (await rows<{ client_id: string }>('select client_id from applications where is_admin = 1')).map((r) => r.client_id);

  it('two administrators deleting each other at the same moment: exactly one succeeds', async () => {
    const [ab, ba] = await Promise.all([
      call('DELETE', `${APEX}/management/applications/${b.clientId}`, { token: a.token }),
      call('DELETE', `${APEX}/management/applications/${a.clientId}`, { token: b.token }),
    ]);
    const statuses = [ab.status, ba.status].sort();
    expect(statuses[0]).toBe(204);
    expect(statuses[1]).not.toBe(204);
    const refused = ab.status === 204 ? ba : ab;
    if (refused.status === 409) expect((await json(refused)).error.message).toContain('without an administrator application');
    expect(await admins()).toHaveLength(1);
    // Whoever is left goes on as `a`.
    if (ab.status !== 204) a = b;
  });

  it("refuses removing the last administrator's last usable credential, of any kind", async () => {
    const base = `${APEX}/management/applications/${a.clientId}`;
    const refusedSecret = await call('DELETE', `${base}/secrets/${a.secretId}`, { token: a.token });
    expect(refusedSecret.status).toBe(409);
    expect((await json(refusedSecret)).error.code).toBe('Conflict');
    // A federated credential is a way to get a token: with it the secret may go, then it may not.
    const fic = await call('POST', `${base}/federatedCredentials`, {
      token: a.token,
      body: {
        name: 'deploy',
        issuer: 'https://token.actions.githubusercontent.com',
        subject: 'repo:contoso/app:ref:refs/heads/main',
      },
    });
    expect(fic.status).toBe(201);
    const ficId = (await json(fic)).id as string;
    // An expired secret is no way in: adding one and removing the fic is still refused.
    const added = await json(await call('POST', `${base}/secrets`, { token: a.token, body: { expiresInDays: 1 } }));
    await env.DB.prepare('update client_secrets set expires_at = ? where id = ?')
      .bind(Math.floor(Date.now() / 1000) - 60, added.secret.id)
      .run();
    expect((await call('DELETE', `${base}/secrets/${a.secretId}`, { token: a.token })).status).toBe(204);
    expect((await call('DELETE', `${base}/federatedCredentials/${ficId}`, { token: a.token })).status).toBe(409);
    // Removing an unknown credential is still a 404, not a 409.
    expect((await call('DELETE', `${base}/secrets/${crypto.randomUUID()}`, { token: a.token })).status).toBe(404);
    // With a second administrator that can sign in, the first one's credentials may go.
    const other = await newAdmin(a.token, 'admin c');
    expect((await call('DELETE', `${base}/federatedCredentials/${ficId}`, { token: other.token })).status).toBe(204);
    // And deleting `a` is allowed while `other` remains, but then `other` is the last one.
    expect((await call('DELETE', base, { token: other.token })).status).toBe(204);
    expect(await admins()).toEqual([other.clientId]);
  });
});
