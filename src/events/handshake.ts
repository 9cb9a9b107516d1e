/**
 * Endpoint validation before a subscription exists, as each delivery schema defines it:
 *  - Event Grid schema: a `Microsoft.EventGrid.SubscriptionValidationEvent` is POSTed (header
 *    `aeg-event-type: SubscriptionValidation`); the receiver must answer 200 with
 *    `{"validationResponse": <validationCode>}`. Only this synchronous echo is supported: no
 *    `validationUrl` is offered (nothing here serves one).
 *  - CloudEvents 1.0 (HTTP 1.1 Web Hooks for Event Delivery, "abuse protection"): an OPTIONS
 *    request with `WebHook-Request-Origin`; the receiver must answer 2xx with
 *    `WebHook-Allowed-Origin` equal to that origin or `*`.
 * Redirects are not followed; a handshake that does not succeed within the timeout fails.
 */
import { toHex, randomBytes } from '../core/encoding';
import type { DeliverySchema } from './shapes';
import { webhookHeaders } from './signing';

export const HANDSHAKE_TIMEOUT_MS = 10_000;

export type HandshakeResult = { ok: true } | { ok: false; reason: string };

export async function handshake(
  schema: DeliverySchema,
  endpoint: string,
  opts: { origin: string; topic: string; secret: string },
): Promise<HandshakeResult> {
  try {
    return schema === 'EventGridSchema'
      ? await eventGridValidation(endpoint, opts)
      : await cloudEventsValidation(endpoint, opts.origin);
  } catch (err) {
    const timedOut = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
    return {
      ok: false,
      reason: timedOut ? 'the endpoint did not answer the validation in time' : 'the endpoint could not be reached',
    };
  }
}

async function eventGridValidation(endpoint: string, opts: { topic: string; secret: string }): Promise<HandshakeResult> {
  const code = toHex(randomBytes(16)).toUpperCase();
  const id = crypto.randomUUID();
  const body = JSON.stringify([
    {
      id,
      topic: opts.topic,
      subject: '',
      data: { validationCode: code },
      eventType: 'Microsoft.EventGrid.SubscriptionValidationEvent',
      eventTime: new Date().toISOString(),
      metadataVersion: '1',
      dataVersion: '2',
    },
  ]);
  const headers = await webhookHeaders([opts.secret], id, Math.floor(Date.now() / 1000), body);
  const res = await fetch(endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'aeg-event-type': 'SubscriptionValidation', ...headers },
    body,
    redirect: 'manual',
    signal: AbortSignal.timeout(HANDSHAKE_TIMEOUT_MS),
  });
  if (res.status !== 200) {
    await res.body?.cancel();
    return { ok: false, reason: `the endpoint answered the validation event with HTTP ${res.status}` };
  }
  let answer: unknown;
  try {
    answer = JSON.parse((await res.text()).slice(0, 4096));
  } catch {
    return { ok: false, reason: 'the endpoint did not answer the validation event with JSON' };
  }
  const echoed = (answer as { validationResponse?: unknown })?.validationResponse;
  return echoed === code
    ? { ok: true }
    : { ok: false, reason: 'the endpoint did not echo the validationCode as validationResponse' };
}

async function cloudEventsValidation(endpoint: string, origin: string): Promise<HandshakeResult> {
  const res = await fetch(endpoint, {
    method: 'OPTIONS',
    headers: { 'WebHook-Request-Origin': origin },
    redirect: 'manual',
    signal: AbortSignal.timeout(HANDSHAKE_TIMEOUT_MS),
  });
  await res.body?.cancel();
  if (res.status < 200 || res.status > 299)
    return { ok: false, reason: `the endpoint answered the abuse-protection request with HTTP ${res.status}` };
  const allowed = (res.headers.get('WebHook-Allowed-Origin') ?? '').split(',').map((s) => s.trim());
  return allowed.includes(origin) || allowed.includes('*')
    ? { ok: true }
    : { ok: false, reason: 'the endpoint did not allow this origin in WebHook-Allowed-Origin' };
}
