// @ts-ignore -- this project does not load @types/node (it would put Node globals into Worker
// code), so node:crypto is typed by the narrow interface below instead (as in keys/rsa-raw.ts).
import * as nodeCrypto from 'node:crypto';
import {
  HEADER_NONCE,
  HEADER_SIGNATURE,
  HEADER_TIMESTAMP,
  MIN_SECRET_LENGTH,
  canonicalFromDigest,
  toBase64Url,
} from '../../bridge-protocol';

/**
 * The Worker's signer of bridge requests: bridge-protocol's signRequest, computed with node:crypto
 * (workerd's nodejs_compat; BoringSSL underneath) instead of WebCrypto. Same canonical string
 * (canonicalFromDigest), same headers, same key (the secret's UTF-8 bytes): the bridge cannot tell
 * them apart, and a test holds this one to what verifyRequest accepts. Why a second signer: it is
 * synchronous. WebCrypto's digest and sign are two promises a request, and wherever BridgeClient
 * runs on Node (the benchmark, the bridge's client tests) each is a job on the libuv pool,
 * 0.2-1 ms of a batch's round trip on a busy machine.
 */
interface Digest {
  update(data: string): Digest;
  digest(): Uint8Array;
  digest(encoding: 'hex'): string;
}
interface NodeHashing {
  createHash(algorithm: 'sha256'): Digest;
  createHmac(algorithm: 'sha256', key: string): Digest;
}
const hashing = nodeCrypto as unknown as NodeHashing;

/** Headers that authenticate one request to the bridge (signRequest's, synchronously). */
export function signRequestSync(
  secret: string,
  method: string,
  pathWithQuery: string,
  body: string,
  nowMs: number = Date.now(),
): Record<string, string> {
  if (secret.length < MIN_SECRET_LENGTH) {
    throw new Error(`bridge HMAC secret must be at least ${MIN_SECRET_LENGTH} characters`);
  }
  const timestamp = String(Math.floor(nowMs / 1000));
  const nonce = toBase64Url(crypto.getRandomValues(new Uint8Array(16)));
  const digest = hashing.createHash('sha256').update(body).digest('hex');
  const canonical = canonicalFromDigest(method, pathWithQuery, digest, timestamp, nonce);
  const mac = hashing.createHmac('sha256', secret).update(canonical).digest();
  return { [HEADER_TIMESTAMP]: timestamp, [HEADER_NONCE]: nonce, [HEADER_SIGNATURE]: toBase64Url(new Uint8Array(mac)) };
}
