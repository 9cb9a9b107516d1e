/** The shape of bench/results/latest.json and the table printed from it (also pasted into BENCHMARKS.md). */
import type { MachineInfo, SoftwareInfo } from './machine.js';
import { renderIssuance, type IssuanceFigures } from '../issuance.js';
import { renderRenewal, type RenewalFigures } from '../renewal.js';

export interface RouteFigures {
  requests: number;
  perSecond: number;
  /** Null for rounds timed only as a whole (WebCrypto in workerd). */
  p50Ms: number | null;
  p99Ms: number | null;
  /** Per-round rates, in the order they ran. */
  rounds: number[];
}

/** One sign figure: the API's rate and the same signature's rate directly, in alternating rounds. */
export interface SignFigures {
  id: string;
  alg: string;
  /** The Keys API create body of the key. */
  key: { kty: string; crv?: string; key_size?: number };
  hsm: boolean;
  route: string;
  /** What the direct baseline runs. */
  directWhat: string;
  api: RouteFigures;
  direct: RouteFigures;
  /** Operations per direct round (sized from the warm-up to last about as long as an API round). */
  directRound: number;
  /** API rate / direct rate: the median over cycles, and each cycle's. */
  apiOverDirect: number;
  cycles: number[];
}

/** The audit consumer (persistAuditBatch) in workerd, batches of `batchSize` handed to it one after the other. */
export interface AuditConsumerFigures {
  what: string;
  batchSize: number;
  batchesPerRound: number;
  /** Per layout: events spread over this many vault chains. */
  layouts: Array<{
    chains: number;
    /** Median over rounds of events persisted per second (workerd's clock). */
    eventsPerSecond: number;
    rounds: number[];
    /** D1 statements the consumer prepared per batch. */
    statementsPerBatch: number;
  }>;
}

/** The warm secret GET with the real audit queue and consumer, and with AUDIT_QUEUE a stub that drops events. */
export interface AuditPathFigures {
  what: string;
  audited: RouteFigures;
  unaudited: RouteFigures;
  /** Audited rate / unaudited rate: median over cycles, and each cycle's. */
  auditedOverUnaudited: number;
  cycles: number[];
  /** After each audited round, ms until the consumer had stored every record of it (not in the rate). */
  drainMs: number[];
}

export interface BenchResults {
  generatedAt: string;
  durationSeconds: number;
  machine: MachineInfo & { loadAverageAtEnd: number[] };
  software: SoftwareInfo;
  config: Record<string, unknown>;
  /** Rounds and counter windows run again because wrangler reloaded the Worker meanwhile. */
  retried: string[];
  secretGet: RouteFigures & { route: string };
  challenge: RouteFigures & { route: string };
  floor: RouteFigures & { route: string };
  /** Secret GET rate / baseline rate: the median over cycles, and each cycle's. */
  ratio: { getOverChallenge: number; getOverFloor: number; getOverChallengeCycles: number[]; getOverFloorCycles: number[] };
  warmReads: {
    reads: number;
    perSecond: number;
    /** Operations the bridge itself counted while the reads ran. */
    bridgeOps: { wrap: number; unwrap: number };
    /** Bridge calls the Worker counted. */
    workerBridgeCalls: number;
    dataKeyCache: { hits: number; misses: number };
    d1: {
      /** Statements prepared by request handling during the reads (counter reads' own taken out). */
      requestPath: number;
      /** Statements prepared by the audit consumer for the same requests (null: not counted apart). */
      auditConsumer: number | null;
      perGet: number;
      auditPerGet: number | null;
      challengeRequests: number;
      perChallenge: number;
      auditPerChallenge: number | null;
      statsReadCost: { d1: number; audit: number };
    };
  };
  unwrap: {
    http: RouteFigures;
    inProcess: RouteFigures;
    /** HTTP rate / in-process rate: median over cycles, and each cycle's. */
    httpOverInProcess: number;
    cycles: number[];
    sessionPool: number;
  };
  sign: SignFigures[];
  /** Wall time of the sign figures (key creation, warm-ups, rounds). */
  signSeconds: number;
  auditConsumer: AuditConsumerFigures;
  auditPath: AuditPathFigures;
  /** Wall time of the audit figures (builds, Miniflare, setup, rounds). */
  auditSeconds: number;
  /** Scheduled renewal of due certificates end to end (bench/renewal.ts); absent in older results. */
  renewal?: RenewalFigures;
  /** Self-signed issuance against direct key generation and signing (bench/issuance.ts); absent in older results. */
  issuance?: IssuanceFigures;
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

export function renderMarkdown(r: BenchResults): string {
  const w = r.warmReads;
  const u = r.unwrap;
  const ms = (v: number | null) => (v === null ? '' : `${v} ms`);
  const rate = (f: RouteFigures, unit: string): [string, string, string] => [
    `${fmt(f.perSecond)} ${unit}`,
    ms(f.p50Ms),
    ms(f.p99Ms),
  ];
  const keyName = (s: SignFigures) => (s.key.crv ? `${s.key.kty} ${s.key.crv}` : `${s.key.kty} ${s.key.key_size}`);
  const signRows = r.sign.flatMap((s): Array<[string, string, string, string]> => [
    [`${s.alg} sign through the API, ${s.hsm ? '' : 'software '}${keyName(s)} key`, ...rate(s.api, 'req/s')],
    [
      s.hsm
        ? `Same signature in-process on the token (${r.unwrap.sessionPool} sessions)`
        : 'Same signature with WebCrypto in workerd',
      ...rate(s.direct, 'ops/s'),
    ],
    [
      `**${s.alg} ${s.hsm ? 'HSM' : 'software'}: API / direct** (median over cycles)`,
      `**${s.apiOverDirect}** (1/${fmt(1 / s.apiOverDirect)})`,
      '',
      '',
    ],
  ]);
  const rows: Array<[string, string, string, string]> = [
    ['Secret GET, warm, authenticated (200)', ...rate(r.secretGet, 'req/s')],
    ['Baseline: same GET without a token (401 challenge)', ...rate(r.challenge, 'req/s')],
    ['Floor: same GET for a host the Worker does not serve (404)', ...rate(r.floor, 'req/s')],
    ['**Secret GET / challenge** (median over cycles)', `**${r.ratio.getOverChallenge}**`, '', ''],
    ['Secret GET / floor (median over cycles)', `${r.ratio.getOverFloor}`, '', ''],
    [
      `Bridge operations during ${fmt(w.reads)} warm GETs (bridge's /v1/status)`,
      `**${w.bridgeOps.unwrap + w.bridgeOps.wrap}** (unwrap ${w.bridgeOps.unwrap}, wrap ${w.bridgeOps.wrap})`,
      '',
      '',
    ],
    [`Bridge calls during ${fmt(w.reads)} warm GETs (Worker's bridgeCalls)`, `**${w.workerBridgeCalls}**`, '', ''],
    ['D1 statements per warm GET (request path)', `**${w.d1.perGet}**`, '', ''],
    [
      'D1 statements per warm GET, audit consumer',
      w.d1.auditPerGet === null ? 'not counted apart' : `${w.d1.auditPerGet}`,
      '',
      '',
    ],
    [
      'D1 statements per challenge request (request path / audit)',
      `${w.d1.perChallenge} / ${w.d1.auditPerChallenge ?? '?'}`,
      '',
      '',
    ],
    [`Bridge unwrap over signed HTTP (${String(r.config.concurrency)} in flight)`, ...rate(u.http, 'ops/s')],
    [`Same unwrap in-process, same token (${u.sessionPool} sessions)`, ...rate(u.inProcess, 'ops/s')],
    ['**Unwrap HTTP / in-process** (median over cycles)', `**${u.httpOverInProcess}**`, '', ''],
    ...signRows,
    ...r.auditConsumer.layouts.map((l): [string, string, string, string] => [
      `Audit consumer, batches of ${r.auditConsumer.batchSize}, ${l.chains === 1 ? 'one vault chain' : `events over ${l.chains} vault chains`} (persistAuditBatch in workerd)`,
      `**${fmt(l.eventsPerSecond)} events/s**`,
      '',
      '',
    ]),
    ...r.auditConsumer.layouts.map((l): [string, string, string, string] => [
      `D1 statements per batch of ${r.auditConsumer.batchSize}, ${l.chains === 1 ? 'one chain' : `${l.chains} chains`}`,
      `${l.statementsPerBatch}`,
      '',
      '',
    ]),
    ['Secret GET in Miniflare, audit queue and consumer (production path)', ...rate(r.auditPath.audited, 'req/s')],
    ['Same GET, same bundle, AUDIT_QUEUE a stub that drops events', ...rate(r.auditPath.unaudited, 'req/s')],
    ['**Secret GET with audit / without** (median over cycles)', `**${r.auditPath.auditedOverUnaudited}**`, '', ''],
  ];
  const lines = ['| Figure | Value | p50 | p99 |', '|---|---:|---:|---:|', ...rows.map((c) => `| ${c.join(' | ')} |`)];
  const m = r.machine;
  lines.push(
    '',
    `Run ${r.generatedAt} (${r.durationSeconds} s), commit ${r.software.git.commit ?? '?'}${r.software.git.dirty ? ' (plus uncommitted changes)' : ''}; ` +
      `${m.logicalCpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, ${m.os}; Node ${m.node}, wrangler ${r.software.wrangler}, workerd ${r.software.workerd}` +
      `${r.software.miniflare ? ` (Miniflare ${r.software.miniflare})` : ''}, ${r.software.softhsm ? `SoftHSM ${r.software.softhsm}` : 'SoftHSM ?'}; ` +
      `load average ${m.loadAverageAtStart.join('/')} at start, ${m.loadAverageAtEnd.join('/')} at end.`,
    '',
    `- Rounds (req/s): secret GET ${r.secretGet.rounds.join(', ')}; challenge ${r.challenge.rounds.join(', ')}; floor ${r.floor.rounds.join(', ')}.`,
    `- GET/challenge per cycle ${r.ratio.getOverChallengeCycles.join(', ')}; GET/floor per cycle ${r.ratio.getOverFloorCycles.join(', ')}.`,
    `- Unwrap rounds (ops/s): HTTP ${u.http.rounds.join(', ')}; in-process ${u.inProcess.rounds.join(', ')}; ratio per cycle ${u.cycles.join(', ')}.`,
    ...r.sign.map(
      (s) =>
        `- ${s.alg} ${s.hsm ? 'HSM' : 'software'} rounds (${s.api.requests / s.api.rounds.length} API requests / ${fmt(s.directRound)} direct signatures): ` +
        `API ${s.api.rounds.join(', ')}; direct ${s.direct.rounds.join(', ')}; ratio per cycle ${s.cycles.join(', ')}.`,
    ),
    `- During the ${fmt(w.reads)} warm GETs (${fmt(w.perSecond)} req/s): data-key cache ${w.dataKeyCache.hits} hits, ${w.dataKeyCache.misses} misses; ` +
      `D1 ${w.d1.requestPath} request-path statements, ${w.d1.auditConsumer ?? '?'} audit-consumer statements ` +
      `(each counter read costs ${w.d1.statsReadCost.d1} + ${w.d1.statsReadCost.audit}, subtracted).`,
    ...r.auditConsumer.layouts.map(
      (l) =>
        `- Audit consumer rounds (${r.auditConsumer.batchesPerRound} batches of ${r.auditConsumer.batchSize}, ${l.chains} chain${l.chains === 1 ? '' : 's'}, events/s): ${l.rounds.join(', ')}.`,
    ),
    `- Audit path rounds (req/s): with ${r.auditPath.audited.rounds.join(', ')}; without ${r.auditPath.unaudited.rounds.join(', ')}; ratio per cycle ${r.auditPath.cycles.join(', ')}; ` +
      `consumer caught up ${r.auditPath.drainMs.join(', ')} ms after each audited round (${r.auditSeconds} s for the audit figures).`,
    `- Re-run because wrangler reloaded the Worker: ${r.retried.length ? r.retried.join('; ') : 'nothing'}.`,
  );
  if (r.renewal) lines.push('', renderRenewal(r.renewal));
  if (r.issuance) lines.push('', renderIssuance(r.issuance));
  return lines.join('\n');
}
