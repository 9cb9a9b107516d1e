// X.509 as certificates need it, on the @peculiar/asn1-* schemas: a certificate or CSR is built
// as its to-be-signed DER, its digest signed by whatever holds the key (the Worker for software
// keys, the HSM through the bridge for the others), and assembled; and a certificate is read
// back into what the API shows of it (subject, SANs, usages, validity, key).
import { CertificationRequest, CertificationRequestInfo, Attributes as CsrAttributes } from '@peculiar/asn1-csr';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  AlgorithmIdentifier,
  Attribute,
  AttributeTypeAndValue,
  AttributeValue,
  AuthorityKeyIdentifier,
  Certificate,
  ExtendedKeyUsage,
  Extension,
  Extensions,
  GeneralName,
  id_ce_authorityKeyIdentifier,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
  KeyIdentifier,
  KeyUsage,
  KeyUsageFlags,
  Name,
  OtherName,
  RelativeDistinguishedName,
  SubjectAlternativeName,
  SubjectKeyIdentifier,
  SubjectPublicKeyInfo,
  TBSCertificate,
  Time,
  Validity,
  Version,
} from '@peculiar/asn1-x509';
import { toBase64Url } from '../../core/encoding';
import { badParameter } from '../../core/errors';
import { bs, buffer, ecdsaDer, utf8String } from './der';

/** What a certificate says about its subject (Azure's x509_props, without validity). */
export interface SubjectSpec {
  subject: string;
  sans?: { dns_names?: string[] | null; emails?: string[] | null; upns?: string[] | null } | null;
  key_usage?: string[] | null;
  ekus?: string[] | null;
}

/** Signs a digest with the certificate's key; ES* answer raw r||s (as the key operations do). */
export interface Signer {
  alg: 'RS256' | 'ES256' | 'ES384' | 'ES512';
  spki: Uint8Array;
  sign(digest: Uint8Array): Promise<Uint8Array>;
}

const UPN_OID = '1.3.6.1.4.1.311.20.2.3';
const SIGNATURE_OIDS = {
  RS256: '1.2.840.113549.1.1.11',
  ES256: '1.2.840.10045.4.3.2',
  ES384: '1.2.840.10045.4.3.3',
  ES512: '1.2.840.10045.4.3.4',
} as const;
const HASHES = { RS256: 'SHA-256', ES256: 'SHA-256', ES384: 'SHA-384', ES512: 'SHA-512' } as const;

// Distinguished-name attributes by their usual short names; C and the DC/E ones have fixed string types.
const DN_OIDS: Record<string, string> = {
  CN: '2.5.4.3',
  SERIALNUMBER: '2.5.4.5',
  C: '2.5.4.6',
  L: '2.5.4.7',
  S: '2.5.4.8',
  ST: '2.5.4.8',
  STREET: '2.5.4.9',
  O: '2.5.4.10',
  OU: '2.5.4.11',
  T: '2.5.4.12',
  DC: '0.9.2342.19200300.100.1.25',
  E: '1.2.840.113549.1.9.1',
  EMAILADDRESS: '1.2.840.113549.1.9.1',
};
const DN_NAMES: Record<string, string> = Object.fromEntries(
  Object.entries(DN_OIDS)
    .filter(([n]) => n !== 'ST' && n !== 'EMAILADDRESS')
    .map(([n, oid]) => [oid, n]),
);

const KEY_USAGES: Record<string, KeyUsageFlags> = {
  digitalSignature: KeyUsageFlags.digitalSignature,
  nonRepudiation: KeyUsageFlags.nonRepudiation,
  keyEncipherment: KeyUsageFlags.keyEncipherment,
  dataEncipherment: KeyUsageFlags.dataEncipherment,
  keyAgreement: KeyUsageFlags.keyAgreement,
  keyCertSign: KeyUsageFlags.keyCertSign,
  cRLSign: KeyUsageFlags.cRLSign,
  encipherOnly: KeyUsageFlags.encipherOnly,
  decipherOnly: KeyUsageFlags.decipherOnly,
};
export const KEY_USAGE_NAMES = Object.keys(KEY_USAGES);

/** Parses Azure's subject ("CN=a, O=b"); BadParameter for anything it cannot place. */
export function parseSubject(subject: string): Name {
  const rdns: RelativeDistinguishedName[] = [];
  // Commas inside double quotes or escaped with a backslash belong to the value.
  const parts = subject.match(/(?:[^,\\"]|\\.|"[^"]*")+/g) ?? [];
  for (const raw of parts) {
    const part = raw.trim();
    if (!part) continue;
    const eq = part.indexOf('=');
    const type = eq > 0 ? part.slice(0, eq).trim().toUpperCase() : '';
    const oid = DN_OIDS[type];
    let value = eq > 0 ? part.slice(eq + 1).trim() : '';
    if (value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    value = value.replace(/\\(.)/g, '$1');
    if (!oid || !value || value.length > 256)
      throw badParameter(`The subject '${subject.slice(0, 64)}' is not a valid X.500 distinguished name.`);
    const attr =
      type === 'C'
        ? new AttributeValue({ printableString: value })
        : type === 'E' || type === 'EMAILADDRESS' || type === 'DC'
          ? new AttributeValue({ ia5String: value })
          : new AttributeValue({ utf8String: value });
    rdns.push(new RelativeDistinguishedName([new AttributeTypeAndValue({ type: oid, value: attr })]));
  }
  if (rdns.length === 0) throw badParameter('The subject must name at least one attribute, e.g. CN=example.com.');
  return new Name(rdns);
}

/** A Name as Azure prints subjects: "CN=a, O=b". */
export function formatName(name: Name): string {
  return name
    .map((rdn) =>
      rdn
        .map((atv) => {
          const label = DN_NAMES[atv.type] ?? atv.type;
          const value = atv.value.toString().replace(/([,+"\\<>;])/g, '\\$1');
          return `${label}=${value}`;
        })
        .join('+'),
    )
    .join(', ');
}

function extensionsOf(spec: SubjectSpec, skid: Uint8Array, authorityKeyId?: Uint8Array): Extension[] {
  const ext = (id: string, critical: boolean, value: unknown) =>
    new Extension({ extnID: id, critical, extnValue: new OctetString(AsnConvert.serialize(value)) });
  const out: Extension[] = [];
  const names: GeneralName[] = [];
  for (const dns of spec.sans?.dns_names ?? []) names.push(new GeneralName({ dNSName: dns }));
  for (const email of spec.sans?.emails ?? []) names.push(new GeneralName({ rfc822Name: email }));
  for (const upn of spec.sans?.upns ?? [])
    names.push(new GeneralName({ otherName: new OtherName({ typeId: UPN_OID, value: buffer(utf8String(upn)) }) }));
  if (names.length) out.push(ext(id_ce_subjectAltName, false, new SubjectAlternativeName(names)));
  if (spec.key_usage?.length) {
    let flags = 0;
    for (const usage of spec.key_usage) flags |= KEY_USAGES[usage]!;
    out.push(ext(id_ce_keyUsage, true, new KeyUsage(flags)));
  }
  if (spec.ekus?.length) out.push(ext(id_ce_extKeyUsage, false, new ExtendedKeyUsage(spec.ekus)));
  out.push(ext(id_ce_subjectKeyIdentifier, false, new SubjectKeyIdentifier(buffer(skid))));
  if (authorityKeyId)
    out.push(
      ext(
        id_ce_authorityKeyIdentifier,
        false,
        new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(buffer(authorityKeyId)) }),
      ),
    );
  return out;
}

/** RFC 5280's method 1 key identifier: SHA-1 of the subjectPublicKey bits. */
async function keyIdentifier(spki: Uint8Array): Promise<Uint8Array> {
  const info = AsnConvert.parse(spki, SubjectPublicKeyInfo);
  return new Uint8Array(await crypto.subtle.digest('SHA-1', info.subjectPublicKey));
}

function signatureAlgorithm(alg: Signer['alg']): AlgorithmIdentifier {
  // RSA signature algorithms carry an explicit NULL; ECDSA ones carry nothing.
  return alg === 'RS256'
    ? new AlgorithmIdentifier({ algorithm: SIGNATURE_OIDS.RS256, parameters: buffer(Uint8Array.of(5, 0)) })
    : new AlgorithmIdentifier({ algorithm: SIGNATURE_OIDS[alg] });
}

async function signDer(signer: Signer, tbs: Uint8Array): Promise<Uint8Array> {
  const digest = new Uint8Array(await crypto.subtle.digest(HASHES[signer.alg], bs(tbs)));
  const raw = await signer.sign(digest);
  return signer.alg === 'RS256' ? raw : ecdsaDer(raw);
}

const time = (seconds: number) => {
  const d = new Date(seconds * 1000);
  // RFC 5280: UTCTime through 2049, GeneralizedTime from 2050.
  return d.getUTCFullYear() < 2050 ? new Time({ utcTime: d }) : new Time({ generalTime: d });
};

/** Adds calendar months, as a validity in months is meant (clamped to the month's last day). */
export function addMonths(seconds: number, months: number): number {
  const d = new Date(seconds * 1000);
  const day = d.getUTCDate();
  d.setUTCDate(1);
  d.setUTCMonth(d.getUTCMonth() + months);
  const last = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0)).getUTCDate();
  d.setUTCDate(Math.min(day, last));
  return Math.floor(d.getTime() / 1000);
}

/** A self-signed certificate (issuer Self) for `signer`'s key, valid from `notBefore` for `validityMonths`. */
export async function selfSigned(
  spec: SubjectSpec,
  validityMonths: number,
  signer: Signer,
  notBefore: number,
): Promise<Uint8Array> {
  const subject = parseSubject(spec.subject);
  const skid = await keyIdentifier(signer.spki);
  const serial = crypto.getRandomValues(new Uint8Array(16));
  serial[0] = (serial[0]! & 0x7f) | 0x01;
  const tbs = new TBSCertificate({
    version: Version.v3,
    serialNumber: buffer(serial),
    signature: signatureAlgorithm(signer.alg),
    issuer: subject,
    validity: new Validity({ notBefore: new Date(0), notAfter: new Date(0) }),
    subject,
    subjectPublicKeyInfo: AsnConvert.parse(signer.spki, SubjectPublicKeyInfo),
    extensions: new Extensions(extensionsOf(spec, skid, skid)),
  });
  tbs.validity.notBefore = time(notBefore);
  tbs.validity.notAfter = time(addMonths(notBefore, validityMonths));
  const tbsDer = new Uint8Array(AsnConvert.serialize(tbs));
  const signature = await signDer(signer, tbsDer);
  const cert = new Certificate({
    tbsCertificate: tbs,
    signatureAlgorithm: signatureAlgorithm(signer.alg),
    signatureValue: buffer(signature),
  });
  return new Uint8Array(AsnConvert.serialize(cert));
}

/** A PKCS#10 request for `signer`'s key, its extensions asked for in an extensionRequest. */
export async function certificationRequest(spec: SubjectSpec, signer: Signer): Promise<Uint8Array> {
  const skid = await keyIdentifier(signer.spki);
  const extensions = new Extensions(extensionsOf(spec, skid));
  const info = new CertificationRequestInfo({
    version: 0,
    subject: parseSubject(spec.subject),
    subjectPKInfo: AsnConvert.parse(signer.spki, SubjectPublicKeyInfo),
    attributes: new CsrAttributes([new Attribute({ type: '1.2.840.113549.1.9.14', values: [AsnConvert.serialize(extensions)] })]),
  });
  const infoDer = new Uint8Array(AsnConvert.serialize(info));
  const signature = await signDer(signer, infoDer);
  const csr = new CertificationRequest({
    certificationRequestInfo: info,
    signatureAlgorithm: signatureAlgorithm(signer.alg),
    signature: buffer(signature),
  });
  return new Uint8Array(AsnConvert.serialize(csr));
}

/** What the API shows of a certificate, read from its DER. */
export interface CertificateInfo {
  der: Uint8Array;
  subject: string;
  issuer: string;
  selfIssued: boolean;
  notBefore: number;
  notAfter: number;
  spki: Uint8Array;
  /** base64url SHA-1 of the DER (Azure's x5t). */
  x5t: string;
  sans: { dns_names?: string[]; emails?: string[]; upns?: string[] };
  keyUsage: string[];
  ekus: string[];
}

/** Reads a DER certificate; BadParameter if it is not one. */
export async function readCertificate(der: Uint8Array): Promise<CertificateInfo> {
  let cert: Certificate;
  try {
    cert = AsnConvert.parse(der, Certificate);
  } catch {
    throw badParameter('The certificate is not a valid DER-encoded X.509 certificate.');
  }
  const tbs = cert.tbsCertificate;
  const sans: CertificateInfo['sans'] = {};
  let keyUsage: string[] = [];
  let ekus: string[] = [];
  for (const e of tbs.extensions ?? []) {
    const value = e.extnValue.buffer;
    if (e.extnID === id_ce_subjectAltName) {
      for (const n of AsnConvert.parse(value, SubjectAlternativeName)) {
        if (n.dNSName) (sans.dns_names ??= []).push(n.dNSName);
        if (n.rfc822Name) (sans.emails ??= []).push(n.rfc822Name);
        if (n.otherName?.typeId === UPN_OID)
          (sans.upns ??= []).push(new TextDecoder().decode(new Uint8Array(n.otherName.value).subarray(2)));
      }
    } else if (e.extnID === id_ce_keyUsage) {
      keyUsage = AsnConvert.parse(value, KeyUsage)
        .toJSON()
        .map((u) => (u === 'crlSign' ? 'cRLSign' : u));
    } else if (e.extnID === id_ce_extKeyUsage) {
      ekus = [...AsnConvert.parse(value, ExtendedKeyUsage)];
    }
  }
  const subject = formatName(tbs.subject);
  const issuer = formatName(tbs.issuer);
  return {
    der,
    subject,
    issuer,
    selfIssued: subject === issuer,
    notBefore: Math.floor(tbs.validity.notBefore.getTime().getTime() / 1000),
    notAfter: Math.floor(tbs.validity.notAfter.getTime().getTime() / 1000),
    spki: new Uint8Array(AsnConvert.serialize(tbs.subjectPublicKeyInfo)),
    x5t: toBase64Url(new Uint8Array(await crypto.subtle.digest('SHA-1', bs(der)))),
    sans,
    keyUsage,
    ekus,
  };
}
