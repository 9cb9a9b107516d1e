/**
 * Envelope encryption end to end: data keys through the real bridge, sealed rows bound to their
 * place, tampering refused.
 */
import { env } from 'cloudflare:workers';
import { and, eq, sql } from 'drizzle-orm';
import { beforeAll, describe, expect, it } from 'vitest';
import { BridgeClient, bridgeStats } from '../../src/crypto/bridge-client';
import { DataKeyCache, DataKeyManager, DEFAULT_POLICY } from '../../src/crypto/data-keys';
import { dataKeyCache } from '../../src/crypto/services';
import { d1Stats, database } from '../../src/storage/db';
import { dataKeys, secretVersions, vaults } from '../../src/storage/schema';
import { SecretStore } from '../../src/objects/secrets';
import { findVault } from '../../src/storage/vaults';
import { API, APEX, call, json, setupVault } from './helpers';

const db = database(env.DB);
const DOWN = { BRIDGE_URL: 'http://127.0.0.1:9' }; // nothing listens there: the bridge is down

let token: string;
let origin: string;
let vaultName: string;

beforeAll(async () => {
  ({ token, origin, vault: vaultName } = await setupVault());
});

const put = (name: string, value: string, opts = {}) =>
  call('PUT', `${origin}/secrets/${name}?${API}`, { token, body: { value }, ...opts });
const get = (name: string, opts = {}) => call('GET', `${origin}/secrets/${name}?${API}`, { token, ...opts });

async function vaultId(): Promise<string> {
  return (await db.select().from(vaults).where(eq(vaults.name, vaultName)).get())!.id;
}

async function versionRow(name: string) {
  const id = await vaultId();
  return (
    await db
      .select()
      .from(secretVersions)
      .where(and(eq(secretVersions.vaultId, id), eq(secretVersions.name, name)))
      .all()
  )[0]!;
}

async function pollAudit(correlationId: string): Promise<Record<string, unknown> | undefined> {
  for (let i = 0; i < 80; i++) {
    const row = await env.DB.prepare('SELECT * FROM audit_records WHERE correlation_id = ?').bind(correlationId).first();
    if (row) return row;
    await new Promise((r) => setTimeout(r, 100));
  }
  return undefined;
}

describe('at rest', () => {
  it('keeps only ciphertext in D1: a dump of every table never shows a value', async () => {
    const canary = `canary-${crypto.randomUUID()}`;
    expect((await put('canary', canary)).status).toBe(200);
    const tables = await env.DB.prepare(
      `SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE '_cf_%' AND name NOT LIKE 'sqlite_%'`,
    ).all<{ name: string }>();
    for (const { name } of tables.results) {
      const rows = await env.DB.prepare(`SELECT * FROM "${name}"`).all();
      expect(JSON.stringify(rows.results)).not.toContain(canary);
    }
  });
});

describe('tampering is detected, never served', () => {
  it('refuses a flipped byte in the ciphertext with a 500-class integrity error', async () => {
    await put('flip', 'original-value');
    const row = await versionRow('flip');
    const chars = row.ciphertext.split('');
    chars[20] = chars[20] === 'A' ? 'B' : 'A';
    await db
      .update(secretVersions)
      .set({ ciphertext: chars.join('') })
      .where(eq(secretVersions.version, row.version));
    const correlationId = crypto.randomUUID();
    const res = await get('flip', { headers: { 'x-ms-client-request-id': correlationId } });
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(JSON.parse(text).error.code).toBe('DataIntegrityError');
    expect(text).not.toContain('original-value');
    // …and audited as such (the queue consumer persists it shortly).
    const audited = await pollAudit(correlationId);
    expect(audited).toMatchObject({ operation: 'SecretGet', status: 500, result: 'error', error_code: 'DataIntegrityError' });
    expect(JSON.stringify(audited)).not.toContain('original-value');
  });

  it('refuses a ciphertext moved to another name or version', async () => {
    await put('source', 'source-value');
    await put('target', 'target-value');
    const source = await versionRow('source');
    const target = await versionRow('target');
    await db
      .update(secretVersions)
      .set({ ciphertext: source.ciphertext, dataKeyId: source.dataKeyId })
      .where(eq(secretVersions.version, target.version));
    const res = await get('target');
    expect(res.status).toBe(500);
    expect(await res.text()).not.toContain('source-value');
  });

  it("refuses a row pointed at another vault's data key", async () => {
    await put('crossvault', 'x');
    const other = await setupVault();
    const otherVault = (await findVault(db, other.vault))!;
    const otherKey = (await db.select().from(dataKeys).where(eq(dataKeys.scope, otherVault.id)).get())!;
    const row = await versionRow('crossvault');
    await db.update(secretVersions).set({ dataKeyId: otherKey.id }).where(eq(secretVersions.version, row.version));
    expect((await get('crossvault')).status).toBe(500);
  });

  it('refuses a tampered wrapped data key (the HSM will not unwrap it)', async () => {
    const { token: t, origin: o, vault } = await setupVault();
    await call('PUT', `${o}/secrets/wrapped?${API}`, { token: t, body: { value: 'x' } });
    const v = (await findVault(db, vault))!;
    const key = (await db.select().from(dataKeys).where(eq(dataKeys.scope, v.id)).get())!;
    const flipped = key.wrapped.slice(0, 30) + (key.wrapped[30] === 'A' ? 'B' : 'A') + key.wrapped.slice(31);
    await db.update(dataKeys).set({ wrapped: flipped }).where(eq(dataKeys.id, key.id));
    dataKeyCache.clear();
    const res = await call('GET', `${o}/secrets/wrapped?${API}`, { token: t });
    expect(res.status).toBe(500);
    expect((await json(res)).error.code).toBe('DataIntegrityError');
  });
});

describe('the hot path', () => {
  it('serves a warm read with no D1 query and no bridge call (the sealed row is cached, README Read caching)', async () => {
    await put('hot', 'hot-value');
    await get('hot'); // warm: vault, tenant, signing key, data key and the sealed row are cached now
    const before = { d1: d1Stats.statements, bridge: bridgeStats.calls };
    for (let i = 0; i < 10; i++) expect((await get('hot')).status).toBe(200);
    expect(d1Stats.statements - before.d1).toBe(0);
    expect(bridgeStats.calls - before.bridge).toBe(0);
  });

  it('unwraps a cold data key once, however many reads wait for it', async () => {
    await put('cold', 'cold-value');
    dataKeyCache.clear();
    const before = bridgeStats.calls;
    const results = await Promise.all(Array.from({ length: 5 }, () => get('cold')));
    for (const res of results) expect((await json(res)).value).toBe('cold-value');
    expect(bridgeStats.calls - before).toBe(1);
  });
});

describe('bridge down', () => {
  it('keeps serving warm reads and cached-key writes; what needs the HSM answers 503 and writes nothing', async () => {
    await put('resilient', 'before-outage');
    expect((await get('resilient')).status).toBe(200);

    // Warm read and a write under the cached data key both work without the bridge.
    expect((await json(await get('resilient', { env: DOWN }))).value).toBe('before-outage');
    expect((await put('resilient', 'during-outage', { env: DOWN })).status).toBe(200);
    expect((await json(await get('resilient', { env: DOWN }))).value).toBe('during-outage');

    // A version this isolate already opened is served from its warm copy, data key or not; one it
    // has not read since it was written needs the data key, and so the HSM: 503 with Retry-After.
    expect((await put('unread-during-outage', 'never-read', { env: DOWN })).status).toBe(200);
    dataKeyCache.clear();
    expect((await json(await get('resilient', { env: DOWN }))).value).toBe('during-outage');
    const cold = await get('unread-during-outage', { env: DOWN });
    expect(cold.status).toBe(503);
    expect(cold.headers.get('retry-after')).toBeTruthy();
    expect((await json(cold)).error.code).toBe('ServiceUnavailable');
    const coldWrite = await put('written-during-outage', 'x', { env: DOWN });
    expect(coldWrite.status).toBe(503);

    // A new vault needs a new data key: refused, and not half-created.
    const name = `outage${Date.now().toString(36)}`;
    const created = await call('PUT', `${APEX}/management/vaults/${name}`, { token, body: {}, env: DOWN });
    expect(created.status).toBe(503);
    expect(await db.select().from(vaults).where(eq(vaults.name, name)).get()).toBeUndefined();

    // The bridge comes back: everything heals without a restart, and nothing was written meanwhile.
    expect((await json(await get('resilient'))).value).toBe('during-outage');
    expect((await get('written-during-outage')).status).toBe(404);
    expect((await call('PUT', `${APEX}/management/vaults/${name}`, { token, body: {} })).status).toBe(201);
  });
});

describe('data key rotation', () => {
  it('moves new writes to a fresh key by count, and keeps reading the old ones', async () => {
    const vault = (await findVault(db, vaultName))!;
    const bridge = new BridgeClient(env.BRIDGE_URL, env.BRIDGE_HMAC_SECRET);
    const keys = new DataKeyManager(db, bridge, new DataKeyCache(DEFAULT_POLICY), { ...DEFAULT_POLICY, maxEncryptions: 2 });
    const store = new SecretStore(db, keys, vault);
    const count = async () =>
      (await db
        .select({ n: sql<number>`count(*)` })
        .from(dataKeys)
        .where(eq(dataKeys.scope, vault.id))
        .get())!.n;
    const startKeys = await count();
    for (let i = 0; i < 6; i++) await store.set(`rotating${i}`, { value: `value-${i}` });
    const rows = await Promise.all(Array.from({ length: 6 }, (_, i) => versionRow(`rotating${i}`)));
    const used = new Set(rows.map((r) => r.dataKeyId));
    expect(used.size).toBeGreaterThanOrEqual(3);
    expect(await count()).toBeGreaterThan(startKeys);
    for (let i = 0; i < 6; i++) expect((await store.get(`rotating${i}`)).value).toBe(`value-${i}`);
  });

  it('moves to a fresh key by age', async () => {
    const { vault } = await setupVault();
    const record = (await findVault(db, vault))!;
    const bridge = new BridgeClient(env.BRIDGE_URL, env.BRIDGE_HMAC_SECRET);
    const keys = new DataKeyManager(db, bridge, new DataKeyCache(DEFAULT_POLICY), DEFAULT_POLICY);
    const first = await keys.forWrite(record.id);
    await db.update(dataKeys).set({ createdAt: 1 }).where(eq(dataKeys.id, first.id)); // long ago
    const second = await keys.forWrite(record.id);
    expect(second.id).not.toBe(first.id);
  });
});

describe('data key cache', () => {
  it('is bounded and expires entries', async () => {
    const cache = new DataKeyCache({ cacheSize: 2, cacheTtlMs: 50 });
    const key = (await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt'])) as CryptoKey;
    cache.set('a', key);
    cache.set('b', key);
    cache.get('a'); // a is now the most recently used
    cache.set('c', key);
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')).toBe(key);
    await new Promise((r) => setTimeout(r, 60));
    expect(cache.get('a')).toBeUndefined();
  });
});
