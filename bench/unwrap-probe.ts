/**
 * `tsx bench/unwrap-probe.ts`: the edge bench's unwrap figure alone, in seconds instead of minutes,
 * for trying a change to the bridge or to BridgeClient. SoftHSM2 and the bridge process start as
 * the stack starts them (no Worker, no wrangler); then, per cycle:
 *  - the bench's comparison: the Worker's BridgeClient (loaded in Node, coalescing into
 *    /v1/unwrap-batch) against Hsm.unwrap in process on the same token, 8 in flight each;
 *  - one batch of 8 at a time, split where it can be seen from the client: from the first unwrap
 *    call to the transport (coalescing window, JSON, signing), the transport's round trip (HTTP and
 *    the bridge, answer read), the whole batch; beside 8 unwraps at once in process and a GET /healthz.
 * And the same BridgeClient hosted by workerd (wrangler's Miniflare, wrangler.toml's compatibility
 * settings, bench/workers/unwrap-client.js), sending with workerd's native fetch as the vault
 * Worker does, against the same in-process rounds: whether the Worker's runtime sends any cheaper
 * than Node's node:http, which the bench's figure uses.
 * And the floor under any HTTP link: the same batch's request body sent with the same transport to a
 * bare node:http server in another process that answers a canned answer of a batch's size at once
 * (no signing, checking, parsing or token). At 8 in flight the coalescing client holds all 8 in
 * one batch, so batches go one after another and the rate over the link is at most 8 per (8
 * unwraps at the in-process rate + one bare exchange): "ceiling" below, what this transport could not beat.
 * Also, per unwrap, the CPU time each side spent (client process, bridge process from /proc on Linux,
 * in process): unlike wall time it barely moves with the machine's load, and their quotient is the
 * ratio's ceiling when no core is idle, which on a 2-core machine shared with other work is the case.
 * Knobs: PROBE_CYCLES (3), PROBE_ROUND (2000 unwraps), PROBE_BATCHES (300); HSM_SESSION_POOL as for
 * the bridge; PROBE_BRIDGE_LOG=1 prints the bridge's output. Figures are only comparable within a
 * run on a machine this busy: the ratio per cycle is the figure, as in bench/edge.ts.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureSoftHsmToken, findSoftHsmModule, startBridgeProcess } from '../hsm-bridge/dev/softhsm.js';
import { fromBase64Url } from '../bridge-protocol/index.js';
import { nodeBridgeTransport } from '../scripts/lib/node-bridge-transport.js';
import { SignedBridgeClient } from './lib/bridge.js';
import { bridgeSessionPoolSize, openInProcessHsm } from './lib/inprocess-hsm.js';
import { runFixed } from './lib/load.js';
import { median, round } from './lib/stats.js';
import { bundleForWorkerd } from './lib/workerd-bundle.js';
import { compatibility, wranglersMiniflare } from './lib/workerd-webcrypto.js';

const num = (name: string, fallback: number) => (process.env[name] ? Number(process.env[name]) : fallback);
const CYCLES = num('PROBE_CYCLES', 3);
const ROUND = num('PROBE_ROUND', 2000);
const BATCHES = num('PROBE_BATCHES', 300);
const C = 8;
const CLIENT_MODULE = '../src/crypto/bridge-client.ts';

const stateDir = await mkdtemp(join(os.tmpdir(), 'ekv-unwrap-probe-'));
const token = await ensureSoftHsmToken({ dir: join(stateDir, 'softhsm'), label: 'unwrap-probe' });
const secret = randomBytes(32).toString('base64url');
await writeFile(join(stateDir, 'secret'), secret, { mode: 0o600 });
const bridgeProcess = await startBridgeProcess({
  env: {
    PKCS11_MODULE: findSoftHsmModule(),
    SOFTHSM2_CONF: token.confPath,
    HSM_TOKEN_LABEL: 'unwrap-probe',
    HSM_PIN_FILE: token.pinFile,
    BRIDGE_HMAC_SECRET_FILE: join(stateDir, 'secret'),
    BRIDGE_HOST: '127.0.0.1',
    BRIDGE_STATE_DIR: join(stateDir, 'hsm-bridge'),
  },
  onLine: (line) => {
    if (process.env.PROBE_BRIDGE_LOG) console.log(`[bridge] ${line}`);
  },
});
const signed = new SignedBridgeClient(bridgeProcess.url, secret, C);
const context = 'ekv-bench|unwrap';
const contextBytes = new TextEncoder().encode(context);
const wrapped = await signed.wrap(randomBytes(32), contextBytes);
const blob = fromBase64Url(wrapped);
const hsm = await openInProcessHsm({
  confPath: token.confPath,
  tokenLabel: 'unwrap-probe',
  pin: token.pin,
  sessionPoolSize: bridgeSessionPoolSize(),
});
const { BridgeClient } = (await import(/* @vite-ignore */ CLIENT_MODULE)) as {
  BridgeClient: new (
    url: string,
    secret: string,
    send?: (input: URL, init: RequestInit) => Promise<unknown>,
  ) => { unwrap(wrapped: string, context: string): Promise<Uint8Array> };
};

// The comparison's client is built as bench/edge.ts builds it (node:http as its transport).
const send = nodeBridgeTransport();
const client = new BridgeClient(bridgeProcess.url, secret, send);
// The split of a serial batch: the same transport, timed around, in a second client.
let batchStart = 0;
let toFetchMs = 0;
let fetchMs = 0;
let batchBody = '';
const timed = new BridgeClient(bridgeProcess.url, secret, async (input, init) => {
  if (typeof init.body === 'string') batchBody = init.body;
  const t = performance.now();
  toFetchMs += t - batchStart;
  const res = await send(input, init);
  fetchMs += performance.now() - t;
  return res;
});
const viaClient = async () => void (await client.unwrap(wrapped, context));

// The client in workerd: one request per round, timed from here (its own hop is one request in ROUND unwraps).
const workerdScript = await bundleForWorkerd(fileURLToPath(new URL('./workers/unwrap-client.js', import.meta.url)));
const { Miniflare, convertV4 } = wranglersMiniflare();
const compat = await compatibility(fileURLToPath(new URL('..', import.meta.url)));
const workerd = new Miniflare(
  convertV4({
    workers: [
      {
        name: 'unwrap-client',
        modules: true,
        script: workerdScript,
        compatibilityDate: compat.date,
        compatibilityFlags: compat.flags,
        bindings: { BRIDGE_URL: bridgeProcess.url, BRIDGE_HMAC_SECRET: secret },
      },
    ],
  }),
);
await workerd.ready;
const inWorkerd = async (count: number): Promise<number> => {
  const t = performance.now();
  const res = await workerd.dispatchFetch(`http://probe/?count=${count}&concurrency=${C}`, {
    method: 'POST',
    body: JSON.stringify({ wrapped, context }),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`unwrap client in workerd: HTTP ${res.status} ${text.slice(0, 300)}`);
  return count / ((performance.now() - t) / 1000);
};
// The bare server: reads the request, answers a batch-sized canned JSON, nothing else.
const bareAnswer = JSON.stringify({ keys: Array.from({ length: C }, () => randomBytes(32).toString('base64url')) });
const bareServer = spawn(
  process.execPath,
  [
    '-e',
    `const s = require('node:http').createServer((q, r) => { q.resume(); q.on('end', () => { r.setHeader('content-type', 'application/json'); r.end(process.env.ANSWER); }); });
     s.keepAliveTimeout = 120000; s.listen(0, '127.0.0.1', () => console.log(s.address().port));`,
  ],
  { env: { ...process.env, ANSWER: bareAnswer }, stdio: ['ignore', 'pipe', 'inherit'] },
);
const barePort = await new Promise<number>((resolve, reject) => {
  bareServer.stdout!.once('data', (d: Buffer) => resolve(Number(String(d).trim())));
  bareServer.once('exit', (code) => reject(new Error(`bare HTTP server exited (${code}) before listening`)));
});
const bareUrl = new URL(`http://127.0.0.1:${barePort}/v1/unwrap-batch`);
const bareExchange = async () => {
  const res = await send(bareUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: batchBody });
  await res.json();
};
const inProcess = async () => void (await hsm.unwrap(blob, contextBytes));
const eight = <T>(f: () => Promise<T>) => Promise.all(Array.from({ length: 8 }, f));
const p50 = (xs: number[]) => round(median(xs), 3);
const ownCpuMs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};
// utime + stime of the bridge process in clock ticks (USER_HZ, 100 on Linux); NaN elsewhere.
const bridgeCpuMs = () =>
  readFile(`/proc/${bridgeProcess.pid}/stat`, 'utf8').then(
    (stat) => {
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(fields[11]) + Number(fields[12])) * 10;
    },
    () => NaN,
  );
// The rate 8 in flight could reach if each batch cost only the token's time for 8 (at the in-process
// rate) plus one bare exchange, over the in-process rate.
const ceiling = (inProcessPerSecond: number, bareMs: number) => {
  const eightMs = (C * 1000) / inProcessPerSecond;
  return eightMs / (eightMs + bareMs);
};
const perUnwrapUs = (ms: number) => round((ms * 1000) / ROUND, 1);

try {
  await runFixed('warm-up client', viaClient, 500, C);
  await runFixed('warm-up local', inProcess, 500, C);
  await inWorkerd(500);
  await eight(() => timed.unwrap(wrapped, context)); // a real batch's body for the bare exchange
  for (let i = 0; i < 200; i++) await bareExchange();
  const ratios: number[] = [];
  const workerdRatios: number[] = [];
  for (let cycle = 1; cycle <= CYCLES; cycle++) {
    const bridge0 = await bridgeCpuMs();
    const own0 = ownCpuMs();
    const a = await runFixed('client', viaClient, ROUND, C);
    const clientCpu = ownCpuMs() - own0;
    const bridgeCpu = (await bridgeCpuMs()) - bridge0;
    const own1 = ownCpuMs();
    const b = await runFixed('local', inProcess, ROUND, C);
    const localCpu = ownCpuMs() - own1;
    ratios.push(a.opsPerSecond / b.opsPerSecond);
    const bridge1 = await bridgeCpuMs();
    const w = await inWorkerd(ROUND);
    const workerdBridgeCpu = (await bridgeCpuMs()) - bridge1;
    workerdRatios.push(w / b.opsPerSecond);
    const batch: number[] = [];
    const local: number[] = [];
    const health: number[] = [];
    const bare: number[] = [];
    toFetchMs = 0;
    fetchMs = 0;
    for (let i = 0; i < BATCHES; i++) {
      batchStart = performance.now();
      await eight(() => timed.unwrap(wrapped, context));
      batch.push(performance.now() - batchStart);
      const t = performance.now();
      await eight(() => hsm.unwrap(blob, contextBytes));
      local.push(performance.now() - t);
      const h = performance.now();
      await (await fetch(`${bridgeProcess.url}/healthz`)).arrayBuffer();
      health.push(performance.now() - h);
    }
    // Back to back, as a round's batches go.
    for (let i = 0; i < BATCHES; i++) {
      const e = performance.now();
      await bareExchange();
      bare.push(performance.now() - e);
    }
    console.log(
      `cycle ${cycle}: ${C} in flight: client ${round(a.opsPerSecond, 0)} / in-process ${round(b.opsPerSecond, 0)} ops/s = ` +
        `${round(a.opsPerSecond / b.opsPerSecond, 3)}; one batch of 8 (p50 ms): ${p50(batch)} ` +
        `(mean to the transport ${round(toFetchMs / BATCHES, 3)}, its round trip ${round(fetchMs / BATCHES, 3)}), ` +
        `8 in process ${p50(local)}, /healthz ${p50(health)}, bare exchange ${p50(bare)} ` +
        `(ceiling ${round(ceiling(b.opsPerSecond, median(bare)), 3)}); CPU µs per unwrap: client ${perUnwrapUs(clientCpu)} + ` +
        `bridge ${perUnwrapUs(bridgeCpu)} vs in process ${perUnwrapUs(localCpu)} = ${round(localCpu / (clientCpu + bridgeCpu), 3)}; ` +
        `load ${round(os.loadavg()[0]!, 2)}`,
    );
    console.log(
      `  the same client in workerd: ${round(w, 0)} ops/s = ${round(w / b.opsPerSecond, 3)} of in-process; ` +
        `bridge CPU µs per unwrap ${perUnwrapUs(workerdBridgeCpu)}`,
    );
  }
  console.log(`median ratio ${round(median(ratios), 3)}; client in workerd ${round(median(workerdRatios), 3)}`);
} finally {
  await workerd.dispose();
  bareServer.kill();
  signed.close();
  await hsm.close();
  await bridgeProcess.stop();
  await rm(stateDir, { recursive: true, force: true });
}
