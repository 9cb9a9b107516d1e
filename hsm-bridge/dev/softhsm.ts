/**
 * Development and test plumbing around the bridge: a SoftHSM2 token in a directory of its own,
 * and the bridge as a child process. Used by `npm run dev`, the test global setups and the bench.
 * Deliberately free of graphene: importing this file does not load a PKCS#11 module.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** Repository root (this file is hsm-bridge/dev/softhsm.ts). */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const MAIN = join(ROOT, 'hsm-bridge/src/main.ts');

export interface SoftHsmTokenOptions {
  /** Directory holding softhsm2.conf, tokens/, pin and so-pin. Created if missing (mode 0700). */
  dir: string;
  label: string;
  /** User PIN; default: the one stored in dir/pin, or a new random one on first init. */
  pin?: string;
  /** Security-officer PIN; default: the one stored in dir/so-pin, or a new random one. */
  soPin?: string;
  /** softhsm2-util binary; default `softhsm2-util` on PATH. */
  util?: string;
}

export interface SoftHsmToken {
  /** Set SOFTHSM2_CONF to this for every process that should see the token. */
  confPath: string;
  /** User PIN. Secret: pass it on as HSM_PIN_FILE=pinFile rather than in the environment. */
  pin: string;
  pinFile: string;
  tokenDir: string;
}

/** Where distributions and Homebrew put the SoftHSM2 PKCS#11 library. */
export const SOFTHSM_MODULE_CANDIDATES = [
  '/usr/lib/softhsm/libsofthsm2.so',
  '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/local/lib/softhsm/libsofthsm2.so',
  '/opt/homebrew/lib/softhsm/libsofthsm2.so',
];

/** The SoftHSM2 library on this machine, or undefined. */
export function findSoftHsmModule(): string | undefined {
  return SOFTHSM_MODULE_CANDIDATES.find((path) => existsSync(path));
}

function randomPin(): string {
  return randomBytes(24).toString('base64url'); // 32 characters, 192 bits
}

async function readTrimmed(path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, 'utf8')).trim() || undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function writePrivate(path: string, text: string): Promise<void> {
  await writeFile(path, `${text}\n`, { mode: 0o600 });
  await chmod(path, 0o600); // writeFile's mode only applies when it creates the file
}

async function softhsmUtil(util: string, confPath: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileAsync(util, args, { env: { ...process.env, SOFTHSM2_CONF: confPath } });
    return stdout;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw new Error(`${util} not found: install SoftHSM2 (e.g. apt-get install softhsm2)`);
    // args may hold PINs: report the subcommand and softhsm2-util's own message only.
    throw new Error(`${util} ${args[0]} failed: ${(e.stderr ?? '').trim() || e.message.split('\n')[0]}`);
  }
}

/** Labels of the initialised tokens SoftHSM sees with this configuration. */
export async function listSoftHsmTokens(confPath: string, util = 'softhsm2-util'): Promise<string[]> {
  const out = await softhsmUtil(util, confPath, ['--show-slots']);
  return [...out.matchAll(/^\s*Label:[ \t]*(.*?)\s*$/gm)].map((m) => m[1]!).filter(Boolean);
}

/**
 * Creates (once) a SoftHSM2 configuration and token under `dir`; later calls reuse them and the
 * stored PIN. The PIN file is written before the token is created, so a crash in between never
 * leaves a token whose PIN nobody knows.
 */
export async function ensureSoftHsmToken(opts: SoftHsmTokenOptions): Promise<SoftHsmToken> {
  const dir = resolve(opts.dir);
  const util = opts.util ?? 'softhsm2-util';
  const tokenDir = join(dir, 'tokens');
  const confPath = join(dir, 'softhsm2.conf');
  const pinFile = join(dir, 'pin');
  const soPinFile = join(dir, 'so-pin');
  await mkdir(tokenDir, { recursive: true, mode: 0o700 });
  await writeFile(
    confPath,
    `# Written by hsm-bridge/dev/softhsm.ts\ndirectories.tokendir = ${tokenDir}\nobjectstore.backend = file\nlog.level = ERROR\n`,
  );

  const exists = (await listSoftHsmTokens(confPath, util)).includes(opts.label);
  const storedPin = await readTrimmed(pinFile);
  if (exists) {
    const pin = opts.pin ?? storedPin;
    if (!pin) throw new Error(`token '${opts.label}' exists in ${tokenDir} but no PIN was given and ${pinFile} is missing`);
    if (pin !== storedPin) await writePrivate(pinFile, pin);
    return { confPath, pin, pinFile, tokenDir };
  }

  const pin = opts.pin ?? storedPin ?? randomPin();
  const soPin = opts.soPin ?? (await readTrimmed(soPinFile)) ?? randomPin();
  await writePrivate(pinFile, pin);
  await writePrivate(soPinFile, soPin);
  // softhsm2-util only takes PINs as arguments; this is a local development token.
  await softhsmUtil(util, confPath, ['--init-token', '--free', '--label', opts.label, '--pin', pin, '--so-pin', soPin]);
  return { confPath, pin, pinFile, tokenDir };
}

export interface BridgeProcessOptions {
  /** Added to this process's environment (PKCS11_MODULE, SOFTHSM2_CONF, HSM_PIN_FILE, …). */
  env?: NodeJS.ProcessEnv;
  /** BRIDGE_PORT for the child; default env.BRIDGE_PORT, else 0 (a free port, read back from its output). */
  port?: number;
  /** Every line the bridge prints on stdout or stderr. */
  onLine?: (line: string) => void;
  /** How long to wait for the bridge to listen and answer /healthz with 200; default 20 s. */
  timeoutMs?: number;
  /** PEM CA to trust when the bridge serves HTTPS (BRIDGE_TLS_CERT_FILE). */
  ca?: string;
}

export interface BridgeProcess {
  url: string;
  pid: number;
  /** SIGTERM, then SIGKILL after 5 s; resolves once the process has exited. Idempotent. */
  stop(): Promise<void>;
}

/** Status code of GET url; http or https (trusting `ca`). */
function getStatus(url: string, ca?: string): Promise<number> {
  return new Promise((done, fail) => {
    const client = url.startsWith('https:') ? https : http;
    const req = client.get(url, { ca, timeout: 2_000 }, (res) => {
      res.resume();
      done(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', fail);
  });
}

function nodeBinary(): string {
  // The repository pins Node 22 through the `node` devDependency; prefer it to whatever runs us.
  const pinned = join(ROOT, 'node_modules/.bin/node');
  return existsSync(pinned) ? pinned : process.execPath;
}

/**
 * Spawns `hsm-bridge/src/main.ts` (through the tsx loader) and resolves once it listens and its
 * /healthz answers 200. If it exits first, rejects with its exit code and stderr (which never
 * holds secrets: the bridge does not print them).
 */
export function startBridgeProcess(opts: BridgeProcessOptions = {}): Promise<BridgeProcess> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
  env.BRIDGE_PORT = String(opts.port ?? (opts.env?.BRIDGE_PORT || 0));
  const timeoutMs = opts.timeoutMs ?? 20_000;

  const child = spawn(nodeBinary(), ['--import', 'tsx', MAIN], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const stderrTail: string[] = [];
  let exitCode: number | null | undefined;
  let exitSignal: NodeJS.Signals | null = null;
  const exited = new Promise<void>((done) =>
    child.once('exit', (code, signal) => {
      exitCode = code;
      exitSignal = signal;
      done();
    }),
  );
  const killOnExit = () => child.kill('SIGKILL'); // never leave a bridge behind if we die
  process.once('exit', killOnExit);

  let onListening: (url: string) => void = () => {};
  const listening = new Promise<string>((resolveUrl) => (onListening = resolveUrl));
  const lines = (stream: NodeJS.ReadableStream, isStderr: boolean) => {
    let buffered = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        opts.onLine?.(line);
        if (isStderr) {
          stderrTail.push(line);
          if (stderrTail.length > 40) stderrTail.shift();
        }
        const m = /^hsm-bridge listening on (\S+)/.exec(line);
        if (m) onListening(m[1]!);
      }
    });
  };
  lines(child.stdout!, false);
  lines(child.stderr!, true);

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      if (exitCode === undefined) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
      process.off('exit', killOnExit);
    })());

  const describeExit = () =>
    `hsm-bridge exited (${exitSignal ? `signal ${exitSignal}` : `code ${exitCode}`}) before it was ready` +
    (stderrTail.length ? `:\n${stderrTail.join('\n')}` : '');

  let lastProblem = 'not listening yet';
  const ready = (async () => {
    const deadline = Date.now() + timeoutMs;
    const diedFirst = exited.then((): never => {
      throw new Error(describeExit());
    });
    diedFirst.catch(() => {}); // only meaningful while racing; later exits are stop()'s business
    // A wildcard bind (0.0.0.0, ::) is reached through loopback from this machine.
    const url = (await Promise.race([listening, diedFirst])).replace('//0.0.0.0:', '//127.0.0.1:').replace('//[::]:', '//[::1]:');
    for (;;) {
      if (exitCode !== undefined) throw new Error(describeExit());
      try {
        lastProblem = `/healthz answered ${await getStatus(`${url}/healthz`, opts.ca)}`;
        if (lastProblem.endsWith(' 200')) return url;
      } catch (err) {
        lastProblem = (err as Error).message;
      }
      if (Date.now() > deadline) throw new Error(`hsm-bridge at ${url} not healthy within ${timeoutMs} ms (${lastProblem})`);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();

  const timeout = new Promise<never>((_, reject) => {
    const t = setTimeout(() => reject(new Error(`hsm-bridge did not start within ${timeoutMs} ms (${lastProblem})`)), timeoutMs);
    ready.finally(() => clearTimeout(t)).catch(() => {});
  });

  return Promise.race([ready, timeout]).then(
    (url) => ({ url, pid: child.pid!, stop }),
    async (err: unknown) => {
      await stop();
      throw err;
    },
  );
}
