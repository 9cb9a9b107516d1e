/** RSA signatures (RS*, PS*) over a given digest, and RSA-OAEP, RSA-OAEP-256 and RSA1_5. */
import { badParameter } from '../../core/errors';
import { fromBase64Url, timingSafeEqual } from '../../core/encoding';
import { hashOf } from './algorithms';
import { bitLength } from './bytes';
import { emePkcs1Decode, emePkcs1Encode, emsaPkcs1, emsaPssEncode, emsaPssVerify } from './padding';
import { rawDecrypt, rawEncrypt, rawSign, rawVerify } from './rsa-raw';
import type { Jwk, PublicJwk } from './types';

/** Bits of n. */
export function rsaKeySize(jwk: PublicJwk): number {
  if (!jwk.n) throw badParameter('The RSA key has no modulus.');
  return bitLength(fromBase64Url(jwk.n));
}

const modulusBytes = (jwk: PublicJwk) => Math.ceil(rsaKeySize(jwk) / 8);

// One message for every decryption failure, so a caller learns nothing about why it failed.
const decryptionFailed = () => badParameter('The ciphertext could not be decrypted with this key and algorithm.');

export async function rsaSign(jwk: Jwk, alg: string, digest: Uint8Array): Promise<Uint8Array> {
  const hash = hashOf(alg);
  const bits = rsaKeySize(jwk);
  const k = Math.ceil(bits / 8);
  const block = alg.startsWith('PS') ? await emsaPssEncode(hash, digest, bits) : emsaPkcs1(hash, digest, k);
  const signature = rawSign(jwk, block);
  // Check before release: a faulty private operation (CRT) must never hand out a signature,
  // since one wrong CRT signature reveals a factor of n.
  if (!timingSafeEqual(rawVerify(jwk, signature), block)) throw new Error('RSA signature self-check failed');
  return signature;
}

export async function rsaVerify(jwk: PublicJwk, alg: string, digest: Uint8Array, signature: Uint8Array): Promise<boolean> {
  const hash = hashOf(alg);
  const bits = rsaKeySize(jwk);
  const k = Math.ceil(bits / 8);
  if (signature.length !== k) return false; // RFC 8017 §8.2.2 step 1
  let block: Uint8Array;
  try {
    block = rawVerify(jwk, signature);
  } catch {
    return false; // signature not below n
  }
  if (alg.startsWith('PS')) return emsaPssVerify(hash, digest, block, bits);
  return timingSafeEqual(block, emsaPkcs1(hash, digest, k));
}

type OaepHash = 'SHA-1' | 'SHA-256';
const OAEP_HASH: Record<string, OaepHash> = { 'RSA-OAEP': 'SHA-1', 'RSA-OAEP-256': 'SHA-256' };
const HASH_BYTES: Record<OaepHash, number> = { 'SHA-1': 20, 'SHA-256': 32 };

function oaepKey(jwk: PublicJwk | Jwk, hash: OaepHash, usage: 'encrypt' | 'decrypt'): Promise<CryptoKey> {
  // Only the key's own fields: a stored alg or key_ops must not clash with WebCrypto's checks.
  const { kty: _kty, n, e, d, p, q, dp, dq, qi } = jwk as Jwk;
  const material = usage === 'decrypt' ? { kty: 'RSA', n, e, d, p, q, dp, dq, qi } : { kty: 'RSA', n, e };
  return crypto.subtle.importKey('jwk', material as JsonWebKey, { name: 'RSA-OAEP', hash }, false, [usage]);
}

export async function rsaEncrypt(jwk: PublicJwk, alg: string, plaintext: Uint8Array): Promise<Uint8Array> {
  const k = modulusBytes(jwk);
  const hash = OAEP_HASH[alg];
  const max = hash ? k - 2 * HASH_BYTES[hash] - 2 : k - 11;
  if (plaintext.length > max) {
    throw badParameter(`The plaintext is too long: ${alg} with this key encrypts at most ${max} bytes.`);
  }
  if (hash) {
    const key = await oaepKey(jwk, hash, 'encrypt');
    return new Uint8Array(await crypto.subtle.encrypt({ name: 'RSA-OAEP' }, key, plaintext as BufferSource));
  }
  if (alg !== 'RSA1_5') throw badParameter(`The algorithm '${alg}' is not an RSA encryption algorithm.`);
  return rawEncrypt(jwk, emePkcs1Encode(plaintext, k));
}

export async function rsaDecrypt(jwk: Jwk, alg: string, ciphertext: Uint8Array): Promise<Uint8Array> {
  const k = modulusBytes(jwk);
  if (ciphertext.length !== k) throw decryptionFailed();
  const hash = OAEP_HASH[alg];
  if (hash) {
    const key = await oaepKey(jwk, hash, 'decrypt');
    try {
      return new Uint8Array(await crypto.subtle.decrypt({ name: 'RSA-OAEP' }, key, ciphertext as BufferSource));
    } catch {
      throw decryptionFailed();
    }
  }
  if (alg !== 'RSA1_5') throw badParameter(`The algorithm '${alg}' is not an RSA encryption algorithm.`);
  let em: Uint8Array;
  try {
    em = rawDecrypt(jwk, ciphertext);
  } catch {
    throw decryptionFailed(); // ciphertext not below n
  }
  const message = emePkcs1Decode(em);
  em.fill(0);
  if (!message) throw decryptionFailed();
  return message;
}
