/**
 * The wire protocol between the Worker and the HSM bridge.
 *
 * Web-standard APIs only (WebCrypto, TextEncoder), so the Worker (workerd) and the bridge (Node)
 * share this one implementation of request signing.
 *
 * Every request is signed with HMAC-SHA256 over
 *   METHOD \n PATH(+query) \n hex(SHA-256(body)) \n timestamp \n nonce
 * with a secret shared by both sides. The bridge refuses stale timestamps and replayed nonces.
 */

export const HEADER_TIMESTAMP = 'x-bridge-timestamp';
export const HEADER_NONCE = 'x-bridge-nonce';
export const HEADER_SIGNATURE = 'x-bridge-signature';

/** Seconds a signed request stays acceptable either side of the bridge's clock. */
export const MAX_CLOCK_SKEW_SECONDS = 60;
/** Shared secrets shorter than this are refused by both sides. */
export const MIN_SECRET_LENGTH = 32;

/** Body of POST /v1/wrap. */
export interface WrapRequest {
  /** base64url of the bytes to wrap (a data key). */
  plaintext: string;
  /** base64url of the context bound into the wrap as AES-GCM additional data. */
  context: string;
}
export interface WrapResponse {
  /** base64url of version(1) || iv(12) || ciphertext || tag(16). */
  wrapped: string;
  kekLabel: string;
}
/** Body of POST /v1/unwrap. */
export interface UnwrapRequest {
  wrapped: string;
  context: string;
}
export interface UnwrapResponse {
  plaintext: string;
}
export interface BridgeHealth {
  status: 'ok' | 'unavailable';
  kek: boolean;
  reason?: string;
}

/** An error answer: { error: { code, message } }. Messages never contain key bytes. */
export interface BridgeErrorBody {
  error: { code: string; message: string };
}

// ---------------------------------------------------------------------------------------------
// HSM key operations (/v1/keys/*, /v1/rng). Private and secret key material is generated or
// imported inside the token as sensitive, non-extractable token objects and never leaves it.
// Every byte field is base64url without padding. Errors: 400 BadRequest, 404 KeyNotFound,
// 409 KeyExists, 422 OperationFailed (a decryption or unwrap that does not authenticate).
// ---------------------------------------------------------------------------------------------

/** Key ids (and so handles) are 32 lowercase hex characters chosen by the caller. */
export const HSM_KEY_ID_PATTERN = /^[0-9a-f]{32}$/;
/** Label of the token objects of key <id>. */
export const hsmKeyLabel = (id: string): string => `ekv-key-${id}`;

export const HSM_RSA_SIZES = [2048, 3072, 4096] as const;
export const HSM_CURVES = ['P-256', 'P-384', 'P-521', 'P-256K'] as const;
export const HSM_AES_SIZES = [128, 192, 256] as const;
export type HsmRsaSize = (typeof HSM_RSA_SIZES)[number];
export type HsmCurve = (typeof HSM_CURVES)[number];
export type HsmAesSize = (typeof HSM_AES_SIZES)[number];

export type HsmKeySpec =
  | { kty: 'RSA'; size: HsmRsaSize }
  | { kty: 'EC'; crv: HsmCurve }
  | { kty: 'oct'; size: HsmAesSize };

export type HsmPublicJwk =
  | { kty: 'RSA'; n: string; e: string }
  | { kty: 'EC'; crv: HsmCurve; x: string; y: string };

/** Signing algorithms; the caller hashes and sends the digest. */
export const HSM_SIGN_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'ES256K'] as const;
/** RSA decryption (and unwrap) with the private key. */
export const HSM_RSA_DECRYPT_ALGS = ['RSA-OAEP', 'RSA-OAEP-256', 'RSA1_5'] as const;
/** AES encryption and decryption with an oct key; the size in the name must match the key's. */
export const HSM_AES_CIPHER_ALGS = [
  'A128GCM', 'A192GCM', 'A256GCM',
  'A128CBC', 'A192CBC', 'A256CBC',
  'A128CBCPAD', 'A192CBCPAD', 'A256CBCPAD',
] as const;
/** RFC 3394 AES key wrap with an oct key. */
export const HSM_AES_KW_ALGS = ['A128KW', 'A192KW', 'A256KW'] as const;
export type HsmSignAlg = (typeof HSM_SIGN_ALGS)[number];
export type HsmRsaDecryptAlg = (typeof HSM_RSA_DECRYPT_ALGS)[number];
export type HsmAesCipherAlg = (typeof HSM_AES_CIPHER_ALGS)[number];
export type HsmAesKwAlg = (typeof HSM_AES_KW_ALGS)[number];

/** Most random bytes one POST /v1/rng returns. */
export const MAX_RANDOM_BYTES = 128;

/** POST /v1/keys/generate. 409 KeyExists when the token already holds objects with this id. */
export interface GenerateKeyRequest {
  id: string;
  spec: HsmKeySpec;
}
export interface GenerateKeyResponse {
  /** The id again: the handle of every later operation. */
  handle: string;
  /** Absent for oct keys. */
  publicJwk?: HsmPublicJwk;
}
/** POST /v1/keys/import: a private RSA (n,e,d,p,q,dp,dq,qi) or EC (crv,x,y,d) JWK. */
export interface ImportKeyRequest {
  id: string;
  jwk: Record<string, string>;
}
export interface ImportKeyResponse {
  handle: string;
  publicJwk: HsmPublicJwk;
}
/** POST /v1/keys/sign. RS*: PKCS#1 v1.5; PS*: PSS, MGF1 of the same hash, salt = hash length; ES*: raw r||s. */
export interface KeySignRequest {
  handle: string;
  alg: string;
  /** The digest to sign, its length that of the alg's hash. */
  digest: string;
}
export interface KeySignResponse {
  signature: string;
}
/** POST /v1/keys/decrypt. GCM: iv (12) and tag (16) required, aad optional; CBC*: iv (16) required. */
export interface KeyDecryptRequest {
  handle: string;
  alg: string;
  ciphertext: string;
  iv?: string;
  aad?: string;
  tag?: string;
}
export interface KeyDecryptResponse {
  plaintext: string;
}
/**
 * POST /v1/keys/encrypt, oct keys only (RSA encryption needs only the public key). GCM: the IV is
 * always generated in the token (a caller's iv is refused); CBC*: iv optional, generated if absent.
 */
export interface KeyEncryptRequest {
  handle: string;
  alg: string;
  plaintext: string;
  iv?: string;
  aad?: string;
}
export interface KeyEncryptResponse {
  ciphertext: string;
  iv?: string;
  /** GCM only. */
  tag?: string;
}
/** POST /v1/keys/wrap: A*KW (RFC 3394) of key bytes (a multiple of 8, at least 16) under an oct key. */
export interface KeyWrapRequest {
  handle: string;
  alg: string;
  key: string;
}
export interface KeyWrapResponse {
  wrapped: string;
}
/** POST /v1/keys/unwrap: RSA-OAEP, RSA-OAEP-256, RSA1_5 on RSA keys; A*KW on oct keys. */
export interface KeyUnwrapRequest {
  handle: string;
  alg: string;
  wrapped: string;
}
export interface KeyUnwrapResponse {
  key: string;
}
/** POST /v1/keys/destroy: destroys every object of the key; idempotent. */
export interface DestroyKeyRequest {
  handle: string;
}
export interface DestroyKeyResponse {
  /** false when there was nothing to destroy. */
  destroyed: boolean;
}
/** POST /v1/keys/public: the public JWK of an RSA or EC key, read from the token. */
export interface PublicKeyRequest {
  handle: string;
}
export interface PublicKeyResponse {
  publicJwk: HsmPublicJwk;
}
/** POST /v1/rng: 1..MAX_RANDOM_BYTES bytes from the token's generator. */
export interface RandomRequest {
  count: number;
}
export interface RandomResponse {
  bytes: string;
}

const encoder = new TextEncoder();

export function toBase64Url(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]!);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function fromBase64Url(text: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new Error('invalid base64url');
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4);
  const binary = atob(b64);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

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
  return [method.toUpperCase(), pathWithQuery, toHex(digest), timestamp, nonce].join('\n');
}

async function hmacKey(secret: string): Promise<CryptoKey> {
  if (secret.length < MIN_SECRET_LENGTH) {
    throw new Error(`bridge HMAC secret must be at least ${MIN_SECRET_LENGTH} characters`);
  }
  return crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, [
    'sign',
    'verify',
  ]);
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

export type VerifyResult = { ok: true; nonce: string; timestamp: number } | { ok: false; reason: string };

/**
 * Checks signature and timestamp window. Replay (nonce reuse) is the caller's job, since only the
 * server keeps the nonce cache; the returned nonce is what it must remember.
 * HMAC verification through WebCrypto's verify() is constant time.
 */
export async function verifyRequest(
  secret: string,
  method: string,
  pathWithQuery: string,
  body: Uint8Array | string,
  headers: { get(name: string): string | null | undefined },
  nowMs: number = Date.now(),
): Promise<VerifyResult> {
  const timestamp = headers.get(HEADER_TIMESTAMP);
  const nonce = headers.get(HEADER_NONCE);
  const signature = headers.get(HEADER_SIGNATURE);
  if (!timestamp || !nonce || !signature) return { ok: false, reason: 'missing authentication headers' };
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: 'malformed timestamp' };
  if (!/^[A-Za-z0-9_-]{16,64}$/.test(nonce)) return { ok: false, reason: 'malformed nonce' };
  const ts = Number(timestamp);
  if (Math.abs(nowMs / 1000 - ts) > MAX_CLOCK_SKEW_SECONDS) return { ok: false, reason: 'stale timestamp' };
  let mac: Uint8Array;
  try {
    mac = fromBase64Url(signature);
  } catch {
    return { ok: false, reason: 'malformed signature' };
  }
  const canonical = await canonicalString(method, pathWithQuery, body, timestamp, nonce);
  const valid = await crypto.subtle.verify('HMAC', await hmacKey(secret), mac as BufferSource, encoder.encode(canonical));
  return valid ? { ok: true, nonce, timestamp: ts } : { ok: false, reason: 'bad signature' };
}
