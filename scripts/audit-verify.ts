/**
 * npm run audit:verify -- --vault NAME            verify a vault's audit chain, offline
 * npm run audit:verify -- --deployment           the deployment's chain (administrators)
 * npm run audit:verify -- --chain ID              any chain by id, a deleted vault's included
 *                                                 (administrators; ids: GET /management/audit/chains)
 *
 * Exports the chain's raw rows and signed checkpoints over HTTPS, fetches the published
 * checkpoint key, and runs the same verifyChain as the Worker (src/audit/verify.ts) here, with
 * each checkpoint's ES256 signature checked against a key this machine trusts:
 *  - `--key file.jwk`: that public JWK (e.g. obtained out of band from the HSM's operator);
 *  - otherwise the keys published at https://{apex}/audit/checkpoint-keys the first time, pinned
 *    in the pin file (default `.dev/audit-pins.json`); a key published later is pinned as a
 *    rotation while every pinned key is still published, and each checkpoint is checked with the
 *    key its kid names. A pinned key no longer published is reported loudly and only the pinned
 *    keys are used (pass --key, or delete the pin, once you know why it changed).
 * The pin file also remembers the checkpoints already seen, so a checkpoint later deleted from the
 * service's database still counts. Prints "intact through sequence N at checkpoint T" or the
 * first bad record; exit code 0 intact, 1 not intact, 2 could not verify.
 *
 * Connection: `--credentials FILE` (default .dev/credentials.json, what `npm run dev` writes:
 * authorityHost, tenantId, clientId, clientSecret, caCertPath) or the environment: EKV_APEX_URL,
 * EKV_TENANT_ID, EKV_CLIENT_ID, EKV_CLIENT_SECRET, EKV_CA_CERT (a PEM file to trust; else the
 * system's roots). `*.localhost` resolves to 127.0.0.1.
 */
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { jwkThumbprint, verifyCheckpointSignature, type EcPublicJwk } from '../src/audit/checkpoint-signature.js';
import { describeVerification, verifyChain, type ChainRow, type Checkpoint, type VerifyResult } from '../src/audit/verify.js';
import { httpsRequest } from './lib/https-client.js';

export interface VerifyTarget {
  /** e.g. https://vault.localhost:8443 */
  apexUrl: string;
  tenantId: string;
  clientId: string;
  clientSecret: string;
  /** PEM to trust (the dev CA); undefined: the system's roots. */
  caPem?: string;
}

export interface RemoteVerifyOptions {
  /** A vault's chain (the vault that has this name now), or the deployment's when undefined. */
  vault?: string;
  /**
   * A chain by its id, through the administrators' API: how a deleted vault's trail is verified
   * (chains are bound to vault ids, so no vault host serves it any more).
   */
  chain?: string;
  /** A trusted public JWK; when absent, the published key is pinned in `pinFile`. */
  key?: EcPublicJwk;
  pinFile?: string;
  log?: (line: string) => void;
}

export interface RemoteVerifyResult {
  chain: string;
  result: VerifyResult;
  message: string;
  kid: string;
  /** Set when the published keys differ from the pinned or given ones. */
  keyWarning?: string;
  rows: number;
  checkpoints: number;
}

interface TrustedKey {
  publicJwk: EcPublicJwk;
  kid: string;
}

interface PinFile {
  /** Per host: the key pinned first, and the keys pinned since as rotations (while it stayed published). */
  keys: Record<string, TrustedKey & { pinnedAt: string; rotated?: Array<TrustedKey & { pinnedAt: string }> }>;
  checkpoints: Record<string, Checkpoint[]>;
}

const API = 'api-version=7.6';
const REMEMBERED_CHECKPOINTS = 50;

async function get(
  url: string,
  target: VerifyTarget,
  headers: Record<string, string> = {},
): Promise<{ status: number; text: string; headers: Record<string, string | string[] | undefined> }> {
  if (target.caPem) return httpsRequest(url, { ca: target.caPem, headers, timeoutMs: 60_000 });
  const res = await fetch(url, { headers });
  return {
    status: res.status,
    text: await res.text(),
    headers: Object.fromEntries(res.headers as unknown as Iterable<[string, string]>),
  };
}

async function token(target: VerifyTarget): Promise<string> {
  const body = new URLSearchParams({
    grant_type: 'client_credentials',
    client_id: target.clientId,
    client_secret: target.clientSecret,
    scope: `${target.apexUrl}/.default`,
  }).toString();
  const url = `${target.apexUrl}/${target.tenantId}/oauth2/v2.0/token`;
  const res = target.caPem
    ? await httpsRequest(url, {
        method: 'POST',
        ca: target.caPem,
        body,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      })
    : await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } }).then(
        async (r) => ({ status: r.status, text: await r.text() }),
      );
  if (res.status !== 200) throw new Error(`token request failed: HTTP ${res.status}`);
  return (JSON.parse(res.text) as { access_token: string }).access_token;
}

function readPins(path: string): PinFile {
  if (!existsSync(path)) return { keys: {}, checkpoints: {} };
  const pins = JSON.parse(readFileSync(path, 'utf8')) as Partial<PinFile>;
  return { keys: pins.keys ?? {}, checkpoints: pins.checkpoints ?? {} };
}

function writePins(path: string, pins: PinFile): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(pins, null, 2) + '\n', { mode: 0o600 });
}

const sameCheckpoint = (a: Checkpoint, b: Checkpoint) => a.seq === b.seq && a.hash === b.hash && a.signature === b.signature;

/** Exports a chain and its checkpoints from the service and verifies them here. */
export async function verifyRemote(target: VerifyTarget, opts: RemoteVerifyOptions = {}): Promise<RemoteVerifyResult> {
  const log = opts.log ?? (() => {});
  const apex = new URL(target.apexUrl);
  if (opts.vault && opts.chain) throw new Error('give either a vault or a chain, not both');
  const base = opts.vault ? `${apex.protocol}//${opts.vault}.${apex.host}/audit` : `${target.apexUrl}/management/audit`;
  const query = opts.vault ? API : opts.chain ? `chain=${encodeURIComponent(opts.chain)}` : '';
  const auth = { authorization: `Bearer ${await token(target)}` };

  // The keys: given, or the published ones checked against (or pinned as) the trusted ones.
  const jwks = await get(`${target.apexUrl}/audit/checkpoint-keys`, target);
  if (jwks.status !== 200) throw new Error(`checkpoint keys: HTTP ${jwks.status}`);
  const published: TrustedKey[] = [];
  for (const k of (JSON.parse(jwks.text) as { keys: Array<EcPublicJwk & { kid: string }> }).keys) {
    const publicJwk: EcPublicJwk = { kty: 'EC', crv: 'P-256', x: k.x, y: k.y };
    published.push({ publicJwk, kid: await jwkThumbprint(publicJwk) });
  }
  if (published.length === 0) throw new Error('the service publishes no checkpoint key');
  const pinFile = opts.pinFile;
  const pins = pinFile ? readPins(pinFile) : { keys: {}, checkpoints: {} };
  const now = new Date().toISOString();
  let trusted: TrustedKey[];
  let keyWarning: string | undefined;
  const pin = pins.keys[apex.host];
  if (opts.key) {
    trusted = [{ publicJwk: opts.key, kid: await jwkThumbprint(opts.key) }];
  } else if (!pin) {
    trusted = published;
    const [first, ...rest] = published;
    pins.keys[apex.host] = { ...first!, pinnedAt: now, rotated: rest.map((k) => ({ ...k, pinnedAt: now })) };
    log(
      `pinned the published checkpoint keys ${published.map((k) => k.kid).join(', ')} (trust on first use)${pinFile ? ` in ${pinFile}` : ''}`,
    );
  } else {
    trusted = [pin, ...(pin.rotated ?? [])];
    if (trusted.every((k) => published.some((p) => p.kid === k.kid))) {
      // The service still publishes every key trusted here: newer ones are rotations, pinned now.
      const added = published.filter((p) => !trusted.some((k) => k.kid === p.kid));
      if (added.length > 0) {
        pin.rotated = [...(pin.rotated ?? []), ...added.map((k) => ({ ...k, pinnedAt: now }))];
        trusted = [...trusted, ...added];
        log(`pinned the rotated checkpoint keys ${added.map((k) => k.kid).join(', ')}`);
      }
    }
  }
  if (
    !trusted.every((k) => published.some((p) => p.kid === k.kid)) ||
    !published.every((p) => trusted.some((k) => k.kid === p.kid))
  ) {
    keyWarning = `WARNING: the set of published checkpoint keys (${published.map((k) => k.kid).join(', ')}) differs from the trusted one (${trusted.map((k) => k.kid).join(', ')}); verifying with the trusted keys only`;
    log(keyWarning);
  }
  const kid = trusted.at(-1)!.kid;

  // Checkpoints, head and pruned anchor; then every row, page by page.
  const cpRes = await get(`${base}/checkpoints${query ? `?${query}` : ''}`, target, auth);
  if (cpRes.status !== 200) throw new Error(`checkpoints: HTTP ${cpRes.status} ${cpRes.text.slice(0, 200)}`);
  const exported = JSON.parse(cpRes.text) as {
    chain: string;
    head: { seq: number; hash: string } | null;
    prunedThrough: { seq: number; hash: string } | null;
    checkpoints: Checkpoint[];
  };
  const chain = exported.chain;
  const remembered = pins.checkpoints[chain] ?? [];
  // Checkpoints made after the head was read are beyond what this run verifies.
  const checkpoints = exported.checkpoints.filter((cp) => !exported.head || cp.seq <= exported.head.seq);
  for (const cp of remembered) if (!checkpoints.some((c) => sameCheckpoint(c, cp))) checkpoints.push(cp);

  const rows: ChainRow[] = [];
  let from = exported.prunedThrough?.seq ?? 0;
  for (;;) {
    const page = await get(`${base}/chain?${query ? `${query}&` : ''}from=${from}&limit=5000`, target, auth);
    if (page.status !== 200) throw new Error(`chain export: HTTP ${page.status}`);
    for (const line of page.text.split('\n')) {
      if (!line) continue;
      const row = JSON.parse(line) as ChainRow;
      // The head was read first: rows appended since then are not part of this verification.
      if (exported.head && row.seq > exported.head.seq) continue;
      rows.push(row);
    }
    const next = page.headers['x-ekv-next-from'];
    if (typeof next !== 'string') break;
    from = Number(next);
  }

  // Each checkpoint with the trusted key its kid names; a kid trusted here by no key is refused.
  const verify = async (cp: Checkpoint) => {
    const key = trusted.find((k) => k.kid === cp.kid);
    return key ? verifyCheckpointSignature(cp, key.publicJwk, key.kid) : false;
  };
  let result: VerifyResult;
  const anchor = exported.prunedThrough;
  if (anchor && !(await anchored(checkpoints, anchor, verify))) {
    result = {
      ok: false,
      firstBadSeq: 1,
      kind: 'removed',
      detail: `records 1..${anchor.seq} were pruned but no valid checkpoint vouches for where they ended`,
      intactThrough: 0,
    };
  } else {
    result = await verifyChain(rows, checkpoints, verify, { chain, head: exported.head, from: anchor });
  }

  // Remember the valid checkpoints seen (the latest few), so a deleted one still counts next time.
  if (pinFile) {
    const valid: Checkpoint[] = [];
    for (const cp of checkpoints) if (await verify(cp)) valid.push(cp);
    pins.checkpoints[chain] = valid.sort((a, b) => a.seq - b.seq).slice(-REMEMBERED_CHECKPOINTS);
    writePins(pinFile, pins);
  }
  return {
    chain,
    result,
    message: describeVerification(result),
    kid,
    keyWarning,
    rows: rows.length,
    checkpoints: checkpoints.length,
  };
}

async function anchored(
  checkpoints: Checkpoint[],
  anchor: { seq: number; hash: string },
  verify: (cp: Checkpoint) => Promise<boolean>,
): Promise<boolean> {
  for (const cp of checkpoints) if (cp.seq === anchor.seq && cp.hash === anchor.hash && (await verify(cp))) return true;
  return false;
}

// ------------------------------------------------------------------------------------- the CLI

type CliArgs = {
  vault?: string;
  deployment?: boolean;
  chain?: string;
  key?: string;
  credentials?: string;
  'pin-file'?: string;
  help?: boolean;
};

function cliArgs(argv: string[]): CliArgs {
  const { values } = parseArgs({
    args: argv,
    options: {
      vault: { type: 'string' },
      deployment: { type: 'boolean' },
      chain: { type: 'string' },
      key: { type: 'string' },
      credentials: { type: 'string' },
      'pin-file': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  return values;
}

function targetFrom(args: CliArgs): VerifyTarget {
  const credentialsPath = args.credentials ?? '.dev/credentials.json';
  const env = process.env;
  const file = existsSync(credentialsPath)
    ? (JSON.parse(readFileSync(credentialsPath, 'utf8')) as {
        authorityHost: string;
        tenantId: string;
        clientId: string;
        clientSecret: string;
        caCertPath?: string;
      })
    : null;
  const apexUrl = env.EKV_APEX_URL ?? file?.authorityHost;
  const tenantId = env.EKV_TENANT_ID ?? file?.tenantId;
  const clientId = env.EKV_CLIENT_ID ?? file?.clientId;
  const clientSecret = env.EKV_CLIENT_SECRET ?? file?.clientSecret;
  if (!apexUrl || !tenantId || !clientId || !clientSecret) {
    throw new Error(
      `no credentials: ${credentialsPath} does not exist and EKV_APEX_URL, EKV_TENANT_ID, EKV_CLIENT_ID, EKV_CLIENT_SECRET are not all set`,
    );
  }
  const caPath = env.EKV_CA_CERT ?? file?.caCertPath;
  return {
    apexUrl: apexUrl.replace(/\/$/, ''),
    tenantId,
    clientId,
    clientSecret,
    caPem: caPath ? readFileSync(caPath, 'utf8') : undefined,
  };
}

async function main(): Promise<number> {
  let args: CliArgs;
  try {
    args = cliArgs(process.argv.slice(2));
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    args = { help: true };
  }
  if (args.help || [args.vault, args.deployment, args.chain].filter(Boolean).length !== 1) {
    console.error(
      'usage: npm run audit:verify -- --vault NAME | --deployment | --chain ID [--key file.jwk] [--credentials FILE] [--pin-file FILE]',
    );
    return 2;
  }
  const target = targetFrom(args);
  const key = args.key !== undefined ? (JSON.parse(readFileSync(args.key, 'utf8')) as EcPublicJwk) : undefined;
  const pinFile = resolve(args['pin-file'] ?? '.dev/audit-pins.json');
  const out = await verifyRemote(target, { vault: args.vault, chain: args.chain, key, pinFile, log: (l) => console.error(l) });
  console.log(`${out.chain}: ${out.message}`);
  console.error(`(${out.rows} records and ${out.checkpoints} checkpoints checked with key ${out.kid})`);
  return out.result.ok ? 0 : 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(`audit:verify could not verify: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(2);
    },
  );
}
