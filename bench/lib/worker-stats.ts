/**
 * The Worker's per-isolate counters (GET /management/stats on the apex, administrators only) and
 * a way to wait until the audit queue consumer has caught up.
 *
 * Reading the counters is not free: each read runs the management middleware (a D1 lookup of the
 * calling application) and emits its own audit event, which the consumer later inserts. Those
 * statements are measured (the steady per-read delta once everything else is idle) and subtracted.
 *
 * The counters live in one isolate: if wrangler reloads the Worker (it watches the source tree),
 * they start again from zero. A counter that goes down is reported as IsolateRestarted.
 */
import { httpsRequest } from '../../scripts/lib/https-client.js';

export interface WorkerStats {
  /** Statements prepared by request handling that a request waited on (its request path). */
  d1Statements: number;
  /** Statements prepared by the audit queue consumer (absent in older Workers). */
  d1AuditStatements?: number;
  /**
   * Statements of the caches' background renewals (refresh-ahead, src/core/cache.ts): started by
   * a request, awaited by none (absent in older Workers, where such reloads were request-path ones).
   */
  d1RefreshStatements?: number;
  bridgeCalls: number;
  dataKeyCache: { size: number; hits: number; misses: number };
}

export class IsolateRestarted extends Error {
  override name = 'IsolateRestarted';
}

export interface Settled {
  stats: WorkerStats;
  /** Statements one counter read adds by itself, once everything else is idle. */
  perRead: { d1: number; audit: number };
  /** Value of `reads` when `stats` was taken. */
  atRead: number;
}

const audit = (s: WorkerStats) => s.d1AuditStatements ?? 0;
const refresh = (s: WorkerStats) => s.d1RefreshStatements ?? 0;

/** Throws IsolateRestarted when any counter of `later` is below `earlier`'s. */
export function assertSameIsolate(earlier: WorkerStats, later: WorkerStats): void {
  const pairs: Array<[string, number, number]> = [
    ['d1Statements', earlier.d1Statements, later.d1Statements],
    ['d1AuditStatements', audit(earlier), audit(later)],
    ['d1RefreshStatements', refresh(earlier), refresh(later)],
    ['bridgeCalls', earlier.bridgeCalls, later.bridgeCalls],
    ['dataKeyCache.hits', earlier.dataKeyCache.hits, later.dataKeyCache.hits],
    ['dataKeyCache.misses', earlier.dataKeyCache.misses, later.dataKeyCache.misses],
  ];
  for (const [name, a, b] of pairs) {
    if (b < a) throw new IsolateRestarted(`${name} went from ${a} to ${b}: the Worker's isolate was replaced`);
  }
}

export class WorkerStatsReader {
  /** How many times the counters were read; each read adds statements of its own. */
  reads = 0;

  constructor(
    private readonly apexUrl: string,
    private readonly token: string,
    private readonly ca: string,
  ) {}

  async read(): Promise<WorkerStats> {
    this.reads++;
    const res = await httpsRequest(`${this.apexUrl}/management/stats`, {
      headers: { authorization: `Bearer ${this.token}` },
      ca: this.ca,
    });
    if (res.status !== 200) throw new Error(`GET /management/stats: HTTP ${res.status} ${res.text.slice(0, 200)}`);
    return res.json<WorkerStats>();
  }

  /**
   * Polls the counters until both D1 counts grow by the same small amounts on consecutive polls
   * (only the polls' own statements: the queue consumer is idle). The queue's batch timeout is
   * 1 s, so polls are 1.5 s apart. A poll's own audit event costs the consumer a whole chain
   * append (read the chain's last record and head, look the event id up, insert, move the head:
   * about 5 statements), hence the bound of 16 per poll.
   */
  async settle(opts: { intervalMs?: number; maxPolls?: number; maxPerPoll?: number } = {}): Promise<Settled> {
    const intervalMs = opts.intervalMs ?? 1500;
    const maxPolls = opts.maxPolls ?? 40;
    const maxPerPoll = opts.maxPerPoll ?? 16;
    let previous = await this.read();
    let last: { d1: number; audit: number } | undefined;
    for (let i = 0; i < maxPolls; i++) {
      await new Promise((r) => setTimeout(r, intervalMs));
      const current = await this.read();
      assertSameIsolate(previous, current);
      const delta = { d1: current.d1Statements - previous.d1Statements, audit: audit(current) - audit(previous) };
      if (last && delta.d1 === last.d1 && delta.audit === last.audit && delta.d1 <= maxPerPoll && delta.audit <= maxPerPoll) {
        return { stats: current, perRead: delta, atRead: this.reads };
      }
      last = delta;
      previous = current;
    }
    throw new Error(
      `the Worker's D1 statement counts did not settle within ${maxPolls} polls (audit queue still busy?); ` +
        `last growth per poll: ${last ? `${last.d1} request-path, ${last.audit} audit` : 'none'}`,
    );
  }
}

/** What happened between two settled readings, the counter reads' own statements taken out. */
export function windowDelta(from: Settled, to: Settled) {
  assertSameIsolate(from.stats, to.stats);
  const ownReads = to.atRead - from.atRead;
  const a = from.stats;
  const b = to.stats;
  return {
    d1Statements: b.d1Statements - a.d1Statements - ownReads * to.perRead.d1,
    d1AuditStatements: b.d1AuditStatements === undefined ? undefined : audit(b) - audit(a) - ownReads * to.perRead.audit,
    // Not subtracted per poll: a poll renews at most its caller's cached application, once per 30 s.
    d1RefreshStatements: b.d1RefreshStatements === undefined ? undefined : refresh(b) - refresh(a),
    bridgeCalls: b.bridgeCalls - a.bridgeCalls,
    cacheHits: b.dataKeyCache.hits - a.dataKeyCache.hits,
    cacheMisses: b.dataKeyCache.misses - a.dataKeyCache.misses,
    ownReads,
  };
}
