/**
 * Byte and integer helpers for JWK fields. BigInt arithmetic here is variable time: it is used
 * only on public values, or once per key import to check consistency, never per operation on a
 * private key (those run in BoringSSL through node:crypto, or in @noble/curves).
 */
import { badParameter } from '../../core/errors';
import { fromBase64Url, toHex } from '../../core/encoding';

export function bytesToBigInt(bytes: Uint8Array): bigint {
  const hex = toHex(bytes);
  return hex === '' ? 0n : BigInt(`0x${hex}`);
}

export function stripLeadingZeros(bytes: Uint8Array): Uint8Array {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  return bytes.subarray(i);
}

export function bitLength(bytes: Uint8Array): number {
  const b = stripLeadingZeros(bytes);
  if (b.length === 0 || b[0] === 0) return 0;
  return (b.length - 1) * 8 + (32 - Math.clz32(b[0]!));
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function leftPad(bytes: Uint8Array, length: number): Uint8Array {
  if (bytes.length === length) return bytes;
  const out = new Uint8Array(length);
  out.set(bytes, length - bytes.length);
  return out;
}

/** Decodes a JWK byte field, naming the field (never its value) when it is missing or malformed. */
export function jwkBytes(jwk: Record<string, unknown>, field: string): Uint8Array {
  const value = jwk[field];
  if (value === undefined || value === null || value === '') {
    throw badParameter(`The JSON web key is missing its '${field}' parameter.`);
  }
  if (typeof value !== 'string') throw badParameter(`The JSON web key's '${field}' parameter must be a base64url string.`);
  try {
    // Some clients pad base64url; the padding carries nothing.
    return fromBase64Url(value.replace(/=+$/, ''));
  } catch {
    throw badParameter(`The JSON web key's '${field}' parameter is not valid base64url.`);
  }
}

export function mod(a: bigint, m: bigint): bigint {
  const r = a % m;
  return r < 0n ? r + m : r;
}
