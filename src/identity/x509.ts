/**
 * Just enough X.509 for certificate credentials: a DER certificate's validity and its
 * SubjectPublicKeyInfo, read with @peculiar/asn1-x509 (asn1js underneath). Nothing here verifies
 * the certificate's own signature: like Entra, the vault trusts the certificate it was given by
 * an administrator, not a CA.
 */
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate } from '@peculiar/asn1-x509';
import { fromBER, Integer, ObjectIdentifier, Sequence } from 'asn1js';
import { fromBase64, toBase64Url } from '../core/encoding';

export class CertificateFormatError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'CertificateFormatError';
  }
}

/** Exactly one BER element spanning all of `der` (asn1js reports where it stopped). */
function outer(der: Uint8Array) {
  const parsed = fromBER(der);
  if (parsed.offset === -1) throw new CertificateFormatError(parsed.result.error || 'not DER');
  if (parsed.offset !== der.byteLength) throw new CertificateFormatError('trailing bytes after the certificate');
  return parsed.result;
}

/** The named curve OID in an EC AlgorithmIdentifier's parameters. */
function curveOid(parameters: ArrayBuffer | null | undefined): string | undefined {
  if (!parameters) return undefined;
  const parsed = fromBER(parameters);
  return parsed.offset !== -1 && parsed.result instanceof ObjectIdentifier ? parsed.result.getValue() : undefined;
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
  const top = outer(der);
  if (!(top instanceof Sequence)) throw new CertificateFormatError('expected a certificate (SEQUENCE)');
  // PKCS#8, PKCS#1, SEC1 keys and PFX files all start with a version INTEGER; a certificate does not.
  if (top.valueBlock.value[0] instanceof Integer) throw new PrivateKeyMaterialError();
  let cert: Certificate;
  try {
    cert = AsnConvert.parse(der, Certificate);
  } catch {
    throw new CertificateFormatError('not an X.509 certificate');
  }
  const { validity, subjectPublicKeyInfo } = cert.tbsCertificate;
  const notBefore = seconds(validity.notBefore.getTime());
  const notAfter = seconds(validity.notAfter.getTime());
  const algOid = subjectPublicKeyInfo.algorithm.algorithm;
  let keyType: CertificateKeyType;
  let curve: Curve | undefined;
  if (algOid === '1.2.840.113549.1.1.1') {
    keyType = 'RSA';
  } else if (algOid === '1.2.840.10045.2.1') {
    keyType = 'EC';
    curve = CURVES[curveOid(subjectPublicKeyInfo.algorithm.parameters) ?? ''];
    if (!curve) throw new UnsupportedKeyError('EC certificates must use the P-256, P-384 or P-521 curve.');
  } else {
    throw new UnsupportedKeyError(`Public keys of algorithm ${algOid} are not supported: use an RSA or EC certificate.`);
  }
  return { der, notBefore, notAfter, spki: new Uint8Array(AsnConvert.serialize(subjectPublicKeyInfo)), keyType, curve };
}

function seconds(date: Date): number {
  const ms = date.getTime();
  if (!Number.isFinite(ms)) throw new CertificateFormatError('invalid validity time');
  return Math.floor(ms / 1000);
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
  try {
    return fromBase64(b64.replace(/\s+/g, ''));
  } catch {
    throw new CertificateFormatError('not valid base64');
  }
}

/** x5t and x5t#S256 of a DER certificate: base64url SHA-1 and SHA-256 (RFC 7515 4.1.7-8). */
export async function thumbprints(der: Uint8Array): Promise<{ sha1: string; sha256: string }> {
  const [sha1, sha256] = await Promise.all([
    crypto.subtle.digest('SHA-1', der as BufferSource),
    crypto.subtle.digest('SHA-256', der as BufferSource),
  ]);
  return { sha1: toBase64Url(new Uint8Array(sha1)), sha256: toBase64Url(new Uint8Array(sha256)) };
}
