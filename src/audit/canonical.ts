/**
 * Canonical JSON and the chain hash. Web-standard code only (TextEncoder, crypto.subtle), so the
 * Worker and an offline verifier in Node compute the same bytes.
 *
 * Canonical JSON is RFC 8785 (JSON Canonicalization Scheme) over the values audit records hold:
 *  - objects: members sorted by key, comparing keys as UTF-16 code unit sequences (what
 *    `Array.prototype.sort` does with no comparator); members whose value is `undefined` are
 *    refused, not dropped, so a record can never silently lose a field;
 *  - arrays: in order;
 *  - strings: as `JSON.stringify` writes them (ECMAScript's escaping: `"` `\\` and the short
 *    escapes `\b \f \n \r \t`, other code points below U+0020 and lone surrogates as lowercase
 *    `\u00xx`; everything else, including non-ASCII, as itself), which is what RFC 8785 requires;
 *  - numbers: finite only, written as `JSON.stringify` writes them (records hold integers only);
 *  - `true`, `false`, `null`;
 *  - no whitespace anywhere.
 * The text is hashed as its UTF-8 encoding.
 *
 * Chain hash: hash(n) = lowercase hex of SHA-256( bytes(prevHash) ‖ UTF-8(canonical(n)) ), where
 * bytes(prevHash) are the 32 bytes the previous record's hex hash spells, and the first record of
 * a chain uses 32 zero bytes (GENESIS_HASH).
 */

export const GENESIS_HASH = '0'.repeat(64);

export function canonicalJson(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('canonical JSON: non-finite number');
      return JSON.stringify(value);
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) throw new TypeError('canonical JSON: only plain objects');
      const entries = Object.keys(value)
        .sort()
        .map((key) => {
          const member = (value as Record<string, unknown>)[key];
          if (member === undefined) throw new TypeError(`canonical JSON: undefined member '${key}'`);
          return `${JSON.stringify(key)}:${canonicalJson(member)}`;
        });
      return `{${entries.join(',')}}`;
    }
    default:
      throw new TypeError(`canonical JSON: unsupported ${typeof value}`);
  }
}

const encoder = new TextEncoder();

export function hexOf(bytes: ArrayBuffer | Uint8Array): string {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let out = '';
  for (const b of view) out += b.toString(16).padStart(2, '0');
  return out;
}

const HEX_HASH = /^[0-9a-f]{64}$/;

function bytesOfHash(hex: string): Uint8Array {
  if (!HEX_HASH.test(hex)) throw new TypeError('a chain hash is 64 lowercase hex digits');
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

export function isHash(value: unknown): value is string {
  return typeof value === 'string' && HEX_HASH.test(value);
}

export async function sha256Hex(data: string | Uint8Array): Promise<string> {
  const bytes = typeof data === 'string' ? encoder.encode(data) : data;
  return hexOf(await crypto.subtle.digest('SHA-256', bytes as BufferSource));
}

/** SHA-256(prevHash bytes ‖ UTF-8 canonical), lowercase hex. */
export async function chainHash(prevHash: string, canonical: string): Promise<string> {
  const prev = bytesOfHash(prevHash);
  const text = encoder.encode(canonical);
  const input = new Uint8Array(prev.length + text.length);
  input.set(prev, 0);
  input.set(text, prev.length);
  return hexOf(await crypto.subtle.digest('SHA-256', input));
}
