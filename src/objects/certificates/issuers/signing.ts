/**
 * Signature plumbing shared by the internal CA: X.509 signature algorithm identifiers, the
 * ECDSA raw (r||s, what the HSM and WebCrypto produce) ↔ DER (what X.509 carries) conversion, and
 * the signer that hashes locally and has the HSM sign the digest, so the CA key never leaves it.
 */
import { concat } from '../../../crypto/keys/bytes';
import { AsnConvert } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, SubjectPublicKeyInfo } from '@peculiar/asn1-x509';
import type { BridgeClient, HsmPublicJwk } from '../../../crypto/bridge-client';

export type CaAlg = 'ES256' | 'ES384' | 'RS256' | 'RS384';

const HASH: Record<CaAlg, 'SHA-256' | 'SHA-384'> = { ES256: 'SHA-256', ES384: 'SHA-384', RS256: 'SHA-256', RS384: 'SHA-384' };
const OID: Record<CaAlg, string> = {
  ES256: '1.2.840.10045.4.3.2',
  ES384: '1.2.840.10045.4.3.3',
  RS256: '1.2.840.113549.1.1.11',
  RS384: '1.2.840.113549.1.1.12',
};
/** DER NULL: RSA PKCS#1 v1.5 algorithm identifiers carry it, ECDSA ones carry nothing (RFC 5758). */
const NULL_PARAMS = new Uint8Array([5, 0]).buffer;

export function algorithmIdentifier(alg: CaAlg): AlgorithmIdentifier {
  return new AlgorithmIdentifier({ algorithm: OID[alg], ...(alg.startsWith('RS') ? { parameters: NULL_PARAMS } : {}) });
}

/** Something that signs X.509 structures: the CA key in the HSM in production, anything in tests. */
export interface CaSigner {
  alg: CaAlg;
  /** DER SubjectPublicKeyInfo of the signing key. */
  spki: Uint8Array;
  /** Signs the digest (of the alg's hash); X.509-ready signature bytes (ECDSA in DER). */
  signDigest(digest: Uint8Array): Promise<Uint8Array>;
}

export function algFor(jwk: HsmPublicJwk): CaAlg {
  if (jwk.kty === 'RSA') return 'RS256';
  if (jwk.crv === 'P-256') return 'ES256';
  if (jwk.crv === 'P-384') return 'ES384';
  throw new Error(`no CA signature algorithm for curve ${jwk.crv}`);
}

export async function digest(alg: CaAlg, data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest(HASH[alg], data as BufferSource));
}

/** DER SubjectPublicKeyInfo of an RSA or EC public JWK (through WebCrypto, which validates it). */
export async function spkiOf(jwk: HsmPublicJwk): Promise<Uint8Array> {
  const algorithm = jwk.kty === 'RSA' ? { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } : { name: 'ECDSA', namedCurve: jwk.crv };
  const key = await crypto.subtle.importKey('jwk', { ...jwk, ext: true } as JsonWebKey, algorithm, true, ['verify']);
  return new Uint8Array((await crypto.subtle.exportKey('spki', key)) as ArrayBuffer);
}

/** A signer whose private key is the HSM key `handle`: only the digest crosses to the bridge. */
export async function hsmSigner(bridge: BridgeClient, handle: string, jwk: HsmPublicJwk): Promise<CaSigner> {
  const alg = algFor(jwk);
  const spki = await spkiOf(jwk);
  return {
    alg,
    spki,
    async signDigest(d) {
      const signature = await bridge.sign(handle, alg, d);
      return alg.startsWith('ES') ? ecdsaRawToDer(signature) : signature;
    },
  };
}

/** Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } from r||s. */
export function ecdsaRawToDer(raw: Uint8Array): Uint8Array {
  const half = raw.length / 2;
  const r = derInteger(raw.subarray(0, half));
  const s = derInteger(raw.subarray(half));
  return concat(new Uint8Array([0x30]), derLength(r.length + s.length), r, s);
}

/** r||s (each `size` bytes) from an Ecdsa-Sig-Value, as WebCrypto verifies it; null if malformed. */
export function ecdsaDerToRaw(der: Uint8Array, size: number): Uint8Array | null {
  // SEQUENCE (short or 0x81 length) of two INTEGERs; anything else is not a signature.
  let at = 0;
  const length = (): number | null => {
    const first = der[at++];
    if (first === undefined) return null;
    if (first < 0x80) return first;
    if (first !== 0x81 || der[at] === undefined) return null;
    return der[at++]!;
  };
  if (der[at++] !== 0x30) return null;
  const seqLength = length();
  if (seqLength === null || at + seqLength !== der.length) return null;
  const out = new Uint8Array(size * 2);
  for (let i = 0; i < 2; i++) {
    if (der[at++] !== 0x02) return null;
    const n = length();
    if (n === null || n === 0 || at + n > der.length) return null;
    let bytes = der.subarray(at, at + n);
    at += n;
    while (bytes.length > size && bytes[0] === 0) bytes = bytes.subarray(1);
    if (bytes.length > size) return null;
    out.set(bytes, i * size + size - bytes.length);
  }
  return at === der.length ? out : null;
}

function derInteger(value: Uint8Array): Uint8Array {
  let i = 0;
  while (i < value.length - 1 && value[i] === 0) i++;
  let v = value.subarray(i);
  if (v[0]! & 0x80) v = concat(new Uint8Array([0]), v);
  return concat(new Uint8Array([0x02]), derLength(v.length), v);
}

function derLength(n: number): Uint8Array {
  return n < 0x80 ? new Uint8Array([n]) : n < 0x100 ? new Uint8Array([0x81, n]) : new Uint8Array([0x82, n >> 8, n & 0xff]);
}

export { concat };

/** The SubjectPublicKeyInfo structure of DER bytes. */
export function parseSpki(der: Uint8Array): SubjectPublicKeyInfo {
  return AsnConvert.parse(der, SubjectPublicKeyInfo);
}
