/**
 * The operator's view of `/healthz` (README "Watching it"): what is wrong, for an on-call engineer
 * holding an administrator token. D1 and the bridge with their latency, the audit trail's lag,
 * checkpoints and dead letters, the cron jobs' last outcomes and the events that could not be
 * delivered. Counts, ages and identifiers only: never a record's content.
 */
import { sql } from 'drizzle-orm';
import { DEPLOYMENT_CHAIN } from '../audit/event';
import type { Env } from '../core/env';
import type { Services } from '../crypto/services';
import { lastJobRuns, type JobRun } from '../jobs/outcomes';

/** Audit chains whose head has waited longer than this for a checkpoint (the cron runs every 5 min). */
export const CHECKPOINT_OVERDUE_SECONDS = 15 * 60;
const DEAD_LETTER_SCAN = 1000;

export interface Probe {
  status: 'ok' | 'unavailable';
  latencyMs: number;
}

export interface HealthReport {
  d1: Probe;
  bridge: Probe & { kek: boolean; reason?: string };
  audit?: {
    /** Seconds since any audit record was appended (a growing value with traffic = the queue is stuck). */
    lastAppendAgeSeconds: number | null;
    lastCheckpointAgeSeconds: number | null;
    /** Chains with records no checkpoint covers yet, and how long the oldest such record has waited. */
    chainsAwaitingCheckpoint: number;
    oldestUncheckpointedSeconds: number | null;
    /** Audit events that could not join their chain (after the dead-letter queue), or were not events. */
    deadLetters: { unappendable: number; malformed: number; lastAt: string | null };
  };
  cron?: JobRun[];
  events?: { deadLetters: number; moreThanCounted: boolean };
  /** What an on-call engineer should look at, one short sentence each (empty when all is well). */
  warnings: string[];
}

async function timed<T>(probe: () => Promise<T>): Promise<{ ms: number; value?: T; failed: boolean }> {
  const started = Date.now();
  try {
    const value = await probe();
    return { ms: Date.now() - started, value, failed: false };
  } catch {
    return { ms: Date.now() - started, failed: true };
  }
}

/** D1 and the bridge only: what decides up or down (both views). */
export async function probeDependencies(s: Services): Promise<Pick<HealthReport, 'd1' | 'bridge'>> {
  const [d1, hsm] = await Promise.all([timed(() => s.db.get(sql`select 1 as ok`)), timed(() => s.bridge.health())]);
  const bridgeOk = !hsm.failed && hsm.value!.status === 'ok' && hsm.value!.kek;
  return {
    d1: { status: d1.failed ? 'unavailable' : 'ok', latencyMs: d1.ms },
    bridge: {
      status: bridgeOk ? 'ok' : 'unavailable',
      latencyMs: hsm.ms,
      kek: hsm.value?.kek ?? false,
      ...(bridgeOk ? {} : { reason: hsm.value?.reason ?? 'KEK unavailable' }),
    },
  };
}

const ageSeconds = (now: number, ms: number | null | undefined) =>
  ms == null ? null : Math.max(0, Math.round((now - ms) / 1000));

/** Everything else the operator sees; each part is left out when D1 cannot answer it. */
export async function operatorReport(env: Env, s: Services, deps: Pick<HealthReport, 'd1' | 'bridge'>): Promise<HealthReport> {
  const now = Date.now();
  const report: HealthReport = { ...deps, warnings: [] };
  if (deps.d1.status !== 'ok') report.warnings.push('D1 is not reachable.');
  if (deps.bridge.status !== 'ok') report.warnings.push(`The HSM bridge is not ready: ${deps.bridge.reason}.`);

  const [audit, cron, events] = await Promise.all([
    deps.d1.status === 'ok' ? auditState(s, now).catch(() => undefined) : undefined,
    deps.d1.status === 'ok' ? lastJobRuns(s.db).catch(() => undefined) : undefined,
    eventDeadLetters(env.EVENT_DEADLETTER).catch(() => undefined),
  ]);
  if (audit) {
    report.audit = audit;
    const dead = audit.deadLetters.unappendable + audit.deadLetters.malformed;
    if (dead > 0) report.warnings.push(`${dead} audit events could not join their chain (deployment chain records).`);
    if ((audit.oldestUncheckpointedSeconds ?? 0) > CHECKPOINT_OVERDUE_SECONDS)
      report.warnings.push(`Audit records have waited ${audit.oldestUncheckpointedSeconds} s for a signed checkpoint.`);
  }
  if (cron) {
    report.cron = cron;
    for (const run of cron.filter((r) => r.outcome !== 'ok'))
      report.warnings.push(`Cron job ${run.job} last ended ${run.outcome}${run.error ? ` (${run.error})` : ''}.`);
  }
  if (events) {
    report.events = events;
    if (events.deadLetters > 0)
      report.warnings.push(`${events.deadLetters}${events.moreThanCounted ? '+' : ''} event deliveries were dead-lettered.`);
  }
  return report;
}

async function auditState(s: Services, now: number): Promise<NonNullable<HealthReport['audit']>> {
  const [heads, waiting, dead] = await Promise.all([
    s.db.get<{ lastAppend: number | null; lastCheckpoint: string | null }>(
      sql`select (select max(updated_at) from audit_chain_heads) as lastAppend, (select max(time) from audit_checkpoints) as lastCheckpoint`,
    ),
    // Chains whose head is past their last checkpoint, and the oldest record no checkpoint covers.
    s.db.get<{ chains: number; oldest: number | null }>(sql`
      with cp as (select chain, max(seq) as seq from audit_checkpoints group by chain)
      select count(*) as chains,
        min(coalesce((select r.time from audit_records r where r.chain = h.chain and r.seq > coalesce(cp.seq, -1) order by r.seq limit 1), h.updated_at)) as oldest
      from audit_chain_heads h left join cp on cp.chain = h.chain
      where cp.seq is null or cp.seq < h.seq`),
    s.db.all<{ operation: string; n: number; last: number }>(
      sql`select operation, count(*) as n, max(time) as last from audit_records
          where chain = ${DEPLOYMENT_CHAIN} and operation in ('UnappendableAuditEvent', 'MalformedAuditEvent') group by operation`,
    ),
  ]);
  const count = (op: string) => dead.find((d) => d.operation === op)?.n ?? 0;
  const lastDead = Math.max(0, ...dead.map((d) => d.last));
  return {
    lastAppendAgeSeconds: ageSeconds(now, heads?.lastAppend),
    lastCheckpointAgeSeconds: ageSeconds(now, heads?.lastCheckpoint ? Date.parse(heads.lastCheckpoint) : null),
    chainsAwaitingCheckpoint: waiting?.chains ?? 0,
    oldestUncheckpointedSeconds: ageSeconds(now, waiting?.oldest),
    deadLetters: {
      unappendable: count('UnappendableAuditEvent'),
      malformed: count('MalformedAuditEvent'),
      lastAt: lastDead > 0 ? new Date(lastDead).toISOString() : null,
    },
  };
}

/** Dead-lettered event deliveries (one R2 object each), counted up to a page. */
async function eventDeadLetters(bucket: R2Bucket | undefined): Promise<HealthReport['events']> {
  if (!bucket) return undefined;
  const page = await bucket.list({ limit: DEAD_LETTER_SCAN });
  return { deadLetters: page.objects.length, moreThanCounted: page.truncated };
}
