/**
 * The renewal of N due certificates end to end on the running stack (`npm run bench`, or alone:
 * `npm run bench -- --only renewal`): N certificates are imported already due (a certificate
 * whose validity is 90% spent, policy Self with AutoRenew at 80%), then one scheduled run starts
 * the renewal and the clock runs until every certificate has a second version in D1. Reported:
 * the wall time (and certificates per second), the queue messages the consumer handled (from its
 * per-batch log line), and the D1 statements per certificate (the Worker's counters over the
 * window: the scan, the consumer's renewals, and the events consumer storing
 * CertificateNewVersionCreated; the audit consumer's apart).
 *
 * Completion is read from the stack's local D1 file directly (node:sqlite, read-only), so the
 * polling adds no statements to the Worker's counters.
 */
import 'reflect-metadata'; // tsyringe, under @peculiar/x509, needs the Reflect metadata API first
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { clientCredentialsToken } from '../scripts/lib/bootstrap.js';
import { httpsRequest } from '../scripts/lib/https-client.js';
import { REPO_DIR, startStack, type Stack } from '../scripts/lib/stack.js';
import { listenPort } from './lib/ports.js';
import { round } from './lib/stats.js';
import { UNTHROTTLED } from './lib/unthrottled';
import { windowDelta, WorkerStatsReader } from './lib/worker-stats.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export interface RenewalFigures {
  what: string;
  certificates: number;
  /** From the scheduled run until every certificate had its new version. */
  seconds: number;
  perSecond: number;
  /** Messages the renewal queue's consumer handled (renew + scan continuations), and its batches. */
  queueMessages: number;
  queueBatches: number;
  /** Request-path D1 statements (scan, consumers) per certificate; the audit consumer's apart. */
  d1PerCertificate: number;
  d1AuditPerCertificate: number | null;
  /** Wall time of the import of the due certificates (not in `seconds`). */
  setupSeconds: number;
}

const DAY = 86_400_000;
const API = 'api-version=7.6';

/** Counts the consumer's `certificate renewal batch: N messages` lines of the Worker's output. */
export class RenewalLogWatch {
  messages = 0;
  batches = 0;
  onLine(line: string): void {
    const m = /certificate renewal batch: (\d+) messages/.exec(line);
    if (m) {
      this.messages += Number(m[1]);
      this.batches++;
    }
  }
}

/** An EC P-256 certificate with its key as PEM, 90% of its 365-day validity spent. */
async function agedCertificatePem(): Promise<string> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const notBefore = new Date(Date.now() - 329 * DAY);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '0a',
    name: 'CN=renewal-bench.example.com',
    notBefore,
    notAfter: new Date(notBefore.getTime() + 365 * DAY),
    keys,
    signingAlgorithm: alg,
    extensions: [new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature)],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
  return `${cert.toString('pem')}\n-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`;
}

/** The stack's local D1 file (wrangler --persist-to {stateDir}/wrangler). */
async function d1File(stateDir: string): Promise<string> {
  const dir = join(stateDir, 'wrangler', 'v3', 'd1', 'miniflare-D1DatabaseObject');
  const files = (await readdir(dir)).filter((f) => f.endsWith('.sqlite'));
  for (const f of files) {
    const db = new DatabaseSync(join(dir, f), { readOnly: true });
    try {
      if (db.prepare("select 1 from sqlite_master where name = 'certificates'").get()) return join(dir, f);
    } finally {
      db.close();
    }
  }
  throw new Error(`no D1 database with a certificates table in ${dir}`);
}

/** Runs the figure against a started stack; `watch` must see the Worker's output lines. */
export async function benchRenewal(
  stack: Stack,
  token: string,
  watch: RenewalLogWatch,
  opts: { certificates: number; concurrency: number; log: (m: string) => void },
): Promise<RenewalFigures> {
  const { credentials, caPem, apexUrl } = stack;
  const n = opts.certificates;
  const pem = await agedCertificatePem();
  const body = JSON.stringify({
    value: pem,
    policy: {
      issuer: { name: 'Self' },
      key_props: { kty: 'EC', crv: 'P-256' },
      secret_props: { contentType: 'application/x-pem-file' },
      lifetime_actions: [{ trigger: { lifetime_percentage: 80 }, action: { action_type: 'AutoRenew' } }],
    },
  });
  const setupStart = Date.now();
  let next = 0;
  const importOne = async () => {
    for (let i = next++; i < n; i = next++) {
      const res = await httpsRequest(`${credentials.vaultUrl}/certificates/renew-bench-${i}/import?${API}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body,
        ca: caPem,
      });
      if (res.status !== 200) throw new Error(`import renew-bench-${i}: HTTP ${res.status} ${res.text.slice(0, 200)}`);
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, importOne));
  const setupSeconds = (Date.now() - setupStart) / 1000;
  opts.log(`renewal: ${n} due certificates imported in ${setupSeconds.toFixed(1)} s`);

  const db = new DatabaseSync(await d1File(stack.stateDir), { readOnly: true });
  const renewed = () =>
    (
      db
        .prepare(
          "select count(*) as n from (select name from certificate_versions where name like 'renew-bench-%' group by vault_id, name having count(*) >= 2)",
        )
        .get() as { n: number }
    ).n;
  try {
    const stats = new WorkerStatsReader(apexUrl, token, caPem);
    const before = await stats.settle();
    const messagesBefore = watch.messages;
    const batchesBefore = watch.batches;
    const started = Date.now();
    const cron = await stack.runCron();
    if (cron.status !== 200) throw new Error(`scheduled run: HTTP ${cron.status} ${cron.outcome}`);
    let done = 0;
    let lastLog = Date.now();
    while ((done = renewed()) < n) {
      if (Date.now() - started > 15 * 60_000) throw new Error(`renewal: only ${done} of ${n} renewed after 15 minutes`);
      if (Date.now() - lastLog > 10_000) {
        opts.log(`renewal: ${done}/${n} renewed`);
        lastLog = Date.now();
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    const seconds = (Date.now() - started) / 1000;
    const after = await stats.settle();
    const delta = windowDelta(before, after);
    return {
      what: `${n} imported EC P-256 certificates 90% through their validity, policy Self with AutoRenew at 80%: one scheduled run, the renewal queue's consumer (batches of 10), until each has its second version in D1`,
      certificates: n,
      seconds: round(seconds, 1),
      perSecond: round(n / seconds, 1),
      queueMessages: watch.messages - messagesBefore,
      queueBatches: watch.batches - batchesBefore,
      d1PerCertificate: round(delta.d1Statements / n, 1),
      d1AuditPerCertificate: delta.d1AuditStatements === undefined ? null : round(delta.d1AuditStatements / n, 1),
      setupSeconds: round(setupSeconds, 1),
    };
  } finally {
    db.close();
  }
}

export function renderRenewal(r: RenewalFigures): string {
  return [
    `| Renewal of due certificates, end to end | |`,
    `|---|---|`,
    `| Certificates | ${r.certificates} |`,
    `| Time from the scheduled run to the last new version | ${r.seconds} s (${r.perSecond}/s) |`,
    `| Queue messages handled (batches) | ${r.queueMessages} (${r.queueBatches}) |`,
    `| D1 statements per certificate (audit consumer apart) | ${r.d1PerCertificate} (+${r.d1AuditPerCertificate ?? '?'}) |`,
    '',
    r.what,
  ].join('\n');
}

/** `npm run bench -- --only renewal`: a stack of its own, this figure alone, bench/results/renewal-latest.json. */
export async function runRenewal(): Promise<void> {
  const log = (m: string) => console.log(`[bench] ${m}`);
  const certificates = Number(process.env.BENCH_RENEWALS || 1000);
  if (!Number.isInteger(certificates) || certificates < 10 || certificates > 20_000)
    throw new Error('BENCH_RENEWALS must be an integer from 10 to 20000');
  const stateDir = await mkdtemp(join(os.tmpdir(), 'ekv-bench-renewal-'));
  const watch = new RenewalLogWatch();
  let stack: Stack | undefined;
  try {
    const vaultPort = await listenPort();
    stack = await startStack({
      stateDir,
      vaultPort,
      bridgePort: await listenPort([vaultPort]),
      extraVars: UNTHROTTLED,
      log,
      onOutput: (source, line) => {
        if (source === 'worker') watch.onLine(line);
      },
    });
    const token = await clientCredentialsToken(stack.apexUrl, stack.credentials.resource, stack.credentials, stack.caPem);
    const figures = await benchRenewal(stack, token, watch, { certificates, concurrency: 8, log });
    const dir = join(REPO_DIR, 'bench', 'results');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'renewal-latest.json.tmp'), JSON.stringify(figures, null, 2) + '\n');
    await rename(join(dir, 'renewal-latest.json.tmp'), join(dir, 'renewal-latest.json'));
    console.log('\n' + renderRenewal(figures));
  } finally {
    await stack?.stop();
    await rm(stateDir, { recursive: true, force: true });
  }
}
