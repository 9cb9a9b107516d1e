/** POST /v1/keys/public: the public half of an HSM key, read back from the token itself. */
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Hsm } from '../src/hsm.js';
import { fromBase64Url, signRequest, toBase64Url } from '../../bridge-protocol/index.js';
import { createBridgeApp } from '../src/server.js';
import { PKCS11_MODULE, SECRET, freshToken, type TestToken } from './helpers.js';

let token: TestToken;
let hsm: Hsm;
let app: ReturnType<typeof createBridgeApp>;

/** Response bodies, read loosely. */
type Json = any;

async function call(path: string, body: unknown, headers?: Record<string, string>): Promise<{ status: number; body: Json }> {
  const raw = JSON.stringify(body);
  const res = await app.request(path, {
    method: 'POST',
    headers: headers ?? (await signRequest(SECRET, 'POST', path, raw)),
    body: raw,
  });
  return { status: res.status, body: await res.json() };
}

const newId = () => crypto.randomBytes(16).toString('hex');

beforeAll(async () => {
  token = await freshToken('ekv-public-key-test');
  process.env.SOFTHSM2_CONF = token.confPath;
  hsm = await Hsm.open({
    pkcs11Module: PKCS11_MODULE,
    tokenLabel: token.label,
    pin: token.pin,
    kekLabel: 'ekv-kek',
    sessionPoolSize: 2,
  });
  app = createBridgeApp({ hsm, hmacSecret: SECRET, log: () => {} });
}, 60_000);

afterAll(async () => {
  await hsm?.close();
  await token?.remove();
});

describe('POST /v1/keys/public', () => {
  it('answers the same EC P-256 JWK generate gave, and it verifies the key’s ES256 signatures', async () => {
    const id = newId();
    const made = await call('/v1/keys/generate', { id, spec: { kty: 'EC', crv: 'P-256' } });
    expect(made.status).toBe(200);
    // A fresh app (empty handle cache): the answer comes from the token's public object.
    app = createBridgeApp({ hsm, hmacSecret: SECRET, log: () => {} });
    const res = await call('/v1/keys/public', { handle: id });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.publicJwk).toEqual(made.body.publicJwk);
    expect(res.body.publicJwk).toMatchObject({ kty: 'EC', crv: 'P-256' });

    const message = Buffer.from('{"chain":"vault:x","hash":"00","seq":1,"time":"2026-11-28T00:00:00.000Z"}');
    const digest = crypto.createHash('sha256').update(message).digest();
    const signed = await call('/v1/keys/sign', { handle: id, alg: 'ES256', digest: toBase64Url(digest) });
    expect(signed.status).toBe(200);
    const publicKey = crypto.createPublicKey({ key: res.body.publicJwk, format: 'jwk' });
    const ok = crypto.verify(
      'sha256',
      message,
      { key: publicKey, dsaEncoding: 'ieee-p1363' },
      Buffer.from(fromBase64Url(signed.body.signature)),
    );
    expect(ok).toBe(true);
  });

  it('answers an RSA key’s modulus and exponent', async () => {
    const id = newId();
    const made = await call('/v1/keys/generate', { id, spec: { kty: 'RSA', size: 2048 } });
    expect(made.status).toBe(200);
    const res = await call('/v1/keys/public', { handle: id });
    expect(res.status).toBe(200);
    expect(res.body.publicJwk).toEqual(made.body.publicJwk);
    expect(res.body.publicJwk.e).toBe('AQAB');
  });

  it('refuses an oct key (400), an unknown handle (404), a malformed one (400) and an unsigned request (401)', async () => {
    const id = newId();
    expect((await call('/v1/keys/generate', { id, spec: { kty: 'oct', size: 256 } })).status).toBe(200);
    const oct = await call('/v1/keys/public', { handle: id });
    expect(oct.status).toBe(400);
    expect(oct.body.error.code).toBe('BadRequest');
    const unknown = await call('/v1/keys/public', { handle: newId() });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('KeyNotFound');
    expect((await call('/v1/keys/public', { handle: 'nothex' })).status).toBe(400);
    expect((await call('/v1/keys/public', { handle: id }, { 'content-type': 'application/json' })).status).toBe(401);
  });
});
