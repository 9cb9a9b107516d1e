/**
 * Encodings around the HSM key operations that need no token: validating a private JWK and
 * turning it into PKCS#8 for import, reading public keys out of PKCS#11 attributes, PKCS#1
 * DigestInfo, and OAEP decoding for tokens that only do OAEP with SHA-1.
 *
 * Buffers holding private material are zeroed by whoever owns them once they are no longer needed
 * (JavaScript strings and BigInts cannot be, so they are kept to what the JWK itself brings).
 */
import { createECDH, createHash, timingSafeEqual } from 'node:crypto';
import { fromBase64Url, toBase64Url, type HsmCurve, type HsmPublicJwk } from '../../bridge-protocol/index.js';

/** A request that cannot be served as asked (400). Messages name fields, never their values. */
export class KeyRequestError extends Error {
  override name = 'KeyRequestError';
}

export interface CurveInfo {
  crv: HsmCurve;
  /** DER of the named curve's OID: CKA_EC_PARAMS and the PKCS#8 algorithm parameter. */
  oid: Buffer;
  /** Bytes of a coordinate, of d, and of each half of a raw r||s signature. */
  size: number;
  /** The curve's name for node:crypto. */
  node: string;
}

export const CURVES: Record<HsmCurve, CurveInfo> = {
  'P-256': { crv: 'P-256', oid: Buffer.from('06082a8648ce3d030107', 'hex'), size: 32, node: 'prime256v1' },
  'P-384': { crv: 'P-384', oid: Buffer.from('06052b81040022', 'hex'), size: 48, node: 'secp384r1' },
  'P-521': { crv: 'P-521', oid: Buffer.from('06052b81040023', 'hex'), size: 66, node: 'secp521r1' },
  'P-256K': { crv: 'P-256K', oid: Buffer.from('06052b8104000a', 'hex'), size: 32, node: 'secp256k1' },
};

/** The curve whose CKA_EC_PARAMS these are, if it is one we serve. */
export function curveFromParams(params: Buffer): CurveInfo | undefined {
  return Object.values(CURVES).find((c) => c.oid.equals(params));
}

// ------------------------------------------------------------------------------------------ DER

function derLength(length: number): Buffer {
  if (length < 0x80) return Buffer.of(length);
  const bytes: number[] = [];
  for (let n = length; n > 0; n >>= 8) bytes.unshift(n & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/**
 * Builds DER while remembering every buffer it made, so that the intermediate copies of private
 * material can be zeroed with the result.
 */
class Der {
  private readonly made: Buffer[] = [];

  private keep(buffer: Buffer): Buffer {
    this.made.push(buffer);
    return buffer;
  }

  tlv(tag: number, content: Buffer): Buffer {
    return this.keep(Buffer.concat([Buffer.of(tag), derLength(content.length), content]));
  }

  seq(...parts: Buffer[]): Buffer {
    return this.tlv(0x30, this.keep(Buffer.concat(parts)));
  }

  /** A non-negative INTEGER from unsigned big-endian bytes. */
  uint(bytes: Uint8Array): Buffer {
    let start = 0;
    while (start < bytes.length - 1 && bytes[start] === 0) start++;
    const body = this.keep(Buffer.alloc(bytes.length - start + (bytes[start]! & 0x80 ? 1 : 0)));
    body.set(bytes.subarray(start), body.length - (bytes.length - start));
    return this.tlv(0x02, body);
  }

  /** A tracked copy of private bytes. */
  copy(bytes: Uint8Array): Buffer {
    return this.keep(Buffer.from(bytes));
  }

  small(n: number): Buffer {
    return this.tlv(0x02, Buffer.of(n));
  }

  /** Zeroes every intermediate buffer except `result`, which the caller owns and zeroes. */
  wipeExcept(result: Buffer): void {
    for (const b of this.made) if (b !== result) b.fill(0);
  }
}

const RSA_ENCRYPTION_ALG = Buffer.from('300d06092a864886f70d0101010500', 'hex'); // {rsaEncryption, NULL}
const EC_PUBLIC_KEY_OID = Buffer.from('06072a8648ce3d0201', 'hex');

/** The value of a DER OCTET STRING (CKA_EC_POINT), or the bytes themselves when not wrapped. */
function unwrapOctetString(der: Buffer, expectLength: number): Buffer {
  if (der.length === expectLength) return der; // some tokens return the bare point
  if (der[0] !== 0x04) throw new Error('EC point is not an OCTET STRING');
  let offset = 2;
  let length = der[1]!;
  if (length & 0x80) {
    const n = length & 0x7f;
    length = 0;
    for (let i = 0; i < n; i++) length = (length << 8) | der[2 + i]!;
    offset = 2 + n;
  }
  if (offset + length !== der.length) throw new Error('EC point has a bad length');
  return der.subarray(offset);
}

/** The public JWK of an EC public key object's CKA_EC_POINT. */
export function ecPublicJwk(curve: CurveInfo, pointAttr: Buffer): HsmPublicJwk {
  const point = unwrapOctetString(pointAttr, 1 + 2 * curve.size);
  if (point.length !== 1 + 2 * curve.size || point[0] !== 0x04) throw new Error('EC point is not uncompressed');
  return {
    kty: 'EC',
    crv: curve.crv,
    x: toBase64Url(point.subarray(1, 1 + curve.size)),
    y: toBase64Url(point.subarray(1 + curve.size)),
  };
}

/** CKA_EC_POINT for a public key object: DER OCTET STRING of the uncompressed point. */
export function ecPointAttribute(x: Uint8Array, y: Uint8Array): Buffer {
  const point = Buffer.concat([Buffer.of(0x04), x, y]);
  return Buffer.concat([Buffer.of(0x04), derLength(point.length), point]);
}

export function rsaPublicJwk(modulus: Buffer, exponent: Buffer): HsmPublicJwk {
  return { kty: 'RSA', n: toBase64Url(stripZeros(modulus)), e: toBase64Url(stripZeros(exponent)) };
}

function stripZeros(bytes: Uint8Array): Uint8Array {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  return bytes.subarray(start);
}

// ------------------------------------------------------------------------------------ JWK import

export type ImportMaterial = {
  /** PrivateKeyInfo (PKCS#8 DER). Private: the caller zeroes it after use. */
  pkcs8: Buffer;
  publicJwk: HsmPublicJwk;
} & ({ kty: 'RSA'; bits: number; modulus: Buffer; exponent: Buffer } | { kty: 'EC'; curve: CurveInfo; point: Buffer });

const RSA_FIELDS = ['n', 'e', 'd', 'p', 'q', 'dp', 'dq', 'qi'] as const;
const RSA_IMPORT_SIZES = new Set([2048, 3072, 4096]);

function jwkBytes(jwk: Record<string, unknown>, name: string): Uint8Array {
  const value = jwk[name];
  if (typeof value !== 'string' || value.length === 0) throw new KeyRequestError(`the JWK needs '${name}' (a base64url string)`);
  try {
    return fromBase64Url(value);
  } catch {
    throw new KeyRequestError(`the JWK's '${name}' is not valid base64url`);
  }
}

const toBigInt = (bytes: Uint8Array): bigint => (bytes.length ? BigInt(`0x${Buffer.from(bytes).toString('hex')}`) : 0n);

function bitLength(n: bigint): number {
  return n === 0n ? 0 : n.toString(2).length;
}

function modPow(base: bigint, exp: bigint, mod: bigint): bigint {
  let result = 1n;
  let b = base % mod;
  for (let e = exp; e > 0n; e >>= 1n) {
    if (e & 1n) result = (result * b) % mod;
    b = (b * b) % mod;
  }
  return result;
}

function rsaMaterial(jwk: Record<string, unknown>): ImportMaterial {
  if ('oth' in jwk) throw new KeyRequestError('multi-prime RSA keys (oth) are not supported');
  const parts: Uint8Array[] = [];
  const der = new Der();
  try {
    const [n, e, d, p, q, dp, dq, qi] = RSA_FIELDS.map((name) => {
      const bytes = jwkBytes(jwk, name);
      parts.push(bytes);
      return bytes;
    }) as [Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array];
    const N = toBigInt(n);
    const bits = bitLength(N);
    if (!RSA_IMPORT_SIZES.has(bits)) throw new KeyRequestError(`RSA keys must be 2048, 3072 or 4096 bits; this one is ${bits}`);
    const E = toBigInt(e);
    if (E < 3n || E % 2n === 0n || E >= N) throw new KeyRequestError("the JWK's public exponent 'e' is not valid");
    const [D, P, Q, DP, DQ, QI] = [d, p, q, dp, dq, qi].map(toBigInt) as [bigint, bigint, bigint, bigint, bigint, bigint];
    const consistent =
      P > 1n &&
      Q > 1n &&
      P * Q === N &&
      D > 0n &&
      D < N &&
      (E * D) % (P - 1n) === 1n &&
      (E * D) % (Q - 1n) === 1n &&
      DP === D % (P - 1n) &&
      DQ === D % (Q - 1n) &&
      QI > 0n &&
      QI < P &&
      (QI * Q) % P === 1n;
    if (!consistent)
      throw new KeyRequestError('the RSA JWK is inconsistent (n, e, d, p, q, dp, dq and qi do not belong together)');
    // Belt and braces: a round trip through the key with these very parameters.
    if (modPow(modPow(2n, E, N), D, N) !== 2n) throw new KeyRequestError('the RSA JWK is inconsistent');

    const rsaPrivateKey = der.seq(der.small(0), ...[n, e, d, p, q, dp, dq, qi].map((b) => der.uint(b)));
    const pkcs8 = der.seq(der.small(0), RSA_ENCRYPTION_ALG, der.tlv(0x04, rsaPrivateKey));
    der.wipeExcept(pkcs8);
    const modulus = Buffer.from(stripZeros(n));
    const exponent = Buffer.from(stripZeros(e));
    return { kty: 'RSA', bits, modulus, exponent, pkcs8, publicJwk: rsaPublicJwk(modulus, exponent) };
  } finally {
    for (const b of parts) b.fill(0);
  }
}

function ecMaterial(jwk: Record<string, unknown>): ImportMaterial {
  const crv = jwk.crv;
  if (typeof crv !== 'string' || !Object.hasOwn(CURVES, crv)) {
    throw new KeyRequestError("the EC JWK's 'crv' must be one of P-256, P-384, P-521, P-256K");
  }
  const curve = CURVES[crv as HsmCurve];
  const x = jwkBytes(jwk, 'x');
  const y = jwkBytes(jwk, 'y');
  const d = jwkBytes(jwk, 'd');
  const der = new Der();
  try {
    for (const [name, bytes] of [
      ['x', x],
      ['y', y],
      ['d', d],
    ] as const) {
      if (bytes.length !== curve.size) throw new KeyRequestError(`the JWK's '${name}' must be ${curve.size} bytes for ${crv}`);
    }
    const point = Buffer.concat([Buffer.of(0x04), x, y]);
    let derived: Buffer;
    try {
      const ecdh = createECDH(curve.node);
      ecdh.setPrivateKey(d);
      derived = ecdh.getPublicKey();
    } catch {
      throw new KeyRequestError(`the JWK's 'd' is not a valid ${crv} private key`);
    }
    if (!derived.equals(point)) throw new KeyRequestError("the EC JWK is inconsistent ('d' does not match 'x' and 'y')");

    // ECPrivateKey { version 1, privateKey OCTET STRING, [1] publicKey BIT STRING }
    const ecPrivateKey = der.seq(
      der.small(1),
      der.tlv(0x04, der.copy(d)),
      der.tlv(0xa1, der.tlv(0x03, Buffer.concat([Buffer.of(0), point]))),
    );
    const algorithm = der.seq(EC_PUBLIC_KEY_OID, curve.oid);
    const pkcs8 = der.seq(der.small(0), algorithm, der.tlv(0x04, ecPrivateKey));
    der.wipeExcept(pkcs8);
    return {
      kty: 'EC',
      curve,
      point: ecPointAttribute(x, y),
      pkcs8,
      publicJwk: { kty: 'EC', crv: curve.crv, x: toBase64Url(x), y: toBase64Url(y) },
    };
  } finally {
    d.fill(0);
  }
}

/** Validates a private JWK and encodes it as PKCS#8. Throws KeyRequestError for anything unusable. */
export function importMaterial(jwk: unknown): ImportMaterial {
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) throw new KeyRequestError("'jwk' must be a JSON object");
  const record = jwk as Record<string, unknown>;
  if (record.kty === 'RSA' || record.kty === 'RSA-HSM') return rsaMaterial(record);
  if (record.kty === 'EC' || record.kty === 'EC-HSM') return ecMaterial(record);
  throw new KeyRequestError("only RSA and EC private JWKs can be imported ('kty' must be RSA or EC)");
}

// -------------------------------------------------------------------------------- RSA paddings

/** DER DigestInfo prefixes (AlgorithmIdentifier with NULL parameters, then the OCTET STRING header). */
export const DIGEST_INFO_PREFIX = {
  sha256: Buffer.from('3031300d060960864801650304020105000420', 'hex'),
  sha384: Buffer.from('3041300d060960864801650304020205000430', 'hex'),
  sha512: Buffer.from('3051300d060960864801650304020305000440', 'hex'),
} as const;

function mgf1(hash: string, seed: Buffer, length: number): Buffer {
  const out = Buffer.alloc(length);
  const counter = Buffer.alloc(4);
  for (let i = 0, offset = 0; offset < length; i++) {
    counter.writeUInt32BE(i);
    const block = createHash(hash).update(seed).update(counter).digest();
    block.copy(out, offset);
    offset += block.length;
    block.fill(0);
  }
  return out;
}

/**
 * EME-OAEP decoding (RFC 8017 §7.1.2, empty label) of a raw RSA decryption result of k bytes.
 * Returns undefined when it does not decode, without saying why and without branching on where.
 * The caller zeroes `em`.
 */
export function oaepDecode(em: Buffer, hash: 'sha1' | 'sha256', k: number): Buffer | undefined {
  const hLen = hash === 'sha1' ? 20 : 32;
  if (em.length !== k || k < 2 * hLen + 2) return undefined;
  const lHash = createHash(hash).digest();
  const maskedSeed = em.subarray(1, 1 + hLen);
  const maskedDb = em.subarray(1 + hLen);
  const seed = mgf1(hash, maskedDb, hLen);
  for (let i = 0; i < hLen; i++) seed[i]! ^= maskedSeed[i]!;
  const db = mgf1(hash, seed, k - hLen - 1);
  for (let i = 0; i < db.length; i++) db[i]! ^= maskedDb[i]!;
  try {
    let invalid = em[0]! | (timingSafeEqual(db.subarray(0, hLen), lHash) ? 0 : 1);
    // Find the 0x01 after the zero padding, looking at every byte whatever is found.
    let looking = 1;
    let index = 0;
    for (let i = hLen; i < db.length; i++) {
      const b = db[i]!;
      const isZero = ((b - 1) >>> 31) & 1;
      const isOne = (((b ^ 1) - 1) >>> 31) & 1;
      index |= looking & isOne ? i : 0;
      invalid |= looking & (1 - isZero) & (1 - isOne);
      looking &= isZero;
    }
    invalid |= looking;
    return invalid ? undefined : Buffer.from(db.subarray(index + 1));
  } finally {
    seed.fill(0);
    db.fill(0);
  }
}
