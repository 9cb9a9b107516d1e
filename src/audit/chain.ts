/**
 * The audit chains in D1 (tables audit_records and audit_chain_heads, see src/storage/schema.ts).
 *
 * Appending a group of entries to one chain:
 *  1. one read round trip: which of the entries' event ids are stored already, the chain's last
 *     row and its stored head;
 *  2. the entries not stored yet, each once, ordered by time then event id, get the next
 *     sequence numbers after the later of the last row and the head (a truncated tail thus leaves
 *     a gap the verifier reports, instead of being silently reused), and their hashes;
 *  3. one D1 batch (a transaction) inserts them and moves the head. If another consumer appended
 *     to the chain meanwhile, or stored one of the same events, an insert collides with the
 *     primary key (chain, seq) or the unique event id and the whole batch rolls back: the group
 *     is read again and retried, a few times, after which the error is left to the caller (whose
 *     messages are then redelivered).
 * So redelivery, retries and concurrent batches never duplicate, drop or reorder a record.
 */
import { and, asc, desc, eq, gt, inArray } from 'drizzle-orm';
import type { Database } from '../storage/db';
import { insertRowsAsJson, jsonValues } from '../storage/bulk-insert';
import { violatedConstraint } from '../storage/errors';
import { auditChainHeads, auditRecords } from '../storage/schema';
import { canonicalJson, chainHash, GENESIS_HASH } from './canonical';
import { indexedColumns, type AuditRecord, type ChainPlace, type IndexedColumns } from './record';
import type { ChainRow } from './verify';

/** Something to append: its event id (unique across all chains), its time, and its record. */
export interface ChainEntry {
  eventId: string;
  /** Unix milliseconds; entries of one append are ordered by it, then by event id. */
  time: number;
  build(place: ChainPlace): AuditRecord | Promise<AuditRecord>;
}

export interface ChainHead {
  seq: number;
  hash: string;
}

export interface AppendResult {
  appended: number;
  /** Entries found stored already (redelivered), or repeated within the group. */
  skipped: number;
  /** Read-and-write rounds it took (more than one when another consumer got there first). */
  rounds: number;
}

/** Records an INSERT carries, as one JSON parameter (src/storage/bulk-insert.ts). */
const ROWS_PER_INSERT = 100;
const DEFAULT_ROUNDS = 5;

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** A constraint failure: someone else appended first (or stored the same event). */
export function isAppendCollision(err: unknown): boolean {
  return violatedConstraint(err) === 'unique';
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The chain's current end: the later of its last row and its stored head. */
function endOf(last: ChainHead | undefined, head: ChainHead | undefined): ChainHead {
  const candidates = [last, head].filter((h): h is ChainHead => h !== undefined);
  if (candidates.length === 0) return { seq: 0, hash: GENESIS_HASH };
  return candidates.reduce((a, b) => (b.seq > a.seq ? b : a));
}

export async function appendToChain(
  db: Database,
  chain: string,
  entries: readonly ChainEntry[],
  maxRounds = DEFAULT_ROUNDS,
): Promise<AppendResult> {
  // Each event once, in the chain's order.
  const unique = new Map<string, ChainEntry>();
  for (const entry of entries) if (!unique.has(entry.eventId)) unique.set(entry.eventId, entry);
  const ordered = [...unique.values()].sort(
    (a, b) => a.time - b.time || (a.eventId < b.eventId ? -1 : a.eventId > b.eventId ? 1 : 0),
  );
  const repeated = entries.length - ordered.length;

  for (let round = 1; ; round++) {
    const lastRow = db
      .select({ seq: auditRecords.seq, hash: auditRecords.hash })
      .from(auditRecords)
      .where(eq(auditRecords.chain, chain))
      .orderBy(desc(auditRecords.seq))
      .limit(1);
    const head = db
      .select({ seq: auditChainHeads.seq, hash: auditChainHeads.hash })
      .from(auditChainHeads)
      .where(eq(auditChainHeads.chain, chain));
    // Which of them are stored: one statement, the ids as one JSON parameter (src/storage/bulk-insert.ts says why).
    const lookups = [
      db
        .select({ eventId: auditRecords.eventId })
        .from(auditRecords)
        .where(inArray(auditRecords.eventId, jsonValues(ordered.map((e) => e.eventId)))),
    ];
    const [lastRows, headRows, ...found] = (await db.batch([lastRow, head, ...lookups])) as [
      ChainHead[],
      ChainHead[],
      ...{ eventId: string }[][],
    ];
    const stored = new Set(found.flat().map((r) => r.eventId));
    const fresh = ordered.filter((e) => !stored.has(e.eventId));
    if (fresh.length === 0) return { appended: 0, skipped: entries.length, rounds: round };

    const end = endOf(lastRows[0], headRows[0]);
    const rows: (typeof auditRecords.$inferInsert)[] = [];
    let prevHash = end.hash;
    for (const [i, entry] of fresh.entries()) {
      const seq = end.seq + 1 + i;
      const record = await entry.build({ chain, sequence: seq });
      const canonical = canonicalJson(record);
      const hash = await chainHash(prevHash, canonical);
      rows.push({ chain, seq, eventId: entry.eventId, canonical, prevHash, hash, ...indexedColumns(record) });
      prevHash = hash;
    }
    const last = rows[rows.length - 1]!;
    const inserts = chunks(rows, ROWS_PER_INSERT).map((chunk) => insertRowsAsJson(db, auditRecords, chunk));
    const moveHead = db
      .insert(auditChainHeads)
      .values({ chain, seq: last.seq, hash: last.hash, updatedAt: Date.now() })
      .onConflictDoUpdate({ target: auditChainHeads.chain, set: { seq: last.seq, hash: last.hash, updatedAt: Date.now() } });
    try {
      await db.batch([...inserts, moveHead] as unknown as [typeof moveHead]);
      return { appended: rows.length, skipped: stored.size + repeated, rounds: round };
    } catch (err) {
      if (!isAppendCollision(err) || round >= maxRounds) throw err;
      // Another consumer appended to this chain first: read its new end and try again.
      await sleep(5 + Math.random() * 20 * round);
    }
  }
}

export async function readChainHead(db: Database, chain: string): Promise<ChainHead | null> {
  const row = await db
    .select({ seq: auditChainHeads.seq, hash: auditChainHeads.hash })
    .from(auditChainHeads)
    .where(eq(auditChainHeads.chain, chain))
    .get();
  return row ?? null;
}

/** A chain's rows in seq order, page by page, with their query columns (for verifyChain). */
export async function* readChain(db: Database, chain: string, pageSize = 500): AsyncGenerator<ChainRow> {
  let after = Number.NEGATIVE_INFINITY;
  for (;;) {
    const page = await db
      .select()
      .from(auditRecords)
      .where(
        Number.isFinite(after) ? and(eq(auditRecords.chain, chain), gt(auditRecords.seq, after)) : eq(auditRecords.chain, chain),
      )
      .orderBy(asc(auditRecords.seq))
      .limit(pageSize)
      .all();
    for (const r of page) {
      yield {
        seq: r.seq,
        eventId: r.eventId,
        canonical: r.canonical,
        prevHash: r.prevHash,
        hash: r.hash,
        columns: {
          time: r.time,
          operation: r.operation,
          callerAppId: r.callerAppId,
          callerObjectId: r.callerObjectId,
          objectId: r.objectId,
          status: r.status,
          result: r.result as IndexedColumns['result'],
          errorCode: r.errorCode,
          correlationId: r.correlationId,
          clientIp: r.clientIp,
        },
      };
    }
    if (page.length < pageSize) return;
    after = page[page.length - 1]!.seq;
  }
}
