// The internal CA in workerd: a per-vault root whose key is generated in the real HSM (SoftHSM2
// through the bridge), leaves issued from verified CSRs, and the public CA download on the apex.
import { describe, expect, it } from 'vitest';
import { BridgeClient } from '../../src/crypto/bridge-client';
import { InternalCa } from '../../src/objects/certificates/issuers/internal-ca';
import type { IssueRequest } from '../../src/objects/certificates/issuers/types';
import { database } from '../../src/storage/db';
import { findVault } from '../../src/storage/vaults';
import { makeCsr, RSA_2048, x509 } from '../support/csr';
import { APEX, call, env, setupVault } from './helpers';

async function vaultCa(keySpec?: ConstructorParameters<typeof InternalCa>[3]) {
  const { vault: name } = await setupVault();
  const db = database(env.DB);
  const vault = (await findVault(db, name))!;
  return { name, ca: new InternalCa(db, new BridgeClient(env.BRIDGE_URL, env.BRIDGE_HMAC_SECRET), vault, keySpec) };
}

async function request(overrides: Partial<IssueRequest> = {}): Promise<IssueRequest> {
  const { csrDer } = await makeCsr('CN=ignored-by-the-ca');
  return {
    csrDer,
    subject: 'CN=app.example.test, O=Example',
    dnsNames: ['app.example.test', '*.app.example.test'],
    validityMonths: 12,
    ...overrides,
  };
}

describe('internal CA', () => {
  it('issues a leaf that chains to the vault CA, with the extensions a TLS client checks', async () => {
    const { ca } = await vaultCa();
    const outcome = await ca.issue(await request());
    if (outcome.status !== 'issued') throw new Error(JSON.stringify(outcome));
    expect(outcome.result.chainDer).toHaveLength(2);
    const [leaf, root] = outcome.result.chainDer.map((der) => new x509.X509Certificate(der));
    expect(await leaf!.verify({ publicKey: root!.publicKey, signatureOnly: true })).toBe(true);
    expect(await root!.isSelfSigned()).toBe(true);
    expect(leaf!.issuer).toBe(root!.subject);
    expect(leaf!.subject).toBe('CN=app.example.test, O=Example');
    expect(root!.getExtension(x509.BasicConstraintsExtension)).toMatchObject({ ca: true, critical: true });
    expect(leaf!.getExtension(x509.BasicConstraintsExtension)).toMatchObject({ ca: false, critical: true });
    expect(leaf!.getExtension(x509.KeyUsagesExtension)!.usages).toBe(x509.KeyUsageFlags.digitalSignature);
    expect(leaf!.getExtension(x509.ExtendedKeyUsageExtension)!.usages).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    expect(leaf!.getExtension(x509.SubjectAlternativeNameExtension)!.names.toJSON()).toEqual([
      { type: 'dns', value: 'app.example.test' },
      { type: 'dns', value: '*.app.example.test' },
    ]);
    const ski = root!.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId;
    expect(leaf!.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId).toBe(ski);
    // 16 random bytes, positive.
    expect(leaf!.serialNumber).toMatch(/^[0-7][0-9a-f]{31}$/);
    const months = (leaf!.notAfter.getTime() - Date.now()) / (30.44 * 86_400_000);
    expect(months).toBeGreaterThan(11.5);
    expect(months).toBeLessThan(12.5);
  });

  it('keeps one CA per vault, also when two first issuances race', async () => {
    const { ca } = await vaultCa();
    const [a, b] = await Promise.all([ca.ensure(), ca.ensure()]);
    expect(a.certDer).toEqual(b.certDer);
    const outcome = await ca.issue(await request());
    expect(outcome.status === 'issued' && outcome.result.chainDer[1]).toEqual(a.certDer);
  });

  it('issues for RSA CSRs (keyEncipherment by default) and honours requested usages', async () => {
    const { ca } = await vaultCa({ kty: 'RSA', size: 2048 });
    const { csrDer } = await makeCsr('CN=rsa', RSA_2048);
    const outcome = await ca.issue({ csrDer, subject: 'CN=rsa.example.test', dnsNames: [], validityMonths: 1 });
    if (outcome.status !== 'issued') throw new Error(JSON.stringify(outcome));
    const [leaf, root] = outcome.result.chainDer.map((der) => new x509.X509Certificate(der));
    expect(root!.signatureAlgorithm).toMatchObject({ name: 'RSASSA-PKCS1-v1_5' });
    expect(await leaf!.verify({ publicKey: root!.publicKey, signatureOnly: true })).toBe(true);
    expect(leaf!.getExtension(x509.KeyUsagesExtension)!.usages).toBe(
      x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
    );
    const custom = await ca.issue(
      await request({ keyUsage: ['digitalSignature', 'nonRepudiation'], ekus: ['1.3.6.1.5.5.7.3.4'] }),
    );
    if (custom.status !== 'issued') throw new Error(JSON.stringify(custom));
    const leaf2 = new x509.X509Certificate(custom.result.chainDer[0]!);
    expect(leaf2.getExtension(x509.KeyUsagesExtension)!.usages).toBe(
      x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.nonRepudiation,
    );
    expect(leaf2.getExtension(x509.ExtendedKeyUsageExtension)!.usages).toEqual(['1.3.6.1.5.5.7.3.4']);
  });

  it('refuses a CSR whose signature does not verify, garbage, CA usages and bad names', async () => {
    const { ca } = await vaultCa();
    const good = await request();
    const tampered = good.csrDer.slice();
    tampered[tampered.length - 10]! ^= 0x01;
    expect(await ca.issue({ ...good, csrDer: tampered })).toEqual({
      status: 'failed',
      error: 'The CSR signature does not verify.',
    });
    expect(await ca.issue({ ...good, csrDer: new Uint8Array([1, 2, 3]) })).toEqual({
      status: 'failed',
      error: 'The CSR is not a DER PKCS#10 certification request.',
    });
    expect(await ca.issue({ ...good, keyUsage: ['keyCertSign'] })).toMatchObject({
      status: 'failed',
      error: 'The internal CA issues end-entity certificates only.',
    });
    expect(await ca.issue({ ...good, dnsNames: ['not a name'] })).toMatchObject({ status: 'failed' });
    expect(await ca.issue({ ...good, subject: 'XX=what' })).toMatchObject({ status: 'failed' });
    expect(await ca.issue({ ...good, validityMonths: 0 })).toMatchObject({ status: 'failed' });
  });

  it('serves the CA certificate without authentication, as DER and PEM', async () => {
    const { name, ca } = await vaultCa();
    expect((await call('GET', `${APEX}/pki/${name}/ca.crt`)).status).toBe(404);
    const { certDer } = await ca.ensure();
    const der = await call('GET', `${APEX}/pki/${name}/ca.crt`);
    expect(der.status).toBe(200);
    expect(der.headers.get('content-type')).toBe('application/pkix-cert');
    expect(new Uint8Array(await der.arrayBuffer())).toEqual(certDer);
    const pem = await call('GET', `${APEX}/pki/${name.toUpperCase()}/ca.pem`);
    expect(pem.status).toBe(200);
    expect(new x509.X509Certificate(await pem.text()).rawData).toEqual(certDer.buffer);
    expect((await call('GET', `${APEX}/pki/nosuchvault/ca.crt`)).status).toBe(404);
    expect((await call('GET', `${APEX}/pki/${name}/ca.key`)).status).toBe(404);
  });
});
