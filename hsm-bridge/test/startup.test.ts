/**
 * The bridge as a process (main.ts): fatal startup errors are clear, distinct, printed once and
 * exit 1; a wrong PIN is tried once and leaves the token usable; a healthy bridge serves and stops.
 */
import { execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import https from 'node:https';
import { join } from 'node:path';
import * as graphene from 'graphene-pk11';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signRequest } from '../../bridge-protocol/index.js';
import { startBridgeProcess } from '../dev/softhsm.js';
import { PKCS11_MODULE, SECRET, bridgeEnv, freshToken, runMain, type TestToken } from './helpers.js';

let token: TestToken;

beforeAll(async () => {
  token = await freshToken('ekv-startup-test');
});
afterAll(async () => {
  await token?.remove();
});

function expectFatalOnce(run: { code: number | null; stdout: string; stderr: string }, message: RegExp) {
  expect(run.code).toBe(1);
  expect(run.stdout).not.toContain('listening');
  const fatal = run.stderr.split('\n').filter((l) => l.includes('fatal'));
  expect(fatal).toHaveLength(1);
  expect(fatal[0]).toMatch(message);
}

/** The token's flags, read with plain graphene in a child-free way (this process logs in nowhere). */
function tokenFlags(): number {
  process.env.SOFTHSM2_CONF = token.confPath;
  const mod = graphene.Module.load(PKCS11_MODULE);
  mod.initialize();
  try {
    const slots = mod.getSlots(true);
    for (let i = 0; i < slots.length; i++) {
      const t = slots.items(i).getToken();
      if (t.label === token.label) return t.flags;
    }
    throw new Error('token not found');
  } finally {
    mod.finalize();
    mod.close();
  }
}

describe('startup failures', () => {
  it('a wrong PIN is tried once, reported clearly, exits 1, and leaves the token usable', async () => {
    const wrongPinFile = join(token.dir, 'wrong-pin');
    await writeFile(wrongPinFile, 'definitely-not-the-pin\n');
    const run = await runMain(bridgeEnv(token, { HSM_PIN_FILE: wrongPinFile }));
    expectFatalOnce(run, /PIN_INCORRECT.*PIN is incorrect \(CKR_PIN_INCORRECT\); not retrying/);
    expect(run.stderr).not.toContain('definitely-not-the-pin');

    const flags = tokenFlags();
    expect(flags & graphene.TokenFlag.USER_PIN_LOCKED).toBe(0);
    expect(flags & graphene.TokenFlag.USER_PIN_COUNT_LOW).not.toBe(0); // SoftHSM saw exactly the failure(s)

    // The correct PIN still works (and resets the failure counter).
    const bridge = await startBridgeProcess({ env: bridgeEnv(token) });
    await bridge.stop();
    expect(tokenFlags() & graphene.TokenFlag.USER_PIN_COUNT_LOW).toBe(0);
  });

  it('a missing PKCS#11 module', async () => {
    const run = await runMain(bridgeEnv(token, { PKCS11_MODULE: '/nonexistent/libpkcs11.so' }));
    expectFatalOnce(run, /MODULE_NOT_FOUND.*PKCS#11 module not found at \/nonexistent\/libpkcs11\.so/);
  });

  it('a file that is not a PKCS#11 module', async () => {
    const run = await runMain(bridgeEnv(token, { PKCS11_MODULE: token.confPath }));
    expectFatalOnce(run, /MODULE_LOAD_FAILED.*cannot load PKCS#11 module/);
  });

  it('an unknown token label', async () => {
    const run = await runMain(bridgeEnv(token, { HSM_TOKEN_LABEL: 'no-such-token' }));
    expectFatalOnce(run, /TOKEN_NOT_FOUND.*no initialised token labelled 'no-such-token' \(tokens present: 'ekv-startup-test'\)/);
  });

  it.each([
    ['too short', 'short-secret-0123456789', /BRIDGE_HMAC_SECRET is too weak: it must be at least 32 characters/],
    ['not random', 'a'.repeat(40), /BRIDGE_HMAC_SECRET is too weak: it must be random/],
  ])('a weak HMAC secret (%s)', async (_name, secret, message) => {
    const run = await runMain(bridgeEnv(token, { BRIDGE_HMAC_SECRET: secret }));
    expectFatalOnce(run, message);
    expect(run.stderr).not.toContain(secret);
  });

  it('no HMAC secret, no PIN, both PIN and PIN file', async () => {
    expectFatalOnce(
      await runMain(bridgeEnv(token, { BRIDGE_HMAC_SECRET: '' })),
      /BRIDGE_HMAC_SECRET or BRIDGE_HMAC_SECRET_FILE is required/,
    );
    expectFatalOnce(await runMain(bridgeEnv(token, { HSM_PIN_FILE: '' })), /HSM_PIN or HSM_PIN_FILE is required/);
    expectFatalOnce(await runMain(bridgeEnv(token, { HSM_PIN: token.pin })), /set only one of HSM_PIN and HSM_PIN_FILE/);
  });

  it('plaintext HTTP on a non-loopback address', async () => {
    expectFatalOnce(
      await runMain(bridgeEnv(token, { BRIDGE_HOST: '0.0.0.0' })),
      /BRIDGE_HOST=0\.0\.0\.0 is not a loopback address/,
    );
  });
});

describe('a healthy bridge process', () => {
  it('serves signed requests with a secret from a file, and stops on SIGTERM', async () => {
    const secretFile = join(token.dir, 'secret');
    await writeFile(secretFile, `${SECRET}\n`, { mode: 0o600 });
    const lines: string[] = [];
    const bridge = await startBridgeProcess({
      env: bridgeEnv(token, { BRIDGE_HMAC_SECRET: '', BRIDGE_HMAC_SECRET_FILE: secretFile }),
      onLine: (l) => lines.push(l),
    });
    expect(bridge.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(lines).toContain(`hsm-bridge listening on ${bridge.url}`);

    const health = await fetch(`${bridge.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok', kek: true });
    const status = await fetch(`${bridge.url}/v1/status`, { headers: await signRequest(SECRET, 'GET', '/v1/status', '') });
    expect(status.status).toBe(200);
    expect(((await status.json()) as { kekLabel: string }).kekLabel).toBe('ekv-kek');

    await bridge.stop();
    expect(() => process.kill(bridge.pid, 0)).toThrow(); // gone
    await expect(fetch(`${bridge.url}/healthz`)).rejects.toThrow();
    expect(lines.join('\n')).not.toContain(SECRET);
    expect(lines.join('\n')).not.toContain(token.pin);
  });

  it('a port already in use is a clear fatal error', async () => {
    const first = await startBridgeProcess({ env: bridgeEnv(token) });
    try {
      const port = new URL(first.url).port;
      const run = await runMain(bridgeEnv(token, { BRIDGE_PORT: port }));
      expectFatalOnce(run, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port} \\(EADDRINUSE\\)`));
      expect((await fetch(`${first.url}/healthz`)).status).toBe(200); // the first one is undisturbed
    } finally {
      await first.stop();
    }
  });

  it('startBridgeProcess rejects with the child stderr when the bridge dies', async () => {
    await expect(startBridgeProcess({ env: bridgeEnv(token, { HSM_TOKEN_LABEL: 'nope' }) })).rejects.toThrow(
      /hsm-bridge exited \(code 1\) before it was ready:\n.*TOKEN_NOT_FOUND/,
    );
  });
});

describe('TLS', () => {
  it('serves HTTPS with BRIDGE_TLS_CERT_FILE/KEY_FILE, also off loopback', async () => {
    const cert = join(token.dir, 'bridge.crt');
    const key = join(token.dir, 'bridge.key');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { stdio: 'ignore' },
    );
    const ca = await readFile(cert, 'utf8');
    const bridge = await startBridgeProcess({
      env: bridgeEnv(token, { BRIDGE_HOST: '0.0.0.0', BRIDGE_TLS_CERT_FILE: cert, BRIDGE_TLS_KEY_FILE: key }),
      ca,
    });
    try {
      expect(bridge.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/); // the wildcard bind, reached via loopback
      const port = new URL(bridge.url).port;
      const status = await new Promise<number>((done, fail) =>
        https.get(`https://127.0.0.1:${port}/healthz`, { ca }, (res) => (res.resume(), done(res.statusCode!))).on('error', fail),
      );
      expect(status).toBe(200);
      // Plain HTTP is not served on that port.
      await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
    } finally {
      await bridge.stop();
    }
  });

  it('refuses half a TLS configuration', async () => {
    expectFatalOnce(
      await runMain(bridgeEnv(token, { BRIDGE_TLS_CERT_FILE: '/tmp/x.crt' })),
      /set both BRIDGE_TLS_CERT_FILE and BRIDGE_TLS_KEY_FILE, or neither/,
    );
  });
});
