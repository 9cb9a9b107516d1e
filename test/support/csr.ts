/**
 * Certificate requests made the way a client would (its own key, PKCS#10 via @peculiar/x509), for
 * the issuer tests in workerd and in Node alike.
 */
import 'reflect-metadata'; // tsyringe, under @peculiar/x509, needs the Reflect metadata API first
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(crypto);

export const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
export const RSA_2048 = {
  name: 'RSASSA-PKCS1-v1_5',
  hash: 'SHA-256',
  publicExponent: new Uint8Array([1, 0, 1]),
  modulusLength: 2048,
} as const;

/** A CSR for a new key; `dnsNames` go into a SAN extension (ACME CAs check them against the order). */
export async function makeCsr(
  name: string,
  alg: typeof EC_P256 | typeof RSA_2048 = EC_P256,
  dnsNames: string[] = [],
): Promise<{ csrDer: Uint8Array; keys: CryptoKeyPair }> {
  const keys = (await crypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const extensions = dnsNames.length
    ? [new x509.SubjectAlternativeNameExtension(dnsNames.map((value) => ({ type: 'dns' as const, value })))]
    : [];
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name, keys, signingAlgorithm: alg, extensions });
  return { csrDer: new Uint8Array(csr.rawData), keys };
}

export async function privateKeyPem(keys: CryptoKeyPair): Promise<string> {
  return x509.PemConverter.encode((await crypto.subtle.exportKey('pkcs8', keys.privateKey)) as ArrayBuffer, 'PRIVATE KEY');
}

export { x509 };
