/** The HTTP API, in process, over a real SoftHSM2 token. */
import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Hsm } from '../src/hsm.js';
import {
  HEADER_NONCE,
  HEADER_SIGNATURE,
  HEADER_TIMESTAMP,
  fromBase64Url,
  signRequest,
  toBase64Url,
} from '../../bridge-protocol/index.js';
import { createBridgeApp, type LogFields } from '../src/server.js';
import { PKCS11_MODULE, SECRET, freshToken, type TestToken } from './helpers.js';

let token: TestToken;
let hsm: Hsm;
let app: ReturnType<typeof createBridgeApp>;
let logs: Array<{ event: string } & LogFields>;

beforeAll(async () => {
  token = await freshToken('ekv-server-test');
  process.env.SOFTHSM2_CONF = token.confPath;
  hsm = await Hsm.open({
    pkcs11Module: PKCS11_MODULE,
    tokenLabel: token.label,
    pin: token.pin,
    kekLabel: 'ekv-kek',
    sessionPoolSize: 2,
  });
});

afterAll(async () => {
  await hsm?.close();
  await token?.remove();
});

beforeEach(() => {
  logs = [];
  app = createBridgeApp({ hsm, hmacSecret: SECRET, log: (event, fields) => logs.push({ event, ...fields }) });
});

async function call(method: string, path: string, body?: unknown, opts: { secret?: string; nowMs?: number } = {}) {
  const raw = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  const headers = await signRequest(opts.secret ?? SECRET, method, path, raw, opts.nowMs);
  return app.request(path, { method, headers, body: method === 'GET' ? undefined : raw });
}

const dek = randomBytes(32);
const ctx = toBase64Url(new TextEncoder().encode('vault=dev;dek=1'));

async function wrapOk(): Promise<string> {
  const res = await call('POST', '/v1/wrap', { plaintext: toBase64Url(dek), context: ctx });
  expect(res.status).toBe(200);
  return ((await res.json()) as { wrapped: string }).wrapped;
}

describe('authentication', () => {
  it('accepts a correctly signed request', async () => {
    const res = await call('POST', '/v1/wrap', { plaintext: toBase64Url(dek), context: ctx });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { wrapped: string; kekLabel: string };
    expect(body.kekLabel).toBe('ekv-kek');
    expect(fromBase64Url(body.wrapped).length).toBe(1 + 12 + 32 + 16);
  });

  async function expectRefused(res: Response, reason: string) {
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: { code: 'Unauthorized', message: reason } });
    expect(logs).toContainEqual(expect.objectContaining({ event: 'auth_refused', reason }));
  }

  it('refuses a request without authentication headers', async () => {
    const res = await app.request('/v1/wrap', {
      method: 'POST',
      body: JSON.stringify({ plaintext: toBase64Url(dek), context: ctx }),
    });
    await expectRefused(res, 'missing authentication headers');
  });

  it('refuses each missing header', async () => {
    const raw = JSON.stringify({ plaintext: toBase64Url(dek), context: ctx });
    for (const drop of [HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE]) {
      const headers = await signRequest(SECRET, 'POST', '/v1/wrap', raw);
      delete headers[drop];
      const res = await app.request('/v1/wrap', { method: 'POST', headers, body: raw });
      expect(res.status, drop).toBe(401);
    }
  });

  it('refuses a signature made with another secret', async () => {
    const res = await call(
      'POST',
      '/v1/wrap',
      { plaintext: toBase64Url(dek), context: ctx },
      { secret: 'another-secret-0123456789-abcdefghijkl' },
    );
    await expectRefused(res, 'bad signature');
  });

  it('refuses a replayed request', async () => {
    const raw = JSON.stringify({ plaintext: toBase64Url(dek), context: ctx });
    const headers = await signRequest(SECRET, 'POST', '/v1/wrap', raw);
    expect((await app.request('/v1/wrap', { method: 'POST', headers, body: raw })).status).toBe(200);
    await expectRefused(await app.request('/v1/wrap', { method: 'POST', headers, body: raw }), 'replayed nonce');
  });

  it('refuses timestamps outside ±60 s and accepts skew inside it', async () => {
    const body = { plaintext: toBase64Url(dek), context: ctx };
    await expectRefused(await call('POST', '/v1/wrap', body, { nowMs: Date.now() - 70_000 }), 'stale timestamp');
    await expectRefused(await call('POST', '/v1/wrap', body, { nowMs: Date.now() + 70_000 }), 'stale timestamp');
    expect((await call('POST', '/v1/wrap', body, { nowMs: Date.now() - 30_000 })).status).toBe(200);
    expect((await call('POST', '/v1/wrap', body, { nowMs: Date.now() + 30_000 })).status).toBe(200);
  });

  it('refuses a body changed after signing', async () => {
    const signed = JSON.stringify({ plaintext: toBase64Url(dek), context: ctx });
    const headers = await signRequest(SECRET, 'POST', '/v1/wrap', signed);
    const tampered = JSON.stringify({ plaintext: toBase64Url(dek), context: toBase64Url(new TextEncoder().encode('other')) });
    await expectRefused(await app.request('/v1/wrap', { method: 'POST', headers, body: tampered }), 'bad signature');
  });

  it('refuses a signature for another path or method', async () => {
    const wrapped = await wrapOk();
    const raw = JSON.stringify({ wrapped, context: ctx });
    const forWrap = await signRequest(SECRET, 'POST', '/v1/wrap', raw);
    await expectRefused(await app.request('/v1/unwrap', { method: 'POST', headers: forWrap, body: raw }), 'bad signature');
    const forGet = await signRequest(SECRET, 'GET', '/v1/status', '');
    expect((await app.request('/v1/status', { method: 'POST', headers: forGet, body: '' })).status).toBe(401);
  });

  it('guards /v1/status too, and never logs the secret or bodies', async () => {
    expect((await app.request('/v1/status')).status).toBe(401);
    await call(
      'POST',
      '/v1/wrap',
      { plaintext: toBase64Url(dek), context: ctx },
      { secret: 'another-secret-0123456789-abcdefghijkl' },
    );
    const text = JSON.stringify(logs);
    expect(logs.length).toBeGreaterThan(0);
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain(toBase64Url(dek));
    expect(text).not.toContain(ctx);
  });
});

describe('wrap and unwrap over HTTP', () => {
  it('round-trips and counts operations in /v1/status', async () => {
    const wrapped = await wrapOk();
    const res = await call('POST', '/v1/unwrap', { wrapped, context: ctx });
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(await res.json()).toEqual({ plaintext: toBase64Url(dek) });
    const status = await call('GET', '/v1/status');
    expect(status.status).toBe(200);
    expect(await status.json()).toEqual({
      kekLabel: 'ekv-kek',
      ops: {
        wrap: 1,
        unwrap: 1,
        generate: 0,
        import: 0,
        sign: 0,
        decrypt: 0,
        encrypt: 0,
        wrapKey: 0,
        unwrapKey: 0,
        destroy: 0,
        publicKey: 0,
        rng: 0,
      },
    });
  });

  it('answers 422 UnwrapFailed for a flipped byte or another context', async () => {
    const wrapped = fromBase64Url(await wrapOk());
    wrapped[wrapped.length - 5]! ^= 0x80;
    const res = await call('POST', '/v1/unwrap', { wrapped: toBase64Url(wrapped), context: ctx });
    expect(res.status).toBe(422);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('UnwrapFailed');

    const other = await call('POST', '/v1/unwrap', {
      wrapped: await wrapOk(),
      context: toBase64Url(new TextEncoder().encode('x')),
    });
    expect(other.status).toBe(422);
  });

  it.each([
    ['malformed JSON', '/v1/wrap', '{"plaintext":'],
    ['a JSON array', '/v1/wrap', '[]'],
    ['missing plaintext', '/v1/wrap', { context: 'Y3R4' }],
    ['missing context', '/v1/wrap', { plaintext: 'AAAA' }],
    ['empty context', '/v1/wrap', { plaintext: 'AAAA', context: '' }],
    ['non-string plaintext', '/v1/wrap', { plaintext: 5, context: 'Y3R4' }],
    ['bad base64url', '/v1/wrap', { plaintext: 'AA+/', context: 'Y3R4' }],
    ['padded base64', '/v1/wrap', { plaintext: 'AAAA==', context: 'Y3R4' }],
    ['plaintext over 64 bytes', '/v1/wrap', { plaintext: toBase64Url(new Uint8Array(65)), context: 'Y3R4' }],
    ['missing wrapped', '/v1/unwrap', { context: 'Y3R4' }],
    ['bad base64url wrapped', '/v1/unwrap', { wrapped: '!!', context: 'Y3R4' }],
  ])('answers 400 for %s', async (_name, path, body) => {
    const res = await call('POST', path, body);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('BadRequest');
  });

  it('accepts exactly 64 bytes of plaintext', async () => {
    expect((await call('POST', '/v1/wrap', { plaintext: toBase64Url(new Uint8Array(64)), context: ctx })).status).toBe(200);
  });

  it('answers 413 for an oversized body', async () => {
    const res = await call('POST', '/v1/wrap', 'x'.repeat(17 * 1024));
    expect(res.status).toBe(413);
  });

  it('over a real HTTP server: reads bodies of a declared length, and refuses oversized ones declared or chunked', async () => {
    const server = await new Promise<ServerType>((resolve) => {
      const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s));
    });
    const { port } = server.address() as AddressInfo;
    const post = (path: string, headers: Record<string, string>, chunks: string[]) =>
      new Promise<{ status: number; text: string }>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, path, method: 'POST', headers }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        });
        req.on('error', reject);
        for (const chunk of chunks) req.write(chunk);
        req.end();
      });
    try {
      const body = JSON.stringify({ plaintext: toBase64Url(dek), context: ctx });
      const signed = await signRequest(SECRET, 'POST', '/v1/wrap', body);
      const length = { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) };
      const ok = await post('/v1/wrap', { ...signed, ...length }, [body]);
      expect(ok.status).toBe(200);
      expect(await hsm.unwrap(fromBase64Url((JSON.parse(ok.text) as { wrapped: string }).wrapped), fromBase64Url(ctx))).toEqual(
        new Uint8Array(dek),
      );
      const big = 'x'.repeat(17 * 1024);
      const declared = await post('/v1/wrap', { 'content-length': String(big.length) }, [big]);
      expect(declared.status).toBe(413);
      expect(JSON.parse(declared.text)).toMatchObject({ error: { code: 'PayloadTooLarge' } });
      const chunked = await post('/v1/wrap', { 'transfer-encoding': 'chunked' }, [big.slice(0, 9000), big.slice(9000)]);
      expect(chunked.status).toBe(413);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('answers 404 for unknown authenticated routes', async () => {
    expect((await call('GET', '/v1/nope')).status).toBe(404);
  });
});

describe('/healthz', () => {
  it('is open and reports the KEK while the token answers, 503 once it does not', async () => {
    const ok = await app.request('/healthz');
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ status: 'ok', kek: true });

    await hsm.close();
    const down = await app.request('/healthz');
    expect(down.status).toBe(503);
    expect(await down.json()).toEqual({ status: 'unavailable', kek: false, reason: 'closed' });
    const wrap = await call('POST', '/v1/wrap', { plaintext: toBase64Url(dek), context: ctx });
    expect(wrap.status).toBe(503);
    expect(((await wrap.json()) as { error: { code: string } }).error.code).toBe('HsmUnavailable');
  });
});
