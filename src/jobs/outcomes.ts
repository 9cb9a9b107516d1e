/**
 * Every cron job runs through observeJob: one JSON log line and one metrics data point per job and
 * run, and its last outcome kept in D1 (settings `cron.last.{job}`, plus `cron.ok.{job}` when it
 * succeeded) so the operator's health view can say what the last runs did and since when a job
 * has been failing, whichever isolate ran them.
 */
import { like } from 'drizzle-orm';
import type { Env } from '../core/env';
import { logJob, type JobSummary } from '../core/log';
import { jobPoint } from '../core/metrics';
import { database, type Database } from '../storage/db';
import { settings } from '../storage/schema';

/** What a job's result says: its counts, and whether it deferred work (the bridge was down). */
export interface JobReport {
  counts: Record<string, number>;
  deferred?: boolean;
}

/** A job's last recorded run, as the health view shows it. */
export interface JobRun {
  job: string;
  /** Unix milliseconds the run ended. */
  at: number;
  outcome: JobSummary['outcome'];
  durationMs: number;
  counts: Record<string, number>;
  error?: string;
  /** The last run that ended 'ok' (Unix milliseconds), if any. */
  lastOkAt: number | null;
}

const LAST = 'cron.last.';
const OK = 'cron.ok.';

/** Runs one job, then logs, measures and records its outcome; never throws (the next run retries). */
export async function observeJob<R>(
  env: Env,
  job: string,
  run: () => Promise<R>,
  report: (result: R) => JobReport,
): Promise<void> {
  const started = Date.now();
  let summary: JobSummary;
  try {
    const r = report(await run());
    summary = { job, outcome: r.deferred ? 'deferred' : 'ok', durationMs: Date.now() - started, counts: r.counts };
  } catch (err) {
    // The class name only: messages may quote data (a SQL statement, a name).
    summary = {
      job,
      outcome: 'failed',
      durationMs: Date.now() - started,
      counts: {},
      error: err instanceof Error ? err.name : 'Error',
    };
  }
  logJob(summary);
  jobPoint(env.METRICS, summary);
  try {
    await recordRun(database(env.DB), summary, Date.now());
  } catch (err) {
    console.error(JSON.stringify({ type: 'cron', job, recorded: false, error: err instanceof Error ? err.name : 'Error' }));
  }
}

async function recordRun(db: Database, s: JobSummary, at: number): Promise<void> {
  const upsert = (key: string, value: string) =>
    db.insert(settings).values({ key, value }).onConflictDoUpdate({ target: settings.key, set: { value } });
  const last = upsert(
    LAST + s.job,
    JSON.stringify({ at, outcome: s.outcome, durationMs: s.durationMs, counts: s.counts, error: s.error }),
  );
  if (s.outcome === 'ok') await db.batch([last, upsert(OK + s.job, String(at))]);
  else await last;
}

/** The last recorded run of every job (whichever isolate ran it), by job name. */
export async function lastJobRuns(db: Database): Promise<JobRun[]> {
  const rows = await db.select().from(settings).where(like(settings.key, 'cron.%')).all();
  const okAt = new Map(rows.filter((r) => r.key.startsWith(OK)).map((r) => [r.key.slice(OK.length), Number(r.value)]));
  return rows
    .filter((r) => r.key.startsWith(LAST))
    .map((r) => {
      const job = r.key.slice(LAST.length);
      const v = JSON.parse(r.value) as Omit<JobRun, 'job' | 'lastOkAt'>;
      return {
        job,
        at: v.at,
        outcome: v.outcome,
        durationMs: v.durationMs,
        counts: v.counts,
        error: v.error,
        lastOkAt: okAt.get(job) ?? null,
      };
    })
    .sort((a, b) => a.job.localeCompare(b.job));
}
