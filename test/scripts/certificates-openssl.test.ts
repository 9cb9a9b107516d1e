// The real-tool check of what the certificates API hands out: the vault's own X.509, CSR, PKCS#12
// and PEM code (the modules the Worker runs) writes files, and OpenSSL must read them; and a PFX
// that OpenSSL writes must read back. Runs in Node (the worker suite cannot start processes).
import { execFileSync } from 'node:child_process';
import { timingSafeEqual } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSoftwareKey, sign } from '../../src/crypto/keys';
import { pkcs8Of, signingAlgorithm, spkiOf } from '../../src/objects/certificates/key-formats';
import { writePem } from '../../src/objects/certificates/pem';
import { readPfx, writePfx } from '../../src/objects/certificates/pkcs12';
import { certificationRequest, readCertificate, selfSigned } from '../../src/objects/certificates/x509';

// workerd has crypto.subtle.timingSafeEqual (the software keys use it); Node's WebCrypto does not.
const subtle = crypto.subtle as SubtleCrypto & { timingSafeEqual?: (a: Uint8Array, b: Uint8Array) => boolean };
subtle.timingSafeEqual ??= (a, b) => a.byteLength === b.byteLength && timingSafeEqual(a, b);

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ekv-certs-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const openssl = (...args: string[]) => execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const spec = {
  subject: 'CN=openssl.example.com, O=Edge Key Vault',
  sans: { dns_names: ['openssl.example.com'], emails: ['ops@example.com'], upns: ['svc@corp.example'] },
  key_usage: ['digitalSignature', 'keyEncipherment'],
  ekus: ['1.3.6.1.5.5.7.3.1'],
};

describe.each([
  { kty: 'RSA', size: 3072 },
  { kty: 'EC', crv: 'P-256' },
] as const)('$kty certificates as OpenSSL reads them', (keySpec) => {
  it('reads the PFX (no password), the PEM with its key first, the certificate and the CSR', async () => {
    const key = await generateSoftwareKey(keySpec as never);
    const alg = signingAlgorithm(key.publicJwk);
    const signer = { alg, spki: await spkiOf(key.publicJwk), sign: (d: Uint8Array) => sign(key.privateJwk, alg, d) };
    const der = await selfSigned(spec, 12, signer, Math.floor(Date.now() / 1000));
    const pkcs8 = await pkcs8Of(key.privateJwk);
    const pfxPath = join(dir, `${keySpec.kty}.pfx`);
    const pemPath = join(dir, `${keySpec.kty}.pem`);
    const csrPath = join(dir, `${keySpec.kty}.csr`);
    writeFileSync(pfxPath, await writePfx([der], pkcs8));
    writeFileSync(pemPath, writePem([der], pkcs8));
    writeFileSync(csrPath, await certificationRequest(spec, signer));

    const certs = openssl('pkcs12', '-in', pfxPath, '-nokeys', '-passin', 'pass:');
    expect(certs).toContain('-----BEGIN CERTIFICATE-----');
    expect(certs).toContain('subject=CN = openssl.example.com, O = Edge Key Vault');
    expect(openssl('pkcs12', '-in', pfxPath, '-nocerts', '-nodes', '-passin', 'pass:')).toContain('-----BEGIN PRIVATE KEY-----');

    const pem = readFileSync(pemPath, 'utf8');
    expect(pem.startsWith('-----BEGIN PRIVATE KEY-----\n')).toBe(true);
    const text = openssl('x509', '-in', pemPath, '-noout', '-text');
    expect(text).toContain('DNS:openssl.example.com, email:ops@example.com, othername: UPN::svc@corp.example');
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature, Key Encipherment/);
    expect(text).toContain('TLS Web Server Authentication');
    expect(text).toContain(keySpec.kty === 'RSA' ? 'sha256WithRSAEncryption' : 'ecdsa-with-SHA256');
    // Self-signed: it verifies against itself; the PEM's key is the certificate's.
    expect(openssl('verify', '-CAfile', pemPath, pemPath)).toContain(': OK');
    const certKey = openssl('x509', '-in', pemPath, '-noout', '-pubkey');
    expect(openssl('pkey', '-in', pemPath, '-pubout')).toBe(certKey);
    // -verify exits non-zero when the CSR's self-signature does not verify.
    openssl('req', '-inform', 'DER', '-in', csrPath, '-noout', '-verify');

    const info = await readCertificate(der);
    const notAfter = openssl('x509', '-in', pemPath, '-noout', '-enddate').trim().replace('notAfter=', '');
    expect(Date.parse(notAfter) / 1000).toBe(info.notAfter);
  });
});

describe('a PFX that OpenSSL writes', () => {
  it('reads back with its password (PBES2), and is refused with a wrong one', async () => {
    const keyPath = join(dir, 'o.key');
    const crtPath = join(dir, 'o.crt');
    const pfxPath = join(dir, 'o.pfx');
    openssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      keyPath,
      '-out',
      crtPath,
      '-subj',
      '/CN=from-openssl',
      '-days',
      '30',
    );
    openssl('pkcs12', '-export', '-inkey', keyPath, '-in', crtPath, '-passout', 'pass:s3cret', '-out', pfxPath);
    const parsed = await readPfx(readFileSync(pfxPath), 's3cret');
    expect(parsed.certs).toHaveLength(1);
    expect((await readCertificate(parsed.certs[0]!)).subject).toBe('CN=from-openssl');
    expect(parsed.pkcs8).not.toBeNull();
    await expect(readPfx(readFileSync(pfxPath), 'wrong')).rejects.toMatchObject({ code: 'BadParameter' });
  });
});
