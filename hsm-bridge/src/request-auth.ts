/**
 * The bridge's check of a request's HMAC signature: the protocol's verifyRequest, computed with
 * node:crypto. WebCrypto in Node runs each digest and verify as a job on the libuv pool, two
 * round trips per request through the threads the token's operations and the nonce journal also
 * use; node:crypto hashes the few kilobytes of a request on the spot. Same canonical string, same
 * header checks (both from bridge-protocol/signing.ts), same result; the protocol tests hold the
 * two to the same answers.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { MIN_SECRET_LENGTH, canonicalFromDigest, readAuthHeaders, type VerifyResult } from '../../bridge-protocol/index.js';

/** verifyRequest of bridge-protocol/signing.ts, synchronously. */
export function verifyRequestSync(
  secret: string | readonly string[],
  method: string,
  pathWithQuery: string,
  body: Uint8Array,
  headers: { get(name: string): string | null | undefined },
  nowMs: number = Date.now(),
): VerifyResult {
  const auth = readAuthHeaders(headers, nowMs);
  if (!auth.ok) return auth;
  const secrets = typeof secret === 'string' ? [secret] : secret;
  if (secrets.length === 0) throw new Error('no bridge HMAC secret given');
  const digest = createHash('sha256').update(body).digest('hex');
  const canonical = canonicalFromDigest(method, pathWithQuery, digest, auth.timestamp, auth.nonce);
  // Every secret is tried, so neither the answer nor its timing tells which one failed.
  const verdicts = secrets.map((s) => {
    if (s.length < MIN_SECRET_LENGTH) throw new Error(`bridge HMAC secret must be at least ${MIN_SECRET_LENGTH} characters`);
    const expected = createHmac('sha256', s).update(canonical).digest();
    // timingSafeEqual needs equal lengths; a MAC of another length is wrong whatever its bytes.
    return expected.length === auth.mac.length && timingSafeEqual(expected, auth.mac);
  });
  const secretIndex = verdicts.indexOf(true);
  return secretIndex >= 0
    ? { ok: true, nonce: auth.nonce, timestamp: auth.ts, secretIndex }
    : { ok: false, reason: 'bad signature' };
}
