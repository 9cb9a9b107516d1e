/** Shared fixtures for the bridge tests: real SoftHSM2 tokens in temp dirs, real processes. */
import { spawn } from 'node:child_process';
import * as graphene from 'graphene-pk11';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureSoftHsmToken, findSoftHsmModule, type SoftHsmToken } from '../dev/softhsm.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

const found = findSoftHsmModule();
if (!found) throw new Error('SoftHSM2 is required for the bridge tests (apt-get install softhsm2)');
export const PKCS11_MODULE: string = found;

export interface TestToken extends SoftHsmToken {
  dir: string;
  label: string;
  remove(): Promise<void>;
}

/** A fresh token in its own temp dir. */
export async function freshToken(label = 'ekv-test'): Promise<TestToken> {
  const dir = await mkdtemp(join(tmpdir(), 'ekv-bridge-test-'));
  const token = await ensureSoftHsmToken({ dir, label });
  return { ...token, dir, label, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** A random-looking secret long enough for the bridge. */
export const SECRET = 'k7Qp2vX9mL4sT8wB1nR6yH3cJ0fD5gZa-Eu_Oi';

/** Env for main.ts against a token; every setting given explicitly so the caller's env cannot leak in. */
export function bridgeEnv(token: TestToken, overrides: Record<string, string> = {}): Record<string, string> {
  return {
    PKCS11_MODULE,
    SOFTHSM2_CONF: token.confPath,
    HSM_TOKEN_LABEL: token.label,
    HSM_PIN: '',
    HSM_PIN_FILE: token.pinFile,
    HSM_KEK_LABEL: 'ekv-kek',
    BRIDGE_HMAC_SECRET: SECRET,
    BRIDGE_HMAC_SECRET_FILE: '',
    BRIDGE_HOST: '127.0.0.1',
    BRIDGE_PORT: '0',
    BRIDGE_STATE_DIR: join(token.dir, 'bridge-state'),
    ...overrides,
  };
}

export interface MainRun {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs main.ts to completion (for startup failures); kills it after timeoutMs. */
export function runMain(env: Record<string, string>, timeoutMs = 15_000): Promise<MainRun> {
  const started = Date.now();
  const child = spawn(join(ROOT, 'node_modules/.bin/node'), ['--import', 'tsx', join(ROOT, 'hsm-bridge/src/main.ts')], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((done) =>
    child.once('exit', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr, ms: Date.now() - started });
    }),
  );
}

export const enc = (text: string) => new TextEncoder().encode(text);

/**
 * A logged-in session on a test token through plain graphene, outside the bridge's code. PKCS#11
 * state is per process: call it only while no Hsm is open in this process.
 */
export function withTokenSession<T>(token: TestToken, use: (session: graphene.Session) => T): T {
  const mod = graphene.Module.load(PKCS11_MODULE);
  mod.initialize();
  try {
    const slots = mod.getSlots(true);
    let slot: graphene.Slot | undefined;
    for (let i = 0; i < slots.length; i++) if (slots.items(i).getToken().label === token.label) slot = slots.items(i);
    if (!slot) throw new Error(`no token labelled ${token.label}`);
    const session = slot.open(graphene.SessionFlag.SERIAL_SESSION | graphene.SessionFlag.RW_SESSION);
    session.login(token.pin);
    try {
      return use(session);
    } finally {
      session.close();
    }
  } finally {
    mod.finalize();
    mod.close();
  }
}
