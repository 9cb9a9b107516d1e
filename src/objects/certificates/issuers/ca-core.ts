/**
 * The internal CA's certificate logic without storage: the self-signed root and the leaves it
 * issues from verified CSRs. Kept apart from D1 so the same code runs in Node (tests that hand
 * its output to openssl and node:https) with a signer backed by the same HSM bridge.
 */
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate, KeyUsageFlags } from '@peculiar/asn1-x509';
import { buildCertificate, keyIdentifier, keyUsageFlags, parseSubject } from './certificate-builder';
import { verifyCsr } from './csr';
import type { CaSigner } from './signing';
import type { IssueRequest } from './types';

const DAY_MS = 86_400_000;
/** Root lifetime: long, since relying parties pin it; the key never leaves the HSM. */
export const CA_VALIDITY_DAYS = 3650;
/** Tolerates relying parties whose clocks run a little behind. */
const BACKDATE_MS = 5 * 60_000;
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const MAX_VALIDITY_MONTHS = 120;
// A DNS name or a wildcard in the first label; lowercase letters, digits, hyphens.
const DNS_NAME = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export class IssueError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'IssueError';
  }
}

/** The CA's self-signed certificate: CA:TRUE, pathlen 0 (leaves only), keyCertSign and cRLSign. */
export async function createCaCertificate(signer: CaSigner, subject: string, now = new Date()): Promise<Uint8Array> {
  const name = parseSubject(subject);
  return buildCertificate(
    {
      subject: name,
      issuer: name,
      spki: signer.spki,
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter: new Date(now.getTime() + CA_VALIDITY_DAYS * DAY_MS),
      ca: true,
      keyUsage: KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign | KeyUsageFlags.digitalSignature,
    },
    signer,
  );
}

/**
 * A leaf certificate for the CSR's key, after the CSR's signature verified. The subject and
 * names come from the request (the vault's policy), not from the CSR; validity ends no later than
 * the CA's own.
 */
export async function issueLeaf(
  ca: { signer: CaSigner; certDer: Uint8Array },
  req: IssueRequest,
  now = new Date(),
): Promise<Uint8Array> {
  const csr = await verifyCsr(req.csrDer);
  if (!Number.isInteger(req.validityMonths) || req.validityMonths < 1 || req.validityMonths > MAX_VALIDITY_MONTHS) {
    throw new IssueError(`The validity must be 1 to ${MAX_VALIDITY_MONTHS} months.`);
  }
  const dnsNames = req.dnsNames.map((n) => n.toLowerCase());
  for (const n of dnsNames)
    if (n.length > 253 || !DNS_NAME.test(n)) throw new IssueError(`"${n.slice(0, 100)}" is not a DNS name.`);
  const subject = req.subject.trim() ? parseSubject(req.subject) : csr.subject;
  if (subject.length === 0 && dnsNames.length === 0)
    throw new IssueError('A certificate needs a subject or at least one DNS name.');
  const defaultUsage =
    csr.keyType === 'RSA' ? KeyUsageFlags.digitalSignature | KeyUsageFlags.keyEncipherment : KeyUsageFlags.digitalSignature;
  const keyUsage = req.keyUsage?.length ? keyUsageFlags(req.keyUsage) : defaultUsage;
  if (keyUsage & (KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign))
    throw new IssueError('The internal CA issues end-entity certificates only.');
  for (const oid of req.ekus ?? [])
    if (!/^\d+(\.\d+)+$/.test(oid)) throw new IssueError(`"${oid.slice(0, 100)}" is not an extended key usage OID.`);
  const caCert = AsnConvert.parse(ca.certDer, Certificate);
  const caNotAfter = caCert.tbsCertificate.validity.notAfter.getTime().getTime();
  const notAfter = addMonths(now, req.validityMonths);
  return buildCertificate(
    {
      subject,
      issuer: caCert.tbsCertificate.subject,
      spki: csr.spki,
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter: notAfter.getTime() > caNotAfter ? new Date(caNotAfter) : notAfter,
      ca: false,
      keyUsage,
      ekus: req.ekus?.length ? req.ekus : [SERVER_AUTH, CLIENT_AUTH],
      dnsNames,
      authorityKeyId: await keyIdentifier(ca.signer.spki),
    },
    ca.signer,
  );
}

function addMonths(from: Date, months: number): Date {
  const d = new Date(from.getTime());
  d.setUTCMonth(d.getUTCMonth() + months);
  return d;
}

export function toPem(der: Uint8Array, label = 'CERTIFICATE'): string {
  let b64 = '';
  for (let i = 0; i < der.length; i += 0x8000) b64 += String.fromCharCode(...der.subarray(i, i + 0x8000));
  b64 = btoa(b64);
  return `-----BEGIN ${label}-----\n${b64.replace(/.{1,64}/g, '$&\n')}-----END ${label}-----\n`;
}
