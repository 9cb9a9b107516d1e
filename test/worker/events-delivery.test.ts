// Event delivery: fan-out, signed webhooks, retries with backoff, dead letters and redelivery.
import { env } from 'cloudflare:workers';
import { HTTP } from 'cloudevents';
import { Webhook } from 'standardwebhooks';
import { beforeAll, describe, expect, it } from 'vitest';
import { signature } from '../../src/events/signing';
import type { DeliveryMessage } from '../../src/events/fanout';
import type { VaultEvent } from '../../src/events/event';
import { APEX, admin, call, json, newVault, tokenFor } from './helpers';
import {
  configureHook,
  newHook,
  notifications,
  parseCloudEvents,
  runQueue,
  subscribe,
  subscriptionBody,
  vaultEvent,
  verifyStandardWebhook,
  waitForNotifications,
} from './events-helpers';
import { rows, sleep } from './identity-helpers';

// Delivery end to end: the events consumer stores and fans out through the real delivery queue
// to real receivers on loopback, which verify the Standard Webhooks signature and parse the
// shapes; the failure paths drive the delivery consumer with constructed messages (attempt
// numbers of our choosing) against receivers that answer 500, 429, 410, redirect, hang or are
// down, and check retries, delays and the dead letters in R2.

let token: string;
let tenantId: string;
let vault: string;

beforeAll(async () => {
  const creds = await admin();
  tenantId = creds.tenantId;
  token = await tokenFor(creds);
  vault = await newVault(token);
});

const mgmt = (path = '') => `${APEX}/management/vaults/${vault}/eventSubscriptions${path}`;

async function subscription(name: string) {
  const [row] = await rows<{ id: string; vault_id: string }>(
    'select id, vault_id from event_subscriptions where name = ? and vault_id = (select id from vaults where name = ?)',
    name,
    vault,
  );
  return row!;
}

async function message(name: string, events: VaultEvent[], enqueuedAt = Date.now()): Promise<DeliveryMessage> {
  const s = await subscription(name);
  return { subscriptionId: s.id, vaultId: s.vault_id, events, enqueuedAt };
}

async function create(name: string, hookConfig = {}, extra: Parameters<typeof subscriptionBody>[1] = {}) {
  const hook = await newHook(hookConfig);
  const { status, body } = await subscribe(token, vault, name, subscriptionBody(hook.url, extra));
  expect(status, JSON.stringify(body)).toBe(201);
  return { hook, secret: body.properties.signingSecret as string };
}

const status = async (name: string) => (await json(await call('GET', mgmt(`/${name}`), { token }))).properties.deliveryStatus;

describe('signing', () => {
  it('matches the Standard Webhooks reference test vector', async () => {
    // The vector of the standard-webhooks reference libraries' tests.
    const sig = await signature(
      'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
      'msg_p5jXN8AQM9LWM0D4loKWxJek',
      1614265330,
      '{"test": 2432232314}',
    );
    expect(sig).toBe('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
  });
});

describe('delivery through the queues', () => {
  it('stores, filters, fans out and delivers signed Event Grid and CloudEvents payloads', async () => {
    const eg = await create('deliver-eg', {}, { types: ['KeyNewVersionCreated'], begins: 'evented' });
    const ce = await create('deliver-ce', {}, { schema: 'CloudEventSchemaV1_0' });
    const matching = vaultEvent(vault, tenantId);
    const otherSubject = vaultEvent(vault, tenantId, { subject: 'unrelated' });
    const otherType = vaultEvent(vault, tenantId, { eventType: 'Microsoft.KeyVault.KeyNearExpiry' });
    const result = await runQueue('ekv-events', [matching, otherSubject, otherType]);
    expect(result.retryAll).toBe(false);

    const [egGot] = await waitForNotifications(eg.hook.id, 1);
    expect(egGot).toBeDefined();
    expect(await verifyStandardWebhook(eg.secret, egGot!.headers, egGot!.body)).toBe(true);
    expect(await verifyStandardWebhook(ce.secret, egGot!.headers, egGot!.body)).toBe(false);
    expect(egGot!.headers['webhook-id']).toBe(matching.id);
    expect(egGot!.headers['content-type']).toBe('application/json');
    expect(JSON.parse(egGot!.body)).toEqual([matching]);

    const ceGot = await waitForNotifications(ce.hook.id, 3);
    expect(ceGot).toHaveLength(3);
    const parsed = ceGot.map((r) => parseCloudEvents(r.headers['content-type']!, r.body)[0]!);
    const mine = parsed.find((e) => e.id === matching.id)!;
    expect(mine).toEqual({
      specversion: '1.0',
      type: 'Microsoft.KeyVault.KeyNewVersionCreated',
      source: `/tenants/${tenantId}/providers/Microsoft.KeyVault/vaults/${vault}`,
      id: matching.id,
      time: matching.eventTime,
      subject: 'evented-key',
      datacontenttype: 'application/json',
      data: matching.data,
    });
    for (const r of ceGot) expect(await verifyStandardWebhook(ce.secret, r.headers, r.body)).toBe(true);
    // And as the reference libraries see them: the standardwebhooks package verifies (it throws
    // otherwise), the CloudEvents SDK parses structured mode.
    expect(new Webhook(eg.secret).verify(egGot!.body, egGot!.headers)).toEqual([matching]);
    expect(() => new Webhook(ce.secret).verify(egGot!.body, egGot!.headers)).toThrow();
    for (const r of ceGot) new Webhook(ce.secret).verify(r.body, r.headers);
    const sdk = HTTP.toEvent({ headers: ceGot[0]!.headers, body: ceGot[0]!.body });
    expect(Array.isArray(sdk) ? sdk[0]!.specversion : sdk.specversion).toBe('1.0');
    expect(parsed.map((e) => e.id)).toContain(Array.isArray(sdk) ? sdk[0]!.id : sdk.id);

    await sleep(300);
    expect(await notifications(eg.hook.id)).toHaveLength(1);
    const s = await status('deliver-eg');
    expect(s.delivered).toBe(1);
    expect(s.lastSuccessTime).not.toBeNull();
    expect((await rows('select id from events where id = ?', matching.id)).length).toBe(1);
  }, 60_000);

  it('batches up to maxEventsPerBatch events a delivery (CloudEvents batch mode)', async () => {
    const batched = await create('deliver-batch', {}, { schema: 'CloudEventSchemaV1_0', maxEventsPerBatch: 2 });
    const events = [vaultEvent(vault, tenantId), vaultEvent(vault, tenantId), vaultEvent(vault, tenantId)];
    await runQueue('ekv-events', events);
    const got = await waitForNotifications(batched.hook.id, 2);
    expect(got).toHaveLength(2);
    const sizes = got.map((r) => parseCloudEvents(r.headers['content-type']!, r.body).length).sort();
    expect(sizes).toEqual([1, 2]);
    for (const r of got) {
      expect(r.headers['content-type']).toMatch(/^application\/cloudevents-batch\+json/);
      expect(r.headers['webhook-id']).toMatch(/^batch-|^[0-9a-f-]{36}$/);
      expect(await verifyStandardWebhook(batched.secret, r.headers, r.body)).toBe(true);
    }
  }, 60_000);
});

describe('VaultAccessPolicyChanged', () => {
  it('is emitted when an access policy changes, and delivered to subscribers of that type', async () => {
    const { hook, secret } = await create('policies', {}, { types: ['VaultAccessPolicyChanged'] });
    const objectId = crypto.randomUUID();
    const res = await call('PUT', `${APEX}/management/vaults/${vault}/accessPolicies/${objectId}`, {
      token,
      body: { permissions: { secrets: ['get'] } },
    });
    expect(res.status, await res.clone().text()).toBe(201);
    const [got] = await waitForNotifications(hook.id, 1);
    expect(got, 'no VaultAccessPolicyChanged delivered').toBeDefined();
    expect(await verifyStandardWebhook(secret, got!.headers, got!.body)).toBe(true);
    const [event] = JSON.parse(got!.body);
    expect(event).toMatchObject({
      eventType: 'Microsoft.KeyVault.VaultAccessPolicyChanged',
      subject: vault,
      data: { VaultName: vault, ObjectType: 'Vault', Version: null },
    });
  }, 60_000);
});

describe('retries and dead letters', () => {
  it('retries 5xx with exponential backoff and jitter, and honours Retry-After on 429', async () => {
    const { hook } = await create('retry-5xx');
    await configureHook(hook.id, { status: 503 });
    const first = await runQueue('ekv-event-delivery', [await message('retry-5xx', [vaultEvent(vault, tenantId)])], 1);
    expect(first.retries).toHaveLength(1);
    expect(first.retries[0]).toBeGreaterThanOrEqual(8);
    expect(first.retries[0]).toBeLessThanOrEqual(12);
    const third = await runQueue('ekv-event-delivery', [await message('retry-5xx', [vaultEvent(vault, tenantId)])], 3);
    expect(third.retries[0]).toBeGreaterThanOrEqual(32);
    expect(third.retries[0]).toBeLessThanOrEqual(48);

    await configureHook(hook.id, { status: 429, retryAfter: '120' });
    const limited = await runQueue('ekv-event-delivery', [await message('retry-5xx', [vaultEvent(vault, tenantId)])], 1);
    expect(limited.retries).toEqual([120]);
    const s = await status('retry-5xx');
    expect(s.failed).toBe(3);
    expect(s.lastError).toBe('HTTP 429');
    expect(s.deadLettered).toBe(0);
  });

  it('retries a receiver that is down, and one that does not answer in time', async () => {
    const { hook } = await create('retry-down');
    await env.DB.prepare('update event_subscriptions set endpoint_url = ? where name = ?')
      .bind(env.WEBHOOK_DEAD_URL, 'retry-down')
      .run();
    const down = await runQueue('ekv-event-delivery', [await message('retry-down', [vaultEvent(vault, tenantId)])], 1);
    expect(down.retries).toHaveLength(1);
    expect((await status('retry-down')).lastError).toBe('network error');

    await env.DB.prepare('update event_subscriptions set endpoint_url = ? where name = ?').bind(hook.url, 'retry-down').run();
    await configureHook(hook.id, { hang: true });
    const started = Date.now();
    const hung = await runQueue('ekv-event-delivery', [await message('retry-down', [vaultEvent(vault, tenantId)])], 1);
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(hung.retries).toHaveLength(1);
    expect((await status('retry-down')).lastError).toBe('timeout');
  }, 40_000);

  it('dead-letters after the last attempt, and a 410 or a redirect at once; lists and redelivers them', async () => {
    const { hook, secret } = await create('dead', {}, { maxDeliveryAttempts: 2 });
    await configureHook(hook.id, { status: 500 });
    const exhausted = vaultEvent(vault, tenantId);
    const last = await runQueue('ekv-event-delivery', [await message('dead', [exhausted])], 2);
    expect(last).toMatchObject({ acked: 1, retries: [] });

    await configureHook(hook.id, { status: 410 });
    const gone = vaultEvent(vault, tenantId);
    expect((await runQueue('ekv-event-delivery', [await message('dead', [gone])], 1)).retries).toEqual([]);

    await configureHook(hook.id, { status: 307, location: 'http://169.254.169.254/latest/meta-data/' });
    const redirected = vaultEvent(vault, tenantId);
    expect((await runQueue('ekv-event-delivery', [await message('dead', [redirected])], 1)).retries).toEqual([]);

    const s = await subscription('dead');
    const stored = await env.EVENT_DEADLETTER.get(`${s.vault_id}/${s.id}/${gone.id}.json`);
    const letter = (await stored!.json()) as Record<string, unknown>;
    expect(letter).toMatchObject({
      event: gone,
      subscriptionName: 'dead',
      reason: 'NonRetryableFailure',
      lastError: 'HTTP 410',
      attempts: 1,
    });

    const list = await json(await call('GET', mgmt('/dead/deadLetters'), { token }));
    const byId = Object.fromEntries(list.value.map((l: { eventId: string }) => [l.eventId, l]));
    expect(byId[exhausted.id]).toMatchObject({
      reason: 'MaxDeliveryAttemptsExceeded',
      attempts: 2,
      eventType: 'Microsoft.KeyVault.KeyNewVersionCreated',
    });
    expect(byId[gone.id]).toMatchObject({ reason: 'NonRetryableFailure', attempts: 1 });
    expect(byId[redirected.id]).toMatchObject({ reason: 'NonRetryableFailure' });
    expect((await status('dead')).deadLettered).toBe(3);

    // Redelivery, once the receiver is back: through the real delivery queue.
    await configureHook(hook.id, {});
    const before = (await notifications(hook.id)).length;
    const res = await call('POST', mgmt(`/dead/deadLetters/${gone.id}/redeliver`), { token });
    expect(res.status).toBe(202);
    const got = await waitForNotifications(hook.id, before + 1);
    const redelivered = got.at(-1)!;
    expect(JSON.parse(redelivered.body)).toEqual([gone]);
    expect(await verifyStandardWebhook(secret, redelivered.headers, redelivered.body)).toBe(true);
    expect(await env.EVENT_DEADLETTER.get(`${s.vault_id}/${s.id}/${gone.id}.json`)).toBeNull();
    expect((await call('POST', mgmt(`/dead/deadLetters/${gone.id}/redeliver`), { token })).status).toBe(404);
  }, 60_000);

  it('dead-letters what outlived its time to live without calling the receiver', async () => {
    const { hook } = await create('ttl', {}, { ttl: 1 });
    const old = vaultEvent(vault, tenantId);
    const result = await runQueue('ekv-event-delivery', [await message('ttl', [old], Date.now() - 2 * 60_000)], 4);
    expect(result).toMatchObject({ acked: 1, retries: [] });
    expect(await notifications(hook.id)).toEqual([]);
    const list = await json(await call('GET', mgmt('/ttl/deadLetters'), { token }));
    expect(list.value).toEqual([expect.objectContaining({ eventId: old.id, reason: 'TimeToLiveExceeded' })]);
  });

  it('drops deliveries of a deleted subscription', async () => {
    const { hook } = await create('deleted');
    const m = await message('deleted', [vaultEvent(vault, tenantId)]);
    expect((await call('DELETE', mgmt('/deleted'), { token })).status).toBe(204);
    expect(await runQueue('ekv-event-delivery', [m], 1)).toMatchObject({ acked: 1, retries: [] });
    expect(await notifications(hook.id)).toEqual([]);
  });
});

describe('secret rotation', () => {
  it('signs with both secrets during the overlap, with the new one only after', async () => {
    const { hook, secret: old } = await create('rotate');
    const res = await call('POST', mgmt('/rotate/rotateSecret'), { token, body: { overlapMinutes: 30 } });
    expect(res.status).toBe(200);
    const rotated = await json(res);
    const fresh = rotated.properties.signingSecret as string;
    expect(fresh).not.toBe(old);
    expect(rotated.properties.signingSecretOverlapUntil).not.toBeNull();

    await runQueue('ekv-event-delivery', [await message('rotate', [vaultEvent(vault, tenantId)])], 1);
    const [during] = await notifications(hook.id);
    expect(during!.headers['webhook-signature']!.split(' ')).toHaveLength(2);
    expect(await verifyStandardWebhook(old, during!.headers, during!.body)).toBe(true);
    expect(await verifyStandardWebhook(fresh, during!.headers, during!.body)).toBe(true);

    const again = await json(await call('POST', mgmt('/rotate/rotateSecret'), { token, body: { overlapMinutes: 0 } }));
    const newest = again.properties.signingSecret as string;
    await runQueue('ekv-event-delivery', [await message('rotate', [vaultEvent(vault, tenantId)])], 1);
    const after = (await notifications(hook.id))[1]!;
    expect(after.headers['webhook-signature']!.split(' ')).toHaveLength(1);
    expect(await verifyStandardWebhook(newest, after.headers, after.body)).toBe(true);
    expect(await verifyStandardWebhook(fresh, after.headers, after.body)).toBe(false);
    expect((await call('POST', mgmt('/rotate/rotateSecret'), { token, body: { overlapMinutes: 1441 } })).status).toBe(400);
  });
});
