/**
 * Reading a PKCS#10 request before anyone issues for it: the request's own signature must verify
 * under the key it carries (proof the requester holds that key), and only keys and signature
 * algorithms worth certifying are accepted.
 */
import { CertificationRequest } from '@peculiar/asn1-csr';
import { AsnConvert } from '@peculiar/asn1-schema';
import { type Name } from '@peculiar/asn1-x509';
import { ecdsaDerToRaw } from './signing';

export interface VerifiedCsr {
  subject: Name;
  /** DER SubjectPublicKeyInfo of the requester's key. */
  spki: Uint8Array;
  keyType: 'EC' | 'RSA';
}

export class CsrError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'CsrError';
  }
}

const SIG_ALGS: Record<string, { kind: 'EC' | 'RSA'; hash: string }> = {
  '1.2.840.10045.4.3.2': { kind: 'EC', hash: 'SHA-256' },
  '1.2.840.10045.4.3.3': { kind: 'EC', hash: 'SHA-384' },
  '1.2.840.10045.4.3.4': { kind: 'EC', hash: 'SHA-512' },
  '1.2.840.113549.1.1.11': { kind: 'RSA', hash: 'SHA-256' },
  '1.2.840.113549.1.1.12': { kind: 'RSA', hash: 'SHA-384' },
  '1.2.840.113549.1.1.13': { kind: 'RSA', hash: 'SHA-512' },
};
/** namedCurve parameters (DER OBJECT IDENTIFIER, hex) of the curves accepted. */
const CURVES: Record<string, { name: string; size: number }> = {
  '06082a8648ce3d030107': { name: 'P-256', size: 32 },
  '06052b81040022': { name: 'P-384', size: 48 },
  '06052b81040023': { name: 'P-521', size: 66 },
};
const EC_PUBLIC_KEY = '1.2.840.10045.2.1';
const RSA_ENCRYPTION = '1.2.840.113549.1.1.1';
const MIN_RSA_BITS = 2048;

/** Parses and verifies a DER CSR; CsrError says what is wrong (no key material in the message). */
export async function verifyCsr(der: Uint8Array): Promise<VerifiedCsr> {
  let csr: CertificationRequest;
  try {
    csr = AsnConvert.parse(der, CertificationRequest);
  } catch {
    throw new CsrError('The CSR is not a DER PKCS#10 certification request.');
  }
  const info = csr.certificationRequestInfo;
  const spkiInfo = info.subjectPKInfo;
  const spki = new Uint8Array(AsnConvert.serialize(spkiInfo));
  const sigAlg = SIG_ALGS[csr.signatureAlgorithm.algorithm];
  if (!sigAlg) throw new CsrError('The CSR is signed with an unsupported algorithm.');
  const keyAlg = spkiInfo.algorithm.algorithm;
  let params: { name: 'ECDSA'; namedCurve: string } | { name: 'RSASSA-PKCS1-v1_5'; hash: string };
  let signature: Uint8Array = new Uint8Array(csr.signature);
  if (keyAlg === EC_PUBLIC_KEY && sigAlg.kind === 'EC') {
    const curve = spkiInfo.algorithm.parameters ? CURVES[hex(spkiInfo.algorithm.parameters)] : undefined;
    if (!curve) throw new CsrError('The CSR key is on an unsupported curve.');
    params = { name: 'ECDSA', namedCurve: curve.name };
    const raw = ecdsaDerToRaw(signature, curve.size);
    if (!raw) throw new CsrError('The CSR signature does not verify.');
    signature = raw;
  } else if (keyAlg === RSA_ENCRYPTION && sigAlg.kind === 'RSA') {
    params = { name: 'RSASSA-PKCS1-v1_5', hash: sigAlg.hash };
  } else {
    throw new CsrError('The CSR key type is unsupported or does not match its signature algorithm.');
  }
  let key: CryptoKey;
  try {
    key = await crypto.subtle.importKey('spki', spki as BufferSource, params, false, ['verify']);
  } catch {
    throw new CsrError('The CSR public key is malformed.');
  }
  if (params.name === 'RSASSA-PKCS1-v1_5' && ((key.algorithm as { modulusLength?: number }).modulusLength ?? 0) < MIN_RSA_BITS) {
    throw new CsrError(`The CSR RSA key is shorter than ${MIN_RSA_BITS} bits.`);
  }
  const signed = csr.certificationRequestInfoRaw ?? AsnConvert.serialize(info);
  const verifyAlg = params.name === 'ECDSA' ? { name: 'ECDSA', hash: sigAlg.hash } : { name: 'RSASSA-PKCS1-v1_5' };
  const ok = await crypto.subtle.verify(verifyAlg, key, signature as BufferSource, signed);
  if (!ok) throw new CsrError('The CSR signature does not verify.');
  return { subject: info.subject, spki, keyType: sigAlg.kind };
}

function hex(bytes: ArrayBuffer): string {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, '0')).join('');
}
