/**
 * The Worker's BridgeClient (src/crypto/bridge-client.ts) against a real bridge over HTTP on a
 * real SoftHSM2 token: the key methods and how bridge answers become vault errors.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HsmKeySpec, HsmPublicJwk } from '../../bridge-protocol/index.js';
import { startBridge, type RunningBridge } from '../src/serve.js';
import { BridgeUnavailableError, IntegrityError, VaultError } from '../../src/core/errors.js';
import { nodeBridgeTransport, type NodeBridgeTransport } from '../../scripts/lib/node-bridge-transport.js';
import { PKCS11_MODULE, SECRET, freshToken, type TestToken } from './helpers.js';

/**
 * The client is Worker code, type-checked by tsconfig.json; its module graph uses workerd-only
 * APIs that the Node type-check would refuse, so it is loaded here through a path tsc does not
 * follow and described by the shape it must have.
 */
interface Client {
  wrap(plaintext: Uint8Array, context: string): Promise<{ wrapped: string; kekLabel: string }>;
  unwrap(wrapped: string, context: string): Promise<Uint8Array>;
  generateKey(id: string, spec: HsmKeySpec): Promise<{ handle: string; publicJwk?: HsmPublicJwk }>;
  importKey(id: string, jwk: Record<string, string>): Promise<{ handle: string; publicJwk: HsmPublicJwk }>;
  sign(handle: string, alg: string, digest: Uint8Array): Promise<Uint8Array>;
  decrypt(
    handle: string,
    alg: string,
    ciphertext: Uint8Array,
    opts?: { iv?: Uint8Array; aad?: Uint8Array; tag?: Uint8Array },
  ): Promise<Uint8Array>;
  encrypt(
    handle: string,
    alg: string,
    plaintext: Uint8Array,
    opts?: { iv?: Uint8Array; aad?: Uint8Array },
  ): Promise<{ ciphertext: Uint8Array; iv?: Uint8Array; tag?: Uint8Array }>;
  wrapKey(handle: string, alg: string, key: Uint8Array): Promise<Uint8Array>;
  unwrapKey(handle: string, alg: string, wrapped: Uint8Array): Promise<Uint8Array>;
  destroyKey(handle: string): Promise<boolean>;
  publicKey(handle: string): Promise<HsmPublicJwk>;
  random(count: number): Promise<Uint8Array>;
  health(): Promise<{ status: string; kek: boolean; reason?: string }>;
}
interface ClientModule {
  BridgeClient: new (baseUrl: string, secret: string, send?: NodeBridgeTransport, options?: { coalesceMs?: number }) => Client;
  HsmKeyExistsError: new () => VaultError;
  bridgeStats: { calls: number };
}
const CLIENT_MODULE = '../../src/crypto/bridge-client.ts';

let token: TestToken;
let bridge: RunningBridge;
let mod: ClientModule;
let client: Client;

const newId = () => crypto.randomBytes(16).toString('hex');

beforeAll(async () => {
  mod = (await import(/* @vite-ignore */ CLIENT_MODULE)) as ClientModule;
  token = await freshToken('ekv-client-test');
  process.env.SOFTHSM2_CONF = token.confPath;
  bridge = await startBridge(
    {
      pkcs11Module: PKCS11_MODULE,
      tokenLabel: token.label,
      pin: token.pin,
      kekLabel: 'ekv-kek',
      hmacSecret: SECRET,
      host: '127.0.0.1',
      port: 0,
      sessionPoolSize: 4,
      stateDir: `${token.dir}/bridge-state`,
    },
    () => undefined,
  );
  client = new mod.BridgeClient(bridge.url, SECRET);
}, 60_000);

afterAll(async () => {
  await bridge?.close();
  await token?.remove();
});

async function failure(promise: Promise<unknown>): Promise<VaultError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(VaultError);
  return err as VaultError;
}

describe('BridgeClient key methods', () => {
  it('generates, signs (verified by node), destroys; each call counts', async () => {
    const before = mod.bridgeStats.calls;
    const id = newId();
    const made = await client.generateKey(id, { kty: 'EC', crv: 'P-256' });
    expect(made.handle).toBe(id);
    const message = crypto.randomBytes(64);
    const signature = await client.sign(id, 'ES256', crypto.createHash('sha256').update(message).digest());
    expect(signature).toBeInstanceOf(Uint8Array);
    const pub = crypto.createPublicKey({ key: made.publicJwk as crypto.JsonWebKey, format: 'jwk' });
    expect(crypto.verify('sha256', message, { key: pub, dsaEncoding: 'ieee-p1363' }, signature)).toBe(true);
    expect(await client.destroyKey(id)).toBe(true);
    expect(await client.destroyKey(id)).toBe(false);
    expect(mod.bridgeStats.calls - before).toBe(4);
  });

  it('encrypts and decrypts with an oct key (GCM and CBC), wraps and unwraps, and answers random bytes', async () => {
    const id = newId();
    const made = await client.generateKey(id, { kty: 'oct', size: 256 });
    expect(made).toEqual({ handle: id });
    const plaintext = crypto.randomBytes(40);
    const aad = crypto.randomBytes(8);
    const gcm = await client.encrypt(id, 'A256GCM', plaintext, { aad });
    expect(gcm.iv?.length).toBe(12);
    expect(gcm.tag?.length).toBe(16);
    expect(Buffer.from(await client.decrypt(id, 'A256GCM', gcm.ciphertext, { iv: gcm.iv, tag: gcm.tag, aad }))).toEqual(
      plaintext,
    );
    const iv = crypto.randomBytes(16);
    const cbc = await client.encrypt(id, 'A256CBCPAD', plaintext, { iv });
    expect(Buffer.from(cbc.iv!)).toEqual(iv);
    expect(cbc.tag).toBeUndefined();
    expect(Buffer.from(await client.decrypt(id, 'A256CBCPAD', cbc.ciphertext, { iv }))).toEqual(plaintext);
    const dek = crypto.randomBytes(32);
    const wrapped = await client.wrapKey(id, 'A256KW', dek);
    expect(wrapped.length).toBe(40);
    expect(Buffer.from(await client.unwrapKey(id, 'A256KW', wrapped))).toEqual(dek);
    expect((await client.random(128)).length).toBe(128);
  });

  it('imports a private JWK (30 s timeout path) and decrypts what node encrypted for it', async () => {
    const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = privateKey.export({ format: 'jwk' }) as Record<string, string>;
    const id = newId();
    const made = await client.importKey(id, jwk);
    expect(made).toEqual({ handle: id, publicJwk: { kty: 'RSA', n: jwk.n, e: jwk.e } });
    const secret = crypto.randomBytes(32);
    const ciphertext = crypto.publicEncrypt({ key: publicKey, oaepHash: 'sha256' }, secret);
    expect(Buffer.from(await client.unwrapKey(id, 'RSA-OAEP-256', ciphertext))).toEqual(secret);
  });
});

describe('BridgeClient error mapping', () => {
  let aes: string;
  beforeAll(async () => {
    aes = newId();
    await client.generateKey(aes, { kty: 'oct', size: 128 });
  });

  it('409 KeyExists → HsmKeyExistsError (a 409 Conflict)', async () => {
    const err = await failure(client.generateKey(aes, { kty: 'oct', size: 128 }));
    expect(err).toBeInstanceOf(mod.HsmKeyExistsError);
    expect(err.status).toBe(409);
  });

  it('422 OperationFailed → BadParameter with a generic message', async () => {
    const sealed = await client.encrypt(aes, 'A128GCM', crypto.randomBytes(16));
    const tag = Uint8Array.from(sealed.tag!);
    tag[0]! ^= 1;
    const err = await failure(client.decrypt(aes, 'A128GCM', sealed.ciphertext, { iv: sealed.iv, tag }));
    expect(err.status).toBe(400);
    expect(err.code).toBe('BadParameter');
    expect(err.message).toMatch(/does not authenticate/);
    const wrapErr = await failure(client.unwrapKey(aes, 'A128KW', crypto.randomBytes(40)));
    expect([wrapErr.status, wrapErr.code]).toEqual([400, 'BadParameter']);
  });

  it("400 → BadParameter with the bridge's message", async () => {
    const err = await failure(client.encrypt(aes, 'A256GCM', crypto.randomBytes(16)));
    expect(err.status).toBe(400);
    expect(err.code).toBe('BadParameter');
    expect(err.message).toMatch(/needs a 256-bit key; this key is 128 bits\.$/);
    expect((await failure(client.random(0))).status).toBe(400);
    expect((await failure(client.sign(aes, 'ES256', crypto.randomBytes(32)))).message).toMatch(/needs an EC key/);
  });

  it('404 KeyNotFound → IntegrityError: the vault points at a missing token object', async () => {
    const err = await failure(client.sign(newId(), 'ES256', crypto.randomBytes(32)));
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err.message).toMatch(/HSM key/);
  });

  it('the data-key unwrap keeps 422 → IntegrityError("data key")', async () => {
    const { wrapped } = await client.wrap(crypto.randomBytes(32), 'ctx');
    const err = await failure(client.unwrap(wrapped, 'other ctx'));
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err.message).toMatch(/data key/);
  });

  it('a wrong secret (401) or an unreachable bridge → BridgeUnavailableError (503)', async () => {
    const wrongSecret = new mod.BridgeClient(bridge.url, 'another-secret-0123456789-abcdefghijkl');
    const errors: unknown[] = [];
    const log = console.error;
    console.error = (...args: unknown[]) => errors.push(args);
    try {
      expect(await failure(wrongSecret.sign(aes, 'ES256', crypto.randomBytes(32)))).toBeInstanceOf(BridgeUnavailableError);
    } finally {
      console.error = log;
    }
    expect(errors).toHaveLength(1);
    const nowhere = new mod.BridgeClient('http://127.0.0.1:9', SECRET);
    const err = await failure(nowhere.generateKey(newId(), { kty: 'oct', size: 128 }));
    expect(err).toBeInstanceOf(BridgeUnavailableError);
    expect(err.status).toBe(503);
  });
});

describe('unwrap coalescing', () => {
  const wrapMany = (n: number) =>
    Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const dek = crypto.randomBytes(32);
        const context = `ekv-dk-v1|coalesce|${i}`;
        return { dek, context, wrapped: (await client.wrap(dek, context)).wrapped };
      }),
    );
  const opsOf = async () => (await fetchStatus()).unwrap;
  async function fetchStatus(): Promise<{ unwrap: number }> {
    const { signRequest } = await import('../../bridge-protocol/index.js');
    const res = await fetch(`${bridge.url}/v1/status`, { headers: await signRequest(SECRET, 'GET', '/v1/status', '') });
    return ((await res.json()) as { ops: { unwrap: number } }).ops;
  }

  it('sends unwraps started together as one signed request, each with its own key', async () => {
    const keys = await wrapMany(6);
    const unwrapsBefore = await opsOf();
    const before = mod.bridgeStats.calls;
    const fresh = new mod.BridgeClient(bridge.url, SECRET); // one request's client
    const got = await Promise.all(keys.map((k) => fresh.unwrap(k.wrapped, k.context)));
    expect(mod.bridgeStats.calls - before).toBe(1);
    expect(await opsOf()).toBe(unwrapsBefore + 6);
    got.forEach((plain, i) => expect(Buffer.from(plain).equals(keys[i]!.dek)).toBe(true));
  });

  it('gathers the calls of one turn even when each caller reaches unwrap after some awaits', async () => {
    // As when one answer resolves several readers, each continuing through its own await chain.
    const keys = await wrapMany(4);
    const before = mod.bridgeStats.calls;
    const fresh = new mod.BridgeClient(bridge.url, SECRET);
    const got = await Promise.all(
      keys.map(async (k, i) => {
        for (let hop = 0; hop < i * 3; hop++) await Promise.resolve();
        return fresh.unwrap(k.wrapped, k.context);
      }),
    );
    expect(mod.bridgeStats.calls - before).toBe(1);
    got.forEach((plain, i) => expect(Buffer.from(plain).equals(keys[i]!.dek)).toBe(true));
  });

  it('fails only the item that does not authenticate, with the error a lone unwrap gives', async () => {
    const keys = await wrapMany(3);
    const fresh = new mod.BridgeClient(bridge.url, SECRET);
    const outcomes = await Promise.allSettled([
      fresh.unwrap(keys[0]!.wrapped, keys[0]!.context),
      fresh.unwrap(keys[1]!.wrapped, 'another context'),
      fresh.unwrap(keys[2]!.wrapped, keys[2]!.context),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    const err = (outcomes[1] as PromiseRejectedResult).reason as VaultError;
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err.message).toMatch(/data key/);
  });

  it('splits more than 32 unwraps into several batches, and gathers later calls inside a longer window', async () => {
    const keys = await wrapMany(40);
    let before = mod.bridgeStats.calls;
    const fresh = new mod.BridgeClient(bridge.url, SECRET);
    const got = await Promise.all(keys.map((k) => fresh.unwrap(k.wrapped, k.context)));
    expect(mod.bridgeStats.calls - before).toBe(2);
    got.forEach((plain, i) => expect(Buffer.from(plain).equals(keys[i]!.dek)).toBe(true));

    before = mod.bridgeStats.calls;
    const windowed = new mod.BridgeClient(bridge.url, SECRET, undefined, { coalesceMs: 50 });
    const first = windowed.unwrap(keys[0]!.wrapped, keys[0]!.context);
    await new Promise((r) => setTimeout(r, 5));
    const second = windowed.unwrap(keys[1]!.wrapped, keys[1]!.context);
    await Promise.all([first, second]);
    expect(mod.bridgeStats.calls - before).toBe(1);

    before = mod.bridgeStats.calls;
    const never = new mod.BridgeClient(bridge.url, SECRET, undefined, { coalesceMs: -1 });
    await Promise.all(keys.slice(0, 3).map((k) => never.unwrap(k.wrapped, k.context)));
    expect(mod.bridgeStats.calls - before).toBe(3);
  });

  it('falls back to one /v1/unwrap per key when the bridge predates the batch route', async () => {
    const keys = await wrapMany(3);
    const paths: string[] = [];
    // An older bridge: the real one, except that /v1/unwrap-batch is an unknown route.
    const old = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', async () => {
        paths.push(req.url ?? '');
        if (req.url === '/v1/unwrap-batch') {
          res
            .writeHead(404, { 'content-type': 'application/json' })
            .end(JSON.stringify({ error: { code: 'NotFound', message: 'no such route' } }));
          return;
        }
        const headers = Object.fromEntries(
          Object.entries(req.headers).filter(([k]) => k.startsWith('x-bridge-') || k === 'content-type'),
        ) as Record<string, string>;
        const up = await fetch(`${bridge.url}${req.url}`, { method: req.method, headers, body: Buffer.concat(chunks) });
        res.writeHead(up.status, { 'content-type': 'application/json' }).end(Buffer.from(await up.arrayBuffer()));
      });
    });
    await new Promise<void>((done) => old.listen(0, '127.0.0.1', done));
    try {
      const fresh = new mod.BridgeClient(`http://127.0.0.1:${(old.address() as AddressInfo).port}`, SECRET);
      const got = await Promise.all(keys.map((k) => fresh.unwrap(k.wrapped, k.context)));
      got.forEach((plain, i) => expect(Buffer.from(plain).equals(keys[i]!.dek)).toBe(true));
      expect(paths).toEqual(['/v1/unwrap-batch', '/v1/unwrap', '/v1/unwrap', '/v1/unwrap']);
    } finally {
      await new Promise((done) => old.close(done));
    }
  });
});

describe('answers that do not fit the protocol', () => {
  /** A stand-in for a broken bridge (or something else answering on its address): status and body per path. */
  const answers: Record<string, [number, string]> = {
    '/v1/keys/sign': [200, JSON.stringify({ signature: 'not base64!' })],
    '/v1/keys/public': [200, JSON.stringify({ publicJwk: { kty: 'RSA', n: 'AQAB' } })],
    '/v1/keys/destroy': [200, JSON.stringify({ destroyed: 'yes' })],
    '/v1/keys/generate': [200, JSON.stringify({ handle: 'KEK' })],
    '/v1/rng': [200, 'not json'],
    '/v1/wrap': [200, JSON.stringify([])],
    '/v1/unwrap': [422, 'not json'],
    '/v1/unwrap-batch': [200, JSON.stringify({ results: [{ plaintext: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }] })],
    '/healthz': [200, JSON.stringify({ status: 'ok' })],
  };
  let server: http.Server;
  let broken: Client;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      req.resume();
      const [status, body] = answers[req.url ?? ''] ?? [404, '{}'];
      res.writeHead(status, { 'content-type': 'application/json' }).end(body);
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    broken = new mod.BridgeClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, SECRET);
  });
  afterAll(async () => {
    await new Promise((done) => server?.close(done));
  });

  it('is a malformed answer (503), never a crash or a wrong value', async () => {
    const handle = newId();
    // Thunks, one call at a time: calls started together reject before the loop awaits them.
    for (const call of [
      () => broken.sign(handle, 'ES256', crypto.randomBytes(32)),
      () => broken.publicKey(handle),
      () => broken.destroyKey(handle),
      () => broken.generateKey(handle, { kty: 'oct', size: 256 }),
      () => broken.random(8),
      () => broken.wrap(crypto.randomBytes(32), 'ctx'),
    ]) {
      const err = await failure(call());
      expect(err).toBeInstanceOf(BridgeUnavailableError);
      expect(err.status).toBe(503);
      expect(err.message).toMatch(/malformed answer from the bridge/);
    }
  });

  it('keeps a data-key 422 an integrity failure whatever its body, and reports a malformed health answer as unavailable', async () => {
    expect(await failure(broken.unwrap('AAAA', 'ctx'))).toBeInstanceOf(IntegrityError);
    expect(await broken.health()).toEqual({ status: 'unavailable', kek: false, reason: 'malformed answer from the bridge' });
  });

  it('fails every unwrap of a batch whose answer does not match it item for item', async () => {
    const outcomes = await Promise.allSettled([broken.unwrap('AAAA', 'a'), broken.unwrap('BBBB', 'b')]);
    for (const o of outcomes) {
      expect(o.status).toBe('rejected');
      const err = (o as PromiseRejectedResult).reason as VaultError;
      expect(err).toBeInstanceOf(BridgeUnavailableError);
      expect(err.message).toMatch(/malformed answer from the bridge/);
    }
  });
});

describe('a bridge that never answers', () => {
  let server: http.Server;
  let silent: Client;

  beforeAll(async () => {
    server = http.createServer((req) => req.resume()); // takes the request, never answers
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    silent = new mod.BridgeClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, SECRET);
  });
  afterAll(async () => {
    server?.closeAllConnections();
    await new Promise((done) => server?.close(done));
  });

  it('fails the call as timed out (503) once the 5 s deadline passes, not before', async () => {
    const started = Date.now();
    const err = await failure(silent.random(8));
    expect(err).toBeInstanceOf(BridgeUnavailableError);
    expect(err.status).toBe(503);
    expect(err.message).toMatch(/timed out/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(4_900);
  }, 15_000);
});

describe('the Node transport the bench gives the client (scripts/lib/node-bridge-transport.ts)', () => {
  let server: http.Server;
  let requests = 0;
  let dropped = 0;
  let flaky: Client;

  beforeAll(async () => {
    // Drops the connection of every other request without an answer, as a bridge closing an idle
    // keep-alive connection just as the client reuses it; answers the others.
    server = http.createServer((req, res) => {
      req.resume();
      if (requests++ % 2 === 0) {
        dropped++;
        req.socket.destroy();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ bytes: 'AAECAwQFBgc' }));
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    flaky = new mod.BridgeClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, SECRET, nodeBridgeTransport());
  });
  afterAll(async () => {
    server?.closeAllConnections();
    await new Promise((done) => server?.close(done));
  });

  it('tries a dropped connection once more, newly signed; never for key creation', async () => {
    expect(await flaky.random(8)).toEqual(new Uint8Array([0, 1, 2, 3, 4, 5, 6, 7]));
    expect(dropped).toBe(1);
    expect(requests).toBe(2);
    const err = await failure(flaky.generateKey(newId(), { kty: 'oct', size: 128 }));
    expect(err).toBeInstanceOf(BridgeUnavailableError);
    expect(err.message).toMatch(/connection failed/);
    expect(requests).toBe(3);
  });
});
