/**
 * Just enough X.509 for certificate credentials: split a DER certificate into its validity and
 * its SubjectPublicKeyInfo, with a strict DER reader (web APIs only, no dependency). Nothing here
 * verifies the certificate's own signature: like Entra, the vault trusts the certificate it was
 * given by an administrator, not a CA.
 */
import { toBase64Url } from '../core/encoding';

export class CertificateFormatError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'CertificateFormatError';
  }
}

interface Tlv {
  tag: number;
  /** Where the element starts (its tag byte) and where its content starts and ends. */
  start: number;
  contentStart: number;
  end: number;
}

function readTlv(bytes: Uint8Array, pos: number, limit: number): Tlv {
  if (pos + 2 > limit) throw new CertificateFormatError('truncated DER element');
  const tag = bytes[pos]!;
  if ((tag & 0x1f) === 0x1f) throw new CertificateFormatError('multi-byte DER tags are not used in certificates');
  let length = bytes[pos + 1]!;
  let contentStart = pos + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0 || count > 4) throw new CertificateFormatError('unsupported DER length');
    if (contentStart + count > limit) throw new CertificateFormatError('truncated DER length');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + bytes[contentStart + i]!;
    contentStart += count;
    if (length < 0x80 || (count > 1 && bytes[pos + 2] === 0)) throw new CertificateFormatError('non-minimal DER length');
  }
  const end = contentStart + length;
  if (end > limit) throw new CertificateFormatError('DER element overruns its container');
  return { tag, start: pos, contentStart, end };
}

/** The direct children of a constructed element. */
function children(bytes: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let pos = parent.contentStart; pos < parent.end; ) {
    const child = readTlv(bytes, pos, parent.end);
    out.push(child);
    pos = child.end;
  }
  return out;
}

function expectTag(el: Tlv | undefined, tag: number, what: string): Tlv {
  if (!el || el.tag !== tag) throw new CertificateFormatError(`expected ${what}`);
  return el;
}

function oid(bytes: Uint8Array, el: Tlv): string {
  const content = bytes.subarray(el.contentStart, el.end);
  if (content.length === 0) throw new CertificateFormatError('empty OID');
  const parts: number[] = [];
  let value = 0;
  for (const b of content) {
    value = value * 128 + (b & 0x7f);
    if (!(b & 0x80)) {
      if (parts.length === 0) parts.push(value < 80 ? Math.floor(value / 40) : 2, value < 80 ? value % 40 : value - 80);
      else parts.push(value);
      value = 0;
    }
  }
  return parts.join('.');
}

function time(bytes: Uint8Array, el: Tlv): number {
  const text = String.fromCharCode(...bytes.subarray(el.contentStart, el.end));
  let m: RegExpExecArray | null;
  let year: number;
  if (el.tag === 0x17 && (m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text))) {
    const yy = Number(m[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy; // RFC 5280 4.1.2.5.1
  } else if (el.tag === 0x18 && (m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text))) {
    year = Number(m[1]);
  } else {
    throw new CertificateFormatError('invalid validity time');
  }
  const ms = Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  if (!Number.isFinite(ms)) throw new CertificateFormatError('invalid validity time');
  return Math.floor(ms / 1000);
}

export type CertificateKeyType = 'RSA' | 'EC';
export type Curve = 'P-256' | 'P-384' | 'P-521';

const CURVES: Record<string, Curve> = {
  '1.2.840.10045.3.1.7': 'P-256',
  '1.3.132.0.34': 'P-384',
  '1.3.132.0.35': 'P-521',
};

export interface ParsedCertificate {
  der: Uint8Array;
  notBefore: number;
  notAfter: number;
  /** The DER SubjectPublicKeyInfo, as WebCrypto imports it ('spki'). */
  spki: Uint8Array;
  keyType: CertificateKeyType;
  curve?: Curve;
}

/**
 * Parses a DER X.509 certificate (v1-v3). Refuses anything that is not exactly one certificate,
 * and recognises private keys and PFX files (a SEQUENCE that starts with a version INTEGER) so
 * they can be refused as such.
 */
export function parseCertificate(der: Uint8Array): ParsedCertificate {
  const cert = expectTag(readTlv(der, 0, der.length), 0x30, 'a certificate (SEQUENCE)');
  if (cert.end !== der.length) throw new CertificateFormatError('trailing bytes after the certificate');
  const top = children(der, cert);
  if (top[0]?.tag === 0x02) throw new PrivateKeyMaterialError();
  if (top.length !== 3) throw new CertificateFormatError('not an X.509 certificate');
  const tbs = children(der, expectTag(top[0], 0x30, 'tbsCertificate'));
  let i = tbs[0]?.tag === 0xa0 ? 1 : 0; // [0] EXPLICIT version
  expectTag(tbs[i++], 0x02, 'serialNumber');
  expectTag(tbs[i++], 0x30, 'signature algorithm');
  expectTag(tbs[i++], 0x30, 'issuer');
  const validity = children(der, expectTag(tbs[i++], 0x30, 'validity'));
  if (validity.length !== 2) throw new CertificateFormatError('invalid validity');
  const notBefore = time(der, validity[0]!);
  const notAfter = time(der, validity[1]!);
  expectTag(tbs[i++], 0x30, 'subject');
  const spkiEl = expectTag(tbs[i++], 0x30, 'subjectPublicKeyInfo');
  const [algEl, keyEl] = children(der, spkiEl);
  expectTag(keyEl, 0x03, 'subjectPublicKey');
  const alg = children(der, expectTag(algEl, 0x30, 'public key algorithm'));
  const algOid = oid(der, expectTag(alg[0], 0x06, 'public key algorithm OID'));
  let keyType: CertificateKeyType;
  let curve: Curve | undefined;
  if (algOid === '1.2.840.113549.1.1.1') {
    keyType = 'RSA';
  } else if (algOid === '1.2.840.10045.2.1') {
    keyType = 'EC';
    curve = CURVES[oid(der, expectTag(alg[1], 0x06, 'named curve'))];
    if (!curve) throw new UnsupportedKeyError('EC certificates must use the P-256, P-384 or P-521 curve.');
  } else {
    throw new UnsupportedKeyError(`Public keys of algorithm ${algOid} are not supported: use an RSA or EC certificate.`);
  }
  return { der, notBefore, notAfter, spki: der.slice(spkiEl.start, spkiEl.end), keyType, curve };
}

export class PrivateKeyMaterialError extends Error {
  constructor() {
    super('The input contains private key material; upload only the public certificate.');
    this.name = 'PrivateKeyMaterialError';
  }
}

export class UnsupportedKeyError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'UnsupportedKeyError';
  }
}

/**
 * The DER bytes of a certificate given as PEM (exactly one CERTIFICATE block) or as standard
 * base64 of the DER (what Entra's keyCredentials take). Private key blocks are refused outright.
 */
export function certificateDer(input: string): Uint8Array {
  if (/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(input) || /-----BEGIN PKCS12-----/.test(input)) {
    throw new PrivateKeyMaterialError();
  }
  let b64 = input;
  if (input.includes('-----BEGIN')) {
    const blocks = [...input.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g)];
    if (blocks.length !== 1 || blocks[0]![1] !== 'CERTIFICATE') {
      throw new CertificateFormatError('a PEM input must hold exactly one CERTIFICATE block');
    }
    b64 = blocks[0]![2]!;
  }
  b64 = b64.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || b64.length % 4 !== 0) throw new CertificateFormatError('not valid base64');
  const binary = atob(b64);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

export const toBase64 = (bytes: Uint8Array): string => {
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
};

/** x5t and x5t#S256 of a DER certificate: base64url SHA-1 and SHA-256 (RFC 7515 4.1.7-8). */
export async function thumbprints(der: Uint8Array): Promise<{ sha1: string; sha256: string }> {
  const [sha1, sha256] = await Promise.all([
    crypto.subtle.digest('SHA-1', der as BufferSource),
    crypto.subtle.digest('SHA-256', der as BufferSource),
  ]);
  return { sha1: toBase64Url(new Uint8Array(sha1)), sha256: toBase64Url(new Uint8Array(sha256)) };
}
