/**
 * The Worker's structured log lines (README "Watching it"): one JSON object per request, per queue
 * batch and per cron job, so Workers Logs / Logpush can be filtered by field. Every line is built
 * here from named fields of plain numbers and identifiers; nothing passes a request's headers, body,
 * query or an error's message through, which is what keeps secret values, tokens, client secrets
 * and Authorization headers out of the logs (test/worker/observability.test.ts checks it).
 */

/** What one request did below the HTTP layer, counted as it happens (one object per request). */
export interface RequestMeter {
  /** HTTP calls made to the HSM bridge, and those that failed (no answer, 401 or 5xx). */
  bridgeCalls: number;
  bridgeErrors: number;
  /** Object versions read through the isolate's read cache: served from it, or read from D1. */
  readHits: number;
  readMisses: number;
}

export const newMeter = (): RequestMeter => ({ bridgeCalls: 0, bridgeErrors: 0, readHits: 0, readMisses: 0 });

/** 'hit' when every object read was served by the read cache, 'miss' when any went to D1; else none. */
export function cacheOutcome(meter: RequestMeter): 'hit' | 'miss' | undefined {
  if (meter.readMisses > 0) return 'miss';
  return meter.readHits > 0 ? 'hit' : undefined;
}

/** One request as the log line and the metrics see it (fields from the audit event, never the request). */
export interface RequestSummary {
  correlationId: string;
  requestId: string;
  operation: string;
  vault: string | null;
  status: number;
  errorCode: string | null;
  durationMs: number;
  /** The caller's object id (never its token or client secret). */
  callerId: string | null;
  meter: RequestMeter;
}

export function logRequest(s: RequestSummary): void {
  const line: Record<string, unknown> = {
    type: 'request',
    correlationId: s.correlationId,
    requestId: s.requestId,
    operation: s.operation,
    vault: s.vault,
    status: s.status,
    durationMs: s.durationMs,
    callerId: s.callerId,
  };
  if (s.errorCode) line.errorCode = s.errorCode;
  const cache = cacheOutcome(s.meter);
  if (cache) line.cache = cache;
  if (s.meter.bridgeCalls > 0) {
    line.bridgeCalls = s.meter.bridgeCalls;
    line.bridgeErrors = s.meter.bridgeErrors;
  }
  console.log(JSON.stringify(line));
}

/** One queue batch: how many messages, what became of them, and how long the oldest waited. */
export interface BatchSummary {
  queue: string;
  messages: number;
  acked: number;
  retried: number;
  /** Milliseconds between the oldest message's send and its handling: the queue's lag. */
  maxLagMs: number;
  durationMs: number;
  /** The handler threw: the whole batch will be redelivered. */
  failed: boolean;
}

export function logBatch(s: BatchSummary): void {
  console.log(JSON.stringify({ type: 'queue', ...s }));
}

/** One cron job's outcome: 'ok', 'deferred' (the bridge was down, retried next run) or 'failed'. */
export interface JobSummary {
  job: string;
  outcome: 'ok' | 'deferred' | 'failed';
  durationMs: number;
  /** Counts the job reports (rotated, purged, checkpoints...): numbers only. */
  counts: Record<string, number>;
  /** The error's class name when it failed (never its message, which may quote data). */
  error?: string;
}

export function logJob(s: JobSummary): void {
  const line = { type: 'cron', ...s };
  (s.outcome === 'failed' ? console.error : console.log)(JSON.stringify(line));
}
