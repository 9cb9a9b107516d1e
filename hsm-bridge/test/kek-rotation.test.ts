/** KEK rotation over the HTTP API and a real SoftHSM2 token: create, list, unwrap by label, destroy. */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Hsm, kekGeneration } from '../src/hsm.js';
import { fromBase64Url, signRequest, toBase64Url } from '../../bridge-protocol/index.js';
import { createBridgeApp } from '../src/server.js';
import { PKCS11_MODULE, SECRET, freshToken, type TestToken } from './helpers.js';

let token: TestToken;
let hsm: Hsm;
let app: ReturnType<typeof createBridgeApp>;
const logs: string[] = [];

const config = () => ({
  pkcs11Module: PKCS11_MODULE,
  tokenLabel: token.label,
  pin: token.pin,
  kekLabel: 'ekv-kek',
  sessionPoolSize: 2,
});

beforeAll(async () => {
  token = await freshToken('ekv-kek-rotation');
  process.env.SOFTHSM2_CONF = token.confPath;
  hsm = await Hsm.open(config());
  app = createBridgeApp({ hsm, hmacSecret: SECRET, log: (event) => logs.push(event) });
});

afterAll(async () => {
  await hsm?.close();
  await token?.remove();
});

async function call(path: string, body: unknown) {
  const raw = JSON.stringify(body);
  const headers = await signRequest(SECRET, 'POST', path, raw);
  const res = await app.request(path, { method: 'POST', headers, body: raw });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const dek = randomBytes(32);
const ctx = toBase64Url(new TextEncoder().encode('ekv-dk-v1|vault|1'));

async function wrap() {
  const res = await call('/v1/wrap', { plaintext: toBase64Url(dek), context: ctx });
  expect(res.status).toBe(200);
  return res.body as { wrapped: string; kekLabel: string };
}

const unwrap = (wrapped: string, kekLabel?: string) =>
  call('/v1/unwrap', { wrapped, context: ctx, ...(kekLabel ? { kekLabel } : {}) });

describe('KEK labels', () => {
  it('knows its family and nothing else', () => {
    expect(kekGeneration('ekv-kek', 'ekv-kek')).toBe(1);
    expect(kekGeneration('ekv-kek', 'ekv-kek.7')).toBe(7);
    for (const other of ['ekv-kek.1', 'ekv-kek.01', 'ekv-kek.x', 'ekv-kek2', 'ekv-key-0123', 'other']) {
      expect(kekGeneration('ekv-kek', other)).toBeUndefined();
    }
  });
});

describe('KEK rotation', () => {
  let first: { wrapped: string; kekLabel: string };
  let second: { wrapped: string; kekLabel: string };

  it('wraps under the first KEK until a new one is created, then under the new one', async () => {
    first = await wrap();
    expect(first.kekLabel).toBe('ekv-kek');

    const created = await call('/v1/kek/create', {});
    expect(created).toEqual({ status: 200, body: { kekLabel: 'ekv-kek.2' } });
    expect(logs).toContain('kek_created');

    second = await wrap();
    expect(second.kekLabel).toBe('ekv-kek.2');
    expect(await call('/v1/kek/list', {})).toEqual({
      status: 200,
      body: {
        current: 'ekv-kek.2',
        keks: [
          { label: 'ekv-kek', current: false },
          { label: 'ekv-kek.2', current: true },
        ],
      },
    });
  });

  it('unwraps each blob under the KEK it names, and refuses it under any other', async () => {
    for (const blob of [first, second]) {
      const res = await unwrap(blob.wrapped, blob.kekLabel);
      expect(res.status).toBe(200);
      expect(Buffer.from(fromBase64Url(res.body.plaintext as string))).toEqual(dek);
    }
    // No label: the current KEK, which did not wrap the first blob.
    expect((await unwrap(first.wrapped)).body).toMatchObject({ error: { code: 'UnwrapFailed' } });
    expect((await unwrap(first.wrapped, 'ekv-kek.2')).status).toBe(422);
    expect((await unwrap(second.wrapped, 'ekv-kek')).status).toBe(422);
    // Labels outside the family (e.g. an HSM key's) and missing generations are refused alike.
    expect((await unwrap(first.wrapped, 'ekv-key-00000000000000000000000000000000')).status).toBe(422);
    expect((await unwrap(first.wrapped, 'ekv-kek.9')).status).toBe(422);
  });

  it('unwraps a batch whose items name different KEKs, each under its own', async () => {
    const res = await call('/v1/unwrap-batch', {
      items: [
        { wrapped: first.wrapped, context: ctx, kekLabel: first.kekLabel },
        { wrapped: second.wrapped, context: ctx, kekLabel: second.kekLabel },
        { wrapped: first.wrapped, context: ctx, kekLabel: 'ekv-kek.2' },
      ],
    });
    expect(res.status).toBe(200);
    const [a, b, wrong] = res.body.results as Array<{ plaintext?: string; error?: { code: string } }>;
    expect(Buffer.from(fromBase64Url(a!.plaintext!))).toEqual(dek);
    expect(Buffer.from(fromBase64Url(b!.plaintext!))).toEqual(dek);
    expect(wrong).toMatchObject({ error: { code: 'UnwrapFailed' } });
  });

  it('refuses to destroy the current KEK, or one that does not exist', async () => {
    expect(await call('/v1/kek/destroy', { kekLabel: 'ekv-kek.2' })).toMatchObject({
      status: 409,
      body: { error: { code: 'KekInUse' } },
    });
    expect(await call('/v1/kek/destroy', { kekLabel: 'ekv-kek.5' })).toMatchObject({
      status: 404,
      body: { error: { code: 'KekNotFound' } },
    });
    expect(await call('/v1/kek/destroy', { kekLabel: 'not-a-kek' })).toMatchObject({
      status: 404,
      body: { error: { code: 'KekNotFound' } },
    });
    expect(await call('/v1/kek/destroy', {})).toMatchObject({ status: 400, body: { error: { code: 'BadRequest' } } });
  });

  it('destroys an old KEK: what it wrapped no longer unwraps', async () => {
    expect(await call('/v1/kek/destroy', { kekLabel: 'ekv-kek' })).toEqual({ status: 200, body: { destroyed: true } });
    expect(logs).toContain('kek_destroyed');
    expect((await unwrap(first.wrapped, 'ekv-kek')).status).toBe(422);
    expect((await unwrap(second.wrapped, 'ekv-kek.2')).status).toBe(200);
    expect(await call('/v1/kek/destroy', { kekLabel: 'ekv-kek' })).toMatchObject({ status: 404 });
    expect((await call('/v1/kek/list', {})).body).toEqual({
      current: 'ekv-kek.2',
      keks: [{ label: 'ekv-kek.2', current: true }],
    });
  });

  it('finds the newest generation again after a restart, without creating a first KEK anew', async () => {
    await hsm.close();
    hsm = await Hsm.open(config());
    app = createBridgeApp({ hsm, hmacSecret: SECRET, log: (event) => logs.push(event) });
    expect(hsm.kekLabel).toBe('ekv-kek.2');
    expect((await unwrap(second.wrapped, 'ekv-kek.2')).status).toBe(200);
    expect(await call('/v1/kek/create', {})).toEqual({ status: 200, body: { kekLabel: 'ekv-kek.3' } });
    expect(hsm.kekAttributes()).toMatchObject({ sensitive: true, extractable: false, valueLen: 32 });
  });
});
