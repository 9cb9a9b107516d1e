/**
 * The development CA: one CA per state directory and a server certificate for the local zone.
 *
 * Azure SDKs only speak HTTPS (keyvault-common refuses http URLs), so local development needs a
 * certificate clients can trust without turning verification off: they trust this CA through
 * NODE_EXTRA_CA_CERTS. Node refuses wildcards with fewer than three labels, so the server
 * certificate names `*.vault.localhost` (vault hosts) next to the apex `vault.localhost`.
 */
import { webcrypto } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import 'reflect-metadata'; // tsyringe, under @peculiar/x509, needs the Reflect metadata API loaded first
import * as x509 from '@peculiar/x509';
import { readTextIfExists, writePrivateFile } from './files.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;

export interface DevCa {
  /** Absolute path of the CA certificate (PEM): what clients put in NODE_EXTRA_CA_CERTS. */
  caCertPath: string;
  caPem: string;
  /** Server certificate and key (PEM) for the local zone, for `wrangler dev --https-*-path`. */
  certPath: string;
  keyPath: string;
}

export function serverNames(zone: string): string[] {
  return ['localhost', zone, `*.${zone}`];
}

async function importPrivateKey(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decodeFirst(pem);
  return webcrypto.subtle.importKey('pkcs8', der, EC, false, ['sign']) as Promise<CryptoKey>;
}

async function exportPrivateKey(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key as webcrypto.CryptoKey);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

async function generateKeys(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']) as Promise<CryptoKeyPair>;
}

async function createCa(caCertPath: string, caKeyPath: string): Promise<{ cert: x509.X509Certificate; key: CryptoKey }> {
  const keys = await generateKeys();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=Edge Key Vault Development CA ${new Date(now).toISOString().slice(0, 10)}`,
    notBefore: new Date(now - DAY_MS),
    notAfter: new Date(now + 3650 * DAY_MS),
    signingAlgorithm: SIGNING,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  await writePrivateFile(caKeyPath, await exportPrivateKey(keys.privateKey));
  await writeFile(caCertPath, cert.toString('pem') + '\n');
  return { cert, key: keys.privateKey };
}

/** A server certificate is reused only if this CA issued it, it names the zone and lives 30 more days. */
async function serverCertUsable(pem: string | undefined, ca: x509.X509Certificate, zone: string): Promise<boolean> {
  if (!pem) return false;
  try {
    const cert = new x509.X509Certificate(pem);
    if (cert.notAfter.getTime() < Date.now() + 30 * DAY_MS) return false;
    if (!(await cert.verify({ publicKey: ca.publicKey, signatureOnly: true }))) return false;
    const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
    const dns = new Set(san?.names.items.filter((n) => n.type === 'dns').map((n) => n.value));
    return serverNames(zone).every((name) => dns.has(name));
  } catch {
    return false;
  }
}

async function createServerCert(ca: x509.X509Certificate, caKey: CryptoKey, zone: string, certPath: string, keyPath: string) {
  const keys = await generateKeys();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    subject: `CN=${zone}`,
    issuer: ca.subject,
    notBefore: new Date(now - DAY_MS),
    notAfter: new Date(now + 397 * DAY_MS),
    signingAlgorithm: SIGNING,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...serverNames(zone).map((value) => ({ type: 'dns' as const, value })),
        { type: 'ip' as const, value: '127.0.0.1' },
      ]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca),
    ],
  });
  await writePrivateFile(keyPath, await exportPrivateKey(keys.privateKey));
  await writeFile(certPath, cert.toString('pem') + '\n');
}

/** Creates the CA once per `dir` and (re)issues the server certificate when needed. */
export async function ensureDevCa(dir: string, zone: string): Promise<DevCa> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const caCertPath = join(dir, 'ca.pem');
  const caKeyPath = join(dir, 'ca-key.pem');
  const certPath = join(dir, 'server.pem');
  const keyPath = join(dir, 'server-key.pem');

  const [caPemOnDisk, caKeyPem] = await Promise.all([readTextIfExists(caCertPath), readTextIfExists(caKeyPath)]);
  const { cert: ca, key: caKey } =
    caPemOnDisk && caKeyPem
      ? { cert: new x509.X509Certificate(caPemOnDisk), key: await importPrivateKey(caKeyPem) }
      : await createCa(caCertPath, caKeyPath);

  if (!(await serverCertUsable(await readTextIfExists(certPath), ca, zone))) {
    await createServerCert(ca, caKey, zone, certPath, keyPath);
  }
  return { caCertPath, caPem: ca.toString('pem') + '\n', certPath, keyPath };
}
