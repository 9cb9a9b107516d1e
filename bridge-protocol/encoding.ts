/**
 * Base64url as the bridge protocol speaks it: no padding, and strict (a character outside the
 * alphabet is an error, not silently dropped), so both sides read a field the same way.
 */
import { base64url } from 'jose';

export const toBase64Url = (bytes: Uint8Array): string => base64url.encode(bytes);

export function fromBase64Url(text: string): Uint8Array {
  // A length of 4n+1 cannot come from any byte string: refuse it rather than guess.
  if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) throw new Error('invalid base64url');
  return base64url.decode(text);
}
