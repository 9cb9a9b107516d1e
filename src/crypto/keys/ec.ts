/**
 * ECDSA over a given digest with @noble/curves (WebCrypto always hashes the message itself).
 * Signatures are JOSE's fixed-width r || s.
 */
import { p256, p384, p521 } from '@noble/curves/nist.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { badParameter } from '../../core/errors';
import { fromBase64Url } from '../../core/encoding';
import { concat } from './bytes';
import type { Curve, Jwk, PublicJwk } from './types';

const CURVE_IMPL = { 'P-256': p256, 'P-384': p384, 'P-521': p521, 'P-256K': secp256k1 } as const;

/** Bytes of a coordinate or scalar: 32, 48, 66 (P-521) or 32. */
export const COORDINATE_BYTES: Record<Curve, number> = { 'P-256': 32, 'P-384': 48, 'P-521': 66, 'P-256K': 32 };

export const curveImpl = (crv: Curve) => CURVE_IMPL[crv];

function curveOf(jwk: PublicJwk): Curve {
  const crv = jwk.crv as Curve;
  if (!Object.hasOwn(CURVE_IMPL, crv)) throw badParameter('The EC key uses an unsupported curve.');
  return crv;
}

/** SEC1 uncompressed point 04 || x || y, as noble takes public keys. */
export const uncompressedPoint = (x: Uint8Array, y: Uint8Array) => concat(new Uint8Array([0x04]), x, y);

export function ecSign(jwk: Jwk, digest: Uint8Array): Uint8Array {
  const crv = curveOf(jwk);
  if (!jwk.d) throw new Error('the EC private key is incomplete');
  const d = fromBase64Url(jwk.d);
  try {
    // prehash false: `digest` already is the hash. extraEntropy: hedged signatures (RFC 6979
    // nonce mixed with fresh randomness), which resist fault attacks that deterministic ones don't.
    return CURVE_IMPL[crv].sign(digest, d, { prehash: false, extraEntropy: true });
  } finally {
    d.fill(0);
  }
}

export function ecVerify(jwk: PublicJwk, digest: Uint8Array, signature: Uint8Array): boolean {
  const crv = curveOf(jwk);
  if (!jwk.x || !jwk.y || signature.length !== 2 * COORDINATE_BYTES[crv]) return false;
  try {
    const point = uncompressedPoint(fromBase64Url(jwk.x), fromBase64Url(jwk.y));
    // lowS false: ECDSA as specified accepts both s and n - s; OpenSSL/BoringSSL produce either.
    return CURVE_IMPL[crv].verify(signature, digest, point, { prehash: false, lowS: false });
  } catch {
    return false; // malformed point or signature
  }
}
