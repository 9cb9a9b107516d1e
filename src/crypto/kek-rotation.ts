/**
 * Moving data keys to a new KEK. After the bridge makes a new KEK current, new data keys are
 * wrapped under it at once; the existing ones are re-wrapped here, a bounded number per cron run:
 * unwrapped under the KEK their row names, wrapped under the current one, and the row swapped only
 * if nobody changed it meanwhile. The data key itself (and so every ciphertext under it) does not
 * change, so reads go on throughout and cached keys stay valid.
 */
import { and, count, eq, ne } from 'drizzle-orm';
import { IntegrityError, conflict } from '../core/errors';
import type { Database } from '../storage/db';
import { dataKeys } from '../storage/schema';
import type { BridgeClient } from './bridge-client';
import { wrapContext } from './data-keys';

/** Data keys re-wrapped per cron run at most: two bridge calls each, well inside a run's budget. */
export const REWRAP_BATCH = 200;

export interface RewrapRun {
  /** The KEK data keys were moved to. */
  current: string;
  rewrapped: number;
  /** Rows that do not unwrap under the KEK they name (logged by id; left as they are). */
  failed: string[];
  /** Rows changed by someone else between read and swap (picked up next run if still old). */
  raced: number;
}

/** Re-wraps up to `limit` data keys that are not under the current KEK. Bridge outages propagate. */
export async function rewrapDataKeys(db: Database, bridge: BridgeClient, limit = REWRAP_BATCH): Promise<RewrapRun> {
  const { current } = await bridge.listKeks();
  const run: RewrapRun = { current, rewrapped: 0, failed: [], raced: 0 };
  const rows = await db
    .select()
    .from(dataKeys)
    .where(ne(dataKeys.kekLabel, current))
    .orderBy(dataKeys.createdAt, dataKeys.id)
    .limit(limit)
    .all();
  for (const row of rows) {
    const context = wrapContext(row.scope, row.id);
    let plaintext: Uint8Array;
    try {
      plaintext = await bridge.unwrap(row.wrapped, context, row.kekLabel);
    } catch (err) {
      if (!(err instanceof IntegrityError)) throw err;
      console.error(`kek rotation: data key ${row.id} does not unwrap under ${row.kekLabel}; left as it is`);
      run.failed.push(row.id);
      continue;
    }
    let next: { wrapped: string; kekLabel: string };
    try {
      next = await bridge.wrap(plaintext, context);
    } finally {
      plaintext.fill(0);
    }
    // Compare-and-swap: only the row as read is replaced.
    const swapped = await db
      .update(dataKeys)
      .set({ wrapped: next.wrapped, kekLabel: next.kekLabel })
      .where(and(eq(dataKeys.id, row.id), eq(dataKeys.wrapped, row.wrapped), eq(dataKeys.kekLabel, row.kekLabel)))
      .returning({ id: dataKeys.id });
    if (swapped.length === 1) run.rewrapped++;
    else run.raced++;
  }
  return run;
}

/** How many data keys each KEK wraps, by label. */
export async function dataKeysPerKek(db: Database): Promise<Record<string, number>> {
  const rows = await db.select({ kekLabel: dataKeys.kekLabel, n: count() }).from(dataKeys).groupBy(dataKeys.kekLabel).all();
  return Object.fromEntries(rows.map((r) => [r.kekLabel, r.n]));
}

export interface KekStatus {
  current: string;
  keks: Array<{ label: string; current: boolean; dataKeys: number }>;
  /** Data keys still to re-wrap under the current KEK. */
  pending: number;
}

/** The HSM's KEKs with the number of data keys under each (labels D1 names but the HSM lacks included). */
export async function kekStatus(db: Database, bridge: BridgeClient): Promise<KekStatus> {
  const [listed, counts] = await Promise.all([bridge.listKeks(), dataKeysPerKek(db)]);
  const keks = listed.keks.map((k) => ({ ...k, dataKeys: counts[k.label] ?? 0 }));
  for (const [label, n] of Object.entries(counts)) {
    if (!keks.some((k) => k.label === label)) keks.push({ label, current: false, dataKeys: n });
  }
  const pending = keks.filter((k) => k.label !== listed.current).reduce((sum, k) => sum + k.dataKeys, 0);
  return { current: listed.current, keks, pending };
}

/**
 * Destroys a KEK in the HSM, refused (409) while any data key row still names it: destroying it
 * would make those data keys, and everything sealed under them, unreadable for good.
 */
export async function destroyKek(db: Database, bridge: BridgeClient, label: string): Promise<void> {
  const inUse = (await dataKeysPerKek(db))[label] ?? 0;
  if (inUse > 0)
    throw conflict(
      `${inUse} data keys are still wrapped under KEK ${label}; wait for the re-wrap to finish (GET /management/kek).`,
    );
  await bridge.destroyKek(label);
}
