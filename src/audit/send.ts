/**
 * Queueing an audit event, off the response path (the caller hands the promise to waitUntil).
 *
 * A send that fails is tried again a few times before the event is given up (and logged by name
 * only): a transient Queues error used to lose the request's record outright. Once `send`
 * resolves, production Queues keep the message; local (wrangler dev) Queues hold messages in
 * memory until their batch is delivered, so a reload there can still drop the last batch, which
 * nothing in the Worker can prevent.
 */
import type { AuditEvent } from './event';

const ATTEMPTS = 3;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function queueAuditEvent(queue: Queue<AuditEvent>, event: AuditEvent, backoffMs = 50): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    try {
      await queue.send(event);
      return true;
    } catch (err) {
      if (attempt >= ATTEMPTS) {
        console.error(`audit event not queued: ${err instanceof Error ? err.name : 'error'}`);
        return false;
      }
      await sleep(backoffMs * attempt);
    }
  }
}
