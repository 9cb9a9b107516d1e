/**
 * The delivery queue's consumer: one message, one POST to one subscription's endpoint, signed
 * (Standard Webhooks), with its own timeout, redirects not followed. Outcomes:
 *  - 2xx: delivered;
 *  - timeout, network error, 408, 429, 5xx: retried with exponential backoff and jitter, or the
 *    endpoint's Retry-After when longer, until maxDeliveryAttempts or the time to live is spent;
 *  - any other status (3xx included), or an endpoint the SSRF policy now refuses: not retried;
 *  - given up: each event is dead-lettered into R2 with the reason and attempts.
 * Every attempt is counted on the subscription (delivered, failed, last error, last success).
 * Logs name subscriptions and statuses, never bodies or secrets.
 */
import type { Env } from '../core/env';
import { BridgeUnavailableError } from '../core/errors';
import { services } from '../crypto/services';
import { putDeadLetter } from './dead-letters';
import { EndpointRefused, checkEndpoint, endpointPolicyOf, type EndpointPolicy } from './endpoint-policy';
import { isDeliveryMessage, type DeliveryMessage } from './fanout';
import { renderDelivery } from './shapes';
import { webhookHeaders } from './signing';
import { recordOutcome, SubscriptionStore } from './subscription-store';
import type { Subscription } from './subscription';

export const DELIVERY_TIMEOUT_MS = 10_000;
/** Cloudflare Queues' longest retry delay. */
const MAX_DELAY_SECONDS = 43_200;

/** Backoff before attempt `attempt + 1`: 10 s doubling to at most an hour, with ±20% jitter. */
export function backoffSeconds(attempt: number, random = Math.random()): number {
  const base = Math.min(3600, 10 * 2 ** Math.max(0, attempt - 1));
  return Math.max(1, Math.round(base * (0.8 + 0.4 * random)));
}

/** Retry-After as seconds (delta-seconds or an HTTP date), or null. */
export function retryAfterSeconds(header: string | null, now = Date.now()): number | null {
  if (!header) return null;
  if (/^\d+$/.test(header.trim())) return Number(header.trim());
  const at = Date.parse(header);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - now) / 1000));
}

type Attempt =
  { kind: 'delivered' } | { kind: 'retry'; error: string; retryAfter: number | null } | { kind: 'fatal'; error: string };

export const isRetryableStatus = (status: number) => status === 408 || status === 429 || status >= 500;

/** Webhook id: the event's own id for one event, else one derived from the batch (stable across retries). */
async function deliveryId(m: DeliveryMessage): Promise<string> {
  if (m.events.length === 1) return m.events[0]!.id;
  const digest = await crypto.subtle.digest(
    'SHA-256',
    new TextEncoder().encode(`${m.subscriptionId}|${m.events.map((e) => e.id).join(',')}`),
  );
  return `batch-${[...new Uint8Array(digest).slice(0, 16)].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
}

async function attempt(m: DeliveryMessage, s: Subscription, secrets: string[], policy: EndpointPolicy): Promise<Attempt> {
  try {
    await checkEndpoint(s.endpointUrl, policy);
  } catch (err) {
    if (err instanceof EndpointRefused) {
      // A name that does not resolve may resolve later; an address the policy refuses will not change.
      if (/could not be resolved/.test(err.reason)) return { kind: 'retry', error: err.reason, retryAfter: null };
      return { kind: 'fatal', error: `endpoint refused: ${err.reason}` };
    }
    throw err;
  }
  const { body, contentType } = renderDelivery(s.deliverySchema, m.events, s.maxEventsPerBatch > 1);
  const headers = await webhookHeaders(secrets, await deliveryId(m), Math.floor(Date.now() / 1000), body);
  let res: Response;
  try {
    res = await fetch(s.endpointUrl, {
      method: 'POST',
      headers: { 'content-type': contentType, 'aeg-event-type': 'Notification', ...headers },
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS),
    });
  } catch (err) {
    const timedOut = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
    return { kind: 'retry', error: timedOut ? 'timeout' : 'network error', retryAfter: null };
  }
  await res.body?.cancel().catch(() => undefined);
  if (res.status >= 200 && res.status < 300) return { kind: 'delivered' };
  if (isRetryableStatus(res.status))
    return { kind: 'retry', error: `HTTP ${res.status}`, retryAfter: retryAfterSeconds(res.headers.get('retry-after')) };
  if (res.status >= 300 && res.status < 400) return { kind: 'fatal', error: `HTTP ${res.status} (redirects are not followed)` };
  return { kind: 'fatal', error: `HTTP ${res.status}` };
}

async function deadLetter(
  env: Env,
  m: DeliveryMessage,
  s: Subscription,
  reason: string,
  lastError: string | null,
  attempts: number,
): Promise<void> {
  const deadLetteredAt = new Date().toISOString();
  for (const event of m.events) {
    await putDeadLetter(env.EVENT_DEADLETTER, m.vaultId, {
      event,
      subscriptionId: s.id,
      subscriptionName: s.name,
      reason,
      lastError,
      attempts,
      deadLetteredAt,
    });
  }
}

/** Handles one delivery message; acks or retries it. */
export async function deliverOne(
  message: Message<unknown>,
  env: Env,
  policy: EndpointPolicy = endpointPolicyOf(env),
): Promise<void> {
  const m = message.body;
  if (!isDeliveryMessage(m)) {
    console.error('malformed delivery message dropped');
    return message.ack();
  }
  const { db, keys } = services(env);
  const store = new SubscriptionStore(db, keys);
  let found: Awaited<ReturnType<SubscriptionStore['forDelivery']>>;
  try {
    found = await store.forDelivery(m.subscriptionId);
  } catch (err) {
    // The bridge (to unwrap the data key) or D1 is down: not the endpoint's fault, try later.
    console.error(
      `delivery to subscription ${m.subscriptionId} postponed: ${err instanceof BridgeUnavailableError ? 'bridge unavailable' : err instanceof Error ? err.name : 'error'}`,
    );
    return message.retry({ delaySeconds: backoffSeconds(message.attempts) });
  }
  // Deleted since: its deliveries go nowhere.
  if (!found) return message.ack();
  const { subscription: s, secrets } = found;
  const attempts = message.attempts;

  if (Date.now() > m.enqueuedAt + s.eventTimeToLiveMinutes * 60_000) {
    await deadLetter(env, m, s, 'TimeToLiveExceeded', s.lastError, attempts - 1);
    await recordOutcome(db, s.id, { ok: false, error: 'time to live exceeded', deadLettered: m.events.length });
    return message.ack();
  }

  const result = await attempt(m, s, secrets, policy);
  if (result.kind === 'delivered') {
    await recordOutcome(db, s.id, { ok: true, events: m.events.length });
    return message.ack();
  }
  if (result.kind === 'retry' && attempts < s.maxDeliveryAttempts) {
    await recordOutcome(db, s.id, { ok: false, error: result.error });
    const delay = Math.min(MAX_DELAY_SECONDS, Math.max(backoffSeconds(attempts), result.retryAfter ?? 0));
    return message.retry({ delaySeconds: delay });
  }
  const reason = result.kind === 'retry' ? 'MaxDeliveryAttemptsExceeded' : 'NonRetryableFailure';
  await deadLetter(env, m, s, reason, result.error, attempts);
  await recordOutcome(db, s.id, { ok: false, error: result.error, deadLettered: m.events.length });
  console.log(
    `subscription ${s.id}: ${m.events.length} event(s) dead-lettered (${reason}, ${result.error}, ${attempts} attempt(s))`,
  );
  message.ack();
}

/** The delivery queue's batch: every message at once, each with its own timeout and outcome. */
export async function deliverBatch(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  await Promise.all(
    batch.messages.map((message) =>
      deliverOne(message, env).catch((err: unknown) => {
        // R2 or D1 failed while recording the outcome: deliver again later (at least once).
        console.error(`delivery message ${message.id} failed: ${err instanceof Error ? err.name : 'error'}`);
        message.retry({ delaySeconds: backoffSeconds(message.attempts) });
      }),
    ),
  );
}
