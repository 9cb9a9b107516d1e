// The few DER pieces the @peculiar/asn1-* schemas do not cover for us: reading the elements of a
// SEQUENCE whose schema has no class there (CMS EncryptedData, PBES2 parameters), and encoding the
// handful of primitives certificates need (lengths, INTEGER pairs of ECDSA signatures, strings).
import { badParameter } from '../../core/errors';

export interface Tlv {
  tag: number;
  /** The whole element (tag, length, content). */
  der: Uint8Array;
  content: Uint8Array;
}

/** The elements of a DER SEQUENCE (or of any constructed element's content). */
export function children(der: Uint8Array): Tlv[] {
  const outer = readTlv(der, 0);
  const out: Tlv[] = [];
  let pos = 0;
  const content = outer.content;
  while (pos < content.length) {
    const el = readTlv(content, pos);
    out.push(el);
    pos += el.der.length;
  }
  return out;
}

export function readTlv(bytes: Uint8Array, pos: number): Tlv {
  if (pos + 2 > bytes.length) throw malformed();
  const tag = bytes[pos]!;
  let length = bytes[pos + 1]!;
  let start = pos + 2;
  if (length & 0x80) {
    const n = length & 0x7f;
    if (n === 0 || n > 4 || start + n > bytes.length) throw malformed();
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + bytes[start + i]!;
    start += n;
  }
  if (start + length > bytes.length) throw malformed();
  return { tag, der: bytes.subarray(pos, start + length), content: bytes.subarray(start, start + length) };
}

const malformed = () => badParameter('The certificate content is not valid DER.');

export function length(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  const bytes: number[] = [];
  while (n > 0) {
    bytes.unshift(n & 0xff);
    n = Math.floor(n / 256);
  }
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

export function element(tag: number, content: Uint8Array): Uint8Array {
  return concat(Uint8Array.of(tag), length(content.length), content);
}

/** An unsigned big-endian number as a DER INTEGER's content (minimal, positive). */
function integerContent(bytes: Uint8Array): Uint8Array {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const trimmed = bytes.subarray(i);
  return trimmed[0]! & 0x80 ? concat(Uint8Array.of(0), trimmed) : trimmed;
}

/** ECDSA's raw r||s (JWS, the HSM bridge) as X.509's ECDSA-Sig-Value. */
export function ecdsaDer(raw: Uint8Array): Uint8Array {
  const half = raw.length / 2;
  return element(
    0x30,
    concat(element(0x02, integerContent(raw.subarray(0, half))), element(0x02, integerContent(raw.subarray(half)))),
  );
}

export const utf8String = (text: string) => element(0x0c, new TextEncoder().encode(text));

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

/** Bytes as WebCrypto's signatures type them (DOM's lib wants an ArrayBuffer-backed view). */
export const bs = (bytes: Uint8Array) => bytes as Uint8Array<ArrayBuffer>;

/** The bytes of a buffer-like value as the asn1 classes want them (an exact ArrayBuffer). */
export const buffer = (bytes: Uint8Array): ArrayBuffer => bytes.slice().buffer as ArrayBuffer;

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

export function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

/** Standard base64 (cer, csr, x5c, PFX) with whitespace tolerated; BadParameter otherwise. */
export function fromBase64(text: string, what: string): Uint8Array {
  const clean = text.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(clean)) throw badParameter(`The ${what} is not valid base64.`);
  try {
    return Uint8Array.from(atob(clean), (ch) => ch.charCodeAt(0));
  } catch {
    throw badParameter(`The ${what} is not valid base64.`);
  }
}
