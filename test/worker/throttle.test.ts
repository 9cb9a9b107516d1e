/**
 * Request limits as Azure Key Vault answers them: 429, Retry-After, `Throttled` in Azure's error
 * shape; per vault and per caller, each isolated from the others; a throttled request changes
 * nothing. The limits are configured small per request (the Worker reads them from its vars).
 * The token service's limit on failed attempts answers an OAuth2-shaped 429.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { TokenBuckets } from '../../src/core/token-bucket';
import { toBase64Url } from '../../src/core/encoding';
import { API, APEX, admin, call, json, newVault, tokenFor, vaultOrigin, type CallOptions } from './helpers';

const AZURE_MESSAGE = 'Request was not processed because too many requests were received. Reason: ';

type Creds = { tenantId: string; clientId: string; clientSecret: string };

async function expectThrottled(res: Response, reason: string): Promise<void> {
  expect(res.status, await res.clone().text()).toBe(429);
  expect(res.headers.get('retry-after')).toMatch(/^[1-9]\d*$/);
  expect(await json(res)).toEqual({ error: { code: 'Throttled', message: `${AZURE_MESSAGE}${reason}` } });
}

describe('token buckets', () => {
  it('allow a burst of the capacity, refill over the period, and name the wait', () => {
    let now = 0;
    const buckets = new TokenBuckets(100, () => now);
    const limit = { capacity: 3, periodMs: 10_000 };
    const take = () => buckets.takeAll([{ key: 'k', limit }]);
    expect([take().ok, take().ok, take().ok]).toEqual([true, true, true]);
    const refused = take();
    expect(refused).toMatchObject({ ok: false, retryAfterSeconds: 4, refused: [0] }); // one token per 3.33 s
    now += 3_400;
    expect(take().ok).toBe(true);
    expect(take().ok).toBe(false);
  });

  it('take from every bucket or from none, and forget the least recently used beyond their bound', () => {
    const now = 0;
    const buckets = new TokenBuckets(2, () => now);
    const one = { capacity: 1, periodMs: 10_000 };
    expect(buckets.takeAll([{ key: 'a', limit: one }]).ok).toBe(true);
    // 'b' has a token, 'a' none: refused, and 'b' keeps its token.
    expect(
      buckets.takeAll([
        { key: 'b', limit: one },
        { key: 'a', limit: one },
      ]),
    ).toMatchObject({ ok: false, refused: [1] });
    expect(buckets.takeAll([{ key: 'b', limit: one }]).ok).toBe(true);
    buckets.takeAll([{ key: 'c', limit: one }]); // 'a' is forgotten: it starts full again
    expect(buckets.takeAll([{ key: 'a', limit: one }]).ok).toBe(true);
  });
});

describe('vault request limits', () => {
  let creds: Creds;
  let token: string;
  beforeAll(async () => {
    creds = await admin();
    token = await tokenFor(creds);
  });

  it("answer 429 with Retry-After in Azure's shape once a vault has had its requests, and other vaults go on", async () => {
    const [busy, quiet] = [await newVault(token), await newVault(token)];
    const small: CallOptions = { token, env: { THROTTLE_VAULT_REQUESTS: '3' } };
    for (let i = 0; i < 3; i++) expect((await call('GET', `${vaultOrigin(busy)}/secrets?${API}`, small)).status).toBe(200);
    await expectThrottled(await call('GET', `${vaultOrigin(busy)}/secrets?${API}`, small), 'VaultRequestTypeLimitReached');
    // Whatever the operation, and whoever asks: the vault's own budget is spent.
    const other = await tokenFor(await admin());
    await expectThrottled(
      await call('GET', `${vaultOrigin(busy)}/keys?${API}`, { ...small, token: other }),
      'VaultRequestTypeLimitReached',
    );
    // Another vault is not affected.
    expect((await call('GET', `${vaultOrigin(quiet)}/secrets?${API}`, small)).status).toBe(200);
  });

  it('limit creates apart from reads, and a throttled create writes nothing', async () => {
    const vault = await newVault(token);
    const small: CallOptions = { token, env: { THROTTLE_VAULT_CREATES: '2' } };
    for (const name of ['c1', 'c2'])
      expect((await call('PUT', `${vaultOrigin(vault)}/secrets/${name}?${API}`, { ...small, body: { value: 'v' } })).status).toBe(
        200,
      );
    await expectThrottled(
      await call('PUT', `${vaultOrigin(vault)}/secrets/c3?${API}`, { ...small, body: { value: 'v' } }),
      'VaultRequestTypeLimitReached',
    );
    // Reads still go through; the refused secret does not exist.
    expect((await call('GET', `${vaultOrigin(vault)}/secrets/c1?${API}`, small)).status).toBe(200);
    const missing = await call('GET', `${vaultOrigin(vault)}/secrets/c3?${API}`, small);
    expect(missing.status).toBe(404);
    expect((await json(await call('GET', `${vaultOrigin(vault)}/secrets/c3/versions?${API}`, small))).value ?? []).toEqual([]);
  });

  it('limit cryptographic operations with keys', async () => {
    const vault = await newVault(token);
    const created = await call('POST', `${vaultOrigin(vault)}/keys/k/create?${API}`, {
      token,
      body: { kty: 'EC', crv: 'P-256' },
    });
    expect(created.status, await created.clone().text()).toBe(200);
    const sign = () =>
      call('POST', `${vaultOrigin(vault)}/keys/k/sign?${API}`, {
        token,
        body: { alg: 'ES256', value: toBase64Url(new Uint8Array(32).fill(1)) },
        env: { THROTTLE_VAULT_KEY_OPERATIONS: '1' },
      });
    expect((await sign()).status).toBe(200);
    await expectThrottled(await sign(), 'VaultRequestTypeLimitReached');
    expect(
      (await call('GET', `${vaultOrigin(vault)}/keys/k?${API}`, { token, env: { THROTTLE_VAULT_KEY_OPERATIONS: '1' } })).status,
    ).toBe(200);
  });

  it('limit each caller across vaults, and other callers go on', async () => {
    const vault = await newVault(token);
    const mine = await tokenFor(await admin());
    const vaultOfMine = await newVault(mine);
    const small = (t: string): CallOptions => ({ token: t, env: { THROTTLE_CALLER_REQUESTS: '2' } });
    expect((await call('GET', `${vaultOrigin(vaultOfMine)}/secrets?${API}`, small(mine))).status).toBe(200);
    expect((await call('GET', `${vaultOrigin(vaultOfMine)}/keys?${API}`, small(mine))).status).toBe(200);
    await expectThrottled(await call('GET', `${vaultOrigin(vault)}/secrets?${API}`, small(mine)), 'CallerRequestLimitReached');
    // Management counts against the caller too.
    await expectThrottled(await call('GET', `${APEX}/management/vaults`, small(mine)), 'CallerRequestLimitReached');
    // Another caller, same vault: answered as usual.
    expect((await call('GET', `${vaultOrigin(vaultOfMine)}/secrets?${API}`, small(token))).status).not.toBe(429);
  });

  it('"0" turns a limit off', async () => {
    const vault = await newVault(token);
    for (let i = 0; i < 4; i++)
      expect(
        (
          await call('GET', `${vaultOrigin(vault)}/secrets?${API}`, {
            token,
            env: { THROTTLE_VAULT_REQUESTS: '0', THROTTLE_CALLER_REQUESTS: '0' },
          })
        ).status,
      ).toBe(200);
  });
});

describe('token endpoint: failed attempts', () => {
  const form = (p: Record<string, string>, headers: Record<string, string> = {}, env: CallOptions['env'] = {}): CallOptions => ({
    body: new URLSearchParams(p).toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    env,
  });
  const grant = (c: Creds, secret = c.clientSecret) => ({
    grant_type: 'client_credentials',
    client_id: c.clientId,
    client_secret: secret,
    scope: `${APEX}/.default`,
  });

  async function expectOAuthThrottled(res: Response): Promise<void> {
    expect(res.status, await res.clone().text()).toBe(429);
    expect(res.headers.get('retry-after')).toMatch(/^[1-9]\d*$/);
    const body = await json(res);
    expect(body.error).toBe('temporarily_unavailable');
    expect(body.error_description).toMatch(/Too many failed authentication attempts/);
    expect(JSON.stringify(body)).not.toContain('wrong-secret');
  }

  it('refuse a client that keeps failing, even with the right secret, and no other client', async () => {
    const [victim, bystander] = [await admin(), await admin()];
    const url = `${APEX}/${victim.tenantId}/oauth2/v2.0/token`;
    const env = { THROTTLE_TOKEN_FAILURES_PER_CLIENT: '2' };
    for (let i = 0; i < 2; i++) expect((await call('POST', url, form(grant(victim, 'wrong-secret'), {}, env))).status).toBe(401);
    await expectOAuthThrottled(await call('POST', url, form(grant(victim), {}, env)));
    expect((await call('POST', url, form(grant(bystander), {}, env))).status).toBe(200);
  });

  it('refuse an address that keeps failing, whatever client it names, and no other address', async () => {
    const good = await admin();
    const url = `${APEX}/${good.tenantId}/oauth2/v2.0/token`;
    const env = { THROTTLE_TOKEN_FAILURES_PER_ADDRESS: '2' };
    const from = (ip: string) => ({ 'cf-connecting-ip': ip });
    for (const guess of [crypto.randomUUID(), crypto.randomUUID()]) {
      expect(
        (await call('POST', url, form({ ...grant(good, 'wrong-secret'), client_id: guess }, from('203.0.113.7'), env))).status,
      ).toBe(401);
    }
    await expectOAuthThrottled(await call('POST', url, form(grant(good), from('203.0.113.7'), env)));
    expect((await call('POST', url, form(grant(good), from('203.0.113.8'), env))).status).toBe(200);
  });
});
