/**
 * Metrics that outlive isolates: one Workers Analytics Engine data point per request, queue batch
 * and cron job, in the METRICS dataset (README "Watching it" has the SQL for each). The layout of
 * blobs and doubles below is that contract: append new fields at the end, never reorder.
 *
 * writeDataPoint is fire-and-forget (no await, no I/O the request waits on). Without the binding
 * (a deployment that has not created the dataset) nothing is written; a write that throws is
 * dropped, because metrics must never fail a request.
 */
import { cacheOutcome, type BatchSummary, type JobSummary, type RequestSummary } from './log';

/** The binding's one method (so tests and callers need not know the full runtime type). */
export interface MetricsDataset {
  writeDataPoint(point: { indexes?: string[]; blobs?: string[]; doubles?: number[] }): void;
}

function write(dataset: MetricsDataset | undefined, point: { indexes: string[]; blobs: string[]; doubles: number[] }): void {
  if (!dataset) return;
  try {
    dataset.writeDataPoint(point);
  } catch {
    // A dropped point is better than a failed request.
  }
}

/**
 * kind 'request': blob1 'request', blob2 operation, blob3 vault ('' on the apex), blob4 cache
 * ('hit' | 'miss' | ''), blob5 error code ('' on success); double1 status, double2 duration ms,
 * double3 bridge calls, double4 bridge errors, double5 read-cache hits, double6 read-cache misses.
 */
export function requestPoint(dataset: MetricsDataset | undefined, s: RequestSummary): void {
  const m = s.meter;
  write(dataset, {
    indexes: [s.operation.slice(0, 96)],
    blobs: ['request', s.operation, s.vault ?? '', cacheOutcome(m) ?? '', s.errorCode ?? ''],
    doubles: [s.status, s.durationMs, m.bridgeCalls, m.bridgeErrors, m.readHits, m.readMisses],
  });
}

/**
 * kind 'queue': blob1 'queue', blob2 queue name, blob3 'ok' | 'failed'; double1 messages,
 * double2 acked, double3 retried, double4 lag of the oldest message (ms), double5 duration ms.
 * A batch of ekv-audit-dlq is a batch of audit dead letters.
 */
export function batchPoint(dataset: MetricsDataset | undefined, s: BatchSummary): void {
  write(dataset, {
    indexes: [`queue:${s.queue}`.slice(0, 96)],
    blobs: ['queue', s.queue, s.failed ? 'failed' : 'ok'],
    doubles: [s.messages, s.acked, s.retried, s.maxLagMs, s.durationMs],
  });
}

/**
 * kind 'cron': blob1 'cron', blob2 job name, blob3 'ok' | 'deferred' | 'failed', blob4 error class
 * ('' unless failed); double1 duration ms, double2 items done (the sum of the job's counts except
 * `failed`), double3 items failed (its `failed` count).
 */
export function jobPoint(dataset: MetricsDataset | undefined, s: JobSummary): void {
  const failed = s.counts.failed ?? 0;
  const done = Object.entries(s.counts).reduce((sum, [name, n]) => (name === 'failed' ? sum : sum + n), 0);
  write(dataset, {
    indexes: [`cron:${s.job}`.slice(0, 96)],
    blobs: ['cron', s.job, s.outcome, s.error ?? ''],
    doubles: [s.durationMs, done, failed],
  });
}
