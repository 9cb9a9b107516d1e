/**
 * `npm run bench`: starts the whole stack (as `npm run dev` does, in a fresh temporary state
 * directory and on free ports), measures, prints a table and writes bench/results/latest.json.
 *
 *  1. Warm authenticated secret GET vs two baselines on the same Worker, in rotating rounds.
 *  2. Bridge calls during N warm reads (the bridge's own counters and the Worker's).
 *  3. D1 statements per warm GET, with the audit consumer's inserts measured and separated.
 *  4. Bridge unwrap over signed HTTP vs the same unwrap in process on the same token.
 *  5. ES256 and RS256 sign through the Keys API (software and HSM keys) vs the same signature
 *     directly: WebCrypto in workerd for software keys, the token in process for HSM keys.
 *  6. The audit trail: events persisted per second by the consumer (persistAuditBatch in workerd,
 *     batches of 100), and a warm secret GET with the audit queue and consumer against the same
 *     Worker bundle with AUDIT_QUEUE a stub that drops events, in alternating rounds.
 *
 *  7. Scheduled certificate renewal: N due certificates from one cron run to their new versions
 *     (time, queue messages, D1 statements per certificate; bench/renewal.ts).
 *  8. Self-signed certificate issuance (EC P-256, RSA 2048; software and HSM) against the same key
 *     generation and signing done directly, in alternating rounds (bench/issuance.ts).
 *
 * Every loop is a fixed number of operations; everything talks to 127.0.0.1 only.
 * Knobs (environment): BENCH_READS, BENCH_BASELINE_READS, BENCH_CONCURRENCY, BENCH_ROUND,
 * BENCH_CYCLES, BENCH_UNWRAP_ROUND, BENCH_ISSUANCE_ROUND, BENCH_ISSUANCE_CYCLES, BENCH_SIGN_ROUND, BENCH_SIGN_CYCLES, BENCH_AUDIT_BATCHES,
 * BENCH_AUDIT_CHAINS, BENCH_AUDIT_ROUND, BENCH_AUDIT_CYCLES, BENCH_RENEWALS,
 * BENCH_KEEP_STATE=1 (keep the state directory for inspection).
 *
 * `npm run bench -- --only edge` runs the edge figures alone instead (bench/edge.ts); `--only
 * renewal` and `--only issuance` run figure 7 or 8 alone, each on a stack of its own.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { ensureSoftHsmToken } from '../hsm-bridge/dev/softhsm.js';
import { fromBase64Url } from '../bridge-protocol/index.js';
import { clientCredentialsToken } from '../scripts/lib/bootstrap.js';
import { httpsRequest } from '../scripts/lib/https-client.js';
import { ensureStackSecrets } from '../scripts/lib/secrets.js';
import { HSM_TOKEN_LABEL, REPO_DIR, startStack, type Stack } from '../scripts/lib/stack.js';
import { SignedBridgeClient } from './lib/bridge.js';
import { bridgeSessionPoolSize, openInProcessHsm } from './lib/inprocess-hsm.js';
import { httpsAgent, httpsOperation, runFixed, type Operation, type RunResult } from './lib/load.js';
import { machineInfo, softwareInfo } from './lib/machine.js';
import { listenPort } from './lib/ports.js';
import { renderMarkdown, type BenchResults, type RouteFigures, type SignFigures } from './lib/report.js';
import {
  checkApiSignature,
  createApiKey,
  generateInProcessKey,
  inProcessKeys,
  publicJwkOf,
  SIGN_FIGURES,
  signInput,
  verifies,
  type InProcessKey,
} from './lib/sign.js';
import { median, percentile, pooled, round, significant } from './lib/stats.js';
import { assertSameIsolate, IsolateRestarted, windowDelta, WorkerStatsReader, type Settled } from './lib/worker-stats.js';
import { WorkerdAuditConsumer } from './lib/workerd-audit.js';
import { WorkerdAuditPath } from './lib/workerd-audit-path.js';
import { WorkerdWebCrypto } from './lib/workerd-webcrypto.js';
import { UNTHROTTLED } from './lib/unthrottled';
import { benchIssuance, issuanceConfig } from './issuance.js';
import { benchRenewal, RenewalLogWatch } from './renewal.js';

function intEnv(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (!raw) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name} must be an integer from ${min} to ${max}`);
  return n;
}

const CONFIG = {
  /** Warm reads for the counter figures (2, 3). */
  reads: intEnv('BENCH_READS', 10_000, 100, 200_000),
  /** Baseline requests in their own counter window (checks the baseline does no D1 work). */
  baselineReads: intEnv('BENCH_BASELINE_READS', 1_000, 100, 200_000),
  /** Requests in flight against the Worker and the bridge. */
  concurrency: intEnv('BENCH_CONCURRENCY', 8, 1, 256),
  warmup: 500,
  /** Requests per throughput round; each cycle runs one round of each route, in rotating order. */
  round: intEnv('BENCH_ROUND', 500, 50, 100_000),
  cycles: intEnv('BENCH_CYCLES', 6, 1, 20),
  /** Unwraps per round; HTTP and in-process alternate, `cycles` rounds of each. */
  unwrapRound: intEnv('BENCH_UNWRAP_ROUND', 2_000, 100, 100_000),
  unwrapWarmup: 500,
  /** Sign requests through the API per round; the direct round of the same cycle is sized to last about as long. */
  signRound: intEnv('BENCH_SIGN_ROUND', 150, 20, 100_000),
  /** Cycles per sign figure (API round and direct round, alternating which goes first). */
  signCycles: intEnv('BENCH_SIGN_CYCLES', 6, 1, 20),
  signWarmup: 100,
  /** Batches of 100 events per audit consumer round. */
  auditBatches: intEnv('BENCH_AUDIT_BATCHES', 20, 1, 1_000),
  auditBatchSize: 100,
  /** The consumer's second layout: events spread over this many vault chains (the first is one chain). */
  auditChains: intEnv('BENCH_AUDIT_CHAINS', 4, 2, 100),
  /** Warm GETs per audit-path round (with and without the audit queue). */
  auditRound: intEnv('BENCH_AUDIT_ROUND', 500, 50, 100_000),
  /** Cycles of the audit figures (consumer: one round per layout; path: one round with, one without). */
  auditCycles: intEnv('BENCH_AUDIT_CYCLES', 6, 1, 20),
  auditWarmup: 300,
  /** Due certificates renewed end to end (figure 7). */
  renewals: intEnv('BENCH_RENEWALS', 1_000, 10, 20_000),
  /** A direct round lasts at least this long (workerd's clock counts whole milliseconds)… */
  signDirectMinMs: 250,
  /** …and at most about this long, however slow the API round is. */
  signDirectMaxMs: 2_000,
  /** A round or counter window during which wrangler reloaded the Worker is run again, this often. */
  maxRetries: 2,
  apiVersion: '2026-04-01',
  secretName: 'bench-secret',
  keysApiVersion: '2025-07-01',
};

const log = (message: string) => console.log(`[bench] ${message}`);

/** Like `figures`, for direct rounds timed as a whole (WebCrypto in workerd): no latencies. */
function rateFigures(runs: RunResult[]): RouteFigures {
  const withLatencies = runs.every((r) => r.latenciesMs.length === r.count);
  const f = figures(runs);
  return withLatencies ? f : { ...f, p50Ms: null, p99Ms: null };
}

/**
 * The number of direct operations that takes about as long as `apiOps` API operations, from one
 * timed run of each, rounded up to a hundred; at least `minMs` long, at most `maxMs` (so that a
 * slow API does not stretch the direct rounds, and the run, with it).
 */
function directRoundSize(api: RunResult, direct: RunResult, apiOps: number, minMs: number, maxMs: number): number {
  const seconds = Math.min(Math.max(apiOps / api.opsPerSecond, minMs / 1000), maxMs / 1000);
  return Math.min(1_000_000, Math.max(100, Math.ceil((seconds * direct.opsPerSecond) / 100) * 100));
}

function figures(runs: RunResult[]): RouteFigures {
  const count = runs.reduce((n, r) => n + r.count, 0);
  const wallMs = runs.reduce((n, r) => n + r.wallMs, 0);
  const all = pooled(runs);
  return {
    requests: count,
    perSecond: round((count * 1000) / wallMs, 1),
    p50Ms: round(percentile(all, 50), 2),
    p99Ms: round(percentile(all, 99), 2),
    rounds: runs.map((r) => round(r.opsPerSecond, 1)),
  };
}

/** Counts wrangler's reloads of the Worker (it watches the source tree): each one is a new isolate. */
class ReloadWatch {
  count = 0;
  onLine(line: string): void {
    if (/Reloading local server|Local server updated/.test(line)) this.count++;
  }
}

interface Route {
  label: string;
  run: () => Promise<RunResult>;
}

/**
 * Runs every route once per cycle, the order rotating each cycle (A B C, B C A, C A B, …), so
 * slow spells of a shared machine fall on all routes alike. A round during which the Worker was
 * reloaded is run again.
 */
async function cycle(cycles: number, routes: Route[], reloads: ReloadWatch, retried: string[]): Promise<RunResult[][]> {
  const out: RunResult[][] = routes.map(() => []);
  for (let i = 0; i < cycles; i++) {
    for (let j = 0; j < routes.length; j++) {
      const k = (i + j) % routes.length;
      const route = routes[k]!;
      let r: RunResult | undefined;
      for (let attempt = 0; !r; attempt++) {
        const before = reloads.count;
        const got = await route.run();
        if (reloads.count === before) r = got;
        else if (attempt >= CONFIG.maxRetries)
          throw new Error(
            `${route.label}: the Worker was reloaded during ${attempt + 1} attempts; is something editing the source tree?`,
          );
        else {
          retried.push(`${route.label} (cycle ${i + 1})`);
          log(`  ${route.label}: the Worker was reloaded during the round; running it again`);
        }
      }
      out[k]!.push(r);
      const latency = r.latenciesMs.length
        ? `  p50 ${percentile(r.latenciesMs, 50).toFixed(2)} ms  p99 ${percentile(r.latenciesMs, 99).toFixed(2)} ms`
        : '  (timed as a whole)';
      log(`  ${route.label.padEnd(24)} ${r.opsPerSecond.toFixed(0).padStart(6)}/s${latency}`);
    }
  }
  return out;
}

/** Settled counters around `work`; run again if the isolate was replaced meanwhile. */
async function counterWindow<T>(
  label: string,
  stats: WorkerStatsReader,
  reloads: ReloadWatch,
  retried: string[],
  work: () => Promise<T>,
  rewarm: () => Promise<unknown>,
): Promise<{ before: Settled; after: Settled; result: T; attempts: number }> {
  for (let attempt = 0; ; attempt++) {
    const reloadsBefore = reloads.count;
    try {
      if (attempt > 0) await rewarm(); // a new isolate starts with cold caches
      const before = await stats.settle();
      const result = await work();
      const after = await stats.settle();
      assertSameIsolate(before.stats, after.stats);
      if (reloads.count !== reloadsBefore) throw new IsolateRestarted('wrangler reloaded the Worker');
      return { before, after, result, attempts: attempt + 1 };
    } catch (err) {
      if (!(err instanceof IsolateRestarted) || attempt >= CONFIG.maxRetries) throw err;
      retried.push(label);
      log(`  ${label}: ${err.message}; running it again`);
    }
  }
}

async function main(): Promise<void> {
  const startedAt = Date.now();
  const machine = machineInfo();
  const software = await softwareInfo(REPO_DIR);
  const stateDir = await mkdtemp(join(os.tmpdir(), 'ekv-bench-'));
  const output: string[] = [];
  const reloads = new ReloadWatch();
  const renewalWatch = new RenewalLogWatch();
  const retried: string[] = [];
  let stack: Stack | undefined;
  let bridge: SignedBridgeClient | undefined;
  let hsm: Awaited<ReturnType<typeof openInProcessHsm>> | undefined;
  let webcrypto: WorkerdWebCrypto | undefined;
  let auditConsumer: WorkerdAuditConsumer | undefined;
  let auditPath: WorkerdAuditPath | undefined;
  const tokenKeys: InProcessKey[] = [];
  const agents: Array<{ destroy(): void }> = [];

  const onSignal = (signal: string) => {
    log(`${signal}: stopping`);
    // Exit hooks of the stack kill wrangler's process group and the bridge.
    process.exit(130);
  };
  process.once('SIGINT', () => onSignal('SIGINT'));
  process.once('SIGTERM', () => onSignal('SIGTERM'));

  try {
    log(`starting the stack in ${stateDir} (the first wrangler build can take a minute)`);
    const vaultPort = await listenPort();
    stack = await startStack({
      stateDir,
      vaultPort,
      bridgePort: await listenPort([vaultPort]),
      extraVars: UNTHROTTLED,
      log: (m) => log(m),
      onOutput: (source, line) => {
        if (source === 'worker') reloads.onLine(line);
        if (source === 'worker') renewalWatch.onLine(line);
        output.push(`[${source}] ${line}`);
        if (output.length > 2000) output.shift();
      },
    });
    const { credentials, caPem, apexUrl } = stack;
    const token = await clientCredentialsToken(apexUrl, credentials.resource, credentials, caPem);
    const secrets = await ensureStackSecrets(stateDir); // reads the stack's own secrets back
    bridge = new SignedBridgeClient(stack.bridge.url, secrets.bridgeHmacSecret, CONFIG.concurrency);
    const stats = new WorkerStatsReader(apexUrl, token, caPem);
    const C = CONFIG.concurrency;

    // The secret every warm read gets.
    const value = randomBytes(48).toString('base64url');
    const put = await httpsRequest(`${credentials.vaultUrl}/secrets/${CONFIG.secretName}?api-version=${CONFIG.apiVersion}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ value }),
      ca: caPem,
    });
    if (put.status !== 200) throw new Error(`PUT secret: HTTP ${put.status} ${put.text.slice(0, 200)}`);

    // The SDK's latest-version URL (trailing slash). Same URL and headers for all three routes:
    // the challenge lacks only the Authorization header, the floor only changes the Host header.
    const secretUrl = new URL(`${credentials.vaultUrl}/secrets/${CONFIG.secretName}/?api-version=${CONFIG.apiVersion}`);
    const common = { accept: 'application/json', 'content-type': 'application/json' };
    const agent = httpsAgent(caPem, C);
    agents.push(agent);
    const once = (check: (text: string) => void) => {
      let done = false;
      return (text: string) => {
        if (done) return;
        done = true;
        check(text);
      };
    };
    const getSecret: Operation = httpsOperation(
      { method: 'GET', url: secretUrl, headers: { ...common, authorization: `Bearer ${token}` }, expectStatus: 200 },
      agent,
      caPem,
      once((text) => {
        if ((JSON.parse(text) as { value?: string }).value !== value) throw new Error('GET secret returned another value');
      }),
    );
    const challenge: Operation = httpsOperation(
      { method: 'GET', url: secretUrl, headers: common, expectStatus: 401 },
      agent,
      caPem,
      once((text) => {
        if ((JSON.parse(text) as { error?: { code?: string } }).error?.code !== 'Unauthorized')
          throw new Error(`challenge: unexpected body ${text.slice(0, 200)}`);
      }),
    );
    const floor: Operation = httpsOperation(
      { method: 'GET', url: secretUrl, headers: { ...common, host: `localhost:${stack.vaultPort}` }, expectStatus: 404 },
      agent,
      caPem,
      once((text) => {
        if (!/not served by this vault service/.test(text))
          throw new Error(`floor: the 404 did not come from the Worker's host check: ${text.slice(0, 200)}`);
      }),
    );
    const warmUp = async (n: number) => {
      await runFixed('warm-up GET', getSecret, n, C);
      await runFixed('warm-up challenge', challenge, n, C);
      await runFixed('warm-up floor', floor, n, C);
    };

    // ---- 1. Throughput: warm up, then rotate the three routes.
    log(`warm-up: ${CONFIG.warmup} requests per route`);
    await warmUp(CONFIG.warmup);
    log(`throughput: ${CONFIG.cycles} cycles of ${CONFIG.round}-request rounds per route, ${C} in flight`);
    const [getRuns, challengeRuns, floorRuns] = await cycle(
      CONFIG.cycles,
      [
        { label: 'secret GET (200)', run: () => runFixed('secret GET', getSecret, CONFIG.round, C) },
        { label: 'challenge (401)', run: () => runFixed('challenge', challenge, CONFIG.round, C) },
        { label: 'floor: unknown host (404)', run: () => runFixed('floor', floor, CONFIG.round, C) },
      ],
      reloads,
      retried,
    );
    const ratios = (a: RunResult[], b: RunResult[]) => a.map((r, i) => r.opsPerSecond / b[i]!.opsPerSecond);
    const vsChallenge = ratios(getRuns!, challengeRuns!);
    const vsFloor = ratios(getRuns!, floorRuns!);

    // ---- 2 and 3. Counters around N warm reads, then around the challenge baseline.
    log(`counters: ${CONFIG.reads} warm GETs between settled readings (waits for the audit queue)`);
    const reads = await counterWindow(
      'warm reads',
      stats,
      reloads,
      retried,
      async () => {
        const bridgeBefore = await bridge!.status();
        const run = await runFixed('warm reads', getSecret, CONFIG.reads, C);
        return { run, bridgeBefore, bridgeAfter: await bridge!.status() };
      },
      () => warmUp(200),
    );
    const readDelta = windowDelta(reads.before, reads.after);
    log(`counters: ${CONFIG.baselineReads} challenge requests`);
    const base = await counterWindow(
      'challenge requests',
      stats,
      reloads,
      retried,
      () => runFixed('challenge reads', challenge, CONFIG.baselineReads, C),
      () => warmUp(200),
    );
    const baseDelta = windowDelta(base.before, base.after);
    const bridgeOps = {
      wrap: reads.result.bridgeAfter.ops.wrap - reads.result.bridgeBefore.ops.wrap,
      unwrap: reads.result.bridgeAfter.ops.unwrap - reads.result.bridgeBefore.ops.unwrap,
    };

    // ---- 4. Unwrap: signed HTTP to the bridge vs in-process on the same token.
    const context = new TextEncoder().encode('ekv-bench|unwrap');
    const dataKey = randomBytes(32);
    const wrapped = await bridge.wrap(dataKey, context);
    const tokenInfo = await ensureSoftHsmToken({ dir: join(stateDir, 'softhsm'), label: HSM_TOKEN_LABEL });
    const poolSize = bridgeSessionPoolSize();
    hsm = await openInProcessHsm({
      confPath: tokenInfo.confPath,
      tokenLabel: HSM_TOKEN_LABEL,
      pin: tokenInfo.pin,
      sessionPoolSize: poolSize,
    });
    const blob = fromBase64Url(wrapped);
    if (!Buffer.from(await hsm.unwrap(blob, context)).equals(dataKey)) {
      throw new Error('in-process unwrap of the bridge-wrapped key returned other bytes: not the same KEK');
    }
    const viaHttp: Operation = async () => {
      await bridge!.unwrap(wrapped, context);
    };
    const inProcess: Operation = async () => {
      await hsm!.unwrap(blob, context);
    };
    log(`unwrap: warm-up, then ${CONFIG.cycles} cycles of ${CONFIG.unwrapRound}-op rounds, ${C} in flight`);
    await runFixed('warm-up unwrap http', viaHttp, CONFIG.unwrapWarmup, C);
    await runFixed('warm-up unwrap local', inProcess, CONFIG.unwrapWarmup, C);
    const noReloads = new ReloadWatch(); // the Worker is not involved here
    const [httpRuns, localRuns] = await cycle(
      CONFIG.cycles,
      [
        { label: 'unwrap over HTTP', run: () => runFixed('unwrap http', viaHttp, CONFIG.unwrapRound, C) },
        { label: 'unwrap in-process', run: () => runFixed('unwrap local', inProcess, CONFIG.unwrapRound, C) },
      ],
      noReloads,
      retried,
    );
    const unwrapRatios = ratios(httpRuns!, localRuns!);

    // ---- 5. Sign: through the Keys API vs the same signature directly.
    const signStarted = Date.now();
    log('sign: starting the WebCrypto Worker in workerd (Miniflare)');
    webcrypto = await WorkerdWebCrypto.start(REPO_DIR);
    const hsmKeysHere = await inProcessKeys(hsm);
    const { message, digest } = signInput();
    const signResults: SignFigures[] = [];
    for (const spec of SIGN_FIGURES) {
      const { alg } = spec;
      const kind = spec.hsm ? `${spec.create.kty} key` : `software ${spec.create.kty} key`;
      const apiKey = await createApiKey(credentials.vaultUrl, CONFIG.keysApiVersion, spec, token, caPem);
      const signUrl = new URL(`${credentials.vaultUrl}/keys/${spec.keyName}/sign?api-version=${CONFIG.keysApiVersion}`);
      // Checked on the first answer (a warm-up request): the right key, and a signature node:crypto verifies.
      const viaApi: Operation = httpsOperation(
        {
          method: 'POST',
          url: signUrl,
          headers: { ...common, authorization: `Bearer ${token}` },
          body: JSON.stringify({ alg, value: digest.toString('base64url') }),
          expectStatus: 200,
        },
        agent,
        caPem,
        once((text) => checkApiSignature(text, alg, apiKey, message)),
      );

      let direct: (label: string, n: number) => Promise<RunResult>;
      let directWhat: string;
      if (!spec.hsm) {
        const sample = await webcrypto.sample(alg);
        if (!verifies(alg, publicJwkOf(sample.publicJwk), fromBase64Url(sample.message), fromBase64Url(sample.signature))) {
          throw new Error(`WebCrypto ${alg} in workerd: its signature does not verify with node:crypto`);
        }
        const w = webcrypto;
        direct = (label, n) => w.run(label, alg, n, C);
        directWhat = `WebCrypto ${alg === 'ES256' ? 'ECDSA P-256 / SHA-256' : 'RSASSA-PKCS1-v1_5 2048 / SHA-256'} in workerd (Miniflare ${webcrypto.miniflareVersion}), ${C} in flight in one isolate`;
      } else {
        const local = await generateInProcessKey(hsmKeysHere, alg);
        tokenKeys.push(local);
        if (!verifies(alg, local.publicJwk, message, await hsmKeysHere.sign(local.handle, alg, digest))) {
          throw new Error(`in-process ${alg} on the token: the signature does not verify with node:crypto`);
        }
        const op: Operation = async () => {
          await hsmKeysHere.sign(local.handle, alg, digest);
        };
        direct = (label, n) => runFixed(label, op, n, C);
        directWhat = `HsmKeys.sign in process on the same token (${spec.create.kty === 'EC-HSM' ? 'P-256' : 'RSA-2048'} key generated there), ${poolSize} sessions, ${C} in flight`;
      }

      // Warm-up, which also sizes the direct rounds: as long as an API round, within signDirectMinMs..signDirectMaxMs.
      const apiWarm = await runFixed(`warm-up ${spec.id} api`, viaApi, CONFIG.signWarmup, C);
      let directWarm = await direct(`warm-up ${spec.id} direct`, 100);
      for (let n = 400; directWarm.wallMs < CONFIG.signDirectMinMs && n <= 1_000_000; n *= 4) {
        directWarm = await direct(`warm-up ${spec.id} direct`, n);
      }
      const directRound = directRoundSize(apiWarm, directWarm, CONFIG.signRound, CONFIG.signDirectMinMs, CONFIG.signDirectMaxMs);
      log(
        `sign ${alg}, ${kind}: ${CONFIG.signCycles} cycles of ${CONFIG.signRound} API requests and ${directRound} direct signatures, ${C} in flight`,
      );
      const [apiRuns, directRuns] = await cycle(
        CONFIG.signCycles,
        [
          {
            label: `${alg} ${spec.hsm ? 'HSM' : 'sw'} via API`,
            run: () => runFixed(`${spec.id} api`, viaApi, CONFIG.signRound, C),
          },
          { label: `${alg} ${spec.hsm ? 'HSM' : 'sw'} direct`, run: () => direct(`${spec.id} direct`, directRound) },
        ],
        reloads,
        retried,
      );
      const perCycle = ratios(apiRuns!, directRuns!);
      signResults.push({
        id: spec.id,
        alg,
        key: spec.create,
        hsm: spec.hsm,
        route: `POST {vault}/keys/${spec.keyName}/sign?api-version=${CONFIG.keysApiVersion} with a valid bearer token, {alg: '${alg}', value: a 32-byte SHA-256 digest}`,
        directWhat,
        api: figures(apiRuns!),
        direct: rateFigures(directRuns!),
        directRound,
        apiOverDirect: significant(median(perCycle), 3),
        cycles: perCycle.map((r) => significant(r, 3)),
      });
    }

    const signSeconds = Math.round((Date.now() - signStarted) / 1000);
    log(`sign: ${signSeconds} s`);
    await webcrypto.stop();
    webcrypto = undefined;

    // ---- 6. Audit: the consumer's throughput, and what the audit path costs a warm GET.
    const auditStarted = Date.now();
    log('audit: starting the consumer Worker in workerd (Miniflare, its own D1 with the migrations)');
    auditConsumer = await WorkerdAuditConsumer.start(REPO_DIR);
    const layouts = [1, CONFIG.auditChains];
    await auditConsumer.run(Math.min(5, CONFIG.auditBatches), CONFIG.auditBatchSize, 1); // warm-up
    log(
      `audit consumer: ${CONFIG.auditCycles} cycles of ${CONFIG.auditBatches} batches of ${CONFIG.auditBatchSize} per layout (1 and ${CONFIG.auditChains} chains)`,
    );
    const consumerRounds = layouts.map(() => [] as Array<{ perSecond: number; statements: number; batches: number }>);
    for (let i = 0; i < CONFIG.auditCycles; i++) {
      for (let j = 0; j < layouts.length; j++) {
        const k = (i + j) % layouts.length;
        const r = await auditConsumer.run(CONFIG.auditBatches, CONFIG.auditBatchSize, layouts[k]!);
        consumerRounds[k]!.push(r);
        log(
          `  consumer, ${layouts[k]} chain(s)   ${r.perSecond.toFixed(0).padStart(6)} events/s  ${(r.statements / r.batches).toFixed(1)} statements/batch`,
        );
      }
    }
    await auditConsumer.stop();
    auditConsumer = undefined;

    log('audit path: the vault Worker twice in Miniflare (audit queue + consumer / AUDIT_QUEUE that drops events)');
    auditPath = await WorkerdAuditPath.start({
      repoDir: REPO_DIR,
      bridgeUrl: stack.bridge.url,
      bridgeHmacSecret: secrets.bridgeHmacSecret,
      extraVars: UNTHROTTLED,
    });
    const ap = auditPath;
    await ap.run('warm-up audited', 'audited', CONFIG.auditWarmup, C);
    await ap.run('warm-up unaudited', 'unaudited', CONFIG.auditWarmup, C);
    await ap.drain();
    log(
      `audit path: ${CONFIG.auditCycles} cycles of ${CONFIG.auditRound}-request rounds each way, ${C} in flight; the consumer catches up after each audited round`,
    );
    const drainMs: number[] = [];
    const [auditedRuns, unauditedRuns] = await cycle(
      CONFIG.auditCycles,
      [
        {
          label: 'GET with audit',
          run: async () => {
            const r = await ap.run('audited', 'audited', CONFIG.auditRound, C);
            drainMs.push(await ap.drain());
            return r;
          },
        },
        { label: 'GET, audit dropped', run: () => ap.run('unaudited', 'unaudited', CONFIG.auditRound, C) },
      ],
      new ReloadWatch(), // Miniflare does not watch the tree
      retried,
    );
    await auditPath.stop();
    auditPath = undefined;
    const auditRatios = ratios(auditedRuns!, unauditedRuns!);
    const auditSeconds = Math.round((Date.now() - auditStarted) / 1000);
    log(`audit: ${auditSeconds} s`);

    // 7. Scheduled renewal of due certificates, end to end (bench/renewal.ts).
    log(`renewal: ${CONFIG.renewals} due certificates`);
    const renewal = await benchRenewal(stack, token, renewalWatch, { certificates: CONFIG.renewals, concurrency: C, log });
    log(
      `renewal: ${renewal.seconds} s, ${renewal.queueMessages} messages, ${renewal.d1PerCertificate} D1 statements per certificate`,
    );

    // 8. Self-signed issuance against the same key generation and signing done directly (bench/issuance.ts).
    const issuance = await benchIssuance(stack, token, secrets.bridgeHmacSecret, { ...issuanceConfig(), concurrency: 4, log });

    const results: BenchResults = {
      generatedAt: new Date().toISOString(),
      durationSeconds: Math.round((Date.now() - startedAt) / 1000),
      machine: { ...machine, loadAverageAtEnd: os.loadavg().map((l) => round(l, 2)) },
      software,
      config: { ...CONFIG, inProcessSessionPool: poolSize },
      retried,
      secretGet: {
        route: `GET {vault}/secrets/${CONFIG.secretName}/?api-version=${CONFIG.apiVersion} with a valid bearer token: 200 with the value`,
        ...figures(getRuns!),
      },
      challenge: {
        route: 'the same request without an Authorization header: 401 challenge',
        ...figures(challengeRuns!),
      },
      floor: {
        route: "the same request with Host: localhost:{port}: 404 from the Worker's host check",
        ...figures(floorRuns!),
      },
      ratio: {
        getOverChallenge: round(median(vsChallenge), 3),
        getOverFloor: round(median(vsFloor), 3),
        getOverChallengeCycles: vsChallenge.map((r) => round(r, 3)),
        getOverFloorCycles: vsFloor.map((r) => round(r, 3)),
      },
      warmReads: {
        reads: CONFIG.reads,
        perSecond: round(reads.result.run.opsPerSecond, 1),
        bridgeOps,
        workerBridgeCalls: readDelta.bridgeCalls,
        dataKeyCache: { hits: readDelta.cacheHits, misses: readDelta.cacheMisses },
        d1: {
          requestPath: readDelta.d1Statements,
          auditConsumer: readDelta.d1AuditStatements ?? null,
          perGet: round(readDelta.d1Statements / CONFIG.reads, 4),
          auditPerGet: readDelta.d1AuditStatements === undefined ? null : round(readDelta.d1AuditStatements / CONFIG.reads, 4),
          challengeRequests: CONFIG.baselineReads,
          perChallenge: round(baseDelta.d1Statements / CONFIG.baselineReads, 4),
          auditPerChallenge:
            baseDelta.d1AuditStatements === undefined ? null : round(baseDelta.d1AuditStatements / CONFIG.baselineReads, 4),
          statsReadCost: reads.after.perRead,
        },
      },
      unwrap: {
        http: figures(httpRuns!),
        inProcess: figures(localRuns!),
        httpOverInProcess: round(median(unwrapRatios), 3),
        cycles: unwrapRatios.map((r) => round(r, 3)),
        sessionPool: poolSize,
      },
      sign: signResults,
      signSeconds,
      auditConsumer: {
        what: `persistAuditBatch (src/audit/consumer.ts) in workerd via Miniflare ${software.miniflare ?? '?'}, local D1 with the migrations; well-formed SecretGet events of an RBAC caller; batches handed over one after the other`,
        batchSize: CONFIG.auditBatchSize,
        batchesPerRound: CONFIG.auditBatches,
        layouts: layouts.map((chains, k) => ({
          chains,
          eventsPerSecond: round(median(consumerRounds[k]!.map((r) => r.perSecond)), 0),
          rounds: consumerRounds[k]!.map((r) => round(r.perSecond, 0)),
          statementsPerBatch: round(median(consumerRounds[k]!.map((r) => r.statements / r.batches)), 2),
        })),
      },
      auditPath: {
        what: 'the vault Worker (src/index.ts via bench/workers/audit-path.js) twice in one Miniflare, one D1: AUDIT_QUEUE the local queue consumed by the same Worker, or a stub that drops events',
        audited: figures(auditedRuns!),
        unaudited: figures(unauditedRuns!),
        auditedOverUnaudited: round(median(auditRatios), 3),
        cycles: auditRatios.map((r) => round(r, 3)),
        drainMs,
      },
      auditSeconds,
      renewal,
      issuance,
    };

    const dir = join(REPO_DIR, 'bench', 'results');
    await mkdir(dir, { recursive: true });
    const tmp = join(dir, 'latest.json.tmp');
    await writeFile(tmp, JSON.stringify(results, null, 2) + '\n');
    await rename(tmp, join(dir, 'latest.json'));
    console.log('\n' + renderMarkdown(results));
    log(`written to bench/results/latest.json (${results.durationSeconds} s)`);
  } catch (err) {
    if (output.length) {
      // The state directory goes away; the stack's last lines stay for a look at what happened.
      const saved = join(os.tmpdir(), `ekv-bench-failure-${Date.now()}.log`);
      await writeFile(saved, output.join('\n') + '\n').catch(() => undefined);
      console.error(
        `[bench] last output of the stack (last ${output.length} lines in ${saved}):\n${output.slice(-40).join('\n')}`,
      );
    }
    throw err;
  } finally {
    for (const a of agents) a.destroy();
    bridge?.close();
    await webcrypto?.stop().catch(() => undefined);
    await auditConsumer?.stop().catch(() => undefined);
    await auditPath?.stop().catch(() => undefined);
    if (hsm && tokenKeys.length) {
      const keys = await inProcessKeys(hsm);
      for (const k of tokenKeys) await keys.destroy(k.handle).catch(() => undefined);
    }
    await hsm?.close();
    await stack?.stop();
    if (process.env.BENCH_KEEP_STATE === '1') log(`state kept in ${stateDir}`);
    else await rm(stateDir, { recursive: true, force: true });
  }
}

const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
if (only !== undefined && only !== 'edge' && only !== 'renewal' && only !== 'issuance') {
  console.error(`[bench] --only takes 'edge', 'renewal' or 'issuance' (got ${only ?? 'nothing'})`);
  process.exit(2);
}
(only === 'edge'
  ? import('./edge.js').then((m) => m.runEdge())
  : only === 'renewal'
    ? import('./renewal.js').then((m) => m.runRenewal())
    : only === 'issuance'
      ? import('./issuance.js').then((m) => m.runIssuance())
      : main()
).catch((err: unknown) => {
  console.error(`[bench] failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
