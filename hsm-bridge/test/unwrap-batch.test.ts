/**
 * POST /v1/unwrap-batch over a real SoftHSM2 token, in process: several data keys in one signed
 * request, each answered or failed on its own; the envelope signed and replay-checked like any
 * body; and the nonce journal's guarantee (no answer before the nonce is durable) kept while the
 * journal write overlaps the unwraps.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Hsm } from '../src/hsm.js';
import { MAX_BATCH_ITEMS, fromBase64Url, signRequest, toBase64Url } from '../../bridge-protocol/index.js';
import { createBridgeApp, type BridgeAppOptions, type LogFields } from '../src/server.js';
import { PKCS11_MODULE, SECRET, freshToken, type TestToken } from './helpers.js';

let token: TestToken;
let hsm: Hsm;
let app: ReturnType<typeof createBridgeApp>;
let logs: Array<{ event: string } & LogFields>;

beforeAll(async () => {
  token = await freshToken('ekv-batch-test');
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

const makeApp = (extra: Partial<BridgeAppOptions> = {}) =>
  createBridgeApp({ hsm, hmacSecret: SECRET, log: (event, fields) => logs.push({ event, ...fields }), ...extra });

beforeEach(() => {
  logs = [];
  app = makeApp();
});

async function signed(path: string, body: unknown): Promise<RequestInit> {
  const raw = typeof body === 'string' ? body : JSON.stringify(body);
  return { method: 'POST', headers: await signRequest(SECRET, 'POST', path, raw), body: raw };
}

const ctxOf = (n: number) => toBase64Url(new TextEncoder().encode(`ekv-dk-v1|vault-${n}|dk-${n}`));

async function wrapped(n: number): Promise<{ dek: Uint8Array; wrapped: string; context: string }> {
  const dek = randomBytes(32);
  const context = ctxOf(n);
  const res = await app.request('/v1/wrap', await signed('/v1/wrap', { plaintext: toBase64Url(dek), context }));
  expect(res.status).toBe(200);
  return { dek, wrapped: ((await res.json()) as { wrapped: string }).wrapped, context };
}

type BatchAnswer = { results: Array<{ plaintext?: string; error?: { code: string; message: string } }> };

describe('POST /v1/unwrap-batch', () => {
  it('answers every item on its own, in order, and counts each as an unwrap', async () => {
    const keys = await Promise.all([0, 1, 2, 3].map(wrapped));
    const tampered = fromBase64Url(keys[2]!.wrapped);
    tampered[tampered.length - 3]! ^= 0x01;
    const items = [
      { wrapped: keys[0]!.wrapped, context: keys[0]!.context },
      { wrapped: keys[1]!.wrapped, context: keys[0]!.context }, // another key's context
      { wrapped: toBase64Url(tampered), context: keys[2]!.context },
      { wrapped: '!!', context: keys[3]!.context },
      { context: keys[3]!.context },
      { wrapped: keys[3]!.wrapped, context: keys[3]!.context },
    ];
    const res = await app.request('/v1/unwrap-batch', await signed('/v1/unwrap-batch', { items }));
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const { results } = (await res.json()) as BatchAnswer;
    expect(results).toHaveLength(6);
    expect(results[0]).toEqual({ plaintext: toBase64Url(keys[0]!.dek) });
    expect(results[1]!.error?.code).toBe('UnwrapFailed');
    expect(results[2]!.error?.code).toBe('UnwrapFailed');
    expect(results[3]).toEqual({ error: { code: 'BadRequest', message: "item 3: 'wrapped' is not valid base64url" } });
    expect(results[4]!.error).toMatchObject({ code: 'BadRequest', message: expect.stringMatching(/^item 4: 'wrapped' /) });
    expect(results[5]).toEqual({ plaintext: toBase64Url(keys[3]!.dek) });
    // Failures say why without the bytes; nothing of the keys reaches the log.
    const logged = JSON.stringify(logs);
    for (const k of keys) expect(logged).not.toContain(toBase64Url(k.dek));

    const status = await app.request('/v1/status', { headers: await signRequest(SECRET, 'GET', '/v1/status', '') });
    expect(((await status.json()) as { ops: { unwrap: number; wrap: number } }).ops).toMatchObject({ unwrap: 6, wrap: 4 });
  });

  it.each([
    ['no items', { items: [] }],
    [
      `more than ${MAX_BATCH_ITEMS} items`,
      { items: Array.from({ length: MAX_BATCH_ITEMS + 1 }, () => ({ wrapped: 'AAAA', context: 'Y3R4' })) },
    ],
    ['items not an array', { items: { wrapped: 'AAAA', context: 'Y3R4' } }],
    ['no envelope', [{ wrapped: 'AAAA', context: 'Y3R4' }]],
    ['malformed JSON', '{"items":['],
  ])('answers 400 for %s, unwrapping nothing', async (_name, body) => {
    const res = await app.request('/v1/unwrap-batch', await signed('/v1/unwrap-batch', body));
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('BadRequest');
  });

  it('is signed and replay-checked as one request: one nonce, the whole body under the HMAC', async () => {
    const k = await wrapped(7);
    const init = await signed('/v1/unwrap-batch', {
      items: [
        { wrapped: k.wrapped, context: k.context },
        { wrapped: k.wrapped, context: k.context },
      ],
    });
    expect((await app.request('/v1/unwrap-batch', init)).status).toBe(200);
    const replay = await app.request('/v1/unwrap-batch', init);
    expect(replay.status).toBe(401);
    expect(await replay.json()).toEqual({ error: { code: 'Unauthorized', message: 'replayed nonce' } });

    // An item added after signing: the body no longer matches its signature.
    const fresh = await signed('/v1/unwrap-batch', { items: [{ wrapped: k.wrapped, context: k.context }] });
    const grown = JSON.stringify({
      items: [
        { wrapped: k.wrapped, context: k.context },
        { wrapped: k.wrapped, context: k.context },
      ],
    });
    const res = await app.request('/v1/unwrap-batch', { ...fresh, body: grown });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: { code: 'Unauthorized', message: 'bad signature' } });
  });
});

describe('the nonce journal', () => {
  it('holds the answer until the nonce is on disk', async () => {
    let release!: () => void;
    const recorded: number[] = [];
    app = makeApp({
      journal: {
        floor: -Infinity,
        // The wrap's nonce is written at once; the batch's waits for release().
        record: (timestamp) => {
          recorded.push(timestamp);
          return recorded.length === 1 ? Promise.resolve() : new Promise<void>((resolve) => (release = resolve));
        },
      },
    });
    const k = await wrappedVia(app, 8);
    const pending = Promise.resolve(
      app.request('/v1/unwrap-batch', await signed('/v1/unwrap-batch', { items: [{ wrapped: k.wrapped, context: k.context }] })),
    );
    let answered = false;
    void pending.then(() => (answered = true));
    await new Promise((r) => setTimeout(r, 100)); // long enough for an unwrap on the token
    expect(answered).toBe(false);
    expect(recorded).toHaveLength(2); // the wrap's nonce, then the batch's
    release();
    const res = await pending;
    expect(res.status).toBe(200);
    expect(((await res.json()) as BatchAnswer).results[0]).toEqual({ plaintext: toBase64Url(k.dek) });
  });

  it('answers 503 StateUnavailable, never the keys, when the nonce cannot be written', async () => {
    const k = await wrapped(9);
    app = makeApp({
      journal: { floor: -Infinity, record: () => Promise.reject(Object.assign(new Error('disk'), { code: 'EIO' })) },
    });
    const res = await app.request(
      '/v1/unwrap-batch',
      await signed('/v1/unwrap-batch', { items: [{ wrapped: k.wrapped, context: k.context }] }),
    );
    expect(res.status).toBe(503);
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({
      error: { code: 'StateUnavailable', message: 'the bridge cannot record the request nonce' },
    });
    expect(text).not.toContain(toBase64Url(k.dek));
    expect(logs).toContainEqual(expect.objectContaining({ event: 'nonce_journal_failed', code: 'EIO' }));
  });

  it('does not create a key in the token before its nonce is on disk', async () => {
    app = makeApp({
      journal: { floor: -Infinity, record: () => Promise.reject(Object.assign(new Error('disk'), { code: 'ENOSPC' })) },
    });
    const id = randomBytes(16).toString('hex');
    const res = await app.request(
      '/v1/keys/generate',
      await signed('/v1/keys/generate', { id, spec: { kty: 'EC', crv: 'P-256' } }),
    );
    expect(res.status).toBe(503);
    app = makeApp();
    const lookup = await app.request('/v1/keys/public', await signed('/v1/keys/public', { handle: id }));
    expect(lookup.status).toBe(404);
  });
});

async function wrappedVia(a: typeof app, n: number) {
  const dek = randomBytes(32);
  const context = ctxOf(n);
  const res = await a.request('/v1/wrap', await signed('/v1/wrap', { plaintext: toBase64Url(dek), context }));
  expect(res.status).toBe(200);
  return { dek, wrapped: ((await res.json()) as { wrapped: string }).wrapped, context };
}
