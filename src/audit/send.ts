/**
 * Queueing audit events, off the response path, several requests' events in one send.
 *
 * Every request and RPC call emits one event. Sent one by one, each is a Queues operation of its
 * own: a subrequest per request in production, and locally the largest single cost of a warm read
 * after the read itself (BENCHMARKS.md, "Edge figures": a sendBatch call costs about 300 µs in
 * local workerd whatever it carries, each message about 20 µs more). So the events this isolate
 * produces within BATCH_WINDOW_MS of each other wait in memory and go out in one `sendBatch`,
 * sent from the waitUntil of whichever request started the window, or at once by the request
 * that fills a batch. Requests share only the plain event objects, never a pending send: each
 * send belongs to the request whose waitUntil runs it.
 *
 * A send that fails is tried again a few times before its events are given up (and logged by
 * count only): a transient Queues error used to lose the request's record outright. Once `send`
 * resolves, production Queues keep the message; local (wrangler dev) Queues hold messages in
 * memory until their batch is delivered, so a reload there can still drop the last batch, which
 * nothing in the Worker can prevent. Holding events for the window widens what an isolate that
 * dies mid-flight loses by at most those milliseconds' events, which it would lose anyway if it
 * died before their sends resolved.
 */
import type { AuditEvent } from './event';

const ATTEMPTS = 3;
/** How long the first event of a batch waits for others (a full batch goes at once). */
export const BATCH_WINDOW_MS = 20;
// Queues' sendBatch takes at most 100 messages and 256 KB. An event is a few KB (its
// caller-controlled fields are cut to size in src/http/audit.ts), counted here as its JSON's
// UTF-8 bytes: a character of a path or user agent can take 3 of them.
const MAX_MESSAGES = 100;
const MAX_BATCH_BYTES = 192 * 1024;
const encoder = new TextEncoder();

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Outbox {
  pending: AuditEvent[];
  /** A waitUntil is already on its way to send `pending`. */
  scheduled: boolean;
}

// Per queue binding (tests give requests queues of their own); a binding no longer used goes with it.
const outboxes = new WeakMap<Queue<AuditEvent>, Outbox>();

/**
 * Hands a request's event to the audit queue; never throws, never delays the response. The send
 * runs in `ctx.waitUntil`, together with whatever events other requests add within the window.
 */
export function queueAuditEvent(ctx: Pick<ExecutionContext, 'waitUntil'>, queue: Queue<AuditEvent>, event: AuditEvent): void {
  let box = outboxes.get(queue);
  if (!box) outboxes.set(queue, (box = { pending: [], scheduled: false }));
  box.pending.push(event);
  if (box.pending.length >= MAX_MESSAGES) {
    // A full batch need not wait: this request sends it; the window's drain takes what follows.
    ctx.waitUntil(sendAll(queue, box.pending.splice(0)));
    return;
  }
  if (box.scheduled) return;
  box.scheduled = true;
  ctx.waitUntil(drain(queue, box));
}

async function drain(queue: Queue<AuditEvent>, box: Outbox): Promise<void> {
  await sleep(BATCH_WINDOW_MS);
  // From here on a new event starts a new window (and a waitUntil of its own request).
  box.scheduled = false;
  await sendAll(queue, box.pending.splice(0));
}

async function sendAll(queue: Queue<AuditEvent>, events: AuditEvent[]): Promise<void> {
  await Promise.all(batchesOf(events).map((batch) => sendAuditEvents(queue, batch)));
}

/** Consecutive runs of events that fit one sendBatch. */
function batchesOf(events: AuditEvent[]): AuditEvent[][] {
  const batches: AuditEvent[][] = [];
  let current: AuditEvent[] = [];
  let bytes = 0;
  for (const event of events) {
    const size = encoder.encode(JSON.stringify(event)).byteLength;
    if (current.length > 0 && (current.length >= MAX_MESSAGES || bytes + size > MAX_BATCH_BYTES)) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push(event);
    bytes += size;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

/**
 * Sends events now, one message each (a lone event with `send`), trying a failed send again; for
 * callers that have no request to wait on (jobs), or that must know the outcome. Never throws.
 */
export async function sendAuditEvents(queue: Queue<AuditEvent>, events: AuditEvent[], backoffMs = 50): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    try {
      if (events.length === 1) await queue.send(events[0]!);
      else await queue.sendBatch(events.map((body) => ({ body })));
      return true;
    } catch (err) {
      if (attempt >= ATTEMPTS) {
        console.error(`audit event not queued (${events.length}): ${err instanceof Error ? err.name : 'error'}`);
        return false;
      }
      await sleep(backoffMs * attempt);
    }
  }
}
