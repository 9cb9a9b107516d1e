/** The shared wire protocol on its own: strict base64url, what the schemas accept and how they refuse. */
import { describe, expect, it } from 'vitest';
import {
  BRIDGE_ERROR_CODES,
  BRIDGE_ERROR_STATUS,
  BRIDGE_ROUTES,
  BridgeErrorBody,
  describeIssue,
  fromBase64Url,
  toBase64Url,
} from '../../bridge-protocol/index.js';

const refusal = (schema: { safeParse(v: unknown): { success: boolean; error?: unknown } }, value: unknown) => {
  const parsed = schema.safeParse(value);
  expect(parsed.success).toBe(false);
  return describeIssue(parsed.error as Parameters<typeof describeIssue>[0]);
};

describe('base64url', () => {
  it('round-trips without padding and refuses anything outside the alphabet', () => {
    const bytes = new Uint8Array([0xfb, 0xff, 0x00, 0x01]);
    expect(toBase64Url(bytes)).toBe('-_8AAQ');
    expect(fromBase64Url('-_8AAQ')).toEqual(bytes);
    for (const bad of ['+/8AAQ', '-_8AAQ==', 'AA AA', 'A', 'AAAAA']) expect(() => fromBase64Url(bad), bad).toThrow();
  });
});

describe('schemas', () => {
  it('parse byte fields to bytes, and optional ones (absent or null) to undefined', () => {
    const parsed = BRIDGE_ROUTES.decrypt.request.parse({ handle: 'ab'.repeat(16), alg: 'A256GCM', ciphertext: 'AAEC', iv: null });
    expect(parsed.ciphertext).toEqual(new Uint8Array([0, 1, 2]));
    expect(parsed.iv).toBeUndefined();
    expect(parsed.tag).toBeUndefined();
  });

  it('name the field and the rule, never the value', () => {
    const wrap = BRIDGE_ROUTES.wrap.request;
    expect(refusal(wrap, { context: 'Y3R4' })).toBe("'plaintext' is required and must be a base64url string");
    expect(refusal(wrap, { plaintext: 'secret+bytes', context: 'Y3R4' })).toBe("'plaintext' is not valid base64url");
    expect(refusal(wrap, { plaintext: toBase64Url(new Uint8Array(65)), context: 'Y3R4' })).toBe(
      "'plaintext' must decode to 1..64 bytes",
    );
    expect(refusal(wrap, [])).toBe('body must be a JSON object');
    expect(refusal(BRIDGE_ROUTES.generateKey.request, { id: 'ab'.repeat(16), spec: { kty: 'RSA', size: '2048' } })).toMatch(
      /^'spec' must be \{kty:'RSA'/,
    );
    expect(refusal(BRIDGE_ROUTES.random.request, { count: 129 })).toBe("'count' must be an integer from 1 to 128");
  });

  it('refuse answers that do not fit, so the client never hands on a wrong value', () => {
    expect(BRIDGE_ROUTES.publicKey.response.safeParse({ publicJwk: { kty: 'EC', crv: 'P-192', x: 'AA', y: 'AA' } }).success).toBe(
      false,
    );
    expect(BRIDGE_ROUTES.unwrap.response.safeParse({ plaintext: '' }).success).toBe(false);
    expect(BRIDGE_ROUTES.decrypt.response.safeParse({ plaintext: '' }).success).toBe(true); // an empty GCM message
  });
});

describe('error codes', () => {
  it('give every code one status, and error bodies only known codes', () => {
    expect(Object.keys(BRIDGE_ERROR_STATUS).sort()).toEqual([...BRIDGE_ERROR_CODES].sort());
    expect(BridgeErrorBody.safeParse({ error: { code: 'KeyExists', message: 'm' } }).success).toBe(true);
    expect(BridgeErrorBody.safeParse({ error: { code: 'Teapot', message: 'm' } }).success).toBe(false);
  });
});
