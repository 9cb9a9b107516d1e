/**
 * A throwaway PKI for the TLS tests, made with the openssl CLI: a CA, a server certificate for
 * 127.0.0.1/localhost and client certificates, so mutual TLS is tested with real certificates.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestCert {
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
  /** As Node's getPeerCertificate().fingerprint256 spells it ("AB:CD:…"). */
  fingerprint256: string;
}

export interface TestCa {
  caFile: string;
  caPem: string;
  server(name?: string): TestCert;
  client(name: string): TestCert;
}

const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

function read(certFile: string, keyFile: string): TestCert {
  const cert = readFileSync(certFile, 'utf8');
  return {
    certFile,
    keyFile,
    cert,
    key: readFileSync(keyFile, 'utf8'),
    fingerprint256: new X509Certificate(cert).fingerprint256,
  };
}

/** A CA named `name` whose files live in `dir`. */
export function testCa(dir: string, name: string): TestCa {
  const caFile = join(dir, `${name}.crt`);
  const caKey = join(dir, `${name}.key`);
  openssl([
    'req',
    '-x509',
    ...EC_KEY,
    '-days',
    '1',
    '-subj',
    `/CN=${name}`,
    '-keyout',
    caKey,
    '-out',
    caFile,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const issue = (leaf: string, extensions: string): TestCert => {
    const base = join(dir, `${name}-${leaf}`);
    writeFileSync(`${base}.ext`, extensions);
    openssl(['req', ...EC_KEY, '-subj', `/CN=${leaf}`, '-keyout', `${base}.key`, '-out', `${base}.csr`]);
    openssl([
      'x509',
      '-req',
      '-in',
      `${base}.csr`,
      '-CA',
      caFile,
      '-CAkey',
      caKey,
      '-CAcreateserial',
      '-days',
      '1',
      '-extfile',
      `${base}.ext`,
      '-out',
      `${base}.crt`,
    ]);
    return read(`${base}.crt`, `${base}.key`);
  };
  return {
    caFile,
    caPem: readFileSync(caFile, 'utf8'),
    server: (leaf = 'bridge') => issue(leaf, 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n'),
    client: (leaf) => issue(leaf, 'extendedKeyUsage=clientAuth\n'),
  };
}
