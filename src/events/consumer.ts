// The events queue's consumer: stores the vault's events in D1, then hands them to the fan-out.
import { getTableColumns } from 'drizzle-orm';
import type { Env } from '../core/env';
import { database } from '../storage/db';
import { describeError } from '../storage/errors';
import { events } from '../storage/schema';
import type { VaultEvent } from './event';
import { fanOut } from './fanout';

/**
 * Stores a batch of vault events in one D1 transaction. Idempotent by event id (ids are derived
 * from what the event is about), so a redelivered batch, or an event sent twice, is stored once;
 * on failure the whole batch is retried. Then each event is fanned out to the subscriptions that
 * take it (src/events/fanout.ts); a fan-out that fails retries the batch too (storing is idempotent).
 */
export async function persistEventBatch(batch: MessageBatch<VaultEvent>, env: Env): Promise<void> {
  const db = database(env.DB);
  const stored = batch.messages.map((m) => m.body).filter(isVaultEvent);
  const rows = stored.map((e) => ({
    id: e.id,
    vault: e.data.VaultName,
    eventType: e.eventType,
    subject: e.subject,
    version: e.data.Version ?? null,
    eventTime: Date.parse(e.eventTime),
    body: JSON.stringify(e),
  }));
  try {
    const statements = chunks(rows, ROWS_PER_INSERT).map((chunk) => db.insert(events).values(chunk).onConflictDoNothing());
    if (statements.length > 0) await db.batch(statements as [(typeof statements)[0], ...typeof statements]);
    await fanOut(db, env.EVENT_DELIVERY_QUEUE, stored);
    batch.ackAll();
  } catch (err) {
    console.error(`event batch of ${rows.length} not stored; retrying: ${describeError(err)}`);
    batch.retryAll();
  }
}

// D1 binds at most 100 parameters a statement.
const ROWS_PER_INSERT = Math.floor(100 / Object.keys(getTableColumns(events)).length);

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function isVaultEvent(body: unknown): body is VaultEvent {
  const e = body as VaultEvent;
  return (
    typeof e?.id === 'string' &&
    typeof e.eventType === 'string' &&
    typeof e.subject === 'string' &&
    typeof e.data?.VaultName === 'string' &&
    !Number.isNaN(Date.parse(e.eventTime))
  );
}
