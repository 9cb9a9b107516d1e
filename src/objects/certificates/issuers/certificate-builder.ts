/**
 * Builds X.509 v3 certificates (RFC 5280) from parts: the TBSCertificate is assembled with the
 * @peculiar ASN.1 schemas, DER-encoded, hashed here and signed by a CaSigner (the HSM for the
 * internal CA), then wrapped with its signature. Used for the CA's own self-signed certificate
 * and for the leaves it issues.
 */
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  AttributeTypeAndValue,
  AttributeValue,
  AuthorityKeyIdentifier,
  BasicConstraints,
  Certificate,
  ExtendedKeyUsage,
  Extension,
  Extensions,
  GeneralName,
  KeyIdentifier,
  KeyUsage,
  KeyUsageFlags,
  Name,
  RelativeDistinguishedName,
  SubjectAlternativeName,
  SubjectKeyIdentifier,
  TBSCertificate,
  Validity,
  Version,
  id_ce_authorityKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
} from '@peculiar/asn1-x509';
import { algorithmIdentifier, digest, parseSpki, type CaSigner } from './signing';

export interface CertificateParts {
  subject: Name;
  issuer: Name;
  /** DER SubjectPublicKeyInfo of the certified key. */
  spki: Uint8Array;
  notBefore: Date;
  notAfter: Date;
  ca: boolean;
  /** KeyUsageFlags bits. */
  keyUsage: number;
  ekus?: string[];
  dnsNames?: string[];
  /** The issuer's key identifier (its SKI); absent for a self-signed certificate (= own SKI). */
  authorityKeyId?: Uint8Array;
}

/** Signs the certificate described by `parts` with `signer`; returns its DER. */
export async function buildCertificate(parts: CertificateParts, signer: CaSigner): Promise<Uint8Array> {
  const ski = await keyIdentifier(parts.spki);
  const extensions: Extension[] = [
    ext(id_ce_basicConstraints, true, new BasicConstraints(parts.ca ? { cA: true, pathLenConstraint: 0 } : { cA: false })),
    ext(id_ce_keyUsage, true, new KeyUsage(parts.keyUsage)),
    ext(id_ce_subjectKeyIdentifier, false, new SubjectKeyIdentifier(ski)),
    ext(
      id_ce_authorityKeyIdentifier,
      false,
      new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(parts.authorityKeyId ?? ski) }),
    ),
  ];
  if (parts.ekus?.length) extensions.push(ext(id_ce_extKeyUsage, false, new ExtendedKeyUsage(parts.ekus)));
  if (parts.dnsNames?.length) {
    // Critical when the subject is empty, as RFC 5280 §4.2.1.6 requires.
    const critical = parts.subject.length === 0;
    extensions.push(
      ext(
        id_ce_subjectAltName,
        critical,
        new SubjectAlternativeName(parts.dnsNames.map((dNSName) => new GeneralName({ dNSName }))),
      ),
    );
  }
  const signatureAlgorithm = algorithmIdentifier(signer.alg);
  const tbs = new TBSCertificate({
    version: Version.v3,
    serialNumber: serialNumber(),
    signature: signatureAlgorithm,
    issuer: parts.issuer,
    validity: new Validity({ notBefore: parts.notBefore, notAfter: parts.notAfter }),
    subject: parts.subject,
    subjectPublicKeyInfo: parseSpki(parts.spki),
    extensions: new Extensions(extensions),
  });
  const tbsDer = new Uint8Array(AsnConvert.serialize(tbs));
  const signature = await signer.signDigest(await digest(signer.alg, tbsDer));
  const cert = new Certificate({ tbsCertificate: tbs, signatureAlgorithm, signatureValue: signature.slice().buffer });
  return new Uint8Array(AsnConvert.serialize(cert));
}

/** 16 random bytes, high bit clear (a positive INTEGER) and first byte non-zero (minimal DER). */
export function serialNumber(): ArrayBuffer {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] = bytes[0]! & 0x7f || 0x01;
  return bytes.buffer;
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING's bytes. */
export async function keyIdentifier(spki: Uint8Array): Promise<Uint8Array> {
  const key = parseSpki(spki).subjectPublicKey;
  return new Uint8Array(await crypto.subtle.digest('SHA-1', key));
}

function ext(extnID: string, critical: boolean, value: object): Extension {
  return new Extension({ extnID, critical, extnValue: new OctetString(AsnConvert.serialize(value)) });
}

// Distinguished names as strings ("CN=leaf, O=Org"), encoded in the order written, as
// @peculiar/x509 parses and prints them, so a subject reads back exactly as it was given.
const ATTRIBUTES: Record<string, { oid: string; kind: 'utf8String' | 'printableString' | 'ia5String' }> = {
  CN: { oid: '2.5.4.3', kind: 'utf8String' },
  O: { oid: '2.5.4.10', kind: 'utf8String' },
  OU: { oid: '2.5.4.11', kind: 'utf8String' },
  L: { oid: '2.5.4.7', kind: 'utf8String' },
  S: { oid: '2.5.4.8', kind: 'utf8String' },
  ST: { oid: '2.5.4.8', kind: 'utf8String' },
  C: { oid: '2.5.4.6', kind: 'printableString' },
  STREET: { oid: '2.5.4.9', kind: 'utf8String' },
  SERIALNUMBER: { oid: '2.5.4.5', kind: 'printableString' },
  DC: { oid: '0.9.2342.19200300.100.1.25', kind: 'ia5String' },
  E: { oid: '1.2.840.113549.1.9.1', kind: 'ia5String' },
  EMAILADDRESS: { oid: '1.2.840.113549.1.9.1', kind: 'ia5String' },
};

export class SubjectError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'SubjectError';
  }
}

/** Parses "CN=a, O=b" (commas inside values escaped as "\,") into a Name, RDNs in that order. */
export function parseSubject(subject: string): Name {
  const rdns: RelativeDistinguishedName[] = [];
  const parts = subject.trim() === '' ? [] : subject.split(/(?<!\\),/);
  for (const part of parts) {
    const eq = part.indexOf('=');
    const type = part.slice(0, eq).trim().toUpperCase();
    const value = part
      .slice(eq + 1)
      .trim()
      .replace(/\\(.)/g, '$1');
    const attr = ATTRIBUTES[type];
    if (eq < 0 || !attr || !value)
      throw new SubjectError(`The subject "${subject.slice(0, 200)}" is not a distinguished name this vault understands.`);
    if (attr.kind === 'printableString' && !/^[A-Za-z0-9 '()+,\-./:=?]+$/.test(value)) {
      throw new SubjectError(`The subject attribute ${type} must be printable ASCII.`);
    }
    rdns.push(
      new RelativeDistinguishedName([
        new AttributeTypeAndValue({ type: attr.oid, value: new AttributeValue({ [attr.kind]: value }) }),
      ]),
    );
  }
  return new Name(rdns);
}

/** KeyUsageFlags from Azure's key usage names; unknown names are refused. */
export function keyUsageFlags(names: string[]): number {
  let flags = 0;
  for (const name of names) {
    const flag = (KeyUsageFlags as unknown as Record<string, number>)[name];
    if (typeof flag !== 'number') throw new SubjectError(`Unknown key usage "${name.slice(0, 50)}".`);
    flags |= flag;
  }
  return flags;
}

export { KeyUsageFlags };
