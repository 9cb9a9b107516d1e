// @ts-ignore -- this project does not load @types/node (it would put Node globals into Worker
// code), so node:crypto is typed by the narrow interface below instead. ts-ignore rather than
// ts-expect-error so that adding @types/node later does not break the build.
import * as nodeCrypto from 'node:crypto';
import type { Jwk, PublicJwk } from './types';

/**
 * The raw RSA primitives (m^d mod n and m^e mod n, no padding). WebCrypto cannot sign a digest
 * the caller already computed, nor do PKCS#1 v1.5 decryption, so the Worker uses workerd's
 * node:crypto (BoringSSL underneath: constant-time CRT with blinding) with RSA_NO_PADDING, and
 * does the padding itself (padding.ts). Needs the nodejs_compat compatibility flag.
 *
 * workerd quirk: these functions refuse KeyObject arguments, but take a JWK object with
 * format 'jwk', which is what we have anyway.
 */
interface RsaKeyInput {
  key: Record<string, string>;
  format: 'jwk';
  padding: number;
}
interface NodeRsa {
  privateEncrypt(key: RsaKeyInput, data: Uint8Array): Uint8Array;
  privateDecrypt(key: RsaKeyInput, data: Uint8Array): Uint8Array;
  publicEncrypt(key: RsaKeyInput, data: Uint8Array): Uint8Array;
  publicDecrypt(key: RsaKeyInput, data: Uint8Array): Uint8Array;
  constants: { RSA_NO_PADDING: number };
}
const rsa = nodeCrypto as unknown as NodeRsa;

const PRIVATE_FIELDS = ['n', 'e', 'd', 'p', 'q', 'dp', 'dq', 'qi'] as const;

function privateInput(jwk: Jwk): RsaKeyInput {
  const key: Record<string, string> = { kty: 'RSA' };
  for (const f of PRIVATE_FIELDS) {
    const v = jwk[f];
    if (!v) throw new Error('the RSA private key is incomplete');
    key[f] = v;
  }
  return { key, format: 'jwk', padding: rsa.constants.RSA_NO_PADDING };
}

function publicInput(jwk: PublicJwk): RsaKeyInput {
  if (!jwk.n || !jwk.e) throw new Error('the RSA public key is incomplete');
  return { key: { kty: 'RSA', n: jwk.n, e: jwk.e }, format: 'jwk', padding: rsa.constants.RSA_NO_PADDING };
}

// Copies out of Node's Buffer so callers get a plain Uint8Array.
const plain = (b: Uint8Array) => new Uint8Array(b);

/** m^d mod n for signing; `block` is k bytes and, as an integer, below n. Throws otherwise. */
export const rawSign = (jwk: Jwk, block: Uint8Array): Uint8Array => plain(rsa.privateEncrypt(privateInput(jwk), block));

/** c^d mod n for decryption; `block` is k bytes. Throws when it is not below n. */
export const rawDecrypt = (jwk: Jwk, block: Uint8Array): Uint8Array => plain(rsa.privateDecrypt(privateInput(jwk), block));

/** s^e mod n (signature check); throws when `block` is not k bytes below n. */
export const rawVerify = (jwk: PublicJwk, block: Uint8Array): Uint8Array => plain(rsa.publicDecrypt(publicInput(jwk), block));

/** m^e mod n (encryption). */
export const rawEncrypt = (jwk: PublicJwk, block: Uint8Array): Uint8Array => plain(rsa.publicEncrypt(publicInput(jwk), block));
