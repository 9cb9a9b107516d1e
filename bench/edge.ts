/**
 * `npm run bench -- --only edge`: the edge figures alone (about 2 minutes instead of 6), each a
 * ratio measured in one run in alternating rounds (BENCHMARKS.md, "Edge figures"):
 *
 *  - warm secret GET ÷ a hello-world Worker under the same `wrangler dev` setup (rate), and the
 *    workerd CPU time per request of each (from /proc, the audit work a GET causes included);
 *  - RPC secret read through the service binding ÷ a call to a no-op entrypoint, p50 latency
 *    (bench/lib/workerd-rpc.ts: the vault, a no-op entrypoint and a caller in one workerd);
 *  - D1 statements and bridge calls per warm read;
 *  - data-key unwrap over the signed link ÷ in process on the same token: the Worker's own
 *    BridgeClient (coalescing into /v1/unwrap-batch; loaded here in Node and given node:http as its
 *    transport, as workerd's native fetch is in the Worker: scripts/lib/node-bridge-transport.ts),
 *    and one /v1/unwrap per key;
 *  - the gzipped Worker bundle.
 *
 * Both Workers run under `wrangler dev` without its devtools inspector unless BENCH_INSPECTOR=1:
 * wrangler's inspector proxy turns every console.log (the vault logs a line per request, hello-world
 * none) into a devtools event relayed to wrangler's Node process, a cost production does not have
 * (scripts/lib/wrangler-dev-headless.mjs).
 *
 * Knobs: BENCH_CONCURRENCY, BENCH_ROUND, BENCH_CYCLES, BENCH_EDGE_READS, BENCH_UNWRAP_ROUND,
 * BENCH_RPC_SAMPLES, BENCH_INSPECTOR.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { ensureSoftHsmToken } from '../hsm-bridge/dev/softhsm.js';
import { fromBase64Url } from '../bridge-protocol/index.js';
import { clientCredentialsToken } from '../scripts/lib/bootstrap.js';
import { ensureDevCa } from '../scripts/lib/dev-ca.js';
import { httpsRequest } from '../scripts/lib/https-client.js';
import { nodeBridgeTransport, type NodeBridgeTransport } from '../scripts/lib/node-bridge-transport.js';
import { findFreePort } from '../scripts/lib/ports.js';
import type { ManagedProcess } from '../scripts/lib/process.js';
import { ensureStackSecrets } from '../scripts/lib/secrets.js';
import { waitUntil } from '../scripts/lib/wait.js';
import { HSM_TOKEN_LABEL, REPO_DIR, startStack, type Stack } from '../scripts/lib/stack.js';
import { SignedBridgeClient } from './lib/bridge.js';
import { bundleSize, startHelloWorker, workerdCpuSeconds } from './lib/edge.js';
import { CALLS_PER_SAMPLE, WorkerdRpc, type RpcRound } from './lib/workerd-rpc.js';
import { bridgeSessionPoolSize, openInProcessHsm } from './lib/inprocess-hsm.js';
import { httpsAgent, httpsOperation, runFixed, type Operation, type RunResult } from './lib/load.js';
import { machineInfo, softwareInfo } from './lib/machine.js';
import { listenPort } from './lib/ports.js';
import { median, percentile, pooled, round } from './lib/stats.js';
import { windowDelta, WorkerStatsReader } from './lib/worker-stats.js';
import { UNTHROTTLED } from './lib/unthrottled';

function intEnv(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (!raw) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name} must be an integer from ${min} to ${max}`);
  return n;
}

const CONFIG = {
  concurrency: intEnv('BENCH_CONCURRENCY', 8, 1, 256),
  warmup: 500,
  round: intEnv('BENCH_ROUND', 500, 50, 100_000),
  cycles: intEnv('BENCH_CYCLES', 6, 1, 20),
  /** Warm reads between settled counter readings (D1 and bridge per read). */
  reads: intEnv('BENCH_EDGE_READS', 2_000, 100, 200_000),
  unwrapRound: intEnv('BENCH_UNWRAP_ROUND', 2_000, 100, 100_000),
  unwrapWarmup: 500,
  /** Latency samples per RPC round (each the mean of CALLS_PER_SAMPLE consecutive calls). */
  rpcSamples: intEnv('BENCH_RPC_SAMPLES', 100, 10, 10_000),
  /** Run both Workers with wrangler dev's devtools inspector attached, as the CLI does. */
  inspector: intEnv('BENCH_INSPECTOR', 0, 0, 1) === 1,
  /** CPU is read this long after a round too: the audit queue's batch timeout is 1 s. */
  cpuTailMs: 1_500,
  apiVersion: '2026-04-01',
  secretName: 'bench-secret',
  bundleLimitBytes: 350 * 1024,
};

const log = (message: string) => console.log(`[bench:edge] ${message}`);

/** The Worker's BridgeClient, loaded the way hsm-bridge/test/bridge-client.test.ts loads it (Worker code, outside the Node type-check). */
interface WorkerBridgeClient {
  unwrap(wrapped: string, context: string): Promise<Uint8Array>;
}
const CLIENT_MODULE = '../src/crypto/bridge-client.ts';

interface Route {
  label: string;
  run: () => Promise<RunResult & { cpuSeconds?: number }>;
}

/** Each cycle runs every route once, the order rotating, so slow spells fall on all alike. */
async function cycle(cycles: number, routes: Route[]): Promise<Array<Array<RunResult & { cpuSeconds?: number }>>> {
  const out: Array<Array<RunResult & { cpuSeconds?: number }>> = routes.map(() => []);
  for (let i = 0; i < cycles; i++) {
    for (let j = 0; j < routes.length; j++) {
      const k = (i + j) % routes.length;
      const r = await routes[k]!.run();
      out[k]!.push(r);
      const cpu = r.cpuSeconds === undefined ? '' : `  workerd CPU ${((r.cpuSeconds * 1000) / r.count).toFixed(3)} ms/req`;
      log(
        `  ${routes[k]!.label.padEnd(28)} ${r.opsPerSecond.toFixed(0).padStart(6)}/s  p50 ${percentile(r.latenciesMs, 50).toFixed(2)} ms${cpu}`,
      );
    }
  }
  return out;
}

function figures(runs: RunResult[]) {
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

const ratios = (a: RunResult[], b: RunResult[]) => a.map((r, i) => r.opsPerSecond / b[i]!.opsPerSecond);

export async function runEdge(): Promise<void> {
  const startedAt = Date.now();
  const loadAtStart = os.loadavg().map((l) => round(l, 2));
  const machine = machineInfo();
  const software = await softwareInfo(REPO_DIR);
  const stateDir = await mkdtemp(join(os.tmpdir(), 'ekv-bench-edge-'));
  let stack: Stack | undefined;
  let hello: ManagedProcess | undefined;
  let bridge: SignedBridgeClient | undefined;
  let hsm: Awaited<ReturnType<typeof openInProcessHsm>> | undefined;
  let rpc: WorkerdRpc | undefined;
  const agents: Array<{ destroy(): void }> = [];
  const output: string[] = [];
  process.once('SIGINT', () => process.exit(130));
  process.once('SIGTERM', () => process.exit(130));
  try {
    // The bundle first: wrangler's build shares the 2 cores with everything else.
    log('bundle: wrangler deploy --dry-run --outdir');
    const bundle = await bundleSize(REPO_DIR);
    log(`  ${bundle.files.join(', ')}: ${bundle.bytes} bytes, ${bundle.gzipBytes} gzipped`);

    log(`starting the stack in ${stateDir}`);
    const vaultPort = await listenPort();
    stack = await startStack({
      stateDir,
      vaultPort,
      bridgePort: await listenPort([vaultPort]),
      extraVars: UNTHROTTLED,
      inspector: CONFIG.inspector,
      log: (m) => log(m),
      onOutput: (source, line) => {
        output.push(`[${source}] ${line}`);
        if (output.length > 2000) output.shift();
      },
    });
    const { credentials, caPem, apexUrl, zone } = stack;
    const token = await clientCredentialsToken(apexUrl, credentials.resource, credentials, caPem);
    const secrets = await ensureStackSecrets(stateDir);
    const C = CONFIG.concurrency;
    bridge = new SignedBridgeClient(stack.bridge.url, secrets.bridgeHmacSecret, C);

    const value = randomBytes(48).toString('base64url');
    const put = await httpsRequest(`${credentials.vaultUrl}/secrets/${CONFIG.secretName}?api-version=${CONFIG.apiVersion}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ value }),
      ca: caPem,
    });
    if (put.status !== 200) throw new Error(`PUT secret: HTTP ${put.status} ${put.text.slice(0, 200)}`);

    // The hello-world Worker: its own wrangler dev, same flags and certificate, another port.
    const ca = await ensureDevCa(join(stateDir, 'ca'), zone); // the stack's CA and certificate, already made
    const helloPort = await listenPort([vaultPort, stack.bridgePort]);
    hello = await startHelloWorker({
      repoDir: REPO_DIR,
      stateDir: join(stateDir, 'hello'),
      port: helloPort,
      inspectorPort: await findFreePort(),
      inspector: CONFIG.inspector,
      certPath: ca.certPath,
      keyPath: ca.keyPath,
      onLine: (line) => output.push(`[hello] ${line}`),
    });
    const helloProcess = hello;
    const secretPath = `/secrets/${CONFIG.secretName}/?api-version=${CONFIG.apiVersion}`;
    const helloUrl = new URL(`https://${new URL(credentials.vaultUrl).hostname}:${helloPort}${secretPath}`);
    await waitUntil(
      'hello Worker',
      async () => (await httpsRequest(helloUrl.href, { ca: caPem, timeoutMs: 5000 })).status === 200,
      {
        timeoutMs: 120_000,
        intervalMs: 500,
        describe: () => helloProcess.output(),
        abort: helloProcess.exited.then(String),
      },
    );
    log(`hello-world Worker: https://…:${helloPort}`);

    // Same URL path, headers and keep-alive agent settings for both: only the port differs.
    const headers = { accept: 'application/json', 'content-type': 'application/json', authorization: `Bearer ${token}` };
    const vaultAgent = httpsAgent(caPem, C);
    const helloAgent = httpsAgent(caPem, C);
    agents.push(vaultAgent, helloAgent);
    let checked = false;
    const getSecret: Operation = httpsOperation(
      { method: 'GET', url: new URL(`${credentials.vaultUrl}${secretPath}`), headers, expectStatus: 200 },
      vaultAgent,
      caPem,
      (text) => {
        if (checked) return;
        checked = true;
        if ((JSON.parse(text) as { value?: string }).value !== value) throw new Error('GET secret returned another value');
      },
    );
    const helloGet: Operation = httpsOperation({ method: 'GET', url: helloUrl, headers, expectStatus: 200 }, helloAgent, caPem);

    /** A round with the workerd CPU of `root`'s tree over it and the tail after it. */
    const cpuRound = async (label: string, op: Operation, root: number) => {
      const before = await workerdCpuSeconds(root);
      const r = await runFixed(label, op, CONFIG.round, C);
      await new Promise((res) => setTimeout(res, CONFIG.cpuTailMs));
      const after = await workerdCpuSeconds(root);
      return { ...r, cpuSeconds: after.seconds - before.seconds };
    };

    log(`warm-up: ${CONFIG.warmup} requests each`);
    await runFixed('warm-up GET', getSecret, CONFIG.warmup, C);
    await runFixed('warm-up hello', helloGet, CONFIG.warmup, C);
    // The warm-up's audit events are consumed up to a batch timeout (1 s) later: without this tail
    // the first cycle's GET round was charged with the warm-up's consumer work on top of its own
    // (its CPU ratio read 1.39-1.43 in every run, the others 1.17-1.39).
    await new Promise((res) => setTimeout(res, CONFIG.cpuTailMs));
    log(
      `GET vs hello-world: ${CONFIG.cycles} cycles of ${CONFIG.round}-request rounds, ${C} in flight; CPU over each round and ${CONFIG.cpuTailMs} ms after`,
    );
    const [getRuns, helloRuns] = await cycle(CONFIG.cycles, [
      { label: 'secret GET (vault)', run: () => cpuRound('secret GET', getSecret, stack!.workerPid) },
      { label: 'hello-world GET', run: () => cpuRound('hello', helloGet, helloProcess.pid) },
    ]);
    const rateRatios = ratios(getRuns!, helloRuns!);
    const cpuPer = (r: { cpuSeconds?: number; count: number }) => (r.cpuSeconds! * 1000) / r.count;
    const cpuRatios = getRuns!.map((r, i) => cpuPer(r) / cpuPer(helloRuns![i]!));

    // D1 statements and bridge calls per warm read, between settled counter readings.
    log(`counters: ${CONFIG.reads} warm GETs between settled readings`);
    const stats = new WorkerStatsReader(apexUrl, token, caPem);
    const before = await stats.settle();
    const bridgeBefore = await bridge.status();
    await runFixed('warm reads', getSecret, CONFIG.reads, C);
    const bridgeAfter = await bridge.status();
    const after = await stats.settle();
    const delta = windowDelta(before, after);
    // Every operation the bridge counted (GET /v1/status itself is not counted).
    const bridgeOps =
      Object.values(bridgeAfter.ops).reduce((n, v) => n + v, 0) - Object.values(bridgeBefore.ops).reduce((n, v) => n + v, 0);

    // RPC: a warm getSecret through the service binding against the same call to a no-op
    // entrypoint, one call in flight, timed inside the calling Worker.
    log('RPC: the vault, a no-op entrypoint and a caller in one workerd');
    rpc = await WorkerdRpc.start({
      repoDir: REPO_DIR,
      bridgeUrl: stack.bridge.url,
      bridgeHmacSecret: secrets.bridgeHmacSecret,
      extraVars: UNTHROTTLED,
    });
    const rpcRound = async (target: 'VAULT' | 'NOOP'): Promise<RunResult> => {
      const t0 = Date.now();
      const r: RpcRound = await rpc!.round(target, CONFIG.rpcSamples);
      const wallMs = Date.now() - t0;
      // Rates count calls; latencies are per call (means of CALLS_PER_SAMPLE), one per sample.
      return {
        label: target,
        count: r.calls,
        concurrency: 1,
        wallMs,
        opsPerSecond: (r.calls * 1000) / wallMs,
        latenciesMs: Float64Array.from(r.latenciesMs),
      };
    };
    await rpcRound('VAULT');
    await rpcRound('NOOP');
    log(`RPC: ${CONFIG.cycles} cycles of ${CONFIG.rpcSamples} samples × ${CALLS_PER_SAMPLE} calls, 1 in flight`);
    const [rpcVaultRuns, rpcNoopRuns] = await cycle(CONFIG.cycles, [
      { label: 'RPC getSecret (vault)', run: () => rpcRound('VAULT') },
      { label: 'RPC getSecret (no-op)', run: () => rpcRound('NOOP') },
    ]);
    const rpcP50Ratios = rpcVaultRuns!.map(
      (r, i) => percentile(r.latenciesMs, 50) / percentile(rpcNoopRuns![i]!.latenciesMs, 50),
    );
    await rpc.stop();
    rpc = undefined;

    // Unwrap: the Worker's client (coalescing) and one /v1/unwrap per key, against the token in process.
    const context = 'ekv-bench|unwrap';
    const contextBytes = new TextEncoder().encode(context);
    const dataKey = randomBytes(32);
    const wrapped = await bridge.wrap(dataKey, contextBytes);
    const tokenInfo = await ensureSoftHsmToken({ dir: join(stateDir, 'softhsm'), label: HSM_TOKEN_LABEL });
    const poolSize = bridgeSessionPoolSize();
    hsm = await openInProcessHsm({
      confPath: tokenInfo.confPath,
      tokenLabel: HSM_TOKEN_LABEL,
      pin: tokenInfo.pin,
      sessionPoolSize: poolSize,
    });
    const blob = fromBase64Url(wrapped);
    if (!Buffer.from(await hsm.unwrap(blob, contextBytes)).equals(dataKey))
      throw new Error('in-process unwrap returned other bytes: not the same KEK');
    const mod = (await import(/* @vite-ignore */ CLIENT_MODULE)) as {
      BridgeClient: new (url: string, secret: string, send: NodeBridgeTransport) => WorkerBridgeClient;
    };
    const workerClient = new mod.BridgeClient(stack.bridge.url, secrets.bridgeHmacSecret, nodeBridgeTransport());
    if (!Buffer.from(await workerClient.unwrap(wrapped, context)).equals(dataKey))
      throw new Error('BridgeClient unwrap returned other bytes');
    const viaClient: Operation = async () => {
      await workerClient.unwrap(wrapped, context);
    };
    const viaSingle: Operation = async () => {
      await bridge!.unwrap(wrapped, contextBytes);
    };
    const inProcess: Operation = async () => {
      await hsm!.unwrap(blob, contextBytes);
    };
    const unwrapOpsBefore = (await bridge.status()).ops.unwrap;
    log(`unwrap: warm-up, then ${CONFIG.cycles} cycles of ${CONFIG.unwrapRound}-op rounds, ${C} in flight`);
    await runFixed('warm-up client', viaClient, CONFIG.unwrapWarmup, C);
    await runFixed('warm-up single', viaSingle, CONFIG.unwrapWarmup, C);
    await runFixed('warm-up local', inProcess, CONFIG.unwrapWarmup, C);
    const [clientRuns, singleRuns, localRuns] = await cycle(CONFIG.cycles, [
      { label: 'unwrap, Worker client (batched)', run: () => runFixed('client', viaClient, CONFIG.unwrapRound, C) },
      { label: 'unwrap, one /v1/unwrap each', run: () => runFixed('single', viaSingle, CONFIG.unwrapRound, C) },
      { label: 'unwrap in-process', run: () => runFixed('local', inProcess, CONFIG.unwrapRound, C) },
    ]);
    const unwrapOps = (await bridge.status()).ops.unwrap - unwrapOpsBefore;
    const clientRatios = ratios(clientRuns!, localRuns!);
    const singleRatios = ratios(singleRuns!, localRuns!);

    const results = {
      generatedAt: new Date().toISOString(),
      durationSeconds: Math.round((Date.now() - startedAt) / 1000),
      machine: { ...machine, loadAverageAtStart: loadAtStart, loadAverageAtEnd: os.loadavg().map((l) => round(l, 2)) },
      software,
      config: { ...CONFIG, sessionPool: poolSize },
      getOverHello: {
        secretGet: figures(getRuns!),
        hello: figures(helloRuns!),
        rate: round(median(rateRatios), 3),
        rateCycles: rateRatios.map((r) => round(r, 3)),
        cpuMsPerGet: round(median(getRuns!.map(cpuPer)), 3),
        cpuMsPerHello: round(median(helloRuns!.map(cpuPer)), 3),
        cpu: round(median(cpuRatios), 3),
        cpuCycles: cpuRatios.map((r) => round(r, 3)),
      },
      rpc: {
        callsPerSample: CALLS_PER_SAMPLE,
        vault: figures(rpcVaultRuns!),
        noop: figures(rpcNoopRuns!),
        p50Ratio: round(median(rpcP50Ratios), 3),
        p50RatioCycles: rpcP50Ratios.map((r) => round(r, 3)),
      },
      warmReads: {
        reads: CONFIG.reads,
        d1PerRead: round(delta.d1Statements / CONFIG.reads, 4),
        d1AuditPerRead: delta.d1AuditStatements === undefined ? null : round(delta.d1AuditStatements / CONFIG.reads, 4),
        // The caches' background renewals (refresh-ahead): D1 work a GET started but did not wait on.
        d1RefreshPerRead: delta.d1RefreshStatements === undefined ? null : round(delta.d1RefreshStatements / CONFIG.reads, 4),
        workerBridgeCallsPerRead: round(delta.bridgeCalls / CONFIG.reads, 4),
        bridgeOpsPerRead: round(bridgeOps / CONFIG.reads, 4),
        cache: { hits: delta.cacheHits, misses: delta.cacheMisses },
      },
      unwrap: {
        workerClient: figures(clientRuns!),
        single: figures(singleRuns!),
        inProcess: figures(localRuns!),
        clientOverInProcess: round(median(clientRatios), 3),
        clientCycles: clientRatios.map((r) => round(r, 3)),
        singleOverInProcess: round(median(singleRatios), 3),
        singleCycles: singleRatios.map((r) => round(r, 3)),
        bridgeUnwrapsCounted: unwrapOps,
      },
      bundle: {
        ...bundle,
        inputs: bundle.inputs.slice(0, 15),
        limitBytes: CONFIG.bundleLimitBytes,
        underLimit: bundle.gzipBytes < CONFIG.bundleLimitBytes,
      },
    };
    const dir = join(REPO_DIR, 'bench', 'results');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'edge-latest.json.tmp'), JSON.stringify(results, null, 2) + '\n');
    await rename(join(dir, 'edge-latest.json.tmp'), join(dir, 'edge-latest.json'));
    const g = results.getOverHello;
    const u = results.unwrap;
    const w = results.warmReads;
    console.log(`
| Edge figure | Value | Target |
|---|---:|---:|
| Warm secret GET / hello-world Worker, rate (median over cycles) | **${g.rate}** (${g.secretGet.perSecond} / ${g.hello.perSecond} req/s; p50 ${g.secretGet.p50Ms} / ${g.hello.p50Ms} ms) | ≥ 0.8 |
| workerd CPU per warm GET / per hello-world request | **${g.cpu}** (${g.cpuMsPerGet} / ${g.cpuMsPerHello} ms) | ≤ 1.3 |
| RPC secret read / no-op RPC call, p50 (median over cycles) | **${results.rpc.p50Ratio}** (${results.rpc.vault.p50Ms} / ${results.rpc.noop.p50Ms} ms; p99 ${results.rpc.vault.p99Ms} / ${results.rpc.noop.p99Ms} ms) | ≤ 1.5 |
| D1 statements per warm GET (request path; background refresh; audit consumer) | **${w.d1PerRead}** (${w.d1RefreshPerRead}; ${w.d1AuditPerRead}) | 0 |
| Bridge calls per warm GET (Worker's counter; bridge's own) | **${w.workerBridgeCallsPerRead}** (${w.bridgeOpsPerRead}) | 0 |
| Unwrap, Worker's BridgeClient (coalesced into /v1/unwrap-batch) / in-process | **${u.clientOverInProcess}** (${u.workerClient.perSecond} / ${u.inProcess.perSecond} ops/s) | ≥ 0.5 |
| Unwrap, one signed /v1/unwrap per key / in-process | ${u.singleOverInProcess} (${u.single.perSecond} ops/s) |  |
| Worker bundle, gzipped (wrangler deploy --dry-run) | **${(bundle.gzipBytes / 1024).toFixed(1)} KB** (${(bundle.bytes / 1024).toFixed(1)} KB raw) | < 350 KB |

Run ${results.generatedAt} (${results.durationSeconds} s), wrangler dev ${CONFIG.inspector ? 'with' : 'without'} its devtools inspector; load average ${loadAtStart.join('/')} at start, ${results.machine.loadAverageAtEnd.join('/')} at end.
- GET/hello rate per cycle ${g.rateCycles.join(', ')}; CPU ratio per cycle ${g.cpuCycles.join(', ')}.
- RPC p50 ratio per cycle ${results.rpc.p50RatioCycles.join(', ')}; calls/s vault ${results.rpc.vault.rounds.join(', ')}; no-op ${results.rpc.noop.rounds.join(', ')}.
- Unwrap rounds (ops/s): client ${u.workerClient.rounds.join(', ')}; single ${u.single.rounds.join(', ')}; in-process ${u.inProcess.rounds.join(', ')}.
`);
    log(`written to bench/results/edge-latest.json (${results.durationSeconds} s)`);
  } catch (err) {
    console.error(`[bench:edge] last output of the stack:\n${output.slice(-40).join('\n')}`);
    throw err;
  } finally {
    for (const a of agents) a.destroy();
    bridge?.close();
    await hsm?.close();
    await rpc?.stop();
    await hello?.stop();
    await stack?.stop();
    await rm(stateDir, { recursive: true, force: true });
  }
}
