// The per-vault read-cache bound (README, "Read caching") as one isolate sees it: the setting, a
// bound of 0, writes through this isolate being read at once, and the renewal in the background
// past half the bound. The two-isolate contract is test/e2e/edge-rpc.e2e.test.ts.
import { describe, expect, it, vi } from 'vitest';
import { isRpcAllowed } from '../../src/access/network';
import type { VaultRecord } from '../../src/core/vault';
import { bridgeStats } from '../../src/crypto/bridge-client';
import { d1Stats } from '../../src/storage/db';
import { API, APEX, call, env, json, setupVault, viaBinding } from './helpers';

describe('readCacheSeconds', () => {
  it('defaults to 10, is set at creation and by PATCH, and refuses values outside 0..300', async () => {
    const { token, vault } = await setupVault();
    expect((await json(await call('GET', `${APEX}/management/vaults/${vault}`, { token }))).readCacheSeconds).toBe(10);
    const patched = await call('PATCH', `${APEX}/management/vaults/${vault}`, { token, body: { readCacheSeconds: 0 } });
    expect(patched.status).toBe(200);
    expect((await json(patched)).readCacheSeconds).toBe(0);
    for (const bad of [-1, 301, 1.5]) {
      const res = await call('PATCH', `${APEX}/management/vaults/${vault}`, { token, body: { readCacheSeconds: bad } });
      expect(res.status).toBe(400);
      expect((await json(res)).error.code).toBe('BadParameter');
    }
    const { vault: created } = await setupVault({ readCacheSeconds: 120 });
    expect((await json(await call('GET', `${APEX}/management/vaults/${created}`, { token }))).readCacheSeconds).toBe(120);
  });

  it('with 0, every read asks D1 (and still no bridge call once the data key is cached)', async () => {
    const { token, origin } = await setupVault({ readCacheSeconds: 0 });
    expect((await call('PUT', `${origin}/secrets/s?${API}`, { token, body: { value: 'v' } })).status).toBe(200);
    await call('GET', `${origin}/secrets/s?${API}`, { token });
    const before = { d1: d1Stats.statements, bridge: bridgeStats.calls };
    for (let i = 0; i < 5; i++) expect((await call('GET', `${origin}/secrets/s?${API}`, { token })).status).toBe(200);
    // Per read: the vault record, the application check, the authorization batch (3) and the row.
    expect(d1Stats.statements - before.d1).toBeGreaterThanOrEqual(5 * 2);
    expect(bridgeStats.calls - before.bridge).toBe(0);
  });

  it('opens a cached copy once: warm reads decrypt nothing, a write or a bound of 0 opens again', async () => {
    const decrypt = vi.spyOn(crypto.subtle, 'decrypt');
    try {
      const { token, origin } = await setupVault({ readCacheSeconds: 300 });
      const get = async () => (await json(await call('GET', `${origin}/secrets/o?${API}`, { token }))).value;
      await call('PUT', `${origin}/secrets/o?${API}`, { token, body: { value: 'first' } });
      expect(await get()).toBe('first');
      decrypt.mockClear();
      for (let i = 0; i < 3; i++) expect(await get()).toBe('first');
      expect(decrypt).not.toHaveBeenCalled();
      // A write forgets the copy and its plaintext: the new version is opened (and authenticated).
      await call('PUT', `${origin}/secrets/o?${API}`, { token, body: { value: 'second' } });
      expect(await get()).toBe('second');
      expect(decrypt).toHaveBeenCalledTimes(1);

      const { token: t0, origin: o0 } = await setupVault({ readCacheSeconds: 0 });
      await call('PUT', `${o0}/secrets/z?${API}`, { token: t0, body: { value: 'uncached' } });
      decrypt.mockClear();
      for (let i = 0; i < 3; i++)
        expect((await json(await call('GET', `${o0}/secrets/z?${API}`, { token: t0 }))).value).toBe('uncached');
      expect(decrypt).toHaveBeenCalledTimes(3);
    } finally {
      decrypt.mockRestore();
    }
  });

  it('past half the bound, answers from memory and renews in the background, where a change made elsewhere is seen', async () => {
    const decrypt = vi.spyOn(crypto.subtle, 'decrypt');
    try {
      // A 4 s bound, renewed past 2 s: the margins stay far above a busy machine's delays.
      const { token, origin } = await setupVault({ readCacheSeconds: 4 });
      const get = async () => {
        const before = { d1: d1Stats.statements, refresh: d1Stats.refreshStatements };
        const res = await call('GET', `${origin}/secrets/r?${API}`, { token }); // waits for waitUntil's work too
        expect(res.status).toBe(200);
        const body = await json(res);
        return { body, d1: d1Stats.statements - before.d1, refresh: d1Stats.refreshStatements - before.refresh };
      };
      await call('PUT', `${origin}/secrets/r?${API}`, { token, body: { value: 'kept', contentType: 'one' } });
      expect((await get()).body.value).toBe('kept'); // this isolate's copies of everything the read needs
      const read = Date.now();
      // Another isolate's change, straight into D1: nothing here forgets the copy.
      await env.DB.prepare(
        "update secret_versions set content_type = 'two' where name = 'r' and vault_id = (select id from vaults where name = ?)",
      )
        .bind(new URL(origin).hostname.split('.')[0])
        .run();

      // Within the first half: the copy, no renewal.
      const young = await get();
      expect([young.body.contentType, young.d1, young.refresh]).toEqual(['one', 0, 0]);
      await new Promise((r) => setTimeout(r, 2_100));
      // Past half: still the copy, nothing waited on D1; the renewals ran in the request's waitUntil.
      const half = await get();
      expect([half.body.contentType, half.d1]).toEqual(['one', 0]);
      expect(half.refresh).toBeGreaterThanOrEqual(4); // the vault, the application, the authorization batch, the row
      // The renewed copy carries the change, served from memory, well before the first copy's bound.
      decrypt.mockClear();
      const renewed = await get();
      expect([renewed.body.contentType, renewed.body.value, renewed.d1, renewed.refresh]).toEqual(['two', 'kept', 0, 0]);
      expect(Date.now() - read).toBeLessThan(4_000);
      // Same sealed bytes, version and data key: the renewed copy did not need opening again.
      expect(decrypt).not.toHaveBeenCalled();
    } finally {
      decrypt.mockRestore();
    }
  });

  it('renews the same way under a service-binding call: the entrypoint gives the caches its waitUntil', async () => {
    const { token, origin, vault, creds } = await setupVault({ readCacheSeconds: 4 });
    const get = async () => {
      const before = { d1: d1Stats.statements, refresh: d1Stats.refreshStatements };
      const result = await viaBinding(vault, creds.clientId, (rpc) => rpc.getSecret('p'));
      if (!result.ok) throw new Error(`getSecret: ${result.error.code}`);
      return {
        contentType: result.value.contentType,
        d1: d1Stats.statements - before.d1,
        refresh: d1Stats.refreshStatements - before.refresh,
      };
    };
    await call('PUT', `${origin}/secrets/p?${API}`, { token, body: { value: 'kept', contentType: 'one' } });
    await get(); // this isolate's copies
    await env.DB.prepare(
      "update secret_versions set content_type = 'two' where name = 'p' and vault_id = (select id from vaults where name = ?)",
    )
      .bind(vault)
      .run();
    expect(await get()).toEqual({ contentType: 'one', d1: 0, refresh: 0 });
    await new Promise((r) => setTimeout(r, 2_100));
    const half = await get();
    expect([half.contentType, half.d1]).toEqual(['one', 0]);
    // Without a request scope on the RPC path nothing would be renewed (and this would be 0).
    expect(half.refresh).toBeGreaterThanOrEqual(4);
    expect(await get()).toEqual({ contentType: 'two', d1: 0, refresh: 0 });
  });

  it('reads its own writes at once: value, disable, delete, recover', async () => {
    const { token, origin } = await setupVault({ readCacheSeconds: 300 });
    const get = () => call('GET', `${origin}/secrets/w?${API}`, { token });
    await call('PUT', `${origin}/secrets/w?${API}`, { token, body: { value: 'one' } });
    expect((await json(await get())).value).toBe('one');
    await call('PUT', `${origin}/secrets/w?${API}`, { token, body: { value: 'two' } });
    expect((await json(await get())).value).toBe('two');
    await call('PATCH', `${origin}/secrets/w?${API}`, { token, body: { attributes: { enabled: false } } });
    expect((await json(await get())).error.innererror.code).toBe('SecretDisabled');
    await call('PATCH', `${origin}/secrets/w?${API}`, { token, body: { attributes: { enabled: true } } });
    expect((await get()).status).toBe(200);
    await call('DELETE', `${origin}/secrets/w?${API}`, { token });
    expect((await get()).status).toBe(404);
    await call('POST', `${origin}/deletedsecrets/w/recover?${API}`, { token });
    expect((await json(await get())).value).toBe('two');
  });
});

describe('the firewall and service-binding callers', () => {
  const vault = (networkAcls: unknown): VaultRecord => ({
    id: 'v',
    name: 'v',
    tenantId: 't',
    softDeleteRetentionDays: 90,
    purgeProtection: false,
    createdAt: 0,
    enableRbacAuthorization: true,
    networkAcls: networkAcls === null ? null : JSON.stringify(networkAcls),
    readCacheSeconds: 10,
  });

  it('lets them through unless a Deny vault says bypass None', () => {
    expect(isRpcAllowed(vault(null))).toBe(true);
    expect(isRpcAllowed(vault({ defaultAction: 'Allow', bypass: 'None', ipRules: [] }))).toBe(true);
    expect(isRpcAllowed(vault({ defaultAction: 'Deny', bypass: 'AzureServices', ipRules: [{ value: '10.0.0.0/8' }] }))).toBe(
      true,
    );
    expect(isRpcAllowed(vault({ defaultAction: 'Deny', bypass: 'None', ipRules: [{ value: '10.0.0.0/8' }] }))).toBe(false);
    expect(isRpcAllowed({ ...vault(null), networkAcls: '{not json' })).toBe(false);
  });
});
