import type { Env } from '../env';
import { database } from '../storage/db';
import { auditEvents } from '../storage/schema';
import type { AuditEvent } from './event';

/**
 * Persists a batch of audit events in one D1 transaction. Idempotent by event id, so a
 * redelivered batch adds nothing twice; on failure the whole batch is retried.
 */
export async function persistAuditBatch(batch: MessageBatch<AuditEvent>, env: Env): Promise<void> {
  const db = database(env.DB);
  const rows = batch.messages.map((m) => m.body).filter(isAuditEvent);
  try {
    if (rows.length > 0) {
      const [first, ...rest] = rows.map((e) => db.insert(auditEvents).values(e).onConflictDoNothing());
      await db.batch([first!, ...rest]);
    }
    batch.ackAll();
  } catch (err) {
    console.error(`audit batch of ${rows.length} events not persisted; retrying: ${(err as Error).name}`);
    batch.retryAll();
  }
}

function isAuditEvent(body: unknown): body is AuditEvent {
  const e = body as AuditEvent;
  return typeof e?.id === 'string' && typeof e.operation === 'string' && typeof e.status === 'number';
}
