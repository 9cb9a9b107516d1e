/**
 * `npm run bench:events`: what event delivery costs, on the whole local stack (as `npm run bench`
 * starts it: wrangler dev with its local Queues, D1 and the bridge, in a fresh state directory).
 * Kept apart from bench/run.ts so it runs alone, in about two minutes.
 *
 *  1. Delivery throughput: N secret writes, each announced by SecretNewVersionCreated, delivered
 *     to one subscription, then to ten (each event to each of them): events delivered per second,
 *     from the first write to the last arrival, next to the write rate (which bounds it from below).
 *  2. Latency: from the start of a secret write to its event arriving at the receiver, p50 and
 *     p99 (a few writers, each waiting for its event before the next write, so events mostly
 *     travel alone, as on a quiet vault), against the same receiver called directly with the same
 *     body from here (the floor: one loopback POST).
 *
 * The receiver is an HTTP server in this process on 127.0.0.1 (the stack allows loopback endpoints
 * over http: ALLOW_LOOPBACK_HTTP_ISSUERS), answering Event Grid's validation handshake and 200 to
 * every notification; both ends of a latency are read from this process's clock. Throttling is off
 * for the run (THROTTLE_* = "0"): it would otherwise cap the writes at Azure's 30 creates a second.
 * Knobs: BENCH_EVENTS_ONE (writes, one subscription), BENCH_EVENTS_TEN (writes, ten subscriptions),
 * BENCH_EVENTS_CONCURRENCY, BENCH_EVENTS_LATENCY (samples), BENCH_EVENTS_DIRECT (direct POSTs),
 * BENCH_KEEP_STATE=1. Writes bench/results/events-latest.json.
 */
import http from 'node:http';
import https from 'node:https';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { clientCredentialsToken } from '../scripts/lib/bootstrap.js';
import { httpsRequest, loopbackLookup } from '../scripts/lib/https-client.js';
import { REPO_DIR, startStack, type Stack } from '../scripts/lib/stack.js';
import { machineInfo, softwareInfo } from './lib/machine.js';
import { listenPort } from './lib/ports.js';
import { percentile, round } from './lib/stats.js';
import { UNTHROTTLED } from './lib/unthrottled';

function intEnv(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (!raw) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name} must be an integer from ${min} to ${max}`);
  return n;
}

const CONFIG = {
  oneWrites: intEnv('BENCH_EVENTS_ONE', 600, 50, 100_000),
  tenWrites: intEnv('BENCH_EVENTS_TEN', 300, 20, 100_000),
  concurrency: intEnv('BENCH_EVENTS_CONCURRENCY', 16, 1, 256),
  latencySamples: intEnv('BENCH_EVENTS_LATENCY', 100, 10, 10_000),
  latencyWriters: 4,
  directCalls: intEnv('BENCH_EVENTS_DIRECT', 1_000, 100, 100_000),
  /** How long the last events of a phase may take to arrive. */
  drainTimeoutMs: 120_000,
  apiVersion: '7.6',
};

const log = (message: string) => console.log(`[bench:events] ${message}`);
const now = () => performance.now();

interface Arrival {
  hook: string;
  subject: string;
  at: number;
}

/** The webhook receiver: validation echo, and the arrival time of every event of every hook. */
class Receiver {
  readonly arrivals: Arrival[] = [];
  private waiters = new Map<string, (at: number) => void>();
  private server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const at = now();
      const hook = (req.url ?? '').split('/').pop() ?? '';
      let events: { subject?: string; data?: { validationCode?: string } }[] = [];
      try {
        events = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof events;
      } catch {
        res.writeHead(400).end();
        return;
      }
      if (req.headers['aeg-event-type'] === 'SubscriptionValidation') {
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ validationResponse: events[0]?.data?.validationCode }));
        return;
      }
      res.writeHead(200).end();
      for (const e of Array.isArray(events) ? events : []) {
        const subject = e.subject ?? '';
        this.arrivals.push({ hook, subject, at });
        this.waiters.get(`${hook}\n${subject}`)?.(at);
      }
    });
  });

  async listen(port: number): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(port, '127.0.0.1', resolve));
  }

  /** Resolves with the arrival time of `subject` at `hook`. */
  arrival(hook: string, subject: string, timeoutMs = 30_000): Promise<number> {
    return new Promise((resolve, reject) => {
      const key = `${hook}\n${subject}`;
      const timer = setTimeout(() => reject(new Error(`no event for ${subject} at ${hook} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.set(key, (at) => {
        clearTimeout(timer);
        this.waiters.delete(key);
        resolve(at);
      });
    });
  }

  count(hookPrefix: string): number {
    return this.arrivals.reduce((n, a) => n + (a.hook.startsWith(hookPrefix) ? 1 : 0), 0);
  }

  async until(hookPrefix: string, expected: number): Promise<number> {
    const deadline = Date.now() + CONFIG.drainTimeoutMs;
    while (this.count(hookPrefix) < expected) {
      if (Date.now() > deadline)
        throw new Error(
          `${hookPrefix}: ${this.count(hookPrefix)} of ${expected} events arrived within ${CONFIG.drainTimeoutMs} ms`,
        );
      await new Promise((r) => setTimeout(r, 20));
    }
    return Math.max(...this.arrivals.filter((a) => a.hook.startsWith(hookPrefix)).map((a) => a.at));
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** A keep-alive HTTPS request through `agent`; rejects on an unexpected status. */
function request(
  agent: https.Agent,
  ca: string,
  method: string,
  url: string,
  token: string,
  body: unknown,
  expect: number,
): Promise<string> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method,
        agent,
        ca,
        lookup: loopbackLookup,
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(payload)),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== expect)
            reject(new Error(`${method} ${new URL(url).pathname}: HTTP ${res.statusCode} ${text.slice(0, 200)}`));
          else resolve(text);
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** Runs `op(i)` for i < count with at most `concurrency` in flight. */
async function pool(count: number, concurrency: number, op: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(count, concurrency) }, async () => {
      while (next < count) await op(next++);
    }),
  );
}

async function main(): Promise<void> {
  const startedAt = Date.now();
  const stateDir = await mkdtemp(join(os.tmpdir(), 'ekv-bench-events-'));
  const receiver = new Receiver();
  let stack: Stack | undefined;
  let agent: https.Agent | undefined;
  try {
    log(`starting the stack in ${stateDir}`);
    const vaultPort = await listenPort();
    const receiverPort = await listenPort([vaultPort]);
    await receiver.listen(receiverPort);
    stack = await startStack({
      stateDir,
      vaultPort,
      bridgePort: await listenPort([vaultPort, receiverPort]),
      log,
      extraVars: UNTHROTTLED,
    });
    const { credentials, caPem, apexUrl } = stack;
    const token = await clientCredentialsToken(apexUrl, credentials.resource, credentials, caPem);
    agent = new https.Agent({ keepAlive: true, maxSockets: CONFIG.concurrency, ca: caPem, lookup: loopbackLookup });
    const vaultName = new URL(credentials.vaultUrl).hostname.split('.')[0]!;
    const hookUrl = (hook: string) => `http://127.0.0.1:${receiverPort}/hook/${hook}`;

    const subscribe = async (hook: string, prefix: string) => {
      const res = await httpsRequest(`${apexUrl}/management/vaults/${vaultName}/eventSubscriptions/${hook}`, {
        method: 'PUT',
        ca: caPem,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          properties: {
            destination: { endpointType: 'WebHook', properties: { endpointUrl: hookUrl(hook) } },
            filter: { includedEventTypes: ['SecretNewVersionCreated'], subjectBeginsWith: prefix },
          },
        }),
      });
      if (res.status !== 201) throw new Error(`subscription ${hook}: HTTP ${res.status} ${res.text.slice(0, 200)}`);
    };
    const setSecret = (name: string) =>
      request(
        agent!,
        caPem,
        'PUT',
        `${credentials.vaultUrl}/secrets/${name}?api-version=${CONFIG.apiVersion}`,
        token,
        { value: 'bench' },
        200,
      );

    await subscribe('one', 'one-');
    for (let i = 0; i < 10; i++) await subscribe(`ten-${i}`, 'ten-');
    await subscribe('lat', 'lat-');
    // Warm the path (isolate, D1, data key) before timing anything.
    await pool(50, CONFIG.concurrency, (i) => setSecret(`warm-${i}`).then(() => undefined));

    // ---- 1. Throughput.
    const throughput = async (prefix: 'one' | 'ten', writes: number, subscriptions: number) => {
      log(`throughput: ${writes} secret writes (${CONFIG.concurrency} in flight) to ${subscriptions} subscription(s)`);
      const t0 = now();
      await pool(writes, CONFIG.concurrency, (i) => setSecret(`${prefix}-${i}`).then(() => undefined));
      const written = now();
      const last = await receiver.until(prefix, writes * subscriptions);
      const seconds = (last - t0) / 1000;
      const firstArrival = Math.min(...receiver.arrivals.filter((a) => a.hook.startsWith(prefix)).map((a) => a.at));
      const figures = {
        subscriptions,
        writes,
        deliveries: writes * subscriptions,
        writesPerSecond: round((writes * 1000) / (written - t0), 1),
        eventsPerSecond: round(writes / seconds, 1),
        deliveriesPerSecond: round((writes * subscriptions) / seconds, 1),
        /** Deliveries a second once the first arrived: the pipeline's own pace. */
        deliveriesPerSecondAfterFirst: round(((writes * subscriptions - 1) * 1000) / (last - firstArrival), 1),
        lastArrivalAfterLastWriteMs: round(last - written, 0),
      };
      log(`  ${JSON.stringify(figures)}`);
      return figures;
    };
    const one = await throughput('one', CONFIG.oneWrites, 1);
    const ten = await throughput('ten', CONFIG.tenWrites, 10);

    // ---- 2. Latency, then the same receiver called directly.
    log(`latency: ${CONFIG.latencySamples} writes, ${CONFIG.latencyWriters} writers each waiting for its event`);
    const latencies: number[] = [];
    const writeMs: number[] = [];
    await pool(CONFIG.latencySamples, CONFIG.latencyWriters, async (i) => {
      const subject = `lat-${i}`;
      const arrived = receiver.arrival('lat', subject);
      const t0 = now();
      await setSecret(subject);
      writeMs.push(now() - t0);
      latencies.push((await arrived) - t0);
    });
    const sample = receiver.arrivals.find((a) => a.hook === 'lat')!;
    const body = JSON.stringify([
      {
        id: crypto.randomUUID(),
        subject: 'direct',
        eventType: 'Microsoft.KeyVault.SecretNewVersionCreated',
        data: { ObjectName: sample.subject },
      },
    ]);
    log(`direct: ${CONFIG.directCalls} POSTs of an event to the receiver`);
    const direct: number[] = [];
    const plain = new http.Agent({ keepAlive: true, maxSockets: 1 });
    for (let i = 0; i < CONFIG.directCalls; i++) {
      const t0 = now();
      await new Promise<void>((resolve, reject) => {
        const req = http.request(
          hookUrl('direct'),
          { method: 'POST', agent: plain, headers: { 'content-type': 'application/json' } },
          (res) => {
            res.resume();
            res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`direct: HTTP ${res.statusCode}`))));
          },
        );
        req.on('error', reject);
        req.end(body);
      });
      direct.push(now() - t0);
    }
    plain.destroy();
    const ms = (xs: number[]) => ({ p50Ms: round(percentile(xs, 50), 2), p99Ms: round(percentile(xs, 99), 2) });
    const latency = {
      samples: latencies.length,
      writeToArrival: ms(latencies),
      writeResponse: ms(writeMs),
      direct: { calls: direct.length, ...ms(direct) },
    };
    log(`  ${JSON.stringify(latency)}`);

    const results = {
      startedAt: new Date(startedAt).toISOString(),
      durationSeconds: Math.round((Date.now() - startedAt) / 1000),
      machine: machineInfo(),
      software: await softwareInfo(REPO_DIR),
      config: CONFIG,
      what: 'wrangler dev (local Queues: ekv-events max_batch_timeout 1 s, ekv-event-delivery max_batch_size 10, max_batch_timeout 1 s), Event Grid schema, maxEventsPerBatch 1, receiver on 127.0.0.1 in the bench process',
      throughput: { one, ten },
      latency,
    };
    const dir = join(REPO_DIR, 'bench', 'results');
    await mkdir(dir, { recursive: true });
    const tmp = join(dir, 'events-latest.json.tmp');
    await writeFile(tmp, JSON.stringify(results, null, 2) + '\n');
    await rename(tmp, join(dir, 'events-latest.json'));
    log(`written to bench/results/events-latest.json (${results.durationSeconds} s)`);
  } finally {
    agent?.destroy();
    await receiver.close().catch(() => undefined);
    await stack?.stop();
    if (process.env.BENCH_KEEP_STATE === '1') log(`state kept in ${stateDir}`);
    else await rm(stateDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`[bench:events] failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
