/**
 * Byte encodings the API speaks: base64url without padding (JWK fields, operation values,
 * backups), standard base64 (`cer`, `x5c`, certificates), UTF-8, lowercase hex. jose and noble do the encoding; this file adds the strictness
 * the API needs (a stray character is an error, not silently dropped).
 */
import { bytesToHex, hexToBytes } from '@noble/curves/utils.js';
import { base64url } from 'jose';

export const toBase64Url = (bytes: Uint8Array): string => base64url.encode(bytes);

export function fromBase64Url(text: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) throw new Error('invalid base64url');
  return base64url.decode(text);
}

/** Standard base64 with padding: jose's base64url, alphabet mapped. */
export function toBase64(bytes: Uint8Array): string {
  const text = base64url.encode(bytes).replace(/-/g, '+').replace(/_/g, '/');
  return text + '='.repeat((4 - (text.length % 4)) % 4);
}

/** Standard base64 with its padding; anything else (whitespace, url-safe letters) is an error. */
export function fromBase64(text: string): Uint8Array {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) throw new Error('invalid base64');
  return base64url.decode(text.replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_'));
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

export const utf8 = (text: string): Uint8Array => encoder.encode(text);
export const fromUtf8 = (bytes: Uint8Array): string => decoder.decode(bytes);

export const toHex = (bytes: Uint8Array | ArrayBuffer): string =>
  bytesToHex(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes));

/** Even-length hex (either case) to bytes; anything else is an error. */
export const fromHex = (hex: string): Uint8Array => hexToBytes(hex);

export function randomBytes(length: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(length));
}

/** 32 lowercase hex characters, the shape of Azure object versions. */
export const newVersionId = (): string => toHex(randomBytes(16));

export async function sha256Hex(data: string | Uint8Array): Promise<string> {
  const bytes = typeof data === 'string' ? utf8(data) : data;
  return toHex(await crypto.subtle.digest('SHA-256', bytes as BufferSource));
}

/** Constant-time equality for equal-length secrets (workerd's timingSafeEqual). */
export function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  // Typed for Node's WebCrypto too (the certificate formats' Node test imports this module).
  return (crypto.subtle as SubtleCrypto & { timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean }).timingSafeEqual(a, b);
}
