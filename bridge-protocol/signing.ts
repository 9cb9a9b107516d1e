/**
 * Request signing between the Worker and the HSM bridge. Web-standard APIs only (WebCrypto,
 * TextEncoder), so the Worker (workerd) and the bridge (Node) run this one implementation.
 *
 * Every request is signed with HMAC-SHA256 over
 *   METHOD \n PATH(+query) \n hex(SHA-256(body)) \n timestamp \n nonce
 * with a secret shared by both sides. The bridge refuses stale timestamps and replayed nonces.
 */
import { fromBase64Url, toBase64Url } from './encoding';

export const HEADER_TIMESTAMP = 'x-bridge-timestamp';
export const HEADER_NONCE = 'x-bridge-nonce';
export const HEADER_SIGNATURE = 'x-bridge-signature';

/** Seconds a signed request stays acceptable either side of the bridge's clock. */
export const MAX_CLOCK_SKEW_SECONDS = 60;
/** Shared secrets shorter than this are refused by both sides. */
export const MIN_SECRET_LENGTH = 32;
/** What a nonce looks like on the wire (the client sends 16 random bytes, base64url). */
export const NONCE_PATTERN = /^[A-Za-z0-9_-]{16,64}$/;

const encoder = new TextEncoder();

function toHex(bytes: ArrayBuffer): string {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, '0')).join('');
}

function asBytes(body: Uint8Array | string): Uint8Array {
  return typeof body === 'string' ? encoder.encode(body) : body;
}

export async function canonicalString(
  method: string,
  pathWithQuery: string,
  body: Uint8Array | string,
  timestamp: string,
  nonce: string,
): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', asBytes(body) as BufferSource);
  return canonicalFromDigest(method, pathWithQuery, toHex(digest), timestamp, nonce);
}

/** The string signed, given the body's SHA-256 in lowercase hex (for verifiers with their own hash). */
export function canonicalFromDigest(
  method: string,
  pathWithQuery: string,
  bodySha256Hex: string,
  timestamp: string,
  nonce: string,
): string {
  return [method.toUpperCase(), pathWithQuery, bodySha256Hex, timestamp, nonce].join('\n');
}

/**
 * The last secret's imported key: every request on both sides signs or verifies with the same
 * secret, and importing it each time was a measurable share of a small request. Only the settled
 * key is kept (a Worker request never awaits another's pending work).
 */
let lastKey: { secret: string; key: CryptoKey } | undefined;

async function hmacKey(secret: string): Promise<CryptoKey> {
  if (secret.length < MIN_SECRET_LENGTH) {
    throw new Error(`bridge HMAC secret must be at least ${MIN_SECRET_LENGTH} characters`);
  }
  if (lastKey?.secret === secret) return lastKey.key;
  const key = await crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, [
    'sign',
    'verify',
  ]);
  lastKey = { secret, key };
  return key;
}

/** Headers that authenticate one request to the bridge. */
export async function signRequest(
  secret: string,
  method: string,
  pathWithQuery: string,
  body: Uint8Array | string,
  nowMs: number = Date.now(),
): Promise<Record<string, string>> {
  const timestamp = String(Math.floor(nowMs / 1000));
  const nonce = toBase64Url(crypto.getRandomValues(new Uint8Array(16)));
  const canonical = await canonicalString(method, pathWithQuery, body, timestamp, nonce);
  const mac = await crypto.subtle.sign('HMAC', await hmacKey(secret), encoder.encode(canonical));
  return {
    [HEADER_TIMESTAMP]: timestamp,
    [HEADER_NONCE]: nonce,
    [HEADER_SIGNATURE]: toBase64Url(new Uint8Array(mac)),
  };
}

/** The authentication headers of a request, checked for shape and for the timestamp window. */
export type AuthHeaders =
  { ok: true; timestamp: string; ts: number; nonce: string; mac: Uint8Array } | { ok: false; reason: string };

/** Everything verifyRequest checks before the MAC itself; shared with verifiers that hash on their own. */
export function readAuthHeaders(headers: { get(name: string): string | null | undefined }, nowMs: number): AuthHeaders {
  const timestamp = headers.get(HEADER_TIMESTAMP);
  const nonce = headers.get(HEADER_NONCE);
  const signature = headers.get(HEADER_SIGNATURE);
  if (!timestamp || !nonce || !signature) return { ok: false, reason: 'missing authentication headers' };
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: 'malformed timestamp' };
  if (!NONCE_PATTERN.test(nonce)) return { ok: false, reason: 'malformed nonce' };
  const ts = Number(timestamp);
  if (Math.abs(nowMs / 1000 - ts) > MAX_CLOCK_SKEW_SECONDS) return { ok: false, reason: 'stale timestamp' };
  try {
    return { ok: true, timestamp, ts, nonce, mac: fromBase64Url(signature) };
  } catch {
    return { ok: false, reason: 'malformed signature' };
  }
}

export type VerifyResult =
  | {
      ok: true;
      nonce: string;
      timestamp: number;
      /** Which of the secrets given signed it (0 = the first): for the server's own log only. */
      secretIndex: number;
    }
  | { ok: false; reason: string };

/**
 * Checks signature and timestamp window. Replay (nonce reuse) is the caller's job, since only the
 * server keeps the nonce cache; the returned nonce is what it must remember.
 * HMAC verification through WebCrypto's verify() is constant time. Several secrets (a rotation's
 * current and previous one) are each tried, always all of them, so neither the answer nor its
 * timing tells which one failed.
 */
export async function verifyRequest(
  secret: string | readonly string[],
  method: string,
  pathWithQuery: string,
  body: Uint8Array | string,
  headers: { get(name: string): string | null | undefined },
  nowMs: number = Date.now(),
): Promise<VerifyResult> {
  const auth = readAuthHeaders(headers, nowMs);
  if (!auth.ok) return auth;
  const { timestamp, ts, nonce, mac } = auth;
  const canonical = encoder.encode(await canonicalString(method, pathWithQuery, body, timestamp, nonce));
  const secrets = typeof secret === 'string' ? [secret] : secret;
  if (secrets.length === 0) throw new Error('no bridge HMAC secret given');
  const verdicts = await Promise.all(
    secrets.map(async (s) => crypto.subtle.verify('HMAC', await hmacKey(s), mac as BufferSource, canonical)),
  );
  const secretIndex = verdicts.indexOf(true);
  return secretIndex >= 0 ? { ok: true, nonce, timestamp: ts, secretIndex } : { ok: false, reason: 'bad signature' };
}
