/**
 * `npm run soak`: the whole local stack under sustained mixed load while things break, to show
 * that nothing but documented 503s comes out, that every request is still audited, and that the
 * isolate's memory stays put. Not part of CI (it runs for minutes).
 *
 * For SOAK_MINUTES (default 10) it drives secret reads and writes, software and HSM signatures
 * and token requests over SOAK_CONNECTIONS keep-alive connections (default 8, loopback only),
 * while (a) the HSM bridge is killed and restarted every SOAK_BRIDGE_PERIOD_S seconds (default 60,
 * down for 5 s) and (b) SOAK_D1_FAULT_RATE (default 0.01) of the Worker's request-path D1
 * statements fail (the development-only hook in src/storage/db.ts). The report goes to stdout and
 * bench/results/soak-latest.json; the exit code is 1 when an unexplained 5xx was seen or audit
 * records and requests differ.
 *
 * Memory is reported twice: the summed RSS of the stack's workerd processes, which in wrangler dev
 * grows by tens of KB per request whatever the Worker does (a hello-world Worker too: wrangler's
 * proxy workerd and Miniflare's services), and the vault isolate's JS heap after a full collection,
 * the figure that says whether the vault's own code keeps anything.
 */
import https from 'node:https';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { clientCredentialsToken } from '../scripts/lib/bootstrap.js';
import { loopbackLookup } from '../scripts/lib/https-client.js';
import { runToCompletion } from '../scripts/lib/process.js';
import { REPO_DIR, startStack, type Stack } from '../scripts/lib/stack.js';
import { D1_DATABASE } from '../scripts/lib/wrangler.js';
import { vaultIsolateHeap } from './lib/isolate-heap.js';
import { listenPort } from './lib/ports.js';
import { UNTHROTTLED } from './lib/unthrottled';

const num = (name: string, fallback: number) => (process.env[name] ? Number(process.env[name]) : fallback);
const CONFIG = {
  minutes: num('SOAK_MINUTES', 10),
  connections: num('SOAK_CONNECTIONS', 8),
  d1FaultRate: num('SOAK_D1_FAULT_RATE', 0.01),
  bridgePeriodS: num('SOAK_BRIDGE_PERIOD_S', 60),
  bridgeDownS: 5,
  /** A hard ceiling on requests, so the loop is bounded even if the clock misbehaves. */
  maxRequests: 5_000_000,
  api: 'api-version=7.6',
};

const log = (m: string) => console.error(`[soak] ${m}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Answer {
  status: number;
  text: string;
}

/** The workerd processes of the stack (same process group as wrangler), summed RSS in MiB. */
async function workerdRssMiB(pgid: number): Promise<number> {
  let kib = 0;
  for (const pid of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      if (Number(fields[2]) !== pgid || !comm.includes('workerd')) continue;
      const status = await readFile(`/proc/${pid}/status`, 'utf8');
      kib += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    } catch {
      // gone in between
    }
  }
  return Math.round(kib / 102.4) / 10;
}

async function auditRecordCount(stack: Stack, runId: string): Promise<number> {
  const out = await runToCompletion(
    'wrangler d1 execute',
    process.execPath,
    [
      join(REPO_DIR, 'node_modules', 'wrangler', 'bin', 'wrangler.js'),
      'd1',
      'execute',
      D1_DATABASE,
      '--local',
      '--persist-to',
      join(stack.stateDir, 'wrangler'),
      '--json',
      '--command',
      `select count(*) as n from audit_records where correlation_id like '${runId}-%'`,
    ],
    { cwd: REPO_DIR, env: { ...process.env, CI: 'true', WRANGLER_SEND_METRICS: 'false', NO_COLOR: '1' }, timeoutMs: 60_000 },
  );
  return (JSON.parse(out.slice(out.indexOf('['))) as { results: { n: number }[] }[])[0]!.results[0]!.n;
}

async function main(): Promise<void> {
  const stateDir = await mkdtemp(join(os.tmpdir(), 'ekv-soak-'));
  const runId = `soak-${randomBytes(4).toString('hex')}`;
  let stack: Stack | undefined;
  try {
    const vaultPort = await listenPort();
    const bridgePort = await listenPort([vaultPort]);
    // Setting up (bootstrap, first token) can itself meet an injected D1 fault: start again, state is kept.
    for (let attempt = 1; !stack; attempt++) {
      try {
        log(`starting the stack in ${stateDir} (D1 fault rate ${CONFIG.d1FaultRate})`);
        stack = await startStack({
          stateDir,
          vaultPort,
          bridgePort,
          extraVars: { ...UNTHROTTLED, D1_FAULT_RATE: String(CONFIG.d1FaultRate), ALLOW_FAULT_INJECTION: 'true' },
        });
      } catch (err) {
        if (attempt >= 3) throw err;
        log(`stack start failed (${err instanceof Error ? err.message.split('\n')[0] : err}); again`);
      }
    }
    const { credentials, caPem, apexUrl } = stack;
    const agent = new https.Agent({ keepAlive: true, maxSockets: CONFIG.connections, ca: caPem, lookup: loopbackLookup });
    let seq = 0;
    const send = (method: string, url: string, body?: string, headers: Record<string, string> = {}): Promise<Answer> =>
      new Promise((resolve, reject) => {
        const h: Record<string, string> = { 'x-ms-client-request-id': `${runId}-${++seq}`, ...headers };
        if (body !== undefined) h['content-length'] = String(Buffer.byteLength(body));
        const req = https.request(url, { method, agent, headers: h, lookup: loopbackLookup }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        });
        req.setTimeout(30_000, () => req.destroy(new Error(`timeout: ${method} ${url}`)));
        req.on('error', reject);
        req.end(body);
      });

    const form = new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: credentials.clientId,
      client_secret: credentials.clientSecret,
      scope: `${credentials.resource}/.default`,
    }).toString();
    let token = '';
    for (let i = 0; !token; i++) {
      try {
        token = await clientCredentialsToken(apexUrl, credentials.resource, credentials, caPem);
      } catch (err) {
        if (i > 10) throw err;
      }
    }
    const auth = () => ({ authorization: `Bearer ${token}`, 'content-type': 'application/json' });
    const vault = credentials.vaultUrl;
    // Setup requests are audited like any other (they carry the run id) and counted.
    let requests = 0;
    const byClass: Record<string, number> = {};
    const setup = async (method: string, url: string, body: unknown) => {
      for (let i = 0; ; i++) {
        requests++;
        const res = await send(method, url, JSON.stringify(body), auth());
        byClass[`${Math.floor(res.status / 100)}xx`] = (byClass[`${Math.floor(res.status / 100)}xx`] ?? 0) + 1;
        if (res.status < 300) return JSON.parse(res.text);
        if (res.status !== 503 || i > 10) throw new Error(`setup ${method} ${url}: ${res.status} ${res.text.slice(0, 200)}`);
      }
    };
    await setup('PUT', `${vault}/secrets/soak?${CONFIG.api}`, { value: 'soak value' });
    await setup('POST', `${vault}/keys/soak-sw/create?${CONFIG.api}`, { kty: 'EC', crv: 'P-256' });
    await setup('POST', `${vault}/keys/soak-hsm/create?${CONFIG.api}`, { kty: 'EC-HSM', crv: 'P-256' });

    const digest = randomBytes(32).toString('base64url');
    const mix: { weight: number; name: string; run: () => Promise<Answer> }[] = [
      { weight: 35, name: 'secret read', run: () => send('GET', `${vault}/secrets/soak/?${CONFIG.api}`, undefined, auth()) },
      {
        weight: 10,
        name: 'secret write',
        run: () =>
          send('PUT', `${vault}/secrets/soak-w${seq % 16}?${CONFIG.api}`, JSON.stringify({ value: randomUUID() }), auth()),
      },
      {
        weight: 5,
        name: 'secret list',
        run: () => send('GET', `${vault}/secrets?${CONFIG.api}&maxresults=5`, undefined, auth()),
      },
      {
        weight: 20,
        name: 'software sign',
        run: () =>
          send('POST', `${vault}/keys/soak-sw/sign?${CONFIG.api}`, JSON.stringify({ alg: 'ES256', value: digest }), auth()),
      },
      {
        weight: 15,
        name: 'HSM sign',
        run: () =>
          send('POST', `${vault}/keys/soak-hsm/sign?${CONFIG.api}`, JSON.stringify({ alg: 'ES256', value: digest }), auth()),
      },
      {
        weight: 10,
        name: 'token',
        run: () =>
          send('POST', `${apexUrl}/${credentials.tenantId}/oauth2/v2.0/token`, form, {
            'content-type': 'application/x-www-form-urlencoded',
          }),
      },
      { weight: 5, name: 'key get', run: () => send('GET', `${vault}/keys/soak-hsm?${CONFIG.api}`, undefined, auth()) },
    ];
    const totalWeight = mix.reduce((a, m) => a + m.weight, 0);
    const pick = () => {
      let r = Math.random() * totalWeight;
      for (const m of mix) if ((r -= m.weight) < 0) return m;
      return mix[0]!;
    };

    const fiveXx: Record<string, { count: number; expected: boolean }> = {};
    const transportErrors: Record<string, number> = {};
    let bridgeDown = false;
    let bridgeBackAt = 0;
    let bridgeRestarts = 0;
    const rssStart = await workerdRssMiB(stack.workerPid);
    const heapStart = stack.inspectorPort ? await vaultIsolateHeap(stack.inspectorPort) : undefined;
    const started = Date.now();
    const deadline = started + CONFIG.minutes * 60_000;
    log(
      `driving load for ${CONFIG.minutes} min over ${CONFIG.connections} connections (workerd RSS ${rssStart} MiB, vault isolate heap ${heapStart?.usedMiB ?? '?'} MiB)`,
    );

    const chaos = (async () => {
      while (Date.now() + CONFIG.bridgePeriodS * 1000 < deadline) {
        await sleep(CONFIG.bridgePeriodS * 1000 - CONFIG.bridgeDownS * 1000);
        bridgeDown = true;
        await stack!.bridge.stop();
        log(`bridge killed (${Math.round((Date.now() - started) / 1000)} s)`);
        await sleep(CONFIG.bridgeDownS * 1000);
        await stack!.bridge.start();
        bridgeRestarts++;
        bridgeBackAt = Date.now();
        bridgeDown = false;
        log('bridge back');
      }
    })();

    const worker = async () => {
      while (Date.now() < deadline && requests < CONFIG.maxRequests) {
        const op = pick();
        const sentWhileBridgeDown = bridgeDown;
        requests++;
        let res: Answer;
        try {
          res = await op.run();
        } catch (err) {
          const what = `${op.name}: ${err instanceof Error ? err.message : String(err)}`;
          transportErrors[what] = (transportErrors[what] ?? 0) + 1;
          continue;
        }
        const cls = `${Math.floor(res.status / 100)}xx`;
        byClass[cls] = (byClass[cls] ?? 0) + 1;
        if (res.status >= 500) {
          let code = '';
          let message = '';
          try {
            const body = JSON.parse(res.text);
            code = body.error?.code ?? body.error ?? '';
            message = body.error?.message ?? body.error_description ?? '';
          } catch {
            code = 'non-JSON';
          }
          const cause = /HSM bridge/.test(message) ? 'bridge' : /storage/.test(message) ? 'D1' : 'other';
          // A 503 naming the bridge is expected while it is down (and for the few seconds a
          // request already in flight takes); one naming storage, for the injected D1 faults.
          const nearOutage = sentWhileBridgeDown || bridgeDown || Date.now() - bridgeBackAt < 3000;
          const expected =
            res.status === 503 && code === 'ServiceUnavailable' && (cause === 'D1' || (cause === 'bridge' && nearOutage));
          const key = `${res.status} ${code} (${cause}) ${op.name}`;
          fiveXx[key] ??= { count: 0, expected };
          fiveXx[key].count++;
        }
      }
    };
    await Promise.all(Array.from({ length: CONFIG.connections }, worker));
    await chaos;
    if (!stack.bridge.running) await stack.bridge.start();
    const wallS = (Date.now() - started) / 1000;
    const rssEnd = await workerdRssMiB(stack.workerPid);
    const heapEnd = stack.inspectorPort ? await vaultIsolateHeap(stack.inspectorPort) : undefined;
    log(`load done: ${requests} requests in ${Math.round(wallS)} s; waiting for the audit queue to drain`);

    // Every request carried the run id: count its records until the queue has drained (stable).
    const sentTotal = seq; // every request sent carried its own id, setup and token included
    let audited = -1;
    for (let i = 0; i < 20; i++) {
      await sleep(3000);
      const n = await auditRecordCount(stack, runId);
      if (n === audited || n >= sentTotal) {
        audited = n;
        break;
      }
      audited = n;
    }
    const unexpected = Object.entries(fiveXx).filter(([, v]) => !v.expected);
    const report = {
      date: new Date().toISOString(),
      config: CONFIG,
      wallSeconds: Math.round(wallS),
      requests: sentTotal,
      requestsPerSecond: Math.round(sentTotal / wallS),
      responsesByClass: byClass,
      fiveXx,
      unexpectedFiveXx: unexpected.reduce((a, [, v]) => a + v.count, 0),
      transportErrors,
      bridgeRestarts,
      audit: { requestsSent: sentTotal, recordsStored: audited, equal: audited === sentTotal },
      workerdRssMiB: { start: rssStart, end: rssEnd },
      // What the vault's own code keeps (after a full collection); workerd's RSS grows by itself in
      // wrangler dev, hello-world Worker included (bench/lib/isolate-heap.ts).
      vaultIsolateHeapMiB: { start: heapStart ?? null, end: heapEnd ?? null },
    };
    const text = JSON.stringify(report, null, 2);
    console.log(text);
    await writeFile(join(REPO_DIR, 'bench', 'results', 'soak-latest.json'), text + '\n');
    if (report.unexpectedFiveXx > 0 || !report.audit.equal) process.exitCode = 1;
  } finally {
    await stack?.stop();
    await rm(stateDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
});
