/**
 * Every public method of CertificateClient (@azure/keyvault-certificates 4.10, unmodified) against
 * the running stack, as issue 11 asks: create with its pollers, the Unknown issuer's CSR signed by
 * an outside CA (openssl) and merged, import of PFX and PEM, policy, soft delete and recovery,
 * backup, contacts and issuers; the certificate's key used through CryptographyClient and its
 * secret opened with openssl; and the refusals as the SDK surfaces them. A few calls of the Python
 * SDK's CertificateClient (python/certificates_smoke.py) run at the end where it is installed.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { constants, createHash, verify as nodeVerify, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  CertificateClient,
  type CertificatePolicy,
  type KeyVaultCertificate,
  type KeyVaultCertificateWithPolicy,
} from '@azure/keyvault-certificates';
import { azureRole, roleDefinitionId } from '../support/azure-roles.js';
import {
  assignRole,
  collect,
  createApplication,
  createVault,
  credential,
  cryptoClient,
  expectRestError,
  secretClient,
  stackInfo,
  uniqueName,
  vaultUrl as urlOfVault,
} from '../support/e2e.js';

const FAST_POLL = { intervalInMs: 100 };
const shortVaultName = (prefix: string) => `${prefix}${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
const work = mkdtempSync(join(tmpdir(), 'certsdk-e2e-'));

/** openssl with its output; `input` files are written to the work directory first. */
function openssl(args: string[], input?: string | Buffer): string {
  return execFileSync('openssl', args, { cwd: work, input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

function file(name: string, content: string | Uint8Array): string {
  const path = join(work, name);
  writeFileSync(path, content);
  return path;
}

const pem = (der: Uint8Array, label: string) =>
  `-----BEGIN ${label}-----\n${Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END ${label}-----\n`;

const selfPolicy = (subject: string, extra: Partial<CertificatePolicy> = {}): CertificatePolicy =>
  ({ issuerName: 'Self', subject, ...extra }) as CertificatePolicy;

async function createSelfSigned(
  client: CertificateClient,
  name: string,
  policy?: CertificatePolicy,
  tags?: Record<string, string>,
) {
  const poller = await client.beginCreateCertificate(name, policy ?? selfPolicy(`CN=${name}.example.com`), {
    ...FAST_POLL,
    tags,
  });
  return poller.pollUntilDone();
}

describe('CertificateClient against the local vault', () => {
  const client = () => new CertificateClient(stackInfo().credentials.vaultUrl, credential());
  const vaultUrl = () => stackInfo().credentials.vaultUrl;

  it('beginCreateCertificate (Self) completes through its poller; get, getCertificateVersion and the policy follow Azure', async () => {
    const name = uniqueName('self');
    const poller = await client().beginCreateCertificate(
      name,
      selfPolicy(`CN=${name}.example.com`, {
        subjectAlternativeNames: { dnsNames: [`${name}.example.com`, 'www.example.com'] },
        keyType: 'RSA',
        keySize: 2048,
        validityInMonths: 12,
        contentType: 'application/x-pkcs12',
      }),
      { ...FAST_POLL, tags: { team: 'pki' } },
    );
    const created = await poller.pollUntilDone();
    expect(poller.getOperationState().isCompleted).toBe(true);
    // The create poller's state is only the common one; the operation comes from getCertificateOperation.
    const operation = (await client().getCertificateOperation(name)).getOperationState().certificateOperation!;
    expect(operation).toMatchObject({ status: 'completed', issuerName: 'Self', cancellationRequested: false });
    expect(operation.target).toBe(`${vaultUrl()}/certificates/${name}`);
    expect(created.name).toBe(name);
    const version = created.properties.version!;
    expect(version).toMatch(/^[0-9a-f]{32}$/);
    expect(created.properties.id).toBe(`${vaultUrl()}/certificates/${name}/${version}`);
    expect(created.keyId).toBe(`${vaultUrl()}/keys/${name}/${version}`);
    expect(created.secretId).toBe(`${vaultUrl()}/secrets/${name}/${version}`);
    expect(created.properties.tags).toEqual({ team: 'pki' });
    expect(created.properties.enabled).toBe(true);
    expect(created.properties.recoveryLevel).toBe('Recoverable+Purgeable');

    const x509 = new X509Certificate(created.cer!);
    expect(x509.subject).toBe(`CN=${name}.example.com`);
    expect(x509.issuer).toBe(x509.subject);
    expect(x509.subjectAltName).toContain(`DNS:${name}.example.com`);
    expect(x509.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(Buffer.from(created.properties.x509Thumbprint!).toString('hex')).toBe(
      createHash('sha1').update(created.cer!).digest('hex'),
    );
    expect(created.properties.expiresOn?.getTime()).toBe(new Date(x509.validTo).getTime());

    const latest = await client().getCertificate(name);
    expect(latest.properties.id).toBe(created.properties.id);
    expect(Buffer.from(latest.cer!)).toEqual(Buffer.from(created.cer!));
    expect(latest.policy?.issuerName).toBe('Self');
    expect(latest.policy?.subject).toBe(`CN=${name}.example.com`);

    const byVersion = await client().getCertificateVersion(name, version);
    expect(byVersion.properties.id).toBe(created.properties.id);
    expect(byVersion.properties.version).toBe(version);

    const policy = await client().getCertificatePolicy(name);
    expect(policy.issuerName).toBe('Self');
    expect(policy.keyType).toBe('RSA');
    expect(policy.keySize).toBe(2048);
    expect(policy.exportable).toBe(true);
    expect(policy.contentType).toBe('application/x-pkcs12');
    expect(policy.validityInMonths).toBe(12);
    expect(policy.subjectAlternativeNames?.dnsNames).toEqual([`${name}.example.com`, 'www.example.com']);
  });

  it('CertificateNotFound for unknown names and versions; BadParameter for a bad policy', async () => {
    await expectRestError(client().getCertificate(uniqueName('missing')), 404, 'CertificateNotFound');
    const name = uniqueName('nf');
    await createSelfSigned(client(), name);
    await expectRestError(client().getCertificateVersion(name, '0'.repeat(32)), 404, 'CertificateNotFound');
    await expectRestError(client().getCertificatePolicy(uniqueName('missing')), 404, 'CertificateNotFound');

    await expectRestError(
      client().beginCreateCertificate(uniqueName('bad'), selfPolicy('CN=bad', { keyType: 'RSA', keySize: 1000 }), FAST_POLL),
      400,
      'BadParameter',
    );
    await expectRestError(
      client().beginCreateCertificate(uniqueName('bad'), selfPolicy('CN=bad', { keyUsage: ['notAUsage' as never] }), FAST_POLL),
      400,
      'BadParameter',
    );
    await expectRestError(client().beginCreateCertificate('not_valid_name', selfPolicy('CN=x'), FAST_POLL), 400, 'BadParameter');
  });

  it('every create makes a version; listPropertiesOfCertificates and listPropertiesOfCertificateVersions page through them', async () => {
    const prefix = uniqueName('list');
    const names = [`${prefix}-a`, `${prefix}-b`, `${prefix}-c`];
    const first = await createSelfSigned(client(), names[0]!);
    const second = await createSelfSigned(client(), names[0]!);
    for (const n of names.slice(1)) await createSelfSigned(client(), n);

    const listed = (await collect(client().listPropertiesOfCertificates())).filter((p) => p.name!.startsWith(prefix));
    expect(listed.map((p) => p.name).sort()).toEqual(names);
    const a = listed.find((p) => p.name === names[0])!;
    expect(a.id).toBe(`${vaultUrl()}/certificates/${names[0]}`);
    expect(Buffer.from(a.x509Thumbprint!)).toEqual(Buffer.from(second.properties.x509Thumbprint!));

    // SDK 4.10 ignores byPage's maxPageSize; its own `maxresults` option is what reaches the service.
    const pages: number[] = [];
    const onePerPage = { maxresults: 1 } as Parameters<CertificateClient['listPropertiesOfCertificateVersions']>[1];
    for await (const page of client().listPropertiesOfCertificateVersions(names[0]!, onePerPage).byPage())
      pages.push(page.length);
    expect(pages).toEqual([1, 1]);
    const versions = await collect(client().listPropertiesOfCertificateVersions(names[0]!));
    expect(versions.map((v) => v.version).sort()).toEqual([first.properties.version, second.properties.version].sort());
    expect(versions.every((v) => v.id === `${vaultUrl()}/certificates/${names[0]}/${v.version}`)).toBe(true);
    expect(await collect(client().listPropertiesOfCertificateVersions(uniqueName('none')))).toEqual([]);
  });

  it('updateCertificateProperties changes tags and enabled of one version; updateCertificatePolicy merges sections', async () => {
    const name = uniqueName('update');
    const created = await createSelfSigned(client(), name, undefined, { a: '1' });
    const version = created.properties.version!;

    const updated = await client().updateCertificateProperties(name, version, { tags: { b: '2' }, enabled: false });
    expect(updated.properties.tags).toEqual({ b: '2' });
    expect(updated.properties.enabled).toBe(false);
    expect(updated.properties.version).toBe(version);
    const read = await client().getCertificateVersion(name, version);
    expect(read.properties.enabled).toBe(false);
    expect(read.properties.tags).toEqual({ b: '2' });
    // The version's key follows: a disabled key signs nothing.
    await expectRestError(cryptoClient(created.keyId!).sign('RS256', createHash('sha256').update('x').digest()), 403);

    const latestUpdate = await client().updateCertificateProperties(name, '', { enabled: true });
    expect(latestUpdate.properties.enabled).toBe(true);

    // SDK 4.10.3 resolves updateCertificatePolicy with an empty policy whatever the service
    // answers (it maps a body it never captured), so the stored policy is read back.
    await client().updateCertificatePolicy(name, {
      issuerName: 'Self',
      subject: `CN=renamed-${name}`,
      validityInMonths: 6,
      lifetimeActions: [{ daysBeforeExpiry: 30, action: 'EmailContacts' }],
    });
    const policy = await client().getCertificatePolicy(name);
    expect(policy.subject).toBe(`CN=renamed-${name}`);
    expect(policy.validityInMonths).toBe(6);
    expect(policy.lifetimeActions).toEqual([{ daysBeforeExpiry: 30, action: 'EmailContacts' }]);
    // Sections not sent are kept.
    expect(policy.keyType).toBe('RSA');

    // The next version follows the stored policy.
    const next = await client().beginCreateCertificate(name, await client().getCertificatePolicy(name), FAST_POLL);
    const renewed = await next.pollUntilDone();
    expect(new X509Certificate(renewed.cer!).subject).toBe(`CN=renamed-${name}`);

    await expectRestError(
      client().updateCertificateProperties(uniqueName('missing'), '', { tags: {} }),
      404,
      'CertificateNotFound',
    );
  });

  it("the certificate's key signs through CryptographyClient and its PFX secret opens with openssl", async () => {
    const name = uniqueName('keysecret');
    const cert = await createSelfSigned(client(), name, selfPolicy(`CN=${name}`, { keyType: 'RSA', keySize: 2048 }));
    const digest = createHash('sha256').update('signed by the certificate key').digest();
    const crypto = cryptoClient(cert.keyId!);
    const signed = await crypto.sign('RS256', digest);
    expect(signed.keyID).toBe(cert.keyId);
    expect((await crypto.verify('RS256', digest, signed.result)).result).toBe(true);
    // Verified by anyone holding the certificate: the key is the certificate's.
    const publicKey = new X509Certificate(cert.cer!).publicKey;
    expect(nodeVerify('sha256', Buffer.from('signed by the certificate key'), publicKey, signed.result)).toBe(true);

    const secret = await secretClient().getSecret(name);
    expect(secret.properties.id).toBe(cert.secretId);
    expect(secret.properties.contentType).toBe('application/x-pkcs12');
    expect(secret.properties.managed).toBe(true);
    const pfx = file(`${name}.pfx`, Buffer.from(secret.value!, 'base64'));
    const certs = openssl(['pkcs12', '-in', pfx, '-nokeys', '-passin', 'pass:']);
    expect(new X509Certificate(certs.slice(certs.indexOf('-----BEGIN CERTIFICATE-----'))).fingerprint256).toBe(
      new X509Certificate(cert.cer!).fingerprint256,
    );
    const keyPem = openssl(['pkcs12', '-in', pfx, '-nocerts', '-nodes', '-passin', 'pass:']);
    expect(keyPem).toContain('-----BEGIN PRIVATE KEY-----');
    const modulusOfKey = openssl(['rsa', '-noout', '-modulus'], keyPem.slice(keyPem.indexOf('-----BEGIN')));
    const modulusOfCert = openssl(['x509', '-noout', '-modulus'], pem(cert.cer!, 'CERTIFICATE'));
    expect(modulusOfKey).toBe(modulusOfCert);
  });

  it('a PEM certificate (EC P-256) is a PEM secret with its key; openssl x509 and pkey read it', async () => {
    const name = uniqueName('pem');
    const cert = await createSelfSigned(
      client(),
      name,
      selfPolicy(`CN=${name}`, { keyType: 'EC', keyCurveName: 'P-256', contentType: 'application/x-pem-file' }),
    );
    const secret = await secretClient().getSecret(name);
    expect(secret.properties.contentType).toBe('application/x-pem-file');
    const text = openssl(['x509', '-noout', '-subject', '-fingerprint', '-sha256'], secret.value!);
    expect(text).toContain(`CN = ${name}`);
    expect(text.replace(/\s/g, '')).toContain(new X509Certificate(cert.cer!).fingerprint256.replace(/\s/g, ''));
    expect(openssl(['pkey', '-noout', '-text'], secret.value!)).toContain('NIST CURVE: P-256');

    const signed = await cryptoClient(cert.keyId!).signData('ES256', Buffer.from('ec data'));
    expect(
      nodeVerify(
        'sha256',
        Buffer.from('ec data'),
        { key: new X509Certificate(cert.cer!).publicKey, dsaEncoding: 'ieee-p1363' },
        signed.result,
      ),
    ).toBe(true);
  });

  it('an RSA-HSM certificate signs in the HSM through CryptographyClient; its PFX secret holds no key', async () => {
    const name = uniqueName('hsm');
    const cert = await createSelfSigned(client(), name, selfPolicy(`CN=${name}`, { keyType: 'RSA-HSM', keySize: 2048 }));
    expect((await client().getCertificatePolicy(name)).keyType).toBe('RSA-HSM');
    const crypto = cryptoClient(cert.keyId!);
    const signed = await crypto.signData('PS256', Buffer.from('signed in the HSM'));
    expect(
      nodeVerify(
        'sha256',
        Buffer.from('signed in the HSM'),
        { key: new X509Certificate(cert.cer!).publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 },
        signed.result,
      ),
    ).toBe(true);

    const secret = await secretClient().getSecret(name);
    const pfx = file(`${name}.pfx`, Buffer.from(secret.value!, 'base64'));
    expect(openssl(['pkcs12', '-in', pfx, '-nokeys', '-passin', 'pass:'])).toContain('-----BEGIN CERTIFICATE-----');
    expect(openssl(['pkcs12', '-in', pfx, '-nocerts', '-nodes', '-passin', 'pass:'])).not.toContain('PRIVATE KEY');
  });

  it('importCertificate takes a PFX with a password, a PFX without one, and PEM with its key', async () => {
    const subject = uniqueName('imported');
    openssl([
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'imp.key',
      '-out',
      'imp.crt',
      '-days',
      '30',
      '-subj',
      `/CN=${subject}`,
    ]);
    openssl(['pkcs12', '-export', '-inkey', 'imp.key', '-in', 'imp.crt', '-out', 'pw.pfx', '-passout', 'pass:import-pw']);
    openssl(['pkcs12', '-export', '-inkey', 'imp.key', '-in', 'imp.crt', '-out', 'nopw.pfx', '-passout', 'pass:']);
    const leaf = new X509Certificate(readFileSync(join(work, 'imp.crt')));

    const withPw = await client().importCertificate(uniqueName('pfxpw'), readFileSync(join(work, 'pw.pfx')), {
      password: 'import-pw',
      tags: { source: 'pfx' },
    });
    expect(new X509Certificate(withPw.cer!).fingerprint256).toBe(leaf.fingerprint256);
    expect(withPw.properties.tags).toEqual({ source: 'pfx' });
    expect(withPw.policy?.issuerName).toBe('Unknown');
    expect(withPw.policy?.subject).toBe(`CN=${subject}`);
    expect(withPw.policy?.contentType).toBe('application/x-pkcs12');

    const noPw = await client().importCertificate(uniqueName('pfx'), readFileSync(join(work, 'nopw.pfx')));
    expect(new X509Certificate(noPw.cer!).fingerprint256).toBe(leaf.fingerprint256);
    // The imported key is usable as the certificate's key.
    const digest = createHash('sha256').update('imported').digest();
    const sig = await cryptoClient(noPw.keyId!).sign('RS256', digest);
    expect(nodeVerify('sha256', Buffer.from('imported'), leaf.publicKey, sig.result)).toBe(true);

    await expectRestError(
      client().importCertificate(uniqueName('pfxbad'), readFileSync(join(work, 'pw.pfx')), { password: 'wrong' }),
      400,
      'BadParameter',
    );

    const pemText = readFileSync(join(work, 'imp.key'), 'utf8') + readFileSync(join(work, 'imp.crt'), 'utf8');
    const pemName = uniqueName('pemimp');
    const fromPem = await client().importCertificate(pemName, Buffer.from(pemText), {
      policy: { contentType: 'application/x-pem-file', issuerName: 'Unknown', subject: `CN=${subject}` } as CertificatePolicy,
    });
    expect(new X509Certificate(fromPem.cer!).fingerprint256).toBe(leaf.fingerprint256);
    const secret = await secretClient().getSecret(pemName);
    expect(secret.properties.contentType).toBe('application/x-pem-file');
    expect(openssl(['x509', '-noout', '-fingerprint', '-sha256'], secret.value!).replace(/\s/g, '')).toContain(
      leaf.fingerprint256.replace(/\s/g, ''),
    );

    // A certificate without its key is refused.
    await expectRestError(
      client().importCertificate(uniqueName('nokey'), Buffer.from(readFileSync(join(work, 'imp.crt'), 'utf8')), {
        policy: { contentType: 'application/x-pem-file' } as CertificatePolicy,
      }),
      400,
      'BadParameter',
    );
  });

  it('Unknown issuer: the CSR from the operation, signed by an outside CA, merges; a chain for another key is refused', async () => {
    const name = uniqueName('merge');
    const poller = await client().beginCreateCertificate(
      name,
      { issuerName: 'Unknown', subject: `CN=${name}.example.com`, keyType: 'RSA', keySize: 2048 } as CertificatePolicy,
      FAST_POLL,
    );
    expect(poller.isDone()).toBe(false);

    const opPoller = await client().getCertificateOperation(name, FAST_POLL);
    const operation = opPoller.getOperationState().certificateOperation!;
    expect(operation.status).toBe('inProgress');
    expect(operation.issuerName).toBe('Unknown');
    expect(operation.csr?.length).toBeGreaterThan(100);
    // While pending, the certificate reads as a disabled version without a certificate, as on Azure.
    const pending = await client().getCertificate(name);
    expect(pending.properties.enabled).toBe(false);
    expect(pending.cer).toBeUndefined();

    const csrFile = file(`${name}.csr`, pem(operation.csr!, 'CERTIFICATE REQUEST'));
    expect(openssl(['req', '-in', csrFile, '-noout', '-verify', '-subject'])).toContain(`CN = ${name}.example.com`);
    openssl([
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-days',
      '30',
      '-subj',
      '/CN=Outside CA',
    ]);
    openssl([
      'x509',
      '-req',
      '-in',
      csrFile,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '20',
      '-out',
      'leaf.crt',
    ]);
    const leafDer = new X509Certificate(readFileSync(join(work, 'leaf.crt'))).raw;
    const caDer = new X509Certificate(readFileSync(join(work, 'ca.crt'))).raw;

    // The CA's own certificate is not for the pending key.
    await expectRestError(client().mergeCertificate(name, [caDer]), 400, 'BadParameter');

    const merged = await client().mergeCertificate(name, [leafDer, caDer]);
    expect(Buffer.from(merged.cer!)).toEqual(Buffer.from(leafDer));
    expect(merged.properties.enabled).toBe(true);
    expect(merged.properties.version).toMatch(/^[0-9a-f]{32}$/);
    const done = await opPoller.pollUntilDone();
    expect(done.properties.id).toBe(merged.properties.id);
    expect((await client().getCertificateOperation(name)).getOperationState().certificateOperation?.status).toBe('completed');

    // The merged chain verifies against the outside CA; the secret carries the chain.
    const secret = await secretClient().getSecret(name);
    const chain = openssl([
      'pkcs12',
      '-in',
      file(`${name}.pfx`, Buffer.from(secret.value!, 'base64')),
      '-nokeys',
      '-passin',
      'pass:',
    ]);
    file(`${name}-leaf.pem`, pem(leafDer, 'CERTIFICATE'));
    expect(openssl(['verify', '-CAfile', 'ca.crt', `${name}-leaf.pem`])).toContain('OK');
    expect(chain.match(/BEGIN CERTIFICATE/g)?.length).toBe(2);

    // A merge with no pending operation left.
    await expectRestError(client().mergeCertificate(name, [leafDer]), 404, 'PendingCertificateNotFound');
  });

  it('cancelOperation and deleteCertificateOperation end a pending operation', async () => {
    const name = uniqueName('cancel');
    const poller = await client().beginCreateCertificate(
      name,
      { issuerName: 'Unknown', subject: `CN=${name}` } as CertificatePolicy,
      FAST_POLL,
    );
    await poller.cancelOperation();
    expect(poller.getOperationState().isCancelled).toBe(true);

    const opPoller = await client().getCertificateOperation(name);
    expect(opPoller.getOperationState().certificateOperation?.cancellationRequested).toBe(true);

    const deleted = await client().deleteCertificateOperation(name);
    expect(deleted.id).toBe(`${vaultUrl()}/certificates/${name}/pending`);
    expect(deleted.cancellationRequested).toBe(true);
    await expectRestError(client().deleteCertificateOperation(name), 404, 'PendingCertificateNotFound');
    await expectRestError(client().getCertificateOperation(name), 404);
  });

  it('beginDeleteCertificate, getDeletedCertificate, listDeletedCertificates, beginRecoverDeletedCertificate, purgeDeletedCertificate', async () => {
    const name = uniqueName('delete');
    const created = await createSelfSigned(client(), name);

    const deletePoller = await client().beginDeleteCertificate(name, FAST_POLL);
    const deleted = await deletePoller.pollUntilDone();
    expect(deleted.name).toBe(name);
    expect(deleted.recoveryId).toBe(`${vaultUrl()}/deletedcertificates/${name}`);
    expect(deleted.deletedOn).toBeInstanceOf(Date);
    expect(deleted.scheduledPurgeDate!.getTime()).toBeGreaterThan(Date.now());
    await expectRestError(client().getCertificate(name), 404, 'CertificateNotFound');
    // The key and secret went with it.
    await expectRestError(secretClient().getSecret(name), 404);

    const got = await client().getDeletedCertificate(name);
    expect(got.recoveryId).toBe(deleted.recoveryId);
    expect(got.properties.id).toBe(created.properties.id);
    const listed = await collect(client().listDeletedCertificates());
    expect(listed.map((d) => d.name)).toContain(name);
    expect(listed.find((d) => d.name === name)?.recoveryId).toBe(deleted.recoveryId);

    const recoverPoller = await client().beginRecoverDeletedCertificate(name, FAST_POLL);
    const recovered = await recoverPoller.pollUntilDone();
    expect(recovered.properties.id).toBe(created.properties.id);
    expect((await client().getCertificate(name)).properties.version).toBe(created.properties.version);
    expect((await secretClient().getSecret(name)).properties.version).toBe(created.properties.version);
    await expectRestError(client().getDeletedCertificate(name), 404, 'CertificateNotFound');

    await (await client().beginDeleteCertificate(name, FAST_POLL)).pollUntilDone();
    expect(await client().purgeDeletedCertificate(name)).toBeNull();
    await expectRestError(client().getDeletedCertificate(name), 404, 'CertificateNotFound');
    await expectRestError(client().purgeDeletedCertificate(name), 404, 'CertificateNotFound');
    // The name is free again.
    expect((await createSelfSigned(client(), name)).properties.version).not.toBe(created.properties.version);
  });

  it('backupCertificate and restoreCertificateBackup bring back the certificate with its key, secret and policy', async () => {
    const name = uniqueName('backup');
    const created = await createSelfSigned(client(), name, selfPolicy(`CN=${name}`, { keyType: 'EC', keyCurveName: 'P-384' }));
    const backup = await client().backupCertificate(name);
    expect(backup!.length).toBeGreaterThan(100);

    await expectRestError(client().restoreCertificateBackup(backup!), 409);
    await (await client().beginDeleteCertificate(name, FAST_POLL)).pollUntilDone();
    await client().purgeDeletedCertificate(name);

    const restored = await client().restoreCertificateBackup(backup!);
    expect(restored.properties.id).toBe(created.properties.id);
    expect(Buffer.from(restored.cer!)).toEqual(Buffer.from(created.cer!));
    expect((await client().getCertificatePolicy(name)).keyCurveName).toBe('P-384');
    const signed = await cryptoClient(restored.keyId!).signData('ES384', Buffer.from('restored'));
    expect(
      nodeVerify(
        'sha384',
        Buffer.from('restored'),
        { key: new X509Certificate(restored.cer!).publicKey, dsaEncoding: 'ieee-p1363' },
        signed.result,
      ),
    ).toBe(true);
    expect((await secretClient().getSecret(name)).properties.version).toBe(created.properties.version);

    await expectRestError(client().restoreCertificateBackup(new Uint8Array([1, 2, 3, 4])), 400);
    await expectRestError(client().backupCertificate(uniqueName('missing')), 404, 'CertificateNotFound');
  });

  it('getContacts, setContacts and deleteContacts', async () => {
    // The contacts are the vault's: this test owns them in a vault of its own.
    const vault = shortVaultName('cc');
    await createVault(vault);
    const c = new CertificateClient(urlOfVault(vault), credential());
    await expectRestError(c.getContacts(), 404, 'ContactsNotFound');
    const contacts = [
      { email: 'pki@example.com', name: 'PKI team', phone: '555-0100' },
      { email: 'oncall@example.com', name: 'On call' },
    ];
    expect(await c.setContacts(contacts)).toEqual(contacts);
    expect(await c.getContacts()).toEqual(contacts);
    // SDK 4.10.3 maps the DELETE answer's raw body by its model name (contactList), not the wire
    // name (contacts), so it always resolves an empty list here, against Azure too.
    expect(await c.deleteContacts()).toEqual([]);
    await expectRestError(c.getContacts(), 404, 'ContactsNotFound');
  });

  it('createIssuer, getIssuer, updateIssuer, listPropertiesOfIssuers, deleteIssuer (the password never comes back)', async () => {
    const name = uniqueName('issuer');
    const created = await client().createIssuer(name, 'Test', {
      accountId: 'account-1',
      password: 'issuer-password-never-shown',
      organizationId: 'org-1',
      administratorContacts: [{ email: 'admin@example.com', firstName: 'Ada', lastName: 'Admin', phone: '555-0101' }],
      enabled: false,
    });
    expect(created.id).toBe(`${vaultUrl()}/certificates/issuers/${name}`);
    // The SDK parses /certificates/issuers/{name} as a certificate id, so `name` is 'issuers' (on Azure too).
    expect(created.provider).toBe('Test');
    expect(created.accountId).toBe('account-1');
    expect(created.password).toBeUndefined();
    expect(created.organizationId).toBe('org-1');
    expect(created.administratorContacts).toEqual([
      { email: 'admin@example.com', firstName: 'Ada', lastName: 'Admin', phone: '555-0101' },
    ]);
    expect(created.enabled).toBe(false);
    expect(created.createdOn).toBeInstanceOf(Date);

    const got = await client().getIssuer(name);
    expect(got.provider).toBe('Test');
    expect(got.password).toBeUndefined();

    // SDK 4.10.3's updateIssuer sends `enabled` only when it is true, so this direction is the testable one.
    const updated = await client().updateIssuer(name, { accountId: 'account-2', enabled: true });
    expect(updated.accountId).toBe('account-2');
    expect(updated.enabled).toBe(true);
    expect(updated.organizationId).toBe('org-1');

    const listed = await collect(client().listPropertiesOfIssuers());
    expect(listed.find((i) => i.id === created.id)).toMatchObject({ provider: 'Test' });

    const deleted = await client().deleteIssuer(name);
    expect(deleted.id).toBe(created.id);
    await expectRestError(client().getIssuer(name), 404, 'CertificateIssuerNotFound');
    await expectRestError(client().deleteIssuer(name), 404, 'CertificateIssuerNotFound');
  });

  describe('a caller without certificate rights', () => {
    let denied: CertificateClient;
    let existing: KeyVaultCertificateWithPolicy | KeyVaultCertificate;

    beforeAll(async () => {
      const vault = shortVaultName('cr');
      await createVault(vault);
      const admin = new CertificateClient(urlOfVault(vault), credential());
      existing = await createSelfSigned(admin, 'readable');
      const app = await createApplication('certificates e2e: secrets user only');
      await assignRole(vault, '/', roleDefinitionId(azureRole('Key Vault Secrets User')), app.objectId);
      denied = new CertificateClient(urlOfVault(vault), credential({ clientId: app.clientId, clientSecret: app.clientSecret }));
    });

    it('is refused with 403 Forbidden on every kind of certificate call', async () => {
      const forbidden = async (p: Promise<unknown>) => {
        const err = await expectRestError(p, 403, 'Forbidden');
        // The SDK's pager replaces the service's message with its own.
        if (!err.message.startsWith('Pagination failed')) expect(err.message).toMatch(/not authorized|Forbidden/i);
      };
      await forbidden(denied.getCertificate('readable'));
      await forbidden(denied.getCertificateVersion('readable', existing.properties.version!));
      await forbidden(collect(denied.listPropertiesOfCertificates()));
      await forbidden(denied.beginCreateCertificate(uniqueName('nope'), selfPolicy('CN=nope'), FAST_POLL));
      await forbidden(denied.getCertificatePolicy('readable'));
      await forbidden(denied.backupCertificate('readable'));
      await forbidden(denied.getContacts());
      await forbidden(denied.createIssuer(uniqueName('nope'), 'Test'));
      await forbidden(denied.beginDeleteCertificate('readable', FAST_POLL));
    });
  });
});

const PYTHON = '/usr/bin/python3';
const pythonProbe = spawnSync(PYTHON, ['-c', 'import azure.keyvault.certificates, azure.identity'], { encoding: 'utf8' });
const pythonReason =
  pythonProbe.status === 0
    ? ''
    : ` (SKIPPED: ${PYTHON} cannot import azure.keyvault.certificates; install it with apt-get install python3-azure)`;

describe.skipIf(pythonProbe.status !== 0)(`the Python SDK's CertificateClient${pythonReason}`, () => {
  it('creates a self-signed certificate through its poller, reads, lists and deletes it, at its default api-version', async () => {
    const info = stackInfo();
    const c = info.credentials;
    const caFile = join(info.stateDir, 'python-certificates-ca.pem');
    writeFileSync(caFile, info.caPem);
    const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(
        PYTHON,
        [fileURLToPath(new URL('./python/certificates_smoke.py', import.meta.url))],
        {
          timeout: 120_000,
          env: {
            PATH: process.env.PATH ?? '/usr/bin:/bin',
            REQUESTS_CA_BUNDLE: caFile,
            SSL_CERT_FILE: caFile,
            EKV_VAULT_URL: c.vaultUrl,
            EKV_AUTHORITY_HOST: c.authorityHost,
            EKV_TENANT_ID: c.tenantId,
            EKV_CLIENT_ID: c.clientId,
            EKV_CLIENT_SECRET: c.clientSecret,
          },
        },
        (error, out, err) => resolve({ code: error ? 1 : 0, stdout: out, stderr: err }),
      ),
    );
    expect(code, stderr).toBe(0);
    expect(stdout + stderr).not.toContain(c.clientSecret);
    const out = JSON.parse(stdout) as {
      name: string;
      created: { id: string; version: string; cerBytes: number };
      got: { id: string; subject: string; issuer: string; keyId: string; secretId: string; sameCer: boolean };
      listed: boolean;
      deleted: { recoveryId: string; hasPurgeDate: boolean };
      afterDelete: string;
      requests: string[];
    };
    const base = `${c.vaultUrl}/certificates/${out.name}`;
    expect(out.created.id).toBe(`${base}/${out.created.version}`);
    expect(out.created.cerBytes).toBeGreaterThan(500);
    expect(out.got).toEqual({
      id: out.created.id,
      subject: 'CN=DefaultPolicy',
      issuer: 'Self',
      keyId: `${c.vaultUrl}/keys/${out.name}/${out.created.version}`,
      secretId: `${c.vaultUrl}/secrets/${out.name}/${out.created.version}`,
      sameCer: true,
    });
    expect(out.listed).toBe(true);
    expect(out.deleted).toEqual({ recoveryId: `${c.vaultUrl}/deletedcertificates/${out.name}`, hasPurgeDate: true });
    expect(out.afterDelete).toBe('CertificateNotFound');
    // The create went out at the SDK's default (7.3) and was polled at /pending.
    expect(out.requests).toContain(`POST /certificates/${out.name}/create 7.3`);
    expect(out.requests).toContain(`GET /certificates/${out.name}/pending 7.3`);
  }, 180_000);
});
