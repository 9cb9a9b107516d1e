/**
 * Helpers of the event tests: controlling the webhook receivers (test/support/webhook-receiver.ts)
 * from inside workerd, a Standard Webhooks verifier and a CloudEvents 1.0 structured-mode parser
 * written from the specs (the delivery tests also check against the `standardwebhooks` package and
 * the CloudEvents SDK, so neither the signer nor the checks rest on one reading), and building
 * delivery messages.
 */
import { createExecutionContext, waitOnExecutionContext } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import worker from '../../src/index';
import type { Env } from '../../src/core/env';
import type { VaultEvent } from '../../src/events/event';
import { APEX, call, json } from './helpers';

export const RECEIVER = env.WEBHOOK_RECEIVER_URL;
const control = (path: string, init: RequestInit = {}) =>
  fetch(`${RECEIVER}/control/${path}`, {
    ...init,
    headers: { authorization: `Bearer ${env.WEBHOOK_RECEIVER_CONTROL_TOKEN}`, 'content-type': 'application/json' },
  });

export interface HookConfig {
  validation?: 'echo' | 'wrong' | number;
  allowOrigin?: boolean;
  status?: number;
  retryAfter?: string;
  hang?: boolean;
  location?: string;
}

/** A hook of its own for a test, configured; returns its URL. */
export async function newHook(config: HookConfig = {}): Promise<{ id: string; url: string }> {
  const id = `h${crypto.randomUUID()}`;
  await configureHook(id, config);
  return { id, url: `${RECEIVER}/hook/${id}` };
}

export async function configureHook(id: string, config: HookConfig): Promise<void> {
  const res = await control(`hooks/${id}`, { method: 'PUT', body: JSON.stringify(config) });
  if (res.status !== 204) throw new Error(`receiver control failed: ${res.status}`);
}

export interface Received {
  method: string;
  headers: Record<string, string>;
  body: string;
  at: number;
}

export async function received(id: string): Promise<Received[]> {
  return (await control(`hooks/${id}/requests`)).json();
}

/** Notifications only (not the handshake). */
export async function notifications(id: string): Promise<Received[]> {
  return (await received(id)).filter((r) => r.method === 'POST' && r.headers['aeg-event-type'] !== 'SubscriptionValidation');
}

export async function waitForNotifications(id: string, n: number, timeoutMs = 20_000): Promise<Received[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = await notifications(id);
    if (got.length >= n || Date.now() > deadline) return got;
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function setDns(name: string, addresses: string[]): Promise<void> {
  await control(`dns/${name}`, { method: 'PUT', body: JSON.stringify(addresses) });
}

// -- Standard Webhooks, verified as the spec says a receiver verifies ----------------------------

function fromBase64(text: string): Uint8Array {
  const s = atob(text);
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

/**
 * Standard Webhooks verification: HMAC-SHA256 with the base64 key after `whsec_`, over
 * `{webhook-id}.{webhook-timestamp}.{body}`; any `v1,` signature in the space-delimited header
 * that matches passes. The timestamp must be within 5 minutes (the spec's tolerance).
 */
export async function verifyStandardWebhook(
  secret: string,
  headers: Record<string, string>,
  body: string,
  now = Date.now(),
): Promise<boolean> {
  const id = headers['webhook-id'];
  const timestamp = headers['webhook-timestamp'];
  const signatures = headers['webhook-signature'];
  if (!id || !timestamp || !signatures) return false;
  if (Math.abs(now / 1000 - Number(timestamp)) > 300) return false;
  const key = await crypto.subtle.importKey(
    'raw',
    fromBase64(secret.replace(/^whsec_/, '')) as BufferSource,
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['verify'],
  );
  for (const sig of signatures.split(' ')) {
    const [version, value] = sig.split(',');
    if (version !== 'v1' || !value) continue;
    if (
      await crypto.subtle.verify(
        'HMAC',
        key,
        fromBase64(value) as BufferSource,
        new TextEncoder().encode(`${id}.${timestamp}.${body}`),
      )
    )
      return true;
  }
  return false;
}

// -- CloudEvents 1.0, JSON structured mode (cloudevents spec, json-format.md) --------------------

export interface ParsedCloudEvent {
  specversion: string;
  id: string;
  source: string;
  type: string;
  subject?: string;
  time?: string;
  datacontenttype?: string;
  data?: unknown;
}

/** Parses a structured-mode (or batch) body, checking the required attributes as the spec lists them. */
export function parseCloudEvents(contentType: string, body: string): ParsedCloudEvent[] {
  const batch = contentType.startsWith('application/cloudevents-batch+json');
  if (!batch && !contentType.startsWith('application/cloudevents+json')) throw new Error(`not structured mode: ${contentType}`);
  const parsed = JSON.parse(body) as unknown;
  const events = batch ? (parsed as ParsedCloudEvent[]) : [parsed as ParsedCloudEvent];
  for (const e of events) {
    if (e.specversion !== '1.0') throw new Error('specversion must be 1.0');
    for (const a of ['id', 'source', 'type'] as const)
      if (typeof e[a] !== 'string' || e[a].length === 0) throw new Error(`${a} is required`);
    if (e.time !== undefined && Number.isNaN(Date.parse(e.time))) throw new Error('time must be RFC 3339');
  }
  return events;
}

// -- API and queue ------------------------------------------------------------------------------

export function subscriptionBody(
  endpointUrl: string,
  extra: {
    schema?: string;
    types?: string[];
    begins?: string;
    ends?: string;
    maxEventsPerBatch?: number;
    maxDeliveryAttempts?: number;
    ttl?: number;
  } = {},
) {
  return {
    properties: {
      destination: {
        endpointType: 'WebHook',
        properties: { endpointUrl, ...(extra.maxEventsPerBatch ? { maxEventsPerBatch: extra.maxEventsPerBatch } : {}) },
      },
      filter: { includedEventTypes: extra.types ?? null, subjectBeginsWith: extra.begins, subjectEndsWith: extra.ends },
      eventDeliverySchema: extra.schema ?? 'EventGridSchema',
      retryPolicy: { maxDeliveryAttempts: extra.maxDeliveryAttempts ?? 30, eventTimeToLiveInMinutes: extra.ttl ?? 1440 },
    },
  };
}

/** Creates a subscription through the management API; returns its body (with the secret). */
export async function subscribe(token: string, vault: string, name: string, body: unknown, opts: { env?: Partial<Env> } = {}) {
  const res = await call('PUT', `${APEX}/management/vaults/${vault}/eventSubscriptions/${name}`, { token, body, env: opts.env });
  return { status: res.status, body: await json(res) };
}

let seq = 0;
/** An event of the vault, shaped like src/events/event.ts makes them. */
export function vaultEvent(vault: string, tenantId: string, overrides: Partial<VaultEvent> = {}): VaultEvent {
  const version = `${Date.now().toString(16)}${(seq++).toString(16)}`.padEnd(32, '0');
  return {
    id: crypto.randomUUID(),
    topic: `/tenants/${tenantId}/providers/Microsoft.KeyVault/vaults/${vault}`,
    subject: 'evented-key',
    eventType: 'Microsoft.KeyVault.KeyNewVersionCreated',
    eventTime: new Date().toISOString(),
    data: {
      Id: `https://${vault}.vault.localhost/keys/evented-key/${version}`,
      VaultName: vault,
      ObjectType: 'Key',
      ObjectName: 'evented-key',
      Version: version,
      NBF: null,
      EXP: null,
    },
    dataVersion: '1',
    metadataVersion: '1',
    ...overrides,
  };
}

/**
 * Runs the Worker's queue handler on one batch of `queue`; reports acks and retries with their
 * delays. The batch is built here, not with cloudflare:test's createMessageBatch, because
 * getQueueResult does not report a retry's delaySeconds, which is what backoff is about.
 */
export async function runQueue(queue: string, bodies: unknown[], attempts = 1, e: Env = env as Env) {
  let acked = 0;
  let retryAll = false;
  const retries: (number | undefined)[] = [];
  const messages = bodies.map((body, i) => ({
    id: `m${i}-${crypto.randomUUID()}`,
    timestamp: new Date(),
    attempts,
    body,
    ack: () => void acked++,
    retry: (opts?: QueueRetryOptions) => void retries.push(opts?.delaySeconds),
  }));
  const batch = {
    queue,
    messages,
    ackAll: () => void (acked += bodies.length),
    retryAll: () => void (retryAll = true),
  } as unknown as MessageBatch<unknown>;
  const ctx = createExecutionContext();
  await (worker.queue as ExportedHandlerQueueHandler<Env, unknown>)(batch, e, ctx);
  await waitOnExecutionContext(ctx);
  return { acked, retries, retryAll };
}
