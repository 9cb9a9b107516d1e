/**
 * Archiving closed periods of the audit chains to R2, and retention.
 *
 * A period (a UTC day by default, or an hour: AUDIT_ARCHIVE_PERIOD) of a chain is written once,
 * when it has been closed for a grace time, as the NDJSON object `{chain}/{period}.ndjson`: one
 * canonical record per line, in seq order. Its custom metadata holds the seq range, the hash
 * before its first record and of its last, the SHA-256 of the bytes, and the signed checkpoint at
 * its last record (made then if there was none), so an archive verifies on its own: recompute
 * the hashes from `prevHash` and compare the last with the checkpoint's.
 *
 * Periods are contiguous seq ranges: a period's object holds every record after the previous
 * archive through the last record whose time falls before the period's end (a record appended
 * after its period was archived, e.g. a late dead letter, goes into the next object). The
 * records are verified before they are written; a chain that does not verify is not archived.
 * Archiving is idempotent: an archived period is remembered in `audit_archives`, and an object
 * already in R2 with the same digest is not written again (one with other bytes is never
 * overwritten).
 *
 * Retention: rows of an archived period whose end is older than AUDIT_RETENTION_DAYS (default
 * 365, at least MIN_RETENTION_DAYS: smaller values are refused and nothing is pruned) are deleted
 * from D1, only ever after their object is in R2, in one transaction with the marker
 * (`pruned_at`) the verifier starts from. R2 objects older than AUDIT_ARCHIVE_RETENTION_DAYS (if
 * set; at least the D1 retention) are deleted.
 */
import { and, asc, desc, eq, gt, isNotNull, isNull, lt, lte, max, sql } from 'drizzle-orm';
import type { BridgeClient } from '../crypto/bridge-client';
import type { Database } from '../storage/db';
import { auditArchives, auditChainHeads, auditRecords } from '../storage/schema';
import { BridgeUnavailableError } from '../core/errors';
import { GENESIS_HASH, sha256Hex } from './canonical';
import { ensureCheckpointAt, readChainRange } from './checkpoints';
import { describeVerification, verifyChain, type Checkpoint } from './verify';

export type ArchivePeriod = 'day' | 'hour';

export const MIN_RETENTION_DAYS = 30;
export const DEFAULT_RETENTION_DAYS = 365;
const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
/** A period is archived this long after it ends (late queue deliveries land in it first). */
export const ARCHIVE_GRACE_MS = 15 * 60_000;
/** Records in one object at most; a busier period is split into `{period}.{n}` parts. */
export const MAX_RECORDS_PER_OBJECT = 20_000;
/** Objects written per cron run at most (the rest wait for the next run). */
const MAX_OBJECTS_PER_RUN = 50;

export interface ArchiveConfig {
  period: ArchivePeriod;
  retentionDays: number;
  /** null: archive objects are kept forever. */
  archiveRetentionDays: number | null;
}

export class ArchiveConfigError extends Error {
  override name = 'ArchiveConfigError';
}

/** Reads AUDIT_ARCHIVE_PERIOD, AUDIT_RETENTION_DAYS and AUDIT_ARCHIVE_RETENTION_DAYS; refuses bad values. */
export function archiveConfig(vars: {
  AUDIT_ARCHIVE_PERIOD?: string;
  AUDIT_RETENTION_DAYS?: string;
  AUDIT_ARCHIVE_RETENTION_DAYS?: string;
}): ArchiveConfig {
  const period = (vars.AUDIT_ARCHIVE_PERIOD || 'day') as ArchivePeriod;
  if (period !== 'day' && period !== 'hour') throw new ArchiveConfigError(`AUDIT_ARCHIVE_PERIOD must be 'day' or 'hour'`);
  const days = (name: string, value: string | undefined, fallback: number | null, min: number): number | null => {
    if (value === undefined || value === '') return fallback;
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < min)
      throw new ArchiveConfigError(`${name} must be a whole number of days, at least ${min} (got '${value.slice(0, 20)}')`);
    return n;
  };
  const retentionDays = days('AUDIT_RETENTION_DAYS', vars.AUDIT_RETENTION_DAYS, DEFAULT_RETENTION_DAYS, MIN_RETENTION_DAYS)!;
  const archiveRetentionDays = days('AUDIT_ARCHIVE_RETENTION_DAYS', vars.AUDIT_ARCHIVE_RETENTION_DAYS, null, retentionDays);
  return { period, retentionDays, archiveRetentionDays };
}

/** The UTC period a time falls in: its id ('2026-11-28' or '2026-11-28T13'), start and end. */
export function periodOf(timeMs: number, period: ArchivePeriod): { id: string; start: number; end: number } {
  const size = period === 'day' ? DAY_MS : HOUR_MS;
  const start = Math.floor(timeMs / size) * size;
  const iso = new Date(start).toISOString();
  return { id: period === 'day' ? iso.slice(0, 10) : iso.slice(0, 13), start, end: start + size };
}

export const archiveObjectKey = (chain: string, periodId: string) => `${chain}/${periodId}.ndjson`;

/** What an archive object's custom metadata holds. */
export interface ArchiveMetadata {
  chain: string;
  period: string;
  firstSeq: string;
  lastSeq: string;
  prevHash: string;
  lastHash: string;
  sha256: string;
  /** JSON of the signed Checkpoint at lastSeq. */
  checkpoint: string;
}

export interface ArchiveRun {
  archived: number;
  /** Chains whose records do not verify (or whose object conflicts): not archived, logged. */
  refused: string[];
  /** True when the bridge was down and archiving stopped for this run. */
  deferred: boolean;
}

/** Archives every closed, not yet archived period of every chain (or of `only`). */
export async function archiveClosedPeriods(
  db: Database,
  bridge: BridgeClient,
  bucket: R2Bucket,
  config: ArchiveConfig,
  now = Date.now(),
  only?: readonly string[],
): Promise<ArchiveRun> {
  const chains = only ?? (await db.select({ chain: auditChainHeads.chain }).from(auditChainHeads).all()).map((r) => r.chain);
  const run: ArchiveRun = { archived: 0, refused: [], deferred: false };
  for (const chain of chains) {
    try {
      while (run.archived < MAX_OBJECTS_PER_RUN) {
        const outcome = await archiveNext(db, bridge, bucket, config, chain, now);
        if (outcome === 'done') break;
        if (outcome === 'refused') {
          run.refused.push(chain);
          break;
        }
        run.archived++;
      }
    } catch (err) {
      if (!(err instanceof BridgeUnavailableError)) throw err;
      run.deferred = true;
      return run;
    }
    if (run.archived >= MAX_OBJECTS_PER_RUN) break;
  }
  return run;
}

/** Archives the chain's next closed period (or part of one), if there is one. */
async function archiveNext(
  db: Database,
  bridge: BridgeClient,
  bucket: R2Bucket,
  config: ArchiveConfig,
  chain: string,
  now: number,
): Promise<'archived' | 'done' | 'refused'> {
  const last = await db
    .select({ lastSeq: auditArchives.lastSeq, lastHash: auditArchives.lastHash })
    .from(auditArchives)
    .where(eq(auditArchives.chain, chain))
    .orderBy(desc(auditArchives.lastSeq))
    .limit(1)
    .get();
  const afterSeq = last?.lastSeq ?? 0;
  const prevHash = last?.lastHash ?? GENESIS_HASH;
  const first = await db
    .select({ seq: auditRecords.seq, time: auditRecords.time })
    .from(auditRecords)
    .where(and(eq(auditRecords.chain, chain), gt(auditRecords.seq, afterSeq)))
    .orderBy(asc(auditRecords.seq))
    .limit(1)
    .get();
  if (!first) return 'done';
  const period = periodOf(first.time, config.period);
  if (period.end + ARCHIVE_GRACE_MS > now) return 'done';
  const through = await db
    .select({ seq: max(auditRecords.seq) })
    .from(auditRecords)
    .where(and(eq(auditRecords.chain, chain), gt(auditRecords.seq, afterSeq), lt(auditRecords.time, period.end)))
    .get();
  const lastSeq = Math.min(through?.seq ?? first.seq, afterSeq + MAX_RECORDS_PER_OBJECT);

  const rows = [];
  for await (const row of readChainRange(db, chain, afterSeq, lastSeq)) rows.push(row);
  const result = await verifyChain(rows, [], undefined, { chain, from: { seq: afterSeq, hash: prevHash } });
  if (!result.ok || result.through !== lastSeq) {
    console.error(`audit chain ${chain}: period ${period.id} not archived, ${describeVerification(result)}`);
    return 'refused';
  }
  const lastHash = rows[rows.length - 1]!.hash;
  const checkpoint = await ensureCheckpointAt(db, bridge, chain, lastSeq, lastHash, now);

  // Parts after the first of a busy period get a suffix: '2026-11-28', '2026-11-28.2', …
  const parts = await db
    .select({ n: sql<number>`count(*)` })
    .from(auditArchives)
    .where(
      and(
        eq(auditArchives.chain, chain),
        sql`(${auditArchives.period} = ${period.id} or ${auditArchives.period} like ${period.id + '.%'})`,
      ),
    )
    .get();
  const periodId = (parts?.n ?? 0) === 0 ? period.id : `${period.id}.${(parts?.n ?? 0) + 1}`;
  const key = archiveObjectKey(chain, periodId);
  const body = rows.map((r) => r.canonical).join('\n') + '\n';
  const digest = await sha256Hex(body);
  const metadata: ArchiveMetadata = {
    chain,
    period: periodId,
    firstSeq: String(afterSeq + 1),
    lastSeq: String(lastSeq),
    prevHash,
    lastHash,
    sha256: digest,
    checkpoint: JSON.stringify(checkpointJson(checkpoint)),
  };
  const existing = await bucket.head(key);
  if (existing && existing.customMetadata?.sha256 !== digest) {
    console.error(`audit chain ${chain}: archive object ${key} exists with other content; not overwritten`);
    return 'refused';
  }
  if (!existing) {
    await bucket.put(key, body, {
      httpMetadata: { contentType: 'application/x-ndjson' },
      customMetadata: { ...metadata },
      sha256: digest,
    });
  }
  await db
    .insert(auditArchives)
    .values({
      chain,
      period: periodId,
      objectKey: key,
      firstSeq: afterSeq + 1,
      lastSeq,
      prevHash,
      lastHash,
      digest,
      periodEnd: period.end,
      archivedAt: now,
    })
    .onConflictDoNothing();
  return 'archived';
}

function checkpointJson(cp: Checkpoint): Checkpoint {
  return { chain: cp.chain, seq: cp.seq, hash: cp.hash, time: cp.time, alg: cp.alg, kid: cp.kid, signature: cp.signature };
}

export interface PruneRun {
  periods: number;
  records: number;
}

/**
 * Deletes from D1 the records of archived periods that ended before the retention cutoff, oldest
 * first per chain, each period in one transaction with its `pruned_at` marker. Only archived
 * records are ever deleted (the object was written before the archive row exists).
 */
export async function pruneArchivedRecords(
  db: Database,
  config: ArchiveConfig,
  now = Date.now(),
  only?: readonly string[],
): Promise<PruneRun> {
  const cutoff = now - config.retentionDays * DAY_MS;
  const due = (
    await db
      .select()
      .from(auditArchives)
      .where(and(isNull(auditArchives.prunedAt), lte(auditArchives.periodEnd, cutoff)))
      .orderBy(asc(auditArchives.chain), asc(auditArchives.lastSeq))
      .limit(100)
      .all()
  ).filter((a) => !only || only.includes(a.chain));
  const run: PruneRun = { periods: 0, records: 0 };
  for (const archive of due) {
    const [deleted] = await db.batch([
      db
        .delete(auditRecords)
        .where(and(eq(auditRecords.chain, archive.chain), lte(auditRecords.seq, archive.lastSeq)))
        .returning({ seq: auditRecords.seq }),
      db
        .update(auditArchives)
        .set({ prunedAt: now })
        .where(and(eq(auditArchives.chain, archive.chain), eq(auditArchives.period, archive.period))),
    ]);
    run.periods++;
    run.records += deleted.length;
  }
  return run;
}

/** Deletes archive objects older than the archive retention, if one is configured. */
export async function deleteExpiredArchives(
  db: Database,
  bucket: R2Bucket,
  config: ArchiveConfig,
  now = Date.now(),
): Promise<number> {
  if (config.archiveRetentionDays === null) return 0;
  const cutoff = now - config.archiveRetentionDays * DAY_MS;
  const due = await db
    .select({ chain: auditArchives.chain, period: auditArchives.period, objectKey: auditArchives.objectKey })
    .from(auditArchives)
    .where(and(isNotNull(auditArchives.prunedAt), isNull(auditArchives.objectDeletedAt), lte(auditArchives.periodEnd, cutoff)))
    .limit(500)
    .all();
  if (due.length === 0) return 0;
  await bucket.delete(due.map((d) => d.objectKey));
  for (const d of due) {
    await db
      .update(auditArchives)
      .set({ objectDeletedAt: now })
      .where(and(eq(auditArchives.chain, d.chain), eq(auditArchives.period, d.period)));
  }
  return due.length;
}

/** An archive object's records and metadata, read back (for verification of the archive). */
export async function readArchiveObject(
  bucket: R2Bucket,
  key: string,
): Promise<{ lines: string[]; metadata: ArchiveMetadata } | null> {
  const object = await bucket.get(key);
  if (!object) return null;
  const text = await object.text();
  return { lines: text.split('\n').filter((l) => l !== ''), metadata: object.customMetadata as unknown as ArchiveMetadata };
}
