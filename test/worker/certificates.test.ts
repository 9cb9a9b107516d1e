/** The Certificates API over HTTP: every route in Azure's shapes, issuance, import, merge, and the managed key and secret. */
import 'reflect-metadata'; // tsyringe, under @peculiar/x509, needs the Reflect metadata API first
import * as x509 from '@peculiar/x509';
import * as pkijs from 'pkijs';
import { createExecutionContext, createScheduledController, waitOnExecutionContext } from 'cloudflare:test';
import { and, eq } from 'drizzle-orm';
import { beforeAll, describe, expect, it } from 'vitest';
import worker from '../../src/index';
import type { Env } from '../../src/core/env';
import { database } from '../../src/storage/db';
import { certificatePolicies, certificates, keys, secrets } from '../../src/storage/schema';
import { findVault } from '../../src/storage/vaults';
import { API, APEX, call, env, json, setupVault } from './helpers';
import { EC_PEM, FIXTURE_PASSWORD, RSA_LEGACY_PFX, RSA_PFX } from './certificate-fixtures';

x509.cryptoProvider.set(crypto);

let token: string;
let origin: string;
let vault: string;
let protectedVault: Awaited<ReturnType<typeof setupVault>>;

beforeAll(async () => {
  ({ token, origin, vault } = await setupVault());
  protectedVault = await setupVault({ enablePurgeProtection: true });
});

const req = (method: string, path: string, body?: unknown) =>
  call(method, `${origin}${path}${path.includes('?') ? '&' : '?'}${API}`, { token, body });
const b64 = (text: string) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
const b64url = (text: string) => b64(text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4));

const selfPolicy = (extra: Record<string, unknown> = {}) => ({
  issuer: { name: 'Self' },
  x509_props: {
    subject: 'CN=app.example.com, O=Edge',
    sans: { dns_names: ['app.example.com', 'www.example.com'], emails: ['ops@example.com'], upns: ['svc@corp.example'] },
    validity_months: 6,
  },
  ...extra,
});

async function create(name: string, policy: unknown, extra: Record<string, unknown> = {}) {
  const res = await req('POST', `/certificates/${name}/create`, { policy, ...extra });
  return { res, body: await json(res) };
}

/** The PFX's certificates and whether it holds a key, read with pkijs (unencrypted bags, MAC checked). */
async function openPfx(der: Uint8Array, password = '') {
  const pfx = pkijs.PFX.fromBER(der);
  await pfx.parseInternalValues({ password: new TextEncoder().encode(password).buffer as ArrayBuffer, checkIntegrity: true });
  const safe = pfx.parsedValue!.authenticatedSafe!;
  await safe.parseInternalValues({ safeContents: safe.safeContents.map(() => ({})) });
  const bags: pkijs.SafeBag[] = safe.parsedValue.safeContents.flatMap((s: { value: pkijs.SafeContents }) => s.value.safeBags);
  return {
    certs: bags
      .filter((b) => b.bagId === '1.2.840.113549.1.12.10.1.3')
      .map((b) => new x509.X509Certificate((b.bagValue as pkijs.CertBag).parsedValue.toSchema().toBER())),
    hasKey: bags.some((b) => b.bagId === '1.2.840.113549.1.12.10.1.1'),
  };
}

describe('create with issuer Self', () => {
  it('answers 202 with the operation as accepted, Location and Retry-After, and issues the certificate as a key and a secret', async () => {
    const { res, body: op } = await create(
      'self-rsa',
      selfPolicy({ lifetime_actions: [{ trigger: { days_before_expiry: 30 }, action: { action_type: 'AutoRenew' } }] }),
      { tags: { env: 'test' } },
    );
    expect(res.status).toBe(202);
    expect(res.headers.get('location')).toMatch(
      new RegExp(`^${origin}/certificates/self-rsa/pending\\?api-version=7\\.6&request_id=[0-9a-f]{32}$`),
    );
    expect(res.headers.get('retry-after')).toBe('10');
    expect(op).toMatchObject({
      id: `${origin}/certificates/self-rsa/pending`,
      issuer: { name: 'Self' },
      cancellation_requested: false,
      // As Azure answers a create, even though Self issued at once: the outcome is read at /pending.
      status: 'inProgress',
    });
    expect(op.target).toBeUndefined();
    expect(typeof op.csr).toBe('string');
    const csr = new x509.Pkcs10CertificateRequest(b64(op.csr));
    expect(await csr.verify()).toBe(true);

    const pending = await json(await req('GET', '/certificates/self-rsa/pending'));
    expect(pending).toMatchObject({ status: 'completed', target: `${origin}/certificates/self-rsa` });

    const cert = await json(await req('GET', '/certificates/self-rsa'));
    const version = cert.id.split('/').pop();
    expect(cert).toMatchObject({
      id: `${origin}/certificates/self-rsa/${version}`,
      kid: `${origin}/keys/self-rsa/${version}`,
      sid: `${origin}/secrets/self-rsa/${version}`,
      contentType: 'application/x-pkcs12',
      tags: { env: 'test' },
      attributes: { enabled: true, recoveryLevel: 'Recoverable+Purgeable', recoverableDays: 90 },
      policy: {
        id: `${origin}/certificates/self-rsa/policy`,
        key_props: { exportable: true, kty: 'RSA', key_size: 2048, reuse_key: false },
        secret_props: { contentType: 'application/x-pkcs12' },
        x509_props: {
          subject: 'CN=app.example.com, O=Edge',
          key_usage: ['digitalSignature', 'keyEncipherment'],
          ekus: ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'],
          validity_months: 6,
        },
        lifetime_actions: [{ trigger: { days_before_expiry: 30 }, action: { action_type: 'AutoRenew' } }],
        issuer: { name: 'Self' },
        attributes: { enabled: true },
      },
    });
    expect(version).toMatch(/^[0-9a-f]{32}$/);

    const x = new x509.X509Certificate(b64(cert.cer));
    expect(x.subject).toBe('CN=app.example.com, O=Edge');
    expect(await x.isSelfSigned()).toBe(true);
    expect(x.signatureAlgorithm.hash.name).toBe('SHA-256');
    expect(Math.floor(x.notAfter.getTime() / 1000)).toBe(cert.attributes.exp);
    expect(Math.floor(x.notBefore.getTime() / 1000)).toBe(cert.attributes.nbf);
    expect(cert.attributes.exp - cert.attributes.nbf).toBeGreaterThan(180 * 86400);
    expect(cert.attributes.exp - cert.attributes.nbf).toBeLessThan(185 * 86400);
    const san = x.getExtension(x509.SubjectAlternativeNameExtension)!;
    expect(san.names.items.map((n) => `${n.type}:${n.value}`)).toEqual([
      'dns:app.example.com',
      'dns:www.example.com',
      'email:ops@example.com',
      'upn:svc@corp.example',
    ]);
    const ku = x.getExtension(x509.KeyUsagesExtension)!;
    expect(ku.usages).toBe(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment);
    expect(x.getExtension(x509.ExtendedKeyUsageExtension)!.usages).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    const thumb = new Uint8Array(await crypto.subtle.digest('SHA-1', b64(cert.cer)));
    expect(b64url(cert.x5t)).toEqual(thumb);

    // The key: the certificate's public key, managed, usable per its key usage.
    const key = await json(await req('GET', `/keys/self-rsa/${version}`));
    expect(key).toMatchObject({
      key: { kid: `${origin}/keys/self-rsa/${version}`, kty: 'RSA' },
      managed: true,
      attributes: { enabled: true, exp: cert.attributes.exp },
    });
    expect(key.key.key_ops.sort()).toEqual(['sign', 'unwrapKey', 'verify', 'wrapKey']);
    const spki = (await crypto.subtle.exportKey('jwk', await x.publicKey.export())) as JsonWebKey;
    expect(key.key.n).toBe(spki.n);

    // The secret: a PFX (no password) of the certificate with its key.
    const secret = await json(await req('GET', `/secrets/self-rsa/${version}`));
    expect(secret).toMatchObject({
      id: `${origin}/secrets/self-rsa/${version}`,
      contentType: 'application/x-pkcs12',
      kid: `${origin}/keys/self-rsa/${version}`,
      managed: true,
    });
    const pfx = await openPfx(b64(secret.value));
    expect(pfx.hasKey).toBe(true);
    expect(new Uint8Array(pfx.certs[0]!.rawData)).toEqual(b64(cert.cer));
  });

  it('makes EC certificates with a PEM secret, private key first, and signs with the key through the keys API', async () => {
    const { body: op } = await create(
      'self-ec',
      selfPolicy({ key_props: { kty: 'EC', crv: 'P-384' }, secret_props: { contentType: 'application/x-pem-file' } }),
    );
    expect(op.status).toBe('inProgress');
    expect((await json(await req('GET', '/certificates/self-ec/pending'))).status).toBe('completed');
    const cert = await json(await req('GET', '/certificates/self-ec'));
    const version = cert.id.split('/').pop();
    const x = new x509.X509Certificate(b64(cert.cer));
    expect(x.signatureAlgorithm).toMatchObject({ name: 'ECDSA', hash: { name: 'SHA-384' } });
    expect(await x.verify({ signatureOnly: true })).toBe(true);
    const secret = await json(await req('GET', `/secrets/self-ec/${version}`));
    expect(secret.contentType).toBe('application/x-pem-file');
    expect(secret.value).toMatch(/^-----BEGIN PRIVATE KEY-----\n[\s\S]+-----END PRIVATE KEY-----\n-----BEGIN CERTIFICATE-----\n/);
    const certPem = secret.value.slice(secret.value.indexOf('-----BEGIN CERTIFICATE-----'));
    expect(new Uint8Array(new x509.X509Certificate(certPem).rawData)).toEqual(b64(cert.cer));

    const data = new TextEncoder().encode('signed by the certificate key');
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-384', data));
    const toUrl = (b: Uint8Array) =>
      btoa(String.fromCharCode(...b))
        .replace(/\+/g, '-')
        .replace(/\//g, '_')
        .replace(/=+$/, '');
    const signed = await json(await req('POST', `/keys/self-ec/${version}/sign`, { alg: 'ES384', value: toUrl(digest) }));
    const pub = await x.publicKey.export({ name: 'ECDSA', namedCurve: 'P-384' }, ['verify']);
    expect(await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-384' }, pub, b64url(signed.value), data)).toBe(true);
    expect((await json(await req('GET', `/keys/self-ec/${version}`))).key.key_ops).toEqual(['sign', 'verify']);
  });

  it('keeps an RSA-HSM key in the HSM: signed there, and the secret holds the certificate without its key', async () => {
    await create('self-hsm', selfPolicy({ key_props: { kty: 'RSA-HSM', key_size: 2048 } }));
    expect((await json(await req('GET', '/certificates/self-hsm/pending'))).status).toBe('completed');
    const cert = await json(await req('GET', '/certificates/self-hsm'));
    const version = cert.id.split('/').pop();
    const x = new x509.X509Certificate(b64(cert.cer));
    expect(await x.isSelfSigned()).toBe(true);
    const key = await json(await req('GET', `/keys/self-hsm/${version}`));
    expect(key.key.kty).toBe('RSA-HSM');
    const secret = await json(await req('GET', `/secrets/self-hsm/${version}`));
    const pfx = await openPfx(b64(secret.value));
    expect(pfx.hasKey).toBe(false);
    expect(pfx.certs).toHaveLength(1);
    // Backing up a certificate whose key cannot leave the HSM is refused, as a key backup is.
    expect((await req('POST', '/certificates/self-hsm/backup')).status).toBe(400);
  });

  it('makes non-exportable keys in the HSM too', async () => {
    await create('self-noexport', selfPolicy({ key_props: { kty: 'EC', exportable: false } }));
    const cert = await json(await req('GET', '/certificates/self-noexport'));
    const version = cert.id.split('/').pop();
    expect((await json(await req('GET', `/keys/self-noexport/${version}`))).key.kty).toBe('EC-HSM');
    const secret = await json(await req('GET', `/secrets/self-noexport/${version}`));
    expect((await openPfx(b64(secret.value))).hasKey).toBe(false);
    expect(cert.policy.key_props).toMatchObject({ exportable: false, kty: 'EC', crv: 'P-256' });
  });

  it('refuses bad policies with 400 BadParameter', async () => {
    for (const policy of [
      selfPolicy({ key_props: { kty: 'RSA', key_size: 1024 } }),
      { issuer: { name: 'Self' }, x509_props: {} },
      selfPolicy({ x509_props: { subject: 'not a dn' } }),
      selfPolicy({ secret_props: { contentType: 'text/plain' } }),
      {
        issuer: { name: 'Unknown' },
        x509_props: { subject: 'CN=x' },
        lifetime_actions: [{ trigger: { lifetime_percentage: 80 }, action: { action_type: 'AutoRenew' } }],
      },
      selfPolicy({ x509_props: { subject: 'CN=x', key_usage: ['signEverything'] } }),
      { issuer: { name: 'NoSuchIssuer' }, x509_props: { subject: 'CN=x' } },
    ]) {
      const { res, body } = await create('bad-policy', policy);
      expect(res.status, JSON.stringify(policy)).toBe(400);
      expect(body.error.code).toBe('BadParameter');
    }
    expect((await req('GET', '/certificates/bad-policy')).status).toBe(404);
  });
});

describe('reads, updates, lists', () => {
  it('answers 404 CertificateNotFound for unknown names and versions', async () => {
    for (const path of ['/certificates/nope', '/certificates/nope/policy', `/certificates/nope/${'0'.repeat(32)}`]) {
      const res = await req('GET', path);
      expect(res.status).toBe(404);
      expect((await json(res)).error.code).toBe('CertificateNotFound');
    }
    expect((await json(await req('GET', '/certificates/nope/pending'))).error.code).toBe('PendingCertificateNotFound');
  });

  it('lists certificates and versions, updates attributes, tags and policy; disabling reaches key and secret', async () => {
    await create('lifecycle', selfPolicy());
    await create('lifecycle', null);
    const versions = await json(await req('GET', '/certificates/lifecycle/versions'));
    expect(versions.value).toHaveLength(2);
    expect(versions.value[0]).toMatchObject({
      id: expect.stringMatching(/\/certificates\/lifecycle\/[0-9a-f]{32}$/),
      x5t: expect.any(String),
      attributes: { enabled: true },
    });
    const list = await json(await req('GET', '/certificates?maxresults=25'));
    expect(list.value.map((i: { id: string }) => i.id)).toContain(`${origin}/certificates/lifecycle`);
    expect(list.nextLink).toBeNull();

    const latest = await json(await req('GET', '/certificates/lifecycle/'));
    const version = latest.id.split('/').pop();
    const patched = await json(
      await req('PATCH', `/certificates/lifecycle/${version}`, { attributes: { enabled: false }, tags: { team: 'a' } }),
    );
    expect(patched).toMatchObject({ attributes: { enabled: false }, tags: { team: 'a' } });
    expect((await json(await req('GET', `/keys/lifecycle/${version}`))).attributes.enabled).toBe(false);
    const secret = await req('GET', `/secrets/lifecycle/${version}`);
    expect(secret.status).toBe(403);
    expect((await json(secret)).error.innererror.code).toBe('SecretDisabled');

    const policy = await json(
      await req('PATCH', '/certificates/lifecycle/policy', {
        x509_props: { validity_months: 24 },
        lifetime_actions: [{ trigger: { lifetime_percentage: 90 }, action: { action_type: 'EmailContacts' } }],
      }),
    );
    expect(policy).toMatchObject({
      x509_props: { validity_months: 24, subject: 'CN=app.example.com, O=Edge' },
      lifetime_actions: [{ trigger: { lifetime_percentage: 90 }, action: { action_type: 'EmailContacts' } }],
      issuer: { name: 'Self' },
    });
    expect((await json(await req('GET', '/certificates/lifecycle/policy'))).x509_props.validity_months).toBe(24);
    expect((await req('PATCH', '/certificates/lifecycle/policy', { key_props: { key_size: 512 } })).status).toBe(400);
  });

  it('reuses the key for a new version when the policy says reuse_key, and makes a new one otherwise', async () => {
    await create('reuse', selfPolicy({ key_props: { reuse_key: true } }));
    await create('reuse', null);
    const versions = (await json(await req('GET', '/certificates/reuse/versions'))).value.map((v: { id: string }) =>
      v.id.split('/').pop(),
    );
    const moduli = await Promise.all(versions.map(async (v: string) => (await json(await req('GET', `/keys/reuse/${v}`))).key.n));
    expect(moduli[0]).toBe(moduli[1]);
    await req('PATCH', '/certificates/reuse/policy', { key_props: { reuse_key: false } });
    await create('reuse', null);
    const latest = (await json(await req('GET', '/certificates/reuse'))).kid.split('/').pop();
    expect((await json(await req('GET', `/keys/reuse/${latest}`))).key.n).not.toBe(moduli[0]);
  });

  it('refuses direct writes to the managed key and secret with 403, as Azure does', async () => {
    await create('managed', selfPolicy());
    const del = await req('DELETE', '/keys/managed');
    expect(del.status).toBe(403);
    expect((await json(del)).error.innererror.code).toBe('KeyManagedByKeyVault');
    const set = await req('PUT', '/secrets/managed', { value: 'x' });
    expect(set.status).toBe(403);
    expect(await json(set)).toMatchObject({ error: { code: 'Forbidden', innererror: { code: 'SecretManagedByKeyVault' } } });
    expect((await req('PATCH', '/keys/managed', { attributes: { enabled: false } })).status).toBe(403);
    expect((await req('DELETE', '/secrets/managed')).status).toBe(403);
    expect((await req('POST', '/keys/managed/create', { kty: 'RSA' })).status).toBe(403);
  });
});

describe('issuer Unknown: CSR, then merge', () => {
  it('keeps the operation inProgress with its CSR, refuses a mismatched chain, and merges the CA-issued one (201)', async () => {
    const { res, body: op } = await create('csr-cert', {
      issuer: { name: 'Unknown' },
      x509_props: { subject: 'CN=csr.example.com', sans: { dns_names: ['csr.example.com'] } },
    });
    expect(res.status).toBe(202);
    expect(op).toMatchObject({ status: 'inProgress', issuer: { name: 'Unknown' }, cancellation_requested: false });
    expect(op.status_details).toMatch(/in progress/);
    expect(op.target).toBeUndefined();
    // As on Azure, the pending first version reads as disabled, without a certificate.
    const pending = await json(await req('GET', '/certificates/csr-cert'));
    expect(pending.attributes.enabled).toBe(false);
    expect(pending.cer).toBeUndefined();
    expect((await json(await req('GET', '/certificates/csr-cert/policy'))).lifetime_actions[0].action.action_type).toBe(
      'EmailContacts',
    );

    const csr = new x509.Pkcs10CertificateRequest(b64(op.csr));
    expect(await csr.verify()).toBe(true);
    expect(csr.subject).toBe('CN=csr.example.com');

    const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };
    const caKeys = (await crypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
    const ca = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: 'CN=Test CA',
      keys: caKeys,
      signingAlgorithm: alg,
      extensions: [new x509.BasicConstraintsExtension(true, 0, true)],
    });
    const issue = async (publicKey: x509.PublicKey | CryptoKey) =>
      x509.X509CertificateGenerator.create({
        serialNumber: '02',
        subject: 'CN=csr.example.com',
        issuer: ca.subject,
        publicKey,
        signingKey: caKeys.privateKey,
        signingAlgorithm: alg,
      });
    const other = (await crypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
    const wrong = await issue(other.publicKey);
    const refused = await req('POST', '/certificates/csr-cert/pending/merge', { x5c: [wrong.toString('base64')] });
    expect(refused.status).toBe(400);
    expect((await json(refused)).error.code).toBe('BadParameter');

    const leaf = await issue(csr.publicKey);
    const merged = await req('POST', '/certificates/csr-cert/pending/merge', {
      x5c: [leaf.toString('base64'), ca.toString('base64')],
    });
    expect(merged.status).toBe(201);
    const bundle = await json(merged);
    expect(bundle.cer).toBe(leaf.toString('base64'));
    expect(bundle.policy.issuer.name).toBe('Unknown');
    expect((await json(await req('GET', '/certificates/csr-cert/pending'))).status).toBe('completed');
    const secret = await json(await req('GET', `/secrets/csr-cert/${bundle.id.split('/').pop()}`));
    const pfx = await openPfx(b64(secret.value));
    expect(pfx.hasKey).toBe(true);
    expect(pfx.certs.map((c: x509.X509Certificate) => c.subject)).toEqual(['CN=csr.example.com', 'CN=Test CA']);
    // Nothing left to merge.
    expect((await req('POST', '/certificates/csr-cert/pending/merge', { x5c: [leaf.toString('base64')] })).status).toBe(404);
  });

  it('cancels and deletes a pending operation', async () => {
    await create('to-cancel', { issuer: { name: 'Unknown' }, x509_props: { subject: 'CN=c' } });
    const again = await create('to-cancel', { issuer: { name: 'Unknown' }, x509_props: { subject: 'CN=c' } });
    expect(again.res.status).toBe(409);
    const cancelled = await json(await req('PATCH', '/certificates/to-cancel/pending', { cancellation_requested: true }));
    expect(cancelled).toMatchObject({ cancellation_requested: true, status: 'cancelled' });
    const deleted = await req('DELETE', '/certificates/to-cancel/pending');
    expect(deleted.status).toBe(200);
    expect((await req('GET', '/certificates/to-cancel/pending')).status).toBe(404);
  });

  it('leaves no key of a first create that is cancelled, nor of one whose operation is deleted while pending', async () => {
    const unknown = { issuer: { name: 'Unknown' }, x509_props: { subject: 'CN=gone' } };
    await create('cancel-first', unknown);
    // While pending, the managed key exists (the CSR's key, for the merge).
    expect((await req('GET', '/keys/cancel-first')).status).toBe(200);
    expect((await req('PATCH', '/certificates/cancel-first/pending', { cancellation_requested: true })).status).toBe(200);
    expect((await json(await req('GET', '/keys/cancel-first'))).error.code).toBe('KeyNotFound');
    expect((await json(await req('GET', '/keys/cancel-first/versions'))).value).toEqual([]);
    expect((await req('GET', '/secrets/cancel-first')).status).toBe(404);
    // The name is free for a new create, whose key is a new one.
    await create('cancel-first', selfPolicy());
    const key = await json(await req('GET', '/keys/cancel-first'));
    expect((await json(await req('GET', '/certificates/cancel-first'))).kid).toBe(key.key.kid);
    expect((await json(await req('GET', '/keys/cancel-first/versions'))).value).toHaveLength(1);

    await create('delete-first', unknown);
    expect((await req('DELETE', '/certificates/delete-first/pending')).status).toBe(200);
    expect((await req('GET', '/keys/delete-first')).status).toBe(404);
  });

  it('keeps the issued version the latest key and secret when a new version is cancelled: its key goes', async () => {
    await create('cancel-again', selfPolicy());
    const issued = await json(await req('GET', '/certificates/cancel-again'));
    const { body: pending } = await create('cancel-again', { issuer: { name: 'Unknown' }, x509_props: { subject: 'CN=again' } });
    expect(pending.status).toBe('inProgress');
    const pendingKey = await json(await req('GET', '/keys/cancel-again'));
    expect(pendingKey.key.kid).not.toBe(issued.kid);
    expect((await req('PATCH', '/certificates/cancel-again/pending', { cancellation_requested: true })).status).toBe(200);

    expect((await json(await req('GET', '/keys/cancel-again'))).key.kid).toBe(issued.kid);
    expect((await json(await req('GET', '/secrets/cancel-again'))).id).toBe(issued.sid);
    expect((await json(await req('GET', '/keys/cancel-again/versions'))).value.map((k: any) => k.kid)).toEqual([issued.kid]);
    const version = pendingKey.key.kid.split('/').pop();
    expect((await json(await req('GET', `/keys/cancel-again/${version}`))).error.code).toBe('KeyNotFound');
    expect((await json(await req('GET', '/certificates/cancel-again'))).id).toBe(issued.id);
    // The issued version still signs with its key.
    const signed = await req('POST', '/keys/cancel-again/sign', { alg: 'RS256', value: 'A'.repeat(43) });
    expect(signed.status).toBe(200);
  });

  it('with the bridge down, the HSM key of a cancelled version is kept disabled and is no longer the latest', async () => {
    const hsm = { key_props: { kty: 'RSA-HSM', key_size: 2048 } };
    await create('cancel-down', selfPolicy(hsm));
    const issued = await json(await req('GET', '/certificates/cancel-down'));
    await create('cancel-down', { issuer: { name: 'Unknown' }, x509_props: { subject: 'CN=down' }, ...hsm });
    const pendingKey = await json(await req('GET', '/keys/cancel-down'));
    const version = pendingKey.key.kid.split('/').pop();
    const handle = async () =>
      (
        await env.DB.prepare('SELECT hsm_handle FROM key_versions WHERE name = ? AND version = ?')
          .bind('cancel-down', version)
          .first<{ hsm_handle: string }>()
      )?.hsm_handle;
    expect(await handle()).toBeTruthy();
    const down = { BRIDGE_URL: 'http://127.0.0.1:9' };
    const cancel = await call('PATCH', `${origin}/certificates/cancel-down/pending?${API}`, {
      token,
      body: { cancellation_requested: true },
      env: down,
    });
    expect(cancel.status).toBe(200);
    // The issued version is the latest again; the cancelled one is kept (its HSM object could not
    // be destroyed) but disabled, so nothing can use it.
    expect((await json(await req('GET', '/keys/cancel-down'))).key.kid).toBe(issued.kid);
    const kept = await json(await req('GET', `/keys/cancel-down/${version}`));
    expect(kept.attributes.enabled).toBe(false);
    expect(await handle()).toBeTruthy();
    const sign = await req('POST', `/keys/cancel-down/${version}/sign`, { alg: 'RS256', value: 'A'.repeat(43) });
    expect(sign.status).toBe(403);
    expect((await req('POST', '/keys/cancel-down/sign', { alg: 'RS256', value: 'A'.repeat(43) })).status).toBe(200);
  });

  it('reads a certificate whose first version is pending as Azure does: disabled, no cer, a link to the operation', async () => {
    // The SDKs' getCertificateOperation pollers GET the certificate before the operation.
    const { body: op } = await create('first-pending', { issuer: { name: 'Unknown' }, x509_props: { subject: 'CN=p' } });
    const res = await req('GET', '/certificates/first-pending/');
    expect(res.status).toBe(200);
    const bundle = await json(res);
    expect(bundle.id).toMatch(new RegExp(`^${origin}/certificates/first-pending/[0-9a-f]{32}$`));
    expect(bundle).toMatchObject({
      attributes: { enabled: false },
      policy: { issuer: { name: 'Unknown' }, x509_props: { subject: 'CN=p' } },
      pending: { id: `${origin}/certificates/first-pending/pending` },
    });
    expect(bundle.cer).toBeUndefined();
    expect(bundle.kid).toBeUndefined();
    expect((await req('GET', `/certificates/first-pending/${bundle.id.split('/').pop()}`)).status).toBe(200);
    expect((await json(await req('GET', `/certificates/first-pending/${'0'.repeat(32)}`))).error.code).toBe(
      'CertificateNotFound',
    );
    // Still shown once cancelled; gone with the operation (nothing was ever issued).
    await req('PATCH', '/certificates/first-pending/pending', { cancellation_requested: true });
    expect((await req('GET', '/certificates/first-pending')).status).toBe(200);
    await req('DELETE', '/certificates/first-pending/pending');
    expect((await json(await req('GET', '/certificates/first-pending'))).error.code).toBe('CertificateNotFound');
    expect(op.status).toBe('inProgress');
  });
});

describe('import', () => {
  it('imports a password-protected PFX made by OpenSSL, and refuses a wrong password and legacy encryption', async () => {
    const wrong = await req('POST', '/certificates/imported/import', { value: RSA_PFX, pwd: 'nope' });
    expect(wrong.status).toBe(400);
    expect((await json(wrong)).error.code).toBe('BadParameter');
    const legacy = await req('POST', '/certificates/imported/import', { value: RSA_LEGACY_PFX, pwd: FIXTURE_PASSWORD });
    expect(legacy.status).toBe(400);
    expect((await json(legacy)).error.message).toMatch(/legacy/);
    expect((await req('POST', '/certificates/imported/import', { value: 'bm90IGEgcGZ4' })).status).toBe(400);

    const res = await req('POST', '/certificates/imported/import', {
      value: RSA_PFX,
      pwd: FIXTURE_PASSWORD,
      tags: { src: 'openssl' },
    });
    expect(res.status).toBe(200);
    const cert = await json(res);
    expect(cert).toMatchObject({
      contentType: 'application/x-pkcs12',
      tags: { src: 'openssl' },
      policy: {
        key_props: { kty: 'RSA', key_size: 2048, exportable: true },
        x509_props: { subject: 'CN=imported.example.com, O=Fixture', sans: { dns_names: ['imported.example.com'] } },
        issuer: { name: 'Unknown' },
      },
    });
    const version = cert.id.split('/').pop();
    const secret = await json(await req('GET', `/secrets/imported/${version}`));
    const pfx = await openPfx(b64(secret.value));
    expect(pfx.hasKey).toBe(true);
    expect(pfx.certs[0]!.subject).toBe('CN=imported.example.com, O=Fixture');
  });

  it('imports PEM with its key, and refuses a certificate without its key', async () => {
    const res = await req('POST', '/certificates/pem-import/import', {
      value: EC_PEM,
      policy: { secret_props: { contentType: 'application/x-pem-file' } },
    });
    expect(res.status).toBe(200);
    const cert = await json(res);
    expect(cert.policy.key_props).toMatchObject({ kty: 'EC', crv: 'P-256' });
    expect(cert.contentType).toBe('application/x-pem-file');
    const version = cert.id.split('/').pop();
    const secret = await json(await req('GET', `/secrets/pem-import/${version}`));
    expect(secret.value.startsWith('-----BEGIN PRIVATE KEY-----')).toBe(true);
    const certOnly = EC_PEM.slice(EC_PEM.indexOf('-----BEGIN CERTIFICATE-----'));
    expect((await req('POST', '/certificates/pem-only/import', { value: certOnly })).status).toBe(400);
  });
});

describe('delete, recover, purge, backup, restore', () => {
  it('soft-deletes the certificate with its key and secret, recovers them together, and purges (204)', async () => {
    await create('doomed', selfPolicy());
    const deleted = await json(await req('DELETE', '/certificates/doomed'));
    expect(deleted).toMatchObject({
      recoveryId: `${origin}/deletedcertificates/doomed`,
      deletedDate: expect.any(Number),
      scheduledPurgeDate: expect.any(Number),
    });
    expect((await req('GET', '/certificates/doomed')).status).toBe(404);
    expect((await req('GET', '/keys/doomed')).status).toBe(404);
    expect((await req('GET', '/secrets/doomed')).status).toBe(404);
    expect((await json(await req('GET', '/deletedcertificates/doomed'))).recoveryId).toBe(`${origin}/deletedcertificates/doomed`);
    const listed = await json(await req('GET', '/deletedcertificates'));
    expect(listed.value.map((i: { id: string }) => i.id)).toContain(`${origin}/certificates/doomed`);
    expect((await create('doomed', selfPolicy())).res.status).toBe(409);

    expect((await req('POST', '/deletedcertificates/doomed/recover')).status).toBe(200);
    expect((await req('GET', '/keys/doomed')).status).toBe(200);
    expect((await req('GET', '/secrets/doomed')).status).toBe(200);

    await req('DELETE', '/certificates/doomed');
    const purged = await req('DELETE', '/deletedcertificates/doomed');
    expect(purged.status).toBe(204);
    expect((await req('GET', '/deletedcertificates/doomed')).status).toBe(404);
    expect((await req('GET', '/deletedkeys/doomed')).status).toBe(404);
    expect((await req('GET', '/deletedsecrets/doomed')).status).toBe(404);
    expect((await req('GET', '/certificates/doomed/policy')).status).toBe(404);
  });

  it('is purged by the cron once its retention ends, with its key, secret and policy', async () => {
    await create('expiring', selfPolicy());
    await req('DELETE', '/certificates/expiring');
    const db = database(env.DB);
    const vaultId = (await findVault(db, vault))!.id;
    const past = Math.floor(Date.now() / 1000) - 1;
    for (const table of [certificates, keys, secrets]) {
      await db
        .update(table)
        .set({ scheduledPurgeAt: past })
        .where(and(eq(table.vaultId, vaultId), eq(table.name, 'expiring')));
    }
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ cron: '*/5 * * * *' }), env as Env, ctx);
    await waitOnExecutionContext(ctx);
    expect((await req('GET', '/deletedcertificates/expiring')).status).toBe(404);
    expect((await req('GET', '/deletedkeys/expiring')).status).toBe(404);
    expect((await req('GET', '/deletedsecrets/expiring')).status).toBe(404);
    const policies = await db
      .select()
      .from(certificatePolicies)
      .where(and(eq(certificatePolicies.vaultId, vaultId), eq(certificatePolicies.name, 'expiring')))
      .all();
    expect(policies).toEqual([]);
  });

  it('refuses purge under purge protection (403)', async () => {
    const call2 = (method: string, path: string, body?: unknown) =>
      call(method, `${protectedVault.origin}${path}?${API}`, { token: protectedVault.token, body });
    await call2('POST', '/certificates/kept/create', { policy: selfPolicy() });
    await call2('DELETE', '/certificates/kept');
    const res = await call2('DELETE', '/deletedcertificates/kept');
    expect(res.status).toBe(403);
    expect((await json(res)).error.message).toMatch(/purge protection is enabled/);
  });

  it('backs up and restores the certificate with its key, secret and policy', async () => {
    await create('saved', selfPolicy());
    const before = await json(await req('GET', '/certificates/saved'));
    const { value } = await json(await req('POST', '/certificates/saved/backup'));
    expect((await req('POST', '/certificates/restore', { value })).status).toBe(409);
    await req('DELETE', '/certificates/saved');
    await req('DELETE', '/deletedcertificates/saved');
    const restored = await req('POST', '/certificates/restore', { value });
    expect(restored.status).toBe(200);
    const after = await json(restored);
    expect(after.id).toBe(before.id);
    expect(after.cer).toBe(before.cer);
    expect(after.policy.x509_props).toEqual(before.policy.x509_props);
    const version = before.id.split('/').pop();
    expect((await json(await req('GET', `/keys/saved/${version}`))).managed).toBe(true);
    expect((await json(await req('GET', `/secrets/saved/${version}`))).managed).toBe(true);
    expect((await req('POST', '/certificates/restore', { value: 'garbage' })).status).toBe(400);
  });
});

describe('contacts and issuers', () => {
  it('sets, reads and deletes contacts', async () => {
    expect((await req('GET', '/certificates/contacts')).status).toBe(404);
    const contacts = [{ email: 'ops@example.com', name: 'Ops', phone: '555' }];
    expect(await json(await req('PUT', '/certificates/contacts', { contacts }))).toEqual({
      id: `${origin}/certificates/contacts`,
      contacts,
    });
    expect((await json(await req('GET', '/certificates/contacts'))).contacts).toEqual(contacts);
    expect((await json(await req('DELETE', '/certificates/contacts'))).contacts).toEqual(contacts);
    expect((await req('GET', '/certificates/contacts')).status).toBe(404);
  });

  it('keeps issuers in Azure IssuerBundle shape, never returning the password', async () => {
    const put = await json(
      await req('PUT', '/certificates/issuers/my-ca', {
        provider: 'InternalCA',
        credentials: { account_id: 'acct', pwd: 'issuer-password-canary' },
        org_details: { id: 'org', admin_details: [{ first_name: 'A', last_name: 'B', email: 'a@b.c' }] },
      }),
    );
    expect(put).toMatchObject({
      id: `${origin}/certificates/issuers/my-ca`,
      provider: 'InternalCA',
      credentials: { account_id: 'acct' },
      org_details: { id: 'org', admin_details: [{ first_name: 'A', last_name: 'B', email: 'a@b.c' }] },
      attributes: { enabled: true },
    });
    expect(JSON.stringify(put)).not.toContain('issuer-password-canary');
    const patched = await json(await req('PATCH', '/certificates/issuers/my-ca', { attributes: { enabled: false } }));
    expect(patched).toMatchObject({
      provider: 'InternalCA',
      credentials: { account_id: 'acct' },
      attributes: { enabled: false },
    });
    const list = await json(await req('GET', '/certificates/issuers'));
    expect(list.value).toContainEqual({ id: `${origin}/certificates/issuers/my-ca`, provider: 'InternalCA' });
    // No issuer module for this provider yet: create is refused, clearly.
    const refused = await create('ca-cert', { issuer: { name: 'my-ca' }, x509_props: { subject: 'CN=x' } });
    expect(refused.res.status).toBe(400);
    expect(refused.body.error.message).toMatch(/InternalCA/);
    expect((await json(await req('DELETE', '/certificates/issuers/my-ca'))).provider).toBe('InternalCA');
    const gone = await req('GET', '/certificates/issuers/my-ca');
    expect(gone.status).toBe(404);
    expect((await json(gone)).error.code).toBe('CertificateIssuerNotFound');
    expect((await req('PUT', '/certificates/issuers/x', { credentials: {} })).status).toBe(400);
  });
});

describe('compliance', () => {
  it('reports the vault certificates: self-signed ones in use, and the ones without AutoRenew', async () => {
    const res = await call('GET', `${APEX}/management/vaults/${vault}/compliance/report`, {
      token,
      headers: { accept: 'application/json' },
    });
    expect(res.status).toBe(200);
    const report = await json(res);
    const status = Object.fromEntries(report.checks.map((c: { id: string; status: string }) => [c.id, c.status]));
    expect(status).toMatchObject({
      'certificate-self-signed': 'fail',
      'certificate-no-auto-renew': 'fail',
      'certificate-key-weak': 'pass',
    });
    const selfSigned = report.findings
      .filter((f: { check: string }) => f.check === 'certificate-self-signed')
      .map((f: { resource: { name: string } }) => f.resource.name);
    expect(selfSigned).toContain('self-rsa');
    expect(selfSigned).not.toContain('csr-cert');
    const noRenew = report.findings
      .filter((f: { check: string }) => f.check === 'certificate-no-auto-renew')
      .map((f: { resource: { name: string } }) => f.resource.name);
    expect(noRenew).toContain('csr-cert');
    expect(noRenew).not.toContain('self-rsa');
  });
});
