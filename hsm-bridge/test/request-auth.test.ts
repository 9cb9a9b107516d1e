/**
 * The bridge verifies signatures with node:crypto (src/request-auth.ts) while the protocol's own
 * verifyRequest uses WebCrypto: both must give the same answer for every request, good or bad.
 * Likewise the Worker signs with node:crypto (src/crypto/bridge-signing.ts): what it signs, the
 * protocol's verifier must accept, and nothing else.
 */
import { describe, expect, it } from 'vitest';
import {
  HEADER_NONCE,
  HEADER_SIGNATURE,
  HEADER_TIMESTAMP,
  signRequest,
  toBase64Url,
  verifyRequest,
} from '../../bridge-protocol/index.js';
import { verifyRequestSync } from '../src/request-auth.js';
import { signRequestSync } from '../../src/crypto/bridge-signing.js';

const SECRET = 'a'.repeat(40);
const PREVIOUS = 'b'.repeat(40);
const NOW = 1_700_000_000_000;
const body = JSON.stringify({ wrapped: 'AQID', context: 'Y3R4' });

type Case = { secrets: string | string[]; method: string; path: string; body: string; headers: Record<string, string> };

async function signed(secret = SECRET): Promise<Case> {
  return {
    secrets: SECRET,
    method: 'POST',
    path: '/v1/unwrap',
    body,
    headers: await signRequest(secret, 'POST', '/v1/unwrap', body, NOW),
  };
}

async function both(c: Case, nowMs = NOW) {
  const headers = new Headers(c.headers);
  const bytes = new TextEncoder().encode(c.body);
  const web = await verifyRequest(c.secrets, c.method, c.path, bytes, headers, nowMs);
  const node = verifyRequestSync(c.secrets, c.method, c.path, bytes, headers, nowMs);
  expect(node).toEqual(web);
  return node;
}

describe('verifyRequestSync agrees with verifyRequest', () => {
  it('accepts a signed request, naming the secret that signed it during a rotation', async () => {
    const ok = await both(await signed());
    expect(ok).toMatchObject({ ok: true, secretIndex: 0, timestamp: NOW / 1000 });
    const old = await both({ ...(await signed(PREVIOUS)), secrets: [SECRET, PREVIOUS] });
    expect(old).toMatchObject({ ok: true, secretIndex: 1 });
  });

  it('refuses whatever the MAC covers once changed: body, path, method, timestamp, nonce', async () => {
    const c = await signed();
    const tampered: Case[] = [
      { ...c, body: body.replace('AQID', 'AQIE') },
      { ...c, path: '/v1/unwrap-batch' },
      { ...c, path: '/v1/unwrap?x=1' },
      { ...c, method: 'PUT' },
      { ...c, headers: { ...c.headers, [HEADER_TIMESTAMP]: String(Number(c.headers[HEADER_TIMESTAMP]) - 1) } },
      { ...c, headers: { ...c.headers, [HEADER_NONCE]: toBase64Url(new Uint8Array(16).fill(7)) } },
      { ...c, secrets: PREVIOUS.replace('b', 'c') },
    ];
    for (const t of tampered) expect(await both(t)).toEqual({ ok: false, reason: 'bad signature' });
  });

  it('refuses missing, malformed and stale headers, and MACs of the wrong length, with the same reasons', async () => {
    const c = await signed();
    const { [HEADER_SIGNATURE]: signature, ...unsigned } = c.headers;
    expect(await both({ ...c, headers: unsigned })).toEqual({ ok: false, reason: 'missing authentication headers' });
    expect(await both({ ...c, headers: { ...c.headers, [HEADER_TIMESTAMP]: '17e8' } })).toEqual({
      ok: false,
      reason: 'malformed timestamp',
    });
    expect(await both({ ...c, headers: { ...c.headers, [HEADER_NONCE]: 'short' } })).toEqual({
      ok: false,
      reason: 'malformed nonce',
    });
    expect(await both(c, NOW + 61_000)).toEqual({ ok: false, reason: 'stale timestamp' });
    expect(await both({ ...c, headers: { ...c.headers, [HEADER_SIGNATURE]: '***' } })).toEqual({
      ok: false,
      reason: 'malformed signature',
    });
    expect(await both({ ...c, headers: { ...c.headers, [HEADER_SIGNATURE]: signature!.slice(0, 20) } })).toEqual({
      ok: false,
      reason: 'bad signature',
    });
  });

  it('throws, as verifyRequest does, for a secret too short to be one', async () => {
    const c = await signed();
    expect(() =>
      verifyRequestSync('short', c.method, c.path, new TextEncoder().encode(c.body), new Headers(c.headers), NOW),
    ).toThrow(/at least 32 characters/);
    expect(() => verifyRequestSync([], c.method, c.path, new Uint8Array(), new Headers(c.headers), NOW)).toThrow(
      /no bridge HMAC secret/,
    );
  });
});

describe("the Worker's signRequestSync", () => {
  it('signs what verifyRequest accepts, with the headers signRequest gives, and a fresh nonce each time', async () => {
    const headers = signRequestSync(SECRET, 'POST', '/v1/unwrap-batch', body, NOW);
    const reference = await signRequest(SECRET, 'POST', '/v1/unwrap-batch', body, NOW);
    expect(Object.keys(headers).sort()).toEqual(Object.keys(reference).sort());
    expect(headers[HEADER_TIMESTAMP]).toBe(reference[HEADER_TIMESTAMP]);
    expect(signRequestSync(SECRET, 'POST', '/v1/unwrap-batch', body, NOW)[HEADER_NONCE]).not.toBe(headers[HEADER_NONCE]);
    const c: Case = { secrets: [SECRET, PREVIOUS], method: 'POST', path: '/v1/unwrap-batch', body, headers };
    expect(await both(c)).toMatchObject({ ok: true, secretIndex: 0, nonce: headers[HEADER_NONCE] });
    expect(await both({ ...c, body: `${body} ` })).toEqual({ ok: false, reason: 'bad signature' });
    expect(await both({ ...c, path: '/v1/unwrap' })).toEqual({ ok: false, reason: 'bad signature' });
    expect(await both({ ...c, secrets: PREVIOUS })).toEqual({ ok: false, reason: 'bad signature' });
  });

  it('refuses, as signRequest does, a secret too short to be one', () => {
    expect(() => signRequestSync('short', 'POST', '/v1/unwrap', body)).toThrow(/at least 32 characters/);
  });
});
