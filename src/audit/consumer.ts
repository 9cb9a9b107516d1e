import { getTableColumns } from 'drizzle-orm';
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
  // Events queued before a field existed lack it: stored as null.
  const rows = batch.messages.map((m) => m.body).filter(isAuditEvent).map((e) => ({ ...e, errorCode: e.errorCode ?? null }));
  try {
    // Several rows per INSERT (D1 binds at most 100 parameters a statement), one transaction.
    const statements = chunks(rows, ROWS_PER_INSERT).map((chunk) => db.insert(auditEvents).values(chunk).onConflictDoNothing());
    if (statements.length > 0) await db.batch(statements as [(typeof statements)[0], ...typeof statements]);
    batch.ackAll();
  } catch (err) {
    console.error(`audit batch of ${rows.length} events not persisted; retrying: ${(err as Error).name}`);
    batch.retryAll();
  }
}

const D1_MAX_BOUND_PARAMETERS = 100;
const ROWS_PER_INSERT = Math.floor(D1_MAX_BOUND_PARAMETERS / Object.keys(getTableColumns(auditEvents)).length);

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function isAuditEvent(body: unknown): body is AuditEvent {
  const e = body as AuditEvent;
  return typeof e?.id === 'string' && typeof e.operation === 'string' && typeof e.status === 'number';
}
