// PEM as certificates exchange it (application/x-pem-file): Azure's secret of a PEM certificate
// holds the private key first, then the chain; an import may bring the blocks in any order.
import { badParameter } from '../../core/errors';
import { fromBase64, toBase64 } from './der';

function block(label: string, der: Uint8Array): string {
  const b64 = toBase64(der).replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}-----END ${label}-----\n`;
}

/** The PEM of a certificate's secret: the PKCS#8 key (when exportable) then the chain, leaf first. */
export function writePem(certs: Uint8Array[], pkcs8: Uint8Array | null): string {
  return (pkcs8 ? block('PRIVATE KEY', pkcs8) : '') + certs.map((c) => block('CERTIFICATE', c)).join('');
}

/** The certificates and PKCS#8 key of a PEM file; encrypted or PKCS#1 keys are refused. */
export function readPem(text: string): { certs: Uint8Array[]; pkcs8: Uint8Array | null } {
  const certs: Uint8Array[] = [];
  let pkcs8: Uint8Array | null = null;
  const re = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
  for (const m of text.matchAll(re)) {
    const label = m[1]!;
    if (label === 'CERTIFICATE') certs.push(fromBase64(m[2]!, 'PEM certificate'));
    else if (label === 'PRIVATE KEY') pkcs8 ??= fromBase64(m[2]!, 'PEM private key');
    else if (label === 'ENCRYPTED PRIVATE KEY' || label === 'RSA PRIVATE KEY' || label === 'EC PRIVATE KEY') {
      throw badParameter(`The PEM private key must be an unencrypted PKCS#8 "PRIVATE KEY" block, not "${label}".`);
    }
  }
  if (certs.length === 0)
    throw badParameter('The specified PEM X.509 certificate content is in an unexpected format: no CERTIFICATE block.');
  return { certs, pkcs8 };
}
