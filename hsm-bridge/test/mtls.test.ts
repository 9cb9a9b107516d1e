/**
 * Mutual TLS between the Worker and the bridge (BRIDGE_TLS_CLIENT_CA_FILE, optionally pinned with
 * BRIDGE_TLS_CLIENT_CERT_SHA256): only clients presenting a certificate the CA issued get through
 * the handshake; the Worker's BridgeClient sends through an injected fetcher, which is how the
 * Workers mTLS binding (env.BRIDGE_MTLS.fetch) presents its certificate.
 */
import { randomBytes } from 'node:crypto';
import https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signRequest, toBase64Url } from '../../bridge-protocol/index.js';
import { BridgeUnavailableError } from '../../src/core/errors.js';
import { ConfigError, loadConfig } from '../src/config.js';
import { startBridge, type RunningBridge } from '../src/serve.js';
import { SECRET, bridgeEnv, freshToken, type TestToken } from './helpers.js';
import { testCa, type TestCa, type TestCert } from './test-pki.js';

type BridgeFetch = (input: URL, init: RequestInit) => Promise<Response>;
interface Client {
  wrap(plaintext: Uint8Array, context: string): Promise<{ wrapped: string; kekLabel: string }>;
  unwrap(wrapped: string, context: string): Promise<Uint8Array>;
  health(): Promise<{ status: string; kek: boolean; reason?: string }>;
}
// Worker code, loaded through a path tsc does not follow (see bridge-client.test.ts).
const CLIENT_MODULE = '../../src/crypto/bridge-client.ts';
let BridgeClient: new (baseUrl: string, secret: string, send?: BridgeFetch) => Client;

let token: TestToken;
let ca: TestCa;
let server: TestCert;
let worker: TestCert;
let sibling: TestCert; // same CA, another certificate
let foreign: TestCert; // another CA

beforeAll(async () => {
  ({ BridgeClient } = await import(/* @vite-ignore */ CLIENT_MODULE));
  token = await freshToken('ekv-mtls-test');
  process.env.SOFTHSM2_CONF = token.confPath;
  ca = testCa(token.dir, 'ekv-test-ca');
  server = ca.server();
  worker = ca.client('worker');
  sibling = ca.client('sibling');
  foreign = testCa(token.dir, 'other-ca').client('worker');
});
afterAll(async () => {
  await token?.remove();
});

function mtlsEnv(extra: Record<string, string> = {}): Record<string, string> {
  return bridgeEnv(token, {
    BRIDGE_TLS_CERT_FILE: server.certFile,
    BRIDGE_TLS_KEY_FILE: server.keyFile,
    BRIDGE_TLS_CLIENT_CA_FILE: ca.caFile,
    ...extra,
  });
}

/** A fetch over node:https presenting `client` (or no certificate): what an mTLS binding does for a Worker. */
function fetchPresenting(client?: TestCert): BridgeFetch {
  return (input, init) =>
    new Promise((resolve, reject) => {
      const req = https.request(
        input,
        {
          method: init.method ?? 'GET',
          headers: init.headers as Record<string, string>,
          ca: ca.caPem,
          ...(client ? { cert: client.cert, key: client.key } : {}),
          signal: init.signal ?? undefined,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            const headers = new Headers();
            for (const [name, value] of Object.entries(res.headers)) if (typeof value === 'string') headers.set(name, value);
            resolve(new Response(Buffer.concat(chunks), { status: res.statusCode, headers }));
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(typeof init.body === 'string' ? init.body : undefined);
    });
}

async function healthz(bridge: RunningBridge, client?: TestCert): Promise<number> {
  return (await fetchPresenting(client)(new URL('/healthz', bridge.url), {})).status;
}

async function start(extra: Record<string, string> = {}, logged: string[] = []): Promise<RunningBridge> {
  return startBridge(loadConfig(mtlsEnv(extra)), (event, fields) => logged.push(JSON.stringify({ event, ...fields })));
}

describe('a bridge requiring client certificates', () => {
  let bridge: RunningBridge;
  beforeAll(async () => {
    bridge = await start();
  });
  afterAll(async () => {
    await bridge?.close();
  });

  it('serves a client presenting a certificate from its CA: /healthz and a signed wrap/unwrap', async () => {
    expect(bridge.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(await healthz(bridge, worker)).toBe(200);
    const client = new BridgeClient(bridge.url, SECRET, fetchPresenting(worker));
    expect(await client.health()).toEqual({ status: 'ok', kek: true });
    const dataKey = randomBytes(32);
    const { wrapped } = await client.wrap(dataKey, 'vault/mtls');
    expect(Buffer.from(await client.unwrap(wrapped, 'vault/mtls'))).toEqual(dataKey);
  });

  it('ends the handshake of a client without a certificate, or with one from another CA', async () => {
    await expect(healthz(bridge)).rejects.toThrow();
    await expect(healthz(bridge, foreign)).rejects.toThrow();
    // The Worker's client without the binding's certificate: the bridge is unavailable, not a crash.
    const bare = new BridgeClient(bridge.url, SECRET, fetchPresenting());
    expect((await bare.health()).status).toBe('unavailable');
    await expect(bare.wrap(randomBytes(32), 'vault/mtls')).rejects.toBeInstanceOf(BridgeUnavailableError);
  });

  it('still requires the HMAC signature from a client with a good certificate', async () => {
    const body = JSON.stringify({ plaintext: toBase64Url(randomBytes(32)), context: toBase64Url(new TextEncoder().encode('c')) });
    const headers = await signRequest('wrong-Secret_k2J8vQ4xL7mR1nT5yB9cH3', 'POST', '/v1/wrap', body);
    const res = await fetchPresenting(worker)(new URL('/v1/wrap', bridge.url), { method: 'POST', headers, body });
    expect(res.status).toBe(401);
  });
});

describe('a pinned client certificate', () => {
  it('lets only the pinned certificate through, though the CA issued others', async () => {
    const logged: string[] = [];
    const bridge = await start({ BRIDGE_TLS_CLIENT_CERT_SHA256: `${worker.fingerprint256.toLowerCase()}` }, logged);
    try {
      expect(await healthz(bridge, worker)).toBe(200);
      await expect(healthz(bridge, sibling)).rejects.toThrow();
      expect(logged.some((l) => l.includes('client_certificate_refused') && l.includes(sibling.fingerprint256))).toBe(true);
    } finally {
      await bridge.close();
    }
  });

  it('accepts several pins (a certificate rotation), with or without colons', async () => {
    const pins = `${worker.fingerprint256}, ${sibling.fingerprint256.replace(/:/g, '')}`;
    const bridge = await start({ BRIDGE_TLS_CLIENT_CERT_SHA256: pins });
    try {
      expect(await healthz(bridge, worker)).toBe(200);
      expect(await healthz(bridge, sibling)).toBe(200);
    } finally {
      await bridge.close();
    }
  });
});

describe('mutual TLS configuration', () => {
  it.each([
    [
      { BRIDGE_TLS_CERT_FILE: '', BRIDGE_TLS_KEY_FILE: '' },
      /BRIDGE_TLS_CLIENT_CA_FILE needs BRIDGE_TLS_CERT_FILE and BRIDGE_TLS_KEY_FILE/,
    ],
    [
      { BRIDGE_TLS_CLIENT_CA_FILE: '', BRIDGE_TLS_CLIENT_CERT_SHA256: 'AB'.repeat(32) },
      /BRIDGE_TLS_CLIENT_CERT_SHA256 needs BRIDGE_TLS_CLIENT_CA_FILE/,
    ],
    [
      { BRIDGE_TLS_CLIENT_CERT_SHA256: 'not-a-fingerprint' },
      /BRIDGE_TLS_CLIENT_CERT_SHA256 must be comma-separated SHA-256 fingerprints/,
    ],
  ])('refuses %o', (extra, message) => {
    expect(() => loadConfig(mtlsEnv(extra))).toThrow(ConfigError);
    expect(() => loadConfig(mtlsEnv(extra))).toThrow(message);
  });

  it('an unreadable client CA file is a ConfigError naming the variable, and leaves the token closed', async () => {
    await expect(start({ BRIDGE_TLS_CLIENT_CA_FILE: '/nonexistent/ca.pem' })).rejects.toThrow(
      /cannot read BRIDGE_TLS_CLIENT_CA_FILE \(\/nonexistent\/ca\.pem\): ENOENT/,
    );
    // The HSM was closed again: another bridge can open it in this process.
    const bridge = await start();
    await bridge.close();
  });
});
