/**
 * Key rotation: policies as Azure validates them, rotation on demand, and the cron rotating once
 * under overlapping runs.
 */
import {
  createExecutionContext,
  createMessageBatch,
  createScheduledController,
  getQueueResult,
  waitOnExecutionContext,
} from 'cloudflare:test';
import { beforeAll, describe, expect, it } from 'vitest';
import { BridgeClient, HsmKeyExistsError } from '../../src/crypto/bridge-client';
import { fromBase64Url, toBase64Url } from '../../src/core/encoding';
import type { Env } from '../../src/core/env';
import { emitEvents, eventId, newVersionEvent, type VaultEvent } from '../../src/events/event';
import worker from '../../src/index';
import { CLAIM_SECONDS, runKeyRotation } from '../../src/jobs/rotation';
import { database } from '../../src/storage/db';
import { findVault } from '../../src/storage/vaults';
import { parseDuration, rotationVersionId, shiftByDuration } from '../../src/objects/rotation';
import { API, call, env, json, setupVault } from './helpers';
import { rows, sleep } from './identity-helpers';

const db = database(env.DB);
const DAY = 86_400;
const nowSeconds = () => Math.floor(Date.now() / 1000);
const plus = (at: number, iso: string) => shiftByDuration(at, parseDuration(iso)!, 1);
const minus = (at: number, iso: string) => shiftByDuration(at, parseDuration(iso)!, -1);
const versionOf = (kid: string) => kid.split('/').pop()!;
const DEFAULT_POLICY = {
  lifetimeActions: [{ trigger: { timeBeforeExpiry: 'P30D' }, action: { type: 'Notify' } }],
  attributes: null,
};

/** A vault of its own, with small helpers bound to it. */
async function vaultFixture() {
  const { token, origin, vault } = await setupVault();
  const record = (await findVault(db, vault))!;
  const url = (path: string) => `${origin}${path}${path.includes('?') ? '&' : '?'}${API}`;
  const req = (method: string, path: string, body?: unknown) =>
    call(method, url(path), { token, ...(body !== undefined ? { body } : {}) });
  const create = async (name: string, body: Record<string, unknown>) => {
    const res = await req('POST', `/keys/${name}/create`, body);
    if (res.status !== 200) throw new Error(`create ${name}: ${res.status} ${await res.text()}`);
    return json(res);
  };
  const setPolicy = async (name: string, policy: unknown) => {
    const res = await req('PUT', `/keys/${name}/rotationpolicy`, policy);
    if (res.status !== 200) throw new Error(`policy ${name}: ${res.status} ${await res.text()}`);
    return json(res);
  };
  const versions = async (name: string) =>
    rows<{ version: string; exp: number | null; created: number; hsm_handle: string | null; public_jwk: string | null }>(
      'select version, exp, created, hsm_handle, public_jwk from key_versions where vault_id = ? and name = ? order by created, rowid',
      record.id,
      name,
    );
  const head = async (name: string) =>
    (
      await rows<{
        latest_version: string;
        rotation_due_at: number | null;
        rotation_claim: string | null;
        rotation_claim_until: number | null;
      }>('select * from keys where vault_id = ? and name = ?', record.id, name)
    )[0]!;
  const setHead = (name: string, assignments: string, ...params: unknown[]) =>
    env.DB.prepare(`update keys set ${assignments} where vault_id = ? and name = ?`)
      .bind(...params, record.id, name)
      .run();
  return { token, origin, vault, record, url, req, create, setPolicy, versions, head, setHead };
}

const run = (now: number) => runKeyRotation(env as Env, now);

/** Waits until the events of a key reach `expected` (the real queue delivers them to the real consumer). */
async function eventsOf(vault: string, name: string, expected: number, timeoutMs = 8000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await rows<{ id: string; event_type: string; version: string; body: string }>(
      'select * from events where vault = ? and subject = ? collate nocase order by event_time, id',
      vault,
      name,
    );
    if (found.length >= expected || Date.now() > deadline) return found;
    await sleep(100);
  }
}

/** The events of a key once delivery has settled: what arrived, and nothing more after a while. */
async function settledEvents(vault: string, name: string, expected: number) {
  await eventsOf(vault, name, expected);
  await sleep(1500);
  return eventsOf(vault, name, expected, 0);
}

describe('rotation policy API', () => {
  let f: Awaited<ReturnType<typeof vaultFixture>>;
  beforeAll(async () => {
    f = await vaultFixture();
  });

  it('answers a key without a policy with Azure default policy: Notify 30 days before expiry, no id', async () => {
    await f.create('no-policy', { kty: 'EC' });
    const res = await f.req('GET', '/keys/no-policy/rotationpolicy');
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual(DEFAULT_POLICY);
  });

  it('sets a policy and reads it back; the default Notify stays unless the policy names its own', async () => {
    const created = await f.create('policy-key', { kty: 'RSA' });
    const body = {
      lifetimeActions: [
        // The documented example's shapes: a null or empty other trigger, a lowercase type.
        { trigger: { timeAfterCreate: 'P18M', timeBeforeExpiry: null }, action: { type: 'rotate' } },
        { trigger: { timeBeforeExpiry: 'P30D', timeAfterCreate: '' }, action: { type: 'Notify' } },
      ],
      attributes: { expiryTime: 'P2Y' },
    };
    const before = nowSeconds();
    const put = await f.setPolicy('policy-key', body);
    expect(put).toEqual({
      id: `${f.origin}/keys/policy-key/rotationpolicy`,
      lifetimeActions: [
        { trigger: { timeAfterCreate: 'P18M' }, action: { type: 'Rotate' } },
        { trigger: { timeBeforeExpiry: 'P30D' }, action: { type: 'Notify' } },
      ],
      attributes: { expiryTime: 'P2Y', created: expect.any(Number), updated: expect.any(Number) },
    });
    expect(put.attributes.created).toBeGreaterThanOrEqual(before);
    expect(await json(await f.req('GET', '/keys/POLICY-KEY/rotationpolicy'))).toEqual(put);
    // Rotation is scheduled 18 months after the latest version's creation (it has no exp to notify about).
    expect((await f.head('policy-key')).rotation_due_at).toBe(plus(created.attributes.created, 'P18M'));

    // A policy without Notify: the default one still applies (GET and PUT agree, as Azure's do).
    const rotateOnly = await f.setPolicy('policy-key', {
      lifetimeActions: [{ trigger: { timeAfterCreate: 'P7D' }, action: { type: 'Rotate' } }],
      attributes: {},
    });
    expect(rotateOnly.lifetimeActions).toEqual([
      { trigger: { timeAfterCreate: 'P7D' }, action: { type: 'Rotate' } },
      { trigger: { timeBeforeExpiry: 'P30D' }, action: { type: 'Notify' } },
    ]);
    expect(rotateOnly.attributes).toEqual({ created: put.attributes.created, updated: expect.any(Number) });
    expect(await json(await f.req('GET', '/keys/policy-key/rotationpolicy'))).toEqual(rotateOnly);

    // No lifetime actions: back to the defaults.
    const reset = await f.setPolicy('policy-key', { lifetimeActions: [] });
    expect(reset.lifetimeActions).toEqual(DEFAULT_POLICY.lifetimeActions);
    expect(reset.attributes).not.toHaveProperty('expiryTime');
    expect((await f.head('policy-key')).rotation_due_at).toBeNull();
  });

  it('refuses every policy Azure refuses with 400 BadParameter, writing nothing', async () => {
    await f.create('strict', { kty: 'EC' });
    const valid = await f.setPolicy('strict', {
      lifetimeActions: [
        { trigger: { timeAfterCreate: 'P60D' }, action: { type: 'Rotate' } },
        { trigger: { timeBeforeExpiry: 'P10D' }, action: { type: 'Notify' } },
      ],
      attributes: { expiryTime: 'P90D' },
    });
    const dueBefore = (await f.head('strict')).rotation_due_at;
    const rotate = (trigger: object) => ({ trigger, action: { type: 'Rotate' } });
    const notify = (trigger: object) => ({ trigger, action: { type: 'Notify' } });
    const refused: Array<[string, unknown]> = [
      ['expiryTime under 28 days', { lifetimeActions: [], attributes: { expiryTime: 'P27D' } }],
      ['expiryTime of hours under 28 days', { lifetimeActions: [], attributes: { expiryTime: 'PT48H' } }],
      ['expiryTime not ISO 8601', { lifetimeActions: [], attributes: { expiryTime: '90D' } }],
      ['lowercase duration', { lifetimeActions: [rotate({ timeAfterCreate: 'p30d' })] }],
      ['fractional duration', { lifetimeActions: [rotate({ timeAfterCreate: 'P7.5D' })] }],
      ['bare P', { lifetimeActions: [rotate({ timeAfterCreate: 'P' })] }],
      ['bare PT', { lifetimeActions: [rotate({ timeAfterCreate: 'P1DT' })] }],
      ['zero duration', { lifetimeActions: [notify({ timeBeforeExpiry: 'P0D' })] }],
      ['absurd duration', { lifetimeActions: [rotate({ timeAfterCreate: 'P999999Y' })] }],
      [
        'both triggers',
        { lifetimeActions: [rotate({ timeAfterCreate: 'P30D', timeBeforeExpiry: 'P30D' })], attributes: { expiryTime: 'P90D' } },
      ],
      ['no trigger time', { lifetimeActions: [rotate({})] }],
      ['no trigger at all', { lifetimeActions: [{ action: { type: 'Rotate' } }] }],
      ['no action', { lifetimeActions: [{ trigger: { timeAfterCreate: 'P30D' } }] }],
      ['unknown action', { lifetimeActions: [{ trigger: { timeAfterCreate: 'P30D' }, action: { type: 'Delete' } }] }],
      ['two Rotate actions', { lifetimeActions: [rotate({ timeAfterCreate: 'P30D' }), rotate({ timeAfterCreate: 'P40D' })] }],
      ['two Notify actions', { lifetimeActions: [notify({ timeBeforeExpiry: 'P30D' }), notify({ timeBeforeExpiry: 'P20D' })] }],
      ['Notify after creation', { lifetimeActions: [notify({ timeAfterCreate: 'P30D' })] }],
      ['rotation sooner than 7 days after creation', { lifetimeActions: [rotate({ timeAfterCreate: 'P6D' })] }],
      ['rotation sooner than 7 days, in hours', { lifetimeActions: [rotate({ timeAfterCreate: 'PT167H' })] }],
      [
        'rotation later than 7 days before expiry',
        { lifetimeActions: [rotate({ timeBeforeExpiry: 'P6D' })], attributes: { expiryTime: 'P90D' } },
      ],
      ['rotation before expiry without expiryTime', { lifetimeActions: [rotate({ timeBeforeExpiry: 'P30D' })] }],
      [
        'rotation before expiry too early',
        { lifetimeActions: [rotate({ timeBeforeExpiry: 'P85D' })], attributes: { expiryTime: 'P90D' } },
      ],
      [
        'rotation after creation too close to expiry',
        { lifetimeActions: [rotate({ timeAfterCreate: 'P84D' })], attributes: { expiryTime: 'P90D' } },
      ],
      [
        'notification not shorter than expiryTime',
        { lifetimeActions: [notify({ timeBeforeExpiry: 'P3M' })], attributes: { expiryTime: 'P90D' } },
      ],
      ['lifetimeActions not a list', { lifetimeActions: { trigger: {} } }],
      ['not JSON', '{"lifetimeActions": ['],
    ];
    for (const [why, body] of refused) {
      const res = await f.req('PUT', '/keys/strict/rotationpolicy', body);
      expect(res.status, why).toBe(400);
      expect((await json(res)).error.code, why).toBe('BadParameter');
    }
    expect(await json(await f.req('GET', '/keys/strict/rotationpolicy'))).toEqual(valid);
    expect((await f.head('strict')).rotation_due_at).toBe(dueBefore);
  });

  it('accepts what Azure accepts at the limits', async () => {
    await f.create('limits', { kty: 'EC' });
    const accepted = [
      {
        lifetimeActions: [{ trigger: { timeAfterCreate: 'P7D' }, action: { type: 'Rotate' } }],
        attributes: { expiryTime: 'P28D' },
      },
      {
        lifetimeActions: [{ trigger: { timeBeforeExpiry: 'P7D' }, action: { type: 'Rotate' } }],
        attributes: { expiryTime: 'P1M' },
      },
      {
        lifetimeActions: [{ trigger: { timeAfterCreate: 'P1Y6M' }, action: { type: 'ROTATE' } }],
        attributes: { expiryTime: 'P2Y' },
      },
      { lifetimeActions: [{ trigger: { timeBeforeExpiry: 'P1D' }, action: { type: 'notify' } }] },
      {
        lifetimeActions: [{ trigger: { timeBeforeExpiry: 'PT12H' }, action: { type: 'Notify' } }],
        attributes: { expiryTime: 'P4W' },
      },
      {},
    ];
    for (const body of accepted) {
      const res = await f.req('PUT', '/keys/limits/rotationpolicy', body);
      expect(res.status, JSON.stringify(body)).toBe(200);
    }
  });

  it('answers 404 for unknown and deleted keys, on every rotation route', async () => {
    const policy = { lifetimeActions: [{ trigger: { timeAfterCreate: 'P30D' }, action: { type: 'Rotate' } }] };
    for (const name of ['never-made', 'gone']) {
      if (name === 'gone') {
        await f.create('gone', { kty: 'EC' });
        expect((await f.req('DELETE', '/keys/gone')).status).toBe(200);
      }
      for (const [method, path, body] of [
        ['GET', `/keys/${name}/rotationpolicy`, undefined],
        ['PUT', `/keys/${name}/rotationpolicy`, policy],
        ['POST', `/keys/${name}/rotate`, undefined],
      ] as const) {
        const res = await f.req(method, path, body);
        expect(res.status, `${method} ${path}`).toBe(404);
        expect((await json(res)).error.code).toBe('KeyNotFound');
      }
    }
    expect((await f.versions('gone')).length).toBe(1);
  });
});

describe('rotation on demand', () => {
  let f: Awaited<ReturnType<typeof vaultFixture>>;
  beforeAll(async () => {
    f = await vaultFixture();
  });

  it('makes a new software version of the same type, size, ops and tags, expiring after expiryTime', async () => {
    const first = await f.create('soft', { kty: 'RSA', key_size: 3072, key_ops: ['sign', 'verify'], tags: { team: 'payments' } });
    await f.setPolicy('soft', { lifetimeActions: [], attributes: { expiryTime: 'P90D' } });
    const before = nowSeconds();
    const res = await f.req('POST', '/keys/soft/rotate');
    expect(res.status).toBe(200);
    const rotated = await json(res);
    expect(versionOf(rotated.key.kid)).not.toBe(versionOf(first.key.kid));
    expect(rotated.key).toMatchObject({ kty: 'RSA', key_ops: ['sign', 'verify'], e: first.key.e });
    expect(fromBase64Url(rotated.key.n).length).toBe(384);
    expect(rotated.key.n).not.toBe(first.key.n);
    expect(rotated.tags).toEqual({ team: 'payments' });
    expect(rotated.attributes.exp).toBeGreaterThanOrEqual(plus(before, 'P90D'));
    expect(rotated.attributes.exp).toBeLessThanOrEqual(plus(nowSeconds(), 'P90D'));
    for (const field of ['d', 'p', 'q', 'dp', 'dq', 'qi']) expect(rotated.key).not.toHaveProperty(field);
    expect((await json(await f.req('GET', '/keys/soft'))).key.kid).toBe(rotated.key.kid);
    expect((await f.versions('soft')).map((v) => v.version)).toContain(versionOf(first.key.kid));
    expect((await f.versions('soft')).length).toBe(2);
  });

  it('makes a new EC-HSM version inside the token, usable at once, with no exp without a policy', async () => {
    const first = await f.create('hsm', { kty: 'EC-HSM', crv: 'P-384' });
    const res = await f.req('POST', '/keys/hsm/rotate');
    expect(res.status).toBe(200);
    const rotated = await json(res);
    expect(rotated.key).toMatchObject({ kty: 'EC-HSM', crv: 'P-384', key_ops: first.key.key_ops });
    expect(rotated.key.x).not.toBe(first.key.x);
    expect(rotated.attributes).not.toHaveProperty('exp');
    const made = (await f.versions('hsm')).find((v) => v.version === versionOf(rotated.key.kid));
    expect(made!.hsm_handle).toBe(versionOf(rotated.key.kid));
    await expectSignsWith(f, 'hsm', rotated.key);
  });

  it('queues KeyNewVersionCreated for the new version, stored exactly once', async () => {
    await f.create('evented', { kty: 'EC' });
    const rotated = await json(await f.req('POST', '/keys/evented/rotate'));
    const version = versionOf(rotated.key.kid);
    const id = await eventId(f.record.id, 'Microsoft.KeyVault.KeyNewVersionCreated', 'evented', version);
    const stored = (await eventsOf(f.vault, 'evented', 2)).filter((e) => e.id === id); // creation's and rotation's
    expect(stored).toHaveLength(1);
    expect(JSON.parse(stored[0]!.body)).toEqual({
      id,
      topic: `/tenants/${f.record.tenantId}/providers/Microsoft.KeyVault/vaults/${f.vault}`,
      subject: 'evented',
      eventType: 'Microsoft.KeyVault.KeyNewVersionCreated',
      eventTime: new Date(rotated.attributes.created * 1000).toISOString(),
      data: {
        Id: rotated.key.kid,
        VaultName: f.vault,
        ObjectType: 'Key',
        ObjectName: 'evented',
        Version: version,
        NBF: null,
        EXP: null,
      },
      dataVersion: '1',
      metadataVersion: '1',
    });

    // Sent again (a retried emit) and delivered twice (a redelivered batch): still one row.
    const again = await newVersionEvent(f.origin, f.record, {
      name: 'evented',
      version,
      nbf: null,
      exp: null,
      created: rotated.attributes.created,
    });
    expect(await emitEvents(env.EVENTS_QUEUE, [again])).toBe(true);
    const batch = createMessageBatch<VaultEvent>('ekv-events', [
      { id: 'm1', timestamp: new Date(), attempts: 1, body: again },
      { id: 'm2', timestamp: new Date(), attempts: 2, body: again },
    ]);
    const ctx = createExecutionContext();
    await (worker.queue as ExportedHandlerQueueHandler<Env, VaultEvent>)(batch, env as Env, ctx);
    expect((await getQueueResult(batch, ctx)).ackAll).toBe(true);
    await sleep(1500);
    expect(await rows('select id from events where id = ?', id)).toHaveLength(1);
  }, 30_000);
});

/** Signs with the latest version through the API and verifies with its public key (WebCrypto). */
async function expectSignsWith(f: Awaited<ReturnType<typeof vaultFixture>>, name: string, key: Record<string, string>) {
  const message = new TextEncoder().encode('rotated and working');
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-384', message));
  const res = await f.req('POST', `/keys/${name}/sign`, { alg: 'ES384', value: toBase64Url(digest) });
  expect(res.status).toBe(200);
  const signed = await json(res);
  expect(signed.kid).toBe(key.kid);
  const publicKey = await crypto.subtle.importKey(
    'jwk',
    { kty: 'EC', crv: key.crv, x: key.x, y: key.y },
    { name: 'ECDSA', namedCurve: key.crv! },
    true,
    ['verify'],
  );
  expect(await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-384' }, publicKey, fromBase64Url(signed.value), message)).toBe(
    true,
  );
}

describe('cron rotation', () => {
  let f: Awaited<ReturnType<typeof vaultFixture>>;
  beforeAll(async () => {
    f = await vaultFixture();
  });

  it('rotates by timeAfterCreate when it is due, and not before', async () => {
    const first = await f.create('after-create', { kty: 'EC', crv: 'P-521', tags: { env: 'prod' } });
    await f.setPolicy('after-create', {
      lifetimeActions: [{ trigger: { timeAfterCreate: 'P30D' }, action: { type: 'Rotate' } }],
      attributes: { expiryTime: 'P90D' },
    });
    const due = plus(first.attributes.created, 'P30D');
    expect((await f.head('after-create')).rotation_due_at).toBe(due);

    await run(nowSeconds());
    await run(due - 60);
    expect(await f.versions('after-create')).toHaveLength(1);

    const at = due + 1;
    await run(at);
    const versions = await f.versions('after-create');
    expect(versions).toHaveLength(2);
    const latest = await json(await f.req('GET', '/keys/after-create'));
    expect(latest.key).toMatchObject({ kty: 'EC', crv: 'P-521', key_ops: first.key.key_ops });
    expect(latest.tags).toEqual({ env: 'prod' });
    expect(latest.attributes.exp).toBe(plus(at, 'P90D'));
    // The new version was made under the derived id, and its own schedule starts from it.
    expect(versionOf(latest.key.kid)).toBe(await rotationVersionId(f.record.id, 'after-create', versionOf(first.key.kid)));
    const head = await f.head('after-create');
    expect(head.rotation_due_at).toBe(plus(latest.attributes.created, 'P30D'));
    expect(head.rotation_claim).toBeNull();
    // Its KeyNewVersionCreated is stored.
    const stored = await eventsOf(f.vault, 'after-create', 2); // the created version's, and the rotation's
    expect(stored.map((e) => [e.event_type, e.version])).toContainEqual([
      'Microsoft.KeyVault.KeyNewVersionCreated',
      versionOf(latest.key.kid),
    ]);
  }, 30_000);

  it('rotates by timeBeforeExpiry, and notifies near expiry once per version', async () => {
    const t0 = nowSeconds();
    const exp = t0 + 60 * DAY;
    const first = await f.create('before-expiry', { kty: 'RSA', attributes: { exp } });
    await f.setPolicy('before-expiry', {
      lifetimeActions: [
        { trigger: { timeBeforeExpiry: 'P30D' }, action: { type: 'Rotate' } },
        { trigger: { timeBeforeExpiry: 'P45D' }, action: { type: 'Notify' } },
      ],
      attributes: { expiryTime: 'P90D' },
    });
    const notifyAt = minus(exp, 'P45D');
    const rotateAt = minus(exp, 'P30D');
    expect((await f.head('before-expiry')).rotation_due_at).toBe(notifyAt);

    await run(notifyAt - 60);
    // Only the creation's KeyNewVersionCreated so far.
    expect((await eventsOf(f.vault, 'before-expiry', 2, 1500)).map((e) => e.event_type)).toEqual([
      'Microsoft.KeyVault.KeyNewVersionCreated',
    ]);

    // The Notify time came: KeyNearExpiry for this version, no rotation, next look at the Rotate time.
    await run(notifyAt + 1);
    await run(notifyAt + 120); // nothing is due anymore: no second event
    const notified = (await settledEvents(f.vault, 'before-expiry', 2)).filter(
      (e) => e.event_type !== 'Microsoft.KeyVault.KeyNewVersionCreated',
    );
    expect(notified.map((e) => [e.event_type, e.version])).toEqual([
      ['Microsoft.KeyVault.KeyNearExpiry', versionOf(first.key.kid)],
    ]);
    expect(JSON.parse(notified[0]!.body).data).toMatchObject({
      ObjectName: 'before-expiry',
      Version: versionOf(first.key.kid),
      EXP: exp,
      NBF: null,
    });
    expect(await f.versions('before-expiry')).toHaveLength(1);
    expect((await f.head('before-expiry')).rotation_due_at).toBe(rotateAt);

    // The Rotate time came: one new version, expiring 90 days later.
    await run(rotateAt + 1);
    const versions = await f.versions('before-expiry');
    expect(versions).toHaveLength(2);
    expect(versions.find((v) => v.version !== versionOf(first.key.kid))!.exp).toBe(plus(rotateAt + 1, 'P90D'));
    const all = await settledEvents(f.vault, 'before-expiry', 3);
    expect(all.map((e) => e.event_type).sort()).toEqual([
      'Microsoft.KeyVault.KeyNearExpiry',
      'Microsoft.KeyVault.KeyNewVersionCreated',
      'Microsoft.KeyVault.KeyNewVersionCreated',
    ]);
  }, 30_000);

  it('runs from the Worker scheduled handler, with the scheduled time as its clock', async () => {
    const first = await f.create('scheduled', { kty: 'EC' });
    await f.setPolicy('scheduled', { lifetimeActions: [{ trigger: { timeAfterCreate: 'P7D' }, action: { type: 'Rotate' } }] });
    const at = plus(first.attributes.created, 'P7D') + 5;
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ cron: '*/5 * * * *', scheduledTime: at * 1000 }), env as Env, ctx);
    await waitOnExecutionContext(ctx);
    expect(await f.versions('scheduled')).toHaveLength(2);
  });

  it('rotates exactly once when two runs overlap', async () => {
    const first = await f.create('contended', { kty: 'EC' });
    await f.setPolicy('contended', { lifetimeActions: [{ trigger: { timeAfterCreate: 'P7D' }, action: { type: 'Rotate' } }] });
    const at = plus(first.attributes.created, 'P7D') + 1;
    await Promise.all([run(at), run(at), run(at)]);
    expect(await f.versions('contended')).toHaveLength(2);
    expect((await f.head('contended')).rotation_claim).toBeNull();
    // One for the created version, one for the single rotation.
    const created = (await settledEvents(f.vault, 'contended', 2)).filter(
      (e) => e.event_type === 'Microsoft.KeyVault.KeyNewVersionCreated',
    );
    expect(created).toHaveLength(2);
    expect(new Set(created.map((e) => e.version)).size).toBe(2);
  }, 30_000);

  it('leaves a key another run holds alone, and finishes it once that claim has expired', async () => {
    const first = await f.create('held', { kty: 'EC' });
    await f.setPolicy('held', { lifetimeActions: [{ trigger: { timeAfterCreate: 'P7D' }, action: { type: 'Rotate' } }] });
    const at = plus(first.attributes.created, 'P7D') + 1;
    await f.setHead('held', 'rotation_claim = ?, rotation_claim_until = ?', 'a-live-run', at + 600);
    await run(at);
    expect(await f.versions('held')).toHaveLength(1);
    expect((await f.head('held')).rotation_claim).toBe('a-live-run');

    // The holder died: its claim expires, and the next run does the work.
    await run(at + CLAIM_SECONDS);
    expect(await f.versions('held')).toHaveLength(2);
    expect((await f.head('held')).rotation_claim).toBeNull();
  });

  it('finishes an HSM rotation a run left half-made: its token object is destroyed, not orphaned or used', async () => {
    const first = await f.create('hsm-interrupted', { kty: 'EC-HSM', crv: 'P-384' });
    await f.setPolicy('hsm-interrupted', {
      lifetimeActions: [{ trigger: { timeAfterCreate: 'P7D' }, action: { type: 'Rotate' } }],
    });
    const at = plus(first.attributes.created, 'P7D') + 1;
    // What a run that died after generating would leave: its claim (expired now) and a token
    // object under the version id it derived.
    const id = await rotationVersionId(f.record.id, 'hsm-interrupted', versionOf(first.key.kid));
    const bridge = new BridgeClient(env.BRIDGE_URL, env.BRIDGE_HMAC_SECRET);
    const orphan = await bridge.generateKey(id, { kty: 'EC', crv: 'P-384' });
    await f.setHead('hsm-interrupted', 'rotation_claim = ?, rotation_claim_until = ?', 'a-dead-run', at - 1);

    await run(at);
    const versions = await f.versions('hsm-interrupted');
    expect(versions).toHaveLength(2);
    const made = versions.find((v) => v.version === id)!;
    expect(made.hsm_handle).toBe(id);
    // A fresh token object, not the orphan: its public key differs, and it is the one that signs.
    expect(JSON.parse(made.public_jwk!).x).not.toBe((orphan.publicJwk as { x: string }).x);
    const latest = await json(await f.req('GET', '/keys/hsm-interrupted'));
    expect(versionOf(latest.key.kid)).toBe(id);
    await expectSignsWith(f, 'hsm-interrupted', latest.key);
    // The id is taken by exactly that object: the bridge refuses another.
    await expect(bridge.generateKey(id, { kty: 'EC', crv: 'P-384' })).rejects.toBeInstanceOf(HsmKeyExistsError);
  });

  it('does not rotate deleted keys', async () => {
    const first = await f.create('deleted-due', { kty: 'EC' });
    await f.setPolicy('deleted-due', { lifetimeActions: [{ trigger: { timeAfterCreate: 'P7D' }, action: { type: 'Rotate' } }] });
    expect((await f.req('DELETE', '/keys/deleted-due')).status).toBe(200);
    const at = plus(first.attributes.created, 'P7D') + 1;
    await run(at);
    await run(at + 30 * DAY);
    expect(await f.versions('deleted-due')).toHaveLength(1);
    expect((await f.head('deleted-due')).rotation_claim).toBeNull();
  });
});
