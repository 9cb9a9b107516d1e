/**
 * AES-256-GCM sealing of vault content under a data key. The additional data binds a ciphertext
 * to where it belongs (vault, kind, name, version), so a row copied elsewhere fails to open.
 * Format (base64url): iv(12) || ciphertext || tag(16).
 */
import { fromBase64Url, toBase64Url, utf8 } from '../core/encoding';

const IV_LENGTH = 12;

export async function seal(key: CryptoKey, plaintext: Uint8Array, aad: string): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(IV_LENGTH));
  const ct = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: utf8(aad) }, key, plaintext as BufferSource);
  const out = new Uint8Array(IV_LENGTH + ct.byteLength);
  out.set(iv);
  out.set(new Uint8Array(ct), IV_LENGTH);
  return toBase64Url(out);
}

/** Returns null when the ciphertext does not authenticate (tampered, truncated or moved). */
export async function open(key: CryptoKey, sealed: string, aad: string): Promise<Uint8Array | null> {
  let bytes: Uint8Array;
  try {
    bytes = fromBase64Url(sealed);
  } catch {
    return null;
  }
  if (bytes.length < IV_LENGTH + 16) return null;
  try {
    const pt = await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: bytes.subarray(0, IV_LENGTH), additionalData: utf8(aad) },
      key,
      bytes.subarray(IV_LENGTH),
    );
    return new Uint8Array(pt);
  } catch {
    return null;
  }
}

/** The additional data of one stored object. Names are case-insensitive, so they bind lowercased. */
export function objectAad(scope: string, kind: string, name: string, version: string): string {
  return ['ekv-v1', scope, kind, name.toLowerCase(), version].join('|');
}

export function importDataKey(raw: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey('raw', raw as BufferSource, { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']);
}
