// Secret events end to end: SecretNewVersionCreated from set and restore, and the expiry job's
// near-expiry and expired notices (once per version, across overlapping runs, bounded per run,
// found through the exp index), delivered by the real queues to a real subscribed receiver.
import { createExecutionContext, createScheduledController, waitOnExecutionContext } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Env } from '../../src/core/env';
import worker from '../../src/index';
import { runKeyRotation } from '../../src/jobs/rotation';
import { EXPIRED_LOOKBACK_SECONDS, EXPIRING_KINDS, NEAR_EXPIRY_SECONDS, dueQuery, runExpiryNotices } from '../../src/jobs/expiry';
import { database } from '../../src/storage/db';
import { API, admin, call, json, newVault, tokenFor, vaultOrigin } from './helpers';
import {
  newHook,
  notifications,
  subscribe,
  subscriptionBody,
  verifyStandardWebhook,
  waitForNotifications,
} from './events-helpers';
import { rows, sleep } from './identity-helpers';

const db = database(env.DB);
const DAY = 86_400;
const nowSeconds = () => Math.floor(Date.now() / 1000);
const versionOf = (id: string) => id.split('/').pop()!;

let token: string;
let tenantId: string;

beforeAll(async () => {
  const creds = await admin();
  tenantId = creds.tenantId;
  token = await tokenFor(creds);
});

/** A vault with a subscription of the given types to a receiver of its own. */
async function subscribedVault(types: string[]) {
  const vault = await newVault(token);
  const hook = await newHook();
  const { status, body } = await subscribe(token, vault, 'watch', subscriptionBody(hook.url, { types }));
  expect(status, JSON.stringify(body)).toBe(201);
  const origin = vaultOrigin(vault);
  const req = (method: string, path: string, body?: unknown) =>
    call(method, `${origin}${path}?${API}`, { token, ...(body !== undefined ? { body } : {}) });
  return { vault, hook, secret: body.properties.signingSecret as string, origin, req };
}

type Fixture = Awaited<ReturnType<typeof subscribedVault>>;

async function setSecret(f: Fixture, name: string, attributes: Record<string, unknown>, value = 'never-in-events') {
  const res = await f.req('PUT', `/secrets/${name}`, { value, attributes });
  expect(res.status).toBe(200);
  return versionOf((await json(res)).id);
}

async function createKey(f: Fixture, name: string, exp: number) {
  const res = await f.req('POST', `/keys/${name}/create`, { kty: 'EC', attributes: { exp } });
  expect(res.status).toBe(200);
  return versionOf((await json(res)).key.kid);
}

/** The delivered events of a receiver, parsed (Event Grid schema: arrays). */
async function deliveredEvents(hookId: string) {
  return (await notifications(hookId)).flatMap(
    (r) => JSON.parse(r.body) as { eventType: string; subject: string; data: Record<string, unknown> }[],
  );
}

/** The stored expiry events of a vault (the real events queue's consumer stores them). */
async function storedEvents(vault: string, expected: number, timeoutMs = 8000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await rows<{ event_type: string; subject: string; version: string; body: string }>(
      "select event_type, subject, version, body from events where vault = ? and event_type not like '%NewVersionCreated' order by event_time, subject",
      vault,
    );
    if (found.length >= expected || Date.now() > deadline) return found;
    await sleep(100);
  }
}

const run = (now: number, limit?: number) => runExpiryNotices(env as Env, now, limit ? { limit } : {});

describe('SecretNewVersionCreated', () => {
  it('is delivered, signed, for each set and for a restore, without the value', async () => {
    const f = await subscribedVault(['SecretNewVersionCreated']);
    const first = await setSecret(f, 'announced', { exp: nowSeconds() + 90 * DAY });
    const second = await setSecret(f, 'announced', {});
    const got = await waitForNotifications(f.hook.id, 2);
    expect(got).toHaveLength(2);
    for (const r of got) {
      expect(await verifyStandardWebhook(f.secret, r.headers, r.body)).toBe(true);
      expect(r.body).not.toContain('never-in-events');
    }
    const events = got.flatMap((r) => JSON.parse(r.body));
    expect(events.map((e: { data: { Version: string } }) => e.data.Version).sort()).toEqual([first, second].sort());
    const one = events.find((e: { data: { Version: string } }) => e.data.Version === first);
    expect(one).toMatchObject({
      eventType: 'Microsoft.KeyVault.SecretNewVersionCreated',
      subject: 'announced',
      topic: `/tenants/${tenantId}/providers/Microsoft.KeyVault/vaults/${f.vault}`,
      data: {
        Id: `${f.origin}/secrets/announced/${first}`,
        VaultName: f.vault,
        ObjectType: 'Secret',
        ObjectName: 'announced',
        Version: first,
        NBF: null,
      },
    });
    expect(one.data.EXP).toBeGreaterThan(nowSeconds());

    // A backup from another vault restored here: its latest version is announced.
    const other = await subscribedVault(['KeyNewVersionCreated']);
    const restoredVersion = await setSecret(other, 'carried', {});
    const backup = await other.req('POST', '/secrets/carried/backup');
    expect(backup.status).toBe(200);
    const restored = await f.req('POST', '/secrets/restore', { value: (await json(backup)).value });
    expect(restored.status).toBe(200);
    const after = await waitForNotifications(f.hook.id, 3);
    const restoredEvent = JSON.parse(after.find((r) => r.body.includes('"carried"'))!.body)[0];
    expect(restoredEvent).toMatchObject({
      eventType: 'Microsoft.KeyVault.SecretNewVersionCreated',
      data: { ObjectName: 'carried', Version: restoredVersion },
    });
    // The other vault's subscription takes keys only: nothing for its secret.
    await sleep(300);
    expect(await notifications(other.hook.id)).toHaveLength(0);
  }, 60_000);

  it('has its key counterpart after a key restore: KeyNewVersionCreated for the restored latest version', async () => {
    const f = await subscribedVault(['KeyNewVersionCreated']);
    const other = await subscribedVault(['SecretNewVersionCreated']);
    const version = await createKey(other, 'carried-key', nowSeconds() + 90 * DAY);
    const backup = await other.req('POST', '/keys/carried-key/backup');
    expect(backup.status).toBe(200);
    expect((await f.req('POST', '/keys/restore', { value: (await json(backup)).value })).status).toBe(200);
    const [got] = await waitForNotifications(f.hook.id, 1);
    expect(JSON.parse(got!.body)[0]).toMatchObject({
      eventType: 'Microsoft.KeyVault.KeyNewVersionCreated',
      data: { Id: `${f.origin}/keys/carried-key/${version}`, ObjectType: 'Key', ObjectName: 'carried-key', Version: version },
    });
  }, 60_000);

  it('is not emitted for a refused write', async () => {
    const f = await subscribedVault(['SecretNewVersionCreated']);
    const res = await f.req('PUT', '/secrets/bad_name', { value: 'x' });
    expect(res.status).toBe(400);
    const restore = await f.req('POST', '/secrets/restore', { value: 'bm90LWEtYmFja3Vw' });
    expect(restore.status).toBe(400);
    await sleep(500);
    expect(await notifications(f.hook.id)).toHaveLength(0);
  });
});

describe('expiry notices', () => {
  const EXPIRY_TYPES = ['SecretNearExpiry', 'SecretExpired', 'KeyNearExpiry', 'KeyExpired'];

  it('sends near-expiry once from 30 days before exp and expired once after it, for secrets and keys', async () => {
    const f = await subscribedVault(EXPIRY_TYPES);
    // Far in the future, and 1000 days from the next test's, so that no other versions share the windows.
    const exp = nowSeconds() + 3000 * DAY + Math.floor(Math.random() * DAY);
    const secretVersion = await setSecret(f, 'expiring-secret', { exp });
    const keyVersion = await createKey(f, 'expiring-key', exp);

    expect((await run(exp - NEAR_EXPIRY_SECONDS - 1)).found).toBe(0);
    const near = await run(exp - NEAR_EXPIRY_SECONDS);
    expect(near.sent).toEqual({ 'Microsoft.KeyVault.SecretNearExpiry': 1 });
    expect(await run(exp - 29 * DAY)).toEqual({ found: 0, sent: {}, failed: 0 });
    expect(await run(exp - 1)).toEqual({ found: 0, sent: {}, failed: 0 });

    const expired = await run(exp);
    expect(expired.sent).toEqual({ 'Microsoft.KeyVault.SecretExpired': 1, 'Microsoft.KeyVault.KeyExpired': 1 });
    expect((await run(exp + 60)).found).toBe(0);
    expect((await run(exp + 6 * DAY)).found).toBe(0);

    const stored = await storedEvents(f.vault, 3);
    expect(stored.map((e) => [e.event_type, e.subject, e.version])).toEqual([
      ['Microsoft.KeyVault.SecretNearExpiry', 'expiring-secret', secretVersion],
      ['Microsoft.KeyVault.KeyExpired', 'expiring-key', keyVersion],
      ['Microsoft.KeyVault.SecretExpired', 'expiring-secret', secretVersion],
    ]);
    expect(JSON.parse(stored[1]!.body).data).toEqual({
      Id: `${f.origin}/keys/expiring-key/${keyVersion}`,
      VaultName: f.vault,
      ObjectType: 'Key',
      ObjectName: 'expiring-key',
      Version: keyVersion,
      NBF: null,
      EXP: exp,
    });
    await waitForNotifications(f.hook.id, 3);
    await sleep(300);
    const delivered = await deliveredEvents(f.hook.id);
    expect(delivered.map((e) => e.eventType).sort()).toEqual([
      'Microsoft.KeyVault.KeyExpired',
      'Microsoft.KeyVault.SecretExpired',
      'Microsoft.KeyVault.SecretNearExpiry',
    ]);
  }, 60_000);

  it('announces only the current, enabled version of a live object', async () => {
    const f = await subscribedVault(EXPIRY_TYPES);
    const exp = nowSeconds() + 4000 * DAY + Math.floor(Math.random() * DAY);
    await setSecret(f, 'superseded', { exp });
    const current = await setSecret(f, 'superseded', { exp: exp + 100 * DAY });
    await setSecret(f, 'disabled', { exp, enabled: false });
    await setSecret(f, 'deleted', { exp });
    expect((await f.req('DELETE', '/secrets/deleted')).status).toBe(200);

    expect(await run(exp)).toEqual({ found: 0, sent: {}, failed: 0 });
    // Re-enabled after its expiry: announced as expired at the next run.
    expect((await f.req('PATCH', '/secrets/disabled', { attributes: { enabled: true } })).status).toBe(200);
    expect((await run(exp + 60)).sent).toEqual({ 'Microsoft.KeyVault.SecretExpired': 1 });
    // Past the lookback, an expiry is no longer announced.
    expect((await run(exp + 100 * DAY + EXPIRED_LOOKBACK_SECONDS + 1)).sent).toEqual({});
    const stored = await storedEvents(f.vault, 1);
    expect(stored.map((e) => [e.event_type, e.subject])).toEqual([['Microsoft.KeyVault.SecretExpired', 'disabled']]);
    expect(stored.some((e) => e.version === current)).toBe(false);
  }, 30_000);

  it('never announces a version twice when runs overlap', async () => {
    const f = await subscribedVault(EXPIRY_TYPES);
    const exp = nowSeconds() + 5000 * DAY + Math.floor(Math.random() * DAY);
    for (let i = 0; i < 6; i++) await setSecret(f, `overlap-${i}`, { exp: exp + i });
    const at = exp - 10 * DAY;
    const results = await Promise.all([run(at), run(at), run(at)]);
    const sent = results.reduce((n, r) => n + (r.sent['Microsoft.KeyVault.SecretNearExpiry'] ?? 0), 0);
    expect(sent).toBe(6);
    expect(results.every((r) => r.failed === 0)).toBe(true);
    await waitForNotifications(f.hook.id, 6);
    await sleep(500);
    const delivered = await deliveredEvents(f.hook.id);
    expect(delivered.map((e) => e.subject).sort()).toEqual([0, 1, 2, 3, 4, 5].map((i) => `overlap-${i}`));
    expect(await storedEvents(f.vault, 6)).toHaveLength(6);
  }, 60_000);

  it('does bounded work per run and continues at the next run, soonest expiry first', async () => {
    const f = await subscribedVault(EXPIRY_TYPES);
    const exp = nowSeconds() + 6000 * DAY + Math.floor(Math.random() * DAY);
    for (let i = 0; i < 5; i++) await setSecret(f, `bounded-${i}`, { exp: exp + i * 60 });
    const at = exp + 600;
    const runs = [await run(at, 2), await run(at, 2), await run(at, 2), await run(at, 2)];
    expect(runs.map((r) => [r.found, r.sent['Microsoft.KeyVault.SecretExpired'] ?? 0])).toEqual([
      [2, 2],
      [2, 2],
      [1, 1],
      [0, 0],
    ]);
    const markers = await rows<{ name: string; claimed_at: number }>(
      'select name from expiry_notices where vault_id = (select id from vaults where name = ?) order by rowid',
      f.vault,
    );
    expect(markers.map((m) => m.name)).toEqual([0, 1, 2, 3, 4].map((i) => `bounded-${i}`));
  }, 30_000);

  it('gives its claims back when the events cannot be queued, and sends them at the next run', async () => {
    const f = await subscribedVault(EXPIRY_TYPES);
    const exp = nowSeconds() + 7000 * DAY + Math.floor(Math.random() * DAY);
    await setSecret(f, 'queue-down', { exp });
    const down = {
      ...(env as Env),
      EVENTS_QUEUE: { sendBatch: () => Promise.reject(new Error('queue unavailable')) } as unknown as Queue<unknown>,
    };
    expect(await runExpiryNotices(down, exp)).toEqual({ found: 1, sent: {}, failed: 1 });
    expect(
      await rows('select 1 from expiry_notices where vault_id = (select id from vaults where name = ?)', f.vault),
    ).toHaveLength(0);
    expect((await run(exp + 300)).sent).toEqual({ 'Microsoft.KeyVault.SecretExpired': 1 });
    expect((await waitForNotifications(f.hook.id, 1)).length).toBe(1);
  }, 30_000);

  it('runs from the Worker scheduled handler, with the scheduled time as its clock', async () => {
    const f = await subscribedVault(EXPIRY_TYPES);
    const exp = nowSeconds() + 8000 * DAY + Math.floor(Math.random() * DAY);
    const version = await setSecret(f, 'scheduled', { exp });
    const ctx = createExecutionContext();
    await worker.scheduled(
      createScheduledController({ cron: '*/5 * * * *', scheduledTime: (exp - 5 * DAY) * 1000 }),
      env as Env,
      ctx,
    );
    await waitOnExecutionContext(ctx);
    const stored = await storedEvents(f.vault, 1);
    expect(stored.map((e) => [e.event_type, e.version])).toEqual([['Microsoft.KeyVault.SecretNearExpiry', version]]);
  }, 30_000);

  it("leaves KeyNearExpiry to key rotation (the policy's Notify time), which claims the same marker once", async () => {
    const f = await subscribedVault(EXPIRY_TYPES);
    const exp = nowSeconds() + 9000 * DAY + Math.floor(Math.random() * DAY);
    const version = await createKey(f, 'policy-timed', exp);
    const notifyAt = exp - 30 * DAY; // Azure's default policy: Notify 30 days before expiry
    expect((await run(notifyAt)).sent).toEqual({});
    await Promise.all([runKeyRotation(env as Env, notifyAt), runKeyRotation(env as Env, notifyAt)]);
    const markers = await rows<{ kind: string; version: string; event_type: string }>(
      'select kind, version, event_type from expiry_notices where vault_id = (select id from vaults where name = ?)',
      f.vault,
    );
    expect(markers).toEqual([{ kind: 'key', version, event_type: 'Microsoft.KeyVault.KeyNearExpiry' }]);
    await runKeyRotation(env as Env, notifyAt + 600);
    await waitForNotifications(f.hook.id, 1);
    await sleep(500);
    expect((await deliveredEvents(f.hook.id)).map((e) => [e.eventType, e.subject])).toEqual([
      ['Microsoft.KeyVault.KeyNearExpiry', 'policy-timed'],
    ]);
  }, 30_000);

  it('finds its candidates through the exp index of every kind', async () => {
    for (const kind of EXPIRING_KINDS) {
      for (const stage of kind.stages) {
        const query = dueQuery(db, kind, stage, nowSeconds(), 100).toSQL();
        const plan = await env.DB.prepare(`EXPLAIN QUERY PLAN ${query.sql}`)
          .bind(...query.params)
          .all<{ detail: string }>();
        const details = plan.results.map((r) => r.detail);
        const table = `${kind.kind}_versions`;
        // The version table is searched by its exp range, not scanned; the rest are key lookups.
        expect(
          details.some((d) => d.includes(`USING INDEX ${table}_exp (exp>? AND exp<?)`)),
          details.join('\n'),
        ).toBe(true);
        expect(
          details.filter((d) => d.startsWith('SCAN')),
          details.join('\n'),
        ).toEqual([]);
      }
    }
  });
});
