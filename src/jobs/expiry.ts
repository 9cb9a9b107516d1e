/**
 * The cron's expiry notices, for every kind on the versioned-object engine: {Kind}NearExpiry when
 * the current version of an object comes within 30 days of its exp, {Kind}Expired when exp has
 * passed, each once per version. As Azure does ("triggered when the current version … is about to
 * expire / is expired"), only the current (latest) version of a live object counts; we also skip
 * disabled versions, which serve nothing, so nothing breaks at their expiry (re-enabled before
 * then, they are announced at the next run).
 *
 * Candidates are found through each version table's `{table}_exp` index, in two windows of exp
 * (near: now < exp ≤ now + 30 days; expired: now − 7 days < exp ≤ now), never by reading every
 * object, and at most `limit` per kind and stage a run (most urgent first; the rest next run).
 * Each is claimed in expiry_notices (INSERT … ON CONFLICT DO NOTHING) before its event is queued,
 * and only a claim that took is queued: two overlapping runs announce a version once. A queue
 * send that fails gives its claims back, so the next run tries again.
 *
 * KeyNearExpiry is not sent here: Azure times it by the key's rotation policy (its Notify action,
 * 30 days before expiry by default), so the rotation job (rotation.ts) sends it on the policy's
 * schedule, claiming the same markers. A new kind joins by adding its tables to EXPIRING_KINDS.
 */
import { and, asc, eq, gt, isNull, lte, notExists, sql } from 'drizzle-orm';
import type { SQLiteColumn } from 'drizzle-orm/sqlite-core';
import type { Env } from '../core/env';
import type { VaultRecord } from '../core/vault';
import { emitEvents, versionEvent, versionEventType, vaultOriginFor, type ObjectType, type VaultEvent } from '../events/event';
import type { HeadTable, VersionTable } from '../objects/engine/kind';
import { database, type Database } from '../storage/db';
import { claimNotices, noticeKey, releaseNotices, type Notice } from '../storage/expiry-notices';
import {
  certificates,
  certificateVersions,
  expiryNotices,
  keys,
  keyVersions,
  secrets,
  secretVersions,
  vaults,
} from '../storage/schema';

export const NEAR_EXPIRY_SECONDS = 30 * 86_400;
/**
 * How long after its exp a version is still announced as expired: covers a cron outage, and a
 * version created already expired. Older ones are left alone, which keeps the window (and what a
 * run reads of the index) bounded by recent expiries rather than by history.
 */
export const EXPIRED_LOOKBACK_SECONDS = 7 * 86_400;
/** Notices per kind and stage a run; the rest wait for the next run (every 5 minutes). */
const NOTICES_PER_RUN = 100;

type ExpiryStage = 'NearExpiry' | 'Expired';

export interface ExpiringKind {
  /** As the engine names the kind (ObjectKind.kind); the markers' `kind`. */
  kind: string;
  objectType: ObjectType;
  head: HeadTable;
  versions: VersionTable & { enabled: SQLiteColumn; nbf: SQLiteColumn; exp: SQLiteColumn };
  stages: readonly ExpiryStage[];
}

/** The kinds whose versions expire, and which of the notices this job sends for each. */
export const EXPIRING_KINDS: readonly ExpiringKind[] = [
  { kind: 'secret', objectType: 'Secret', head: secrets, versions: secretVersions, stages: ['NearExpiry', 'Expired'] },
  { kind: 'key', objectType: 'Key', head: keys, versions: keyVersions, stages: ['Expired'] },
  // CertificateNearExpiry shares its marker with the policy's EmailContacts action (the renewal
  // job, certificate-renewal.ts): whichever comes first (30 days before exp, or the action's
  // trigger) announces the version, once.
  {
    kind: 'certificate',
    objectType: 'Certificate',
    head: certificates,
    versions: certificateVersions,
    stages: ['NearExpiry', 'Expired'],
  },
];

export interface ExpiryRunResult {
  /** Candidates found (unmarked current versions in a window). */
  found: number;
  /** Notices this run claimed and queued, by event type. */
  sent: Partial<Record<string, number>>;
  /** Claimed but not queued (queue down): given back for the next run. */
  failed: number;
}

interface Candidate {
  vault: VaultRecord;
  name: string;
  version: string;
  nbf: number | null;
  exp: number;
  created: number;
}

/** Runs every kind's expiry notices as of `now` (Unix seconds; tests shift it). Safe to overlap. */
export async function runExpiryNotices(
  env: Env,
  now: number,
  options: { db?: Database; kinds?: readonly ExpiringKind[]; limit?: number } = {},
): Promise<ExpiryRunResult> {
  const db = options.db ?? database(env.DB);
  const result: ExpiryRunResult = { found: 0, sent: {}, failed: 0 };
  for (const kind of options.kinds ?? EXPIRING_KINDS) {
    for (const stage of kind.stages) {
      const candidates = await findDue(db, kind, stage, now, options.limit ?? NOTICES_PER_RUN);
      result.found += candidates.length;
      const claimed = await claim(db, kind, stage, candidates, now);
      if (claimed.length === 0) continue;
      const events = await Promise.all(
        claimed.map((c) => versionEvent(kind.objectType, stage, vaultOriginFor(env.VAULT_ZONE, c.vault), c.vault, c, now)),
      );
      const type = versionEventType(kind.objectType, stage);
      // emitEvents never throws; sendBatch takes at most 100 messages.
      for (let i = 0; i < events.length; i += 100) {
        const chunk = claimed.slice(i, i + 100);
        if (await emitEvents(env.EVENTS_QUEUE, events.slice(i, i + 100) as VaultEvent[])) {
          result.sent[type] = (result.sent[type] ?? 0) + chunk.length;
        } else {
          result.failed += chunk.length;
          // If this fails too, these notices are lost; emitEvents logged which.
          await releaseNotices(
            db,
            chunk.map((c) => noticeOf(kind, stage, c)),
          ).catch(() => undefined);
        }
      }
    }
  }
  return result;
}

/** The window of exp a stage looks at. */
function window(stage: ExpiryStage, now: number): [after: number, upTo: number] {
  return stage === 'NearExpiry' ? [now, now + NEAR_EXPIRY_SECONDS] : [now - EXPIRED_LOOKBACK_SECONDS, now];
}

/**
 * Current, enabled versions of live objects whose exp is in the stage's window and that carry no
 * marker for it, soonest exp first. The range on exp is what the `{table}_exp` index answers; the
 * head and the marker are then primary-key lookups per version found.
 */
export function dueQuery(db: Database, kind: ExpiringKind, stage: ExpiryStage, now: number, limit: number) {
  const { head: h, versions: v } = kind;
  const [after, upTo] = window(stage, now);
  const marker = db
    .select({ one: sql`1` })
    .from(expiryNotices)
    .where(
      and(
        eq(expiryNotices.vaultId, v.vaultId),
        eq(expiryNotices.kind, kind.kind),
        eq(expiryNotices.name, v.name),
        eq(expiryNotices.version, v.version),
        eq(expiryNotices.eventType, versionEventType(kind.objectType, stage)),
      ),
    );
  return db
    .select({ vault: vaults, name: v.name, version: v.version, nbf: v.nbf, exp: v.exp, created: v.created })
    .from(v)
    .innerJoin(h, and(eq(h.vaultId, v.vaultId), eq(h.name, v.name), eq(h.latestVersion, v.version)))
    .innerJoin(vaults, eq(vaults.id, v.vaultId))
    .where(and(gt(v.exp, after), lte(v.exp, upTo), eq(v.enabled, true), isNull(h.deletedAt), notExists(marker)))
    .orderBy(asc(v.exp))
    .limit(limit);
}

async function findDue(db: Database, kind: ExpiringKind, stage: ExpiryStage, now: number, limit: number): Promise<Candidate[]> {
  return (await dueQuery(db, kind, stage, now, limit).all()) as Candidate[];
}

const noticeOf = (kind: ExpiringKind, stage: ExpiryStage, c: Candidate): Notice => ({
  vaultId: c.vault.id,
  kind: kind.kind,
  name: c.name,
  version: c.version,
  eventType: versionEventType(kind.objectType, stage),
});

/** Claims the candidates' markers; returns those whose claim took (not already claimed by anyone). */
async function claim(
  db: Database,
  kind: ExpiringKind,
  stage: ExpiryStage,
  candidates: Candidate[],
  now: number,
): Promise<Candidate[]> {
  const took = await claimNotices(
    db,
    candidates.map((c) => noticeOf(kind, stage, c)),
    now,
  );
  return candidates.filter((c) => took.has(noticeKey(noticeOf(kind, stage, c))));
}
