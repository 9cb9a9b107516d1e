/**
 * Self-signed certificate issuance through the Certificates API against the same key generation
 * and signing done directly (`npm run bench`, or alone: `npm run bench -- --only issuance`).
 *
 * An issuance is `POST /certificates/{name}/create` with policy `Self` (EC P-256 or RSA 2048,
 * software or HSM): the Worker makes the key, signs the CSR and then the certificate with it, and
 * stores key, secret and certificate. The direct round does the same cryptography and nothing
 * else: for software keys WebCrypto in this process (generateKey, a PKCS#10 request and a
 * self-signed certificate with @peculiar/x509, two signatures); for HSM keys the bridge's
 * generate and two sign calls over the same HMAC-signed HTTP the Worker uses. API and direct
 * rounds alternate (which goes first rotates each cycle), so a slow spell of the shared machine
 * falls on both; the figure is the median of the per-cycle rate ratios.
 *
 * Each figure is a fixed, small number of issuances (BENCH_ISSUANCE_ROUND per round,
 * BENCH_ISSUANCE_CYCLES cycles, 20 and 3 by default: 240 issuances and a warm-up of 20 in all; the direct rounds last at least ~250 ms).
 */
import 'reflect-metadata'; // tsyringe, under @peculiar/x509, needs the Reflect metadata API first
import * as x509 from '@peculiar/x509';
import { createHash, randomBytes, webcrypto } from 'node:crypto';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { clientCredentialsToken } from '../scripts/lib/bootstrap.js';
import { httpsRequest } from '../scripts/lib/https-client.js';
import { ensureStackSecrets } from '../scripts/lib/secrets.js';
import { REPO_DIR, startStack, type Stack } from '../scripts/lib/stack.js';
import { SignedBridgeClient } from './lib/bridge.js';
import { httpsAgent, httpsOperation, runFixed, type Operation, type RunResult } from './lib/load.js';
import { listenPort } from './lib/ports.js';
import { median, round, significant } from './lib/stats.js';
import { UNTHROTTLED } from './lib/unthrottled';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const API = 'api-version=7.6';

interface IssuanceSpec {
  id: string;
  label: string;
  keyProps: { kty: 'EC' | 'EC-HSM' | 'RSA' | 'RSA-HSM'; crv?: 'P-256'; key_size?: 2048 };
  hsm: boolean;
  ec: boolean;
}

const SPECS: IssuanceSpec[] = [
  { id: 'ec-sw', label: 'EC P-256, software', keyProps: { kty: 'EC', crv: 'P-256' }, hsm: false, ec: true },
  { id: 'rsa-sw', label: 'RSA 2048, software', keyProps: { kty: 'RSA', key_size: 2048 }, hsm: false, ec: false },
  { id: 'ec-hsm', label: 'EC P-256, HSM', keyProps: { kty: 'EC-HSM', crv: 'P-256' }, hsm: true, ec: true },
  { id: 'rsa-hsm', label: 'RSA 2048, HSM', keyProps: { kty: 'RSA-HSM', key_size: 2048 }, hsm: true, ec: false },
];

export interface IssuanceFigure {
  id: string;
  label: string;
  kty: string;
  direct: string;
  apiPerSecond: number;
  directPerSecond: number;
  /** Median over the cycles of (API issuances/s) / (direct generate+sign/s). */
  apiOverDirect: number;
  cycles: number[];
  apiRounds: number[];
  directRounds: number[];
}

export interface IssuanceFigures {
  what: string;
  round: number;
  cycles: number;
  concurrency: number;
  issuances: number;
  /** os.loadavg() at the start and at the end of the figure: the machine is shared. */
  loadAtStart: number[];
  loadAtEnd: number[];
  figures: IssuanceFigure[];
}

/** The software direct round's unit: one key pair, a CSR and a self-signed certificate, in process. */
async function directSoftware(ec: boolean): Promise<void> {
  const alg = ec
    ? { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' }
    : { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=issuance-bench.example.com', keys, signingAlgorithm: alg });
  const notBefore = new Date();
  await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(8).toString('hex'),
    name: 'CN=issuance-bench.example.com',
    notBefore,
    notAfter: new Date(notBefore.getTime() + 365 * 86_400_000),
    keys,
    signingAlgorithm: alg,
  });
}

/**
 * The HSM direct round's unit: generate in the token, then sign two SHA-256 digests (the CSR's
 * and the certificate's), each a signed bridge request as the Worker makes them. The keys are
 * kept until the end (as the API's are) and destroyed outside the timing.
 */
function directHsm(bridge: SignedBridgeClient, ec: boolean, made: string[]): Operation {
  return async () => {
    const id = randomBytes(16).toString('hex');
    await bridge.generateKey(id, ec ? { kty: 'EC', crv: 'P-256' } : { kty: 'RSA', size: 2048 });
    made.push(id);
    const alg = ec ? 'ES256' : 'RS256';
    for (const part of ['csr', 'certificate']) {
      await bridge.sign(id, alg, createHash('sha256').update(`issuance-bench ${id} ${part}`).digest());
    }
  };
}

/** Runs the figures against a started stack (its bridge reached with the stack's HMAC secret). */
export async function benchIssuance(
  stack: Stack,
  token: string,
  bridgeHmacSecret: string,
  opts: { round: number; cycles: number; concurrency: number; log: (m: string) => void },
): Promise<IssuanceFigures> {
  const { credentials, caPem } = stack;
  const loadAtStart = os.loadavg().map((l) => round(l, 2));
  const agent = httpsAgent(caPem, opts.concurrency);
  const bridge = new SignedBridgeClient(stack.bridge.url, bridgeHmacSecret, opts.concurrency);
  const directKeys: string[] = [];
  let issued = 0;
  const out: IssuanceFigure[] = [];
  try {
    for (const spec of SPECS) {
      let n = 0;
      const body = JSON.stringify({
        policy: {
          issuer: { name: 'Self' },
          key_props: { ...spec.keyProps, exportable: !spec.hsm },
          x509_props: { subject: 'CN=issuance-bench.example.com', validity_months: 12 },
          secret_props: { contentType: 'application/x-pem-file' },
        },
      });
      const nameOf = (i: number) => `issue-bench-${spec.id}-${i}`;
      // Keep-alive connections from one agent, as an SDK client holds them.
      const viaApi: Operation = async () => {
        const name = nameOf(n++);
        await httpsOperation(
          {
            method: 'POST',
            url: new URL(`${credentials.vaultUrl}/certificates/${name}/create?${API}`),
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            body,
            expectStatus: 202,
          },
          agent,
          caPem,
        )();
        issued++;
      };
      // Self issues within the create request: the operation must be completed when it answers.
      const checkLast = async () => {
        const name = nameOf(n - 1);
        const res = await httpsRequest(`${credentials.vaultUrl}/certificates/${name}/pending?${API}`, {
          headers: { authorization: `Bearer ${token}` },
          ca: caPem,
        });
        const op = JSON.parse(res.text) as { status?: string };
        if (res.status !== 200 || op.status !== 'completed')
          throw new Error(`${name}: the operation is not completed after create: HTTP ${res.status} ${res.text.slice(0, 200)}`);
        const key = await httpsRequest(`${credentials.vaultUrl}/keys/${name}?${API}`, {
          headers: { authorization: `Bearer ${token}` },
          ca: caPem,
        });
        const kty = (JSON.parse(key.text) as { key?: { kty?: string } }).key?.kty;
        if (kty !== spec.keyProps.kty) throw new Error(`${name}: its key is ${kty}, not ${spec.keyProps.kty}`);
      };
      const direct: Operation = spec.hsm ? directHsm(bridge, spec.ec, directKeys) : () => directSoftware(spec.ec);
      const directWhat = spec.hsm
        ? `the bridge's POST /v1/keys/generate and two POST /v1/keys/sign (${spec.ec ? 'ES256' : 'RS256'}), HMAC-signed HTTP from Node`
        : `WebCrypto in Node: generateKey, a PKCS#10 request and a self-signed certificate (@peculiar/x509), two signatures`;

      const warm = Math.max(2, Math.min(5, Math.floor(opts.round / 4)));
      await runFixed(`warm-up ${spec.id} api`, viaApi, warm, opts.concurrency);
      await checkLast();
      // Twice: the first direct calls of a kind also pay for JIT and, in the bridge, session warm-up.
      await runFixed(`warm-up ${spec.id} direct`, direct, warm * 2, opts.concurrency);
      const directWarm = await runFixed(`warm-up ${spec.id} direct`, direct, warm * 2, opts.concurrency);
      // The direct round lasts at least ~250 ms (and no less than an API round's count), so the
      // fast EC software case is not a few milliseconds of timer noise.
      const directRound = Math.max(opts.round, Math.min(2_000, Math.ceil(0.25 * directWarm.opsPerSecond)));
      opts.log(
        `issuance ${spec.label}: ${opts.cycles} cycles of ${opts.round} creates and ${directRound} direct, ${opts.concurrency} in flight`,
      );
      const apiRuns: RunResult[] = [];
      const directRuns: RunResult[] = [];
      for (let c = 0; c < opts.cycles; c++) {
        const order = c % 2 === 0 ? (['api', 'direct'] as const) : (['direct', 'api'] as const);
        for (const which of order) {
          const r =
            which === 'api'
              ? await runFixed(`${spec.id} api`, viaApi, opts.round, opts.concurrency)
              : await runFixed(`${spec.id} direct`, direct, directRound, opts.concurrency);
          (which === 'api' ? apiRuns : directRuns).push(r);
          opts.log(`  ${spec.id} ${which.padEnd(6)} ${r.opsPerSecond.toFixed(1).padStart(8)}/s`);
        }
        await checkLast();
      }
      const rate = (runs: RunResult[]) => (runs.reduce((s, r) => s + r.count, 0) * 1000) / runs.reduce((s, r) => s + r.wallMs, 0);
      const perCycle = apiRuns.map((r, i) => r.opsPerSecond / directRuns[i]!.opsPerSecond);
      out.push({
        id: spec.id,
        label: spec.label,
        kty: spec.keyProps.kty,
        direct: directWhat,
        apiPerSecond: round(rate(apiRuns), 1),
        directPerSecond: round(rate(directRuns), 1),
        apiOverDirect: significant(median(perCycle), 3),
        cycles: perCycle.map((r) => significant(r, 3)),
        apiRounds: apiRuns.map((r) => round(r.opsPerSecond, 1)),
        directRounds: directRuns.map((r) => round(r.opsPerSecond, 1)),
      });
    }
  } finally {
    for (const id of directKeys) await bridge.destroyKey(id).catch(() => undefined);
    bridge.close();
    agent.destroy();
  }
  return {
    what: `POST {vault}/certificates/{new name}/create?${API}, policy Self (subject CN, 12 months, PEM, exportable unless -HSM), answered 202 with the operation already completed; against the same key generation and two signatures done directly, in alternating rounds`,
    round: opts.round,
    cycles: opts.cycles,
    concurrency: opts.concurrency,
    issuances: issued,
    loadAtStart,
    loadAtEnd: os.loadavg().map((l) => round(l, 2)),
    figures: out,
  };
}

export function renderIssuance(r: IssuanceFigures): string {
  return [
    `| Self-signed issuance (${r.concurrency} in flight) | API issuances/s | direct/s | API / direct (median of ${r.cycles} cycles) | per cycle |`,
    `|---|---|---|---|---|`,
    ...r.figures.map(
      (f) =>
        `| ${f.label} (\`${f.kty}\`) | ${f.apiPerSecond} | ${f.directPerSecond} | ${f.apiOverDirect} | ${f.cycles.join(', ')} |`,
    ),
    '',
    `${r.issuances} issuances. Load average (1, 5, 15 min) at start ${r.loadAtStart.join(', ')}, at end ${r.loadAtEnd.join(', ')}.`,
    r.what,
  ].join('\n');
}

export function issuanceConfig(): { round: number; cycles: number } {
  const int = (name: string, fallback: number, min: number, max: number) => {
    const raw = process.env[name];
    const n = raw ? Number(raw) : fallback;
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name} must be an integer from ${min} to ${max}`);
    return n;
  };
  return { round: int('BENCH_ISSUANCE_ROUND', 20, 4, 200), cycles: int('BENCH_ISSUANCE_CYCLES', 3, 1, 10) };
}

/** `npm run bench -- --only issuance`: a stack of its own, this figure alone, bench/results/issuance-latest.json. */
export async function runIssuance(): Promise<void> {
  const log = (m: string) => console.log(`[bench] ${m}`);
  const config = issuanceConfig();
  const stateDir = await mkdtemp(join(os.tmpdir(), 'ekv-bench-issuance-'));
  let stack: Stack | undefined;
  try {
    const vaultPort = await listenPort();
    stack = await startStack({
      stateDir,
      vaultPort,
      bridgePort: await listenPort([vaultPort]),
      extraVars: UNTHROTTLED,
      log,
    });
    const token = await clientCredentialsToken(stack.apexUrl, stack.credentials.resource, stack.credentials, stack.caPem);
    const secrets = await ensureStackSecrets(stateDir);
    const figures = await benchIssuance(stack, token, secrets.bridgeHmacSecret, { ...config, concurrency: 4, log });
    const dir = join(REPO_DIR, 'bench', 'results');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'issuance-latest.json.tmp'), JSON.stringify(figures, null, 2) + '\n');
    await rename(join(dir, 'issuance-latest.json.tmp'), join(dir, 'issuance-latest.json'));
    console.log('\n' + renderIssuance(figures));
  } finally {
    await stack?.stop();
    await rm(stateDir, { recursive: true, force: true });
  }
}
