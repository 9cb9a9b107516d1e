/**
 * Configured issuers through the Certificates API: the vault's internal CA (EdgeKeyVaultCA, its key
 * in SoftHSM2 through the real bridge) and ACME against a real ACME server (pebble, EAB required,
 * over HTTPS: test/support/pebble-tls.ts), the pending operation moved on by the cron, and
 * what happens when the CA refuses, cannot be reached, or the caller cancels (also while the
 * version completes). ACME dns-01 writes its TXT records through the Cloudflare DNS API; the real
 * API cannot be reached from here, so the suite serves a stand-in that records the calls
 * (test/support/cloudflare-dns-fake.ts, the Worker's ACME_DNS_API_BASE), and pebble
 * (PEBBLE_VA_ALWAYS_VALID=1) does not look the records up.
 */
import 'reflect-metadata'; // tsyringe, under @peculiar/x509, needs the Reflect metadata API first
import * as x509 from '@peculiar/x509';
import { createExecutionContext, createScheduledController, waitOnExecutionContext } from 'cloudflare:test';
import { and, eq } from 'drizzle-orm';
import { calculateJwkThumbprint } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import worker from '../../src/index';
import type { Env } from '../../src/core/env';
import type { VaultRecord } from '../../src/core/vault';
import { runCertificateIssuance } from '../../src/jobs/certificate-issuance';
import { services } from '../../src/crypto/services';
import { AcmeClient } from '../../src/objects/certificates/issuers/acme/client';
import { D1AcmeAccounts } from '../../src/objects/certificates/issuers/acme/stores';
import { CertificateStore, ISSUANCE_DEADLINE_SECONDS } from '../../src/objects/certificates/store';
import { certificateIssuers, certificateOperations, certificates, certificateVersions } from '../../src/storage/schema';
import { findVault } from '../../src/storage/vaults';
import type { CloudflareCall } from '../support/cloudflare-dns-fake';
import { vaultChainOf } from './audit-helpers';
import { API, APEX, call, env, json, setupVault } from './helpers';
import { rows, sleep } from './identity-helpers';

x509.cryptoProvider.set(crypto);

let token: string;
let origin: string;
let vault: string;

beforeAll(async () => {
  ({ token, origin, vault } = await setupVault());
});

const req = (method: string, path: string, body?: unknown, as = { origin, token }) =>
  call(method, `${as.origin}${path}${path.includes('?') ? '&' : '?'}${API}`, { token: as.token, body });
const b64 = (text: string) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
const nowSeconds = () => Math.floor(Date.now() / 1000);
// A loopback port where nothing listens, over https as an ACME directory must be.
const deadOrigin = () => `https://${new URL(env.WEBHOOK_DEAD_URL).host}`;

const policy = (issuer: string, dnsNames: string[], keyProps: Record<string, unknown> = {}) => ({
  issuer: { name: issuer },
  key_props: { kty: 'EC', crv: 'P-256', exportable: true, ...keyProps },
  secret_props: { contentType: 'application/x-pem-file' },
  x509_props: { subject: `CN=${dnsNames[0]}`, sans: { dns_names: dnsNames }, validity_months: 3 },
});

/** Creates, and reads the operation's outcome at …/pending: a create answers 202 inProgress as Azure's does. */
async function create(name: string, body: unknown, as = { origin, token }) {
  const res = await req('POST', `/certificates/${name}/create`, { policy: body }, as);
  const accepted = await json(res);
  if (res.status !== 202) return { status: res.status, op: accepted };
  expect(accepted.status).toBe('inProgress');
  return { status: res.status, op: await json(await req('GET', `/certificates/${name}/pending`, undefined, as)) };
}

/**
 * No issued version: 404 once a failed create left nothing, or, while an operation exists, the
 * disabled pending version without `cer`, as Azure reads a certificate whose first version is pending.
 */
async function expectNoIssuedCertificate(name: string, as = { origin, token }) {
  const res = await req('GET', `/certificates/${name}`, undefined, as);
  if (res.status === 404) return;
  expect(res.status).toBe(200);
  const cert = await json(res);
  expect(cert.cer).toBeUndefined();
  expect(cert.attributes.enabled).toBe(false);
}

function pemCerts(pem: string): x509.X509Certificate[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map(
    (block) => new x509.X509Certificate(block),
  );
}

/** Runs the cron's issuance job (as the scheduled handler does) until the operation leaves inProgress. */
async function resumeUntilDone(name: string, rounds = 8): Promise<any> {
  for (let i = 1; i <= rounds; i++) {
    await runCertificateIssuance(env as Env, nowSeconds() + i * 600);
    const op = await json(await req('GET', `/certificates/${name}/pending`));
    if (op.status !== 'inProgress') return op;
  }
  throw new Error(`${name} still in progress after ${rounds} runs`);
}

/** The audit records the issuance job left for a certificate of this suite's vault, once the audit queue delivered them. */
async function issuanceAudits(name: string, expected = 1) {
  const chain = await vaultChainOf(vault);
  const deadline = Date.now() + 8000;
  for (;;) {
    const found = await rows<{ status: number; error_code: string | null; caller_oid: string | null }>(
      "select status, error_code, caller_oid from audit_records where chain = ? and operation = 'CertificatePendingComplete' and object_id = ?",
      chain,
      `/certificates/${name}`,
    );
    if (found.length >= expected || Date.now() > deadline) return found;
    await sleep(100);
  }
}

const putAcme = (name: string, extra: { directory?: string; hmac?: string } = {}, as = { origin, token }) =>
  req(
    'PUT',
    `/certificates/issuers/${name}`,
    {
      provider: 'ACME',
      credentials: { account_id: env.ACME_EAB_KID, pwd: extra.hmac ?? env.ACME_EAB_HMAC_KEY },
      org_details: { id: extra.directory ?? env.ACME_DIRECTORY_URL },
    },
    as,
  );

describe('internal CA issuer (EdgeKeyVaultCA)', () => {
  beforeAll(async () => {
    expect((await req('PUT', '/certificates/issuers/vault-ca', { provider: 'EdgeKeyVaultCA' })).status).toBe(200);
  });

  it('issues at once a chain that verifies against the public /pki/{vault}/ca.crt, with the key in the secret', async () => {
    const { status, op } = await create('ca-leaf', policy('vault-ca', ['svc.example.test', 'api.example.test']));
    expect(status).toBe(202);
    expect(op).toMatchObject({ status: 'completed', target: `${origin}/certificates/ca-leaf`, issuer: { name: 'vault-ca' } });
    expect(op.error).toBeUndefined();

    const caRes = await call('GET', `${APEX}/pki/${vault}/ca.crt`);
    expect(caRes.status).toBe(200);
    const ca = new x509.X509Certificate(new Uint8Array(await caRes.arrayBuffer()));
    const secret = await json(await req('GET', '/secrets/ca-leaf'));
    expect(secret.value).toContain('PRIVATE KEY');
    const [leaf, root, ...rest] = pemCerts(secret.value);
    expect(rest).toHaveLength(0);
    expect(root!.rawData).toEqual(ca.rawData);
    expect(leaf!.issuer).toBe(ca.subject);
    expect(await leaf!.verify({ publicKey: ca.publicKey, signatureOnly: true })).toBe(true);
    expect(leaf!.getExtension(x509.SubjectAlternativeNameExtension)!.names.toJSON()).toEqual([
      { type: 'dns', value: 'svc.example.test' },
      { type: 'dns', value: 'api.example.test' },
    ]);
    const chain = await new x509.X509ChainBuilder({ certificates: [ca] }).build(leaf!);
    expect(chain.map((c) => c.subject)).toEqual([leaf!.subject, ca.subject]);

    // The certificate object is the leaf, not self-signed; its key is the managed key.
    const cert = await json(await req('GET', '/certificates/ca-leaf'));
    expect(new x509.X509Certificate(b64(cert.cer)).rawData).toEqual(leaf!.rawData);
    const key = await json(await req('GET', '/keys/ca-leaf'));
    expect(key.managed).toBe(true);
    const leafKey = await leaf!.publicKey.export();
    const jwk = (await crypto.subtle.exportKey('jwk', leafKey)) as JsonWebKey;
    expect({ x: key.key.x, y: key.key.y }).toEqual({ x: jwk.x, y: jwk.y });
  });

  it('issues for a non-exportable HSM key: the secret holds the chain only, the key stays in the HSM', async () => {
    const { op } = await create('ca-hsm', policy('vault-ca', ['hsm.example.test'], { kty: 'EC-HSM', exportable: false }));
    expect(op.status).toBe('completed');
    const secret = await json(await req('GET', '/secrets/ca-hsm'));
    expect(secret.value).not.toContain('PRIVATE KEY');
    const ca = new x509.X509Certificate(new Uint8Array(await (await call('GET', `${APEX}/pki/${vault}/ca.crt`)).arrayBuffer()));
    const [leaf] = pemCerts(secret.value);
    expect(await leaf!.verify({ publicKey: ca.publicKey, signatureOnly: true })).toBe(true);
    expect((await json(await req('GET', '/keys/ca-hsm'))).key.kty).toBe('EC-HSM');
  });

  it('completes the operation with the CA refusal as an Azure error, and makes no certificate', async () => {
    // keyCertSign: the internal CA issues end-entity certificates only.
    const refused = policy('vault-ca', ['bad.example.test']);
    const { op } = await create('ca-refused', {
      ...refused,
      x509_props: { ...refused.x509_props, key_usage: ['digitalSignature', 'keyCertSign'] },
    });
    expect(op).toMatchObject({
      status: 'completed',
      error: { code: 'IssuerError', message: expect.stringMatching(/end-entity/) },
    });
    expect(op.target).toBeUndefined();
    await expectNoIssuedCertificate('ca-refused');
    expect((await req('GET', '/secrets/ca-refused')).status).toBe(404);
    // Nor a key: the one made for the refused CSR went with the failure.
    expect((await json(await req('GET', '/keys/ca-refused'))).error.code).toBe('KeyNotFound');
  });

  it('keeps the issued version the latest key and secret when a new version is refused (HSM key): the new key goes', async () => {
    const hsm = policy('vault-ca', ['again.example.test'], { kty: 'EC-HSM', exportable: false });
    expect((await create('ca-again', hsm)).op.status).toBe('completed');
    const issued = await json(await req('GET', '/certificates/ca-again'));
    const { op } = await create('ca-again', { ...hsm, x509_props: { ...hsm.x509_props, key_usage: ['keyCertSign'] } });
    expect(op).toMatchObject({ status: 'completed', error: { code: 'IssuerError' } });
    expect((await json(await req('GET', '/keys/ca-again'))).key.kid).toBe(issued.kid);
    expect((await json(await req('GET', '/secrets/ca-again'))).id).toBe(issued.sid);
    expect((await json(await req('GET', '/keys/ca-again/versions'))).value.map((k: any) => k.kid)).toEqual([issued.kid]);
    expect((await json(await req('GET', '/certificates/ca-again'))).id).toBe(issued.id);
    // The issued version's key (its token object) still signs.
    const signed = await req('POST', '/keys/ca-again/sign', { alg: 'ES256', value: 'A'.repeat(43) });
    expect(signed.status).toBe(200);
  });

  it('refuses a create naming a disabled issuer', async () => {
    await req('PUT', '/certificates/issuers/off-ca', { provider: 'EdgeKeyVaultCA', attributes: { enabled: false } });
    const { status, op } = await create('ca-off', policy('off-ca', ['off.example.test']));
    expect(status).toBe(400);
    expect(op.error.message).toMatch(/disabled/);
  });
});

describe('ACME issuer', () => {
  beforeAll(async () => {
    expect((await putAcme('pebble')).status).toBe(200);
  });

  it('keeps the EAB HMAC key like a password: never shown, directory URL in org_details.id', async () => {
    const bundle = await json(await req('GET', '/certificates/issuers/pebble'));
    expect(bundle).toMatchObject({
      provider: 'ACME',
      credentials: { account_id: env.ACME_EAB_KID },
      org_details: { id: env.ACME_DIRECTORY_URL },
    });
    expect(JSON.stringify(bundle)).not.toContain(env.ACME_EAB_HMAC_KEY);
  });

  it('refuses bundles it cannot issue with', async () => {
    const bad = async (body: Record<string, unknown>) => {
      const res = await req('PUT', '/certificates/issuers/bad-acme', { provider: 'ACME', ...body });
      expect(res.status).toBe(400);
      expect((await json(res)).error.code).toBe('BadParameter');
    };
    await bad({});
    await bad({ org_details: { id: 'not a url' } });
    await bad({ org_details: { id: env.ACME_DIRECTORY_URL.replace('https:', 'http:') } });
    await bad({ org_details: { id: env.ACME_DIRECTORY_URL }, credentials: { account_id: 'kid-only' } });
    await bad({ org_details: { id: env.ACME_DIRECTORY_URL }, credentials: { account_id: 'k', pwd: 'c2hvcnQ' } });
  });

  it('leaves the operation inProgress, then the cron completes it with the CA chain, key and secret as for Self', async () => {
    const { status, op } = await create('acme-one', policy('pebble', ['acme-one.example.test']));
    expect(status).toBe(202);
    expect(op).toMatchObject({ status: 'inProgress', issuer: { name: 'pebble' }, cancellation_requested: false });
    expect(op.csr).toEqual(expect.any(String));
    await expectNoIssuedCertificate('acme-one');
    const pending = await json(await req('GET', '/certificates/acme-one/pending'));
    expect(pending.status).toBe('inProgress');
    expect(JSON.stringify(pending)).not.toMatch(/resume|order/i);

    // Once through the scheduled handler itself (the wiring), then the job until done.
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ scheduledTime: Date.now() + 600_000 }), env as Env, ctx);
    await waitOnExecutionContext(ctx);
    const done = await resumeUntilDone('acme-one');
    expect(done).toMatchObject({ status: 'completed', target: `${origin}/certificates/acme-one` });
    expect(done.error).toBeUndefined();

    const secret = await json(await req('GET', '/secrets/acme-one'));
    expect(secret.value).toContain('PRIVATE KEY');
    const [leaf, ...issuers] = pemCerts(secret.value);
    expect(issuers.length).toBeGreaterThan(0);
    expect(leaf!.issuer).toBe(issuers[0]!.subject);
    expect(leaf!.issuer).toMatch(/Pebble/);
    expect(await leaf!.verify({ publicKey: issuers[0]!.publicKey, signatureOnly: true })).toBe(true);
    expect(leaf!.getExtension(x509.SubjectAlternativeNameExtension)!.names.toJSON()).toEqual([
      { type: 'dns', value: 'acme-one.example.test' },
    ]);
    const cert = await json(await req('GET', '/certificates/acme-one'));
    expect(new x509.X509Certificate(b64(cert.cer)).rawData).toEqual(leaf!.rawData);
    expect(cert.attributes.exp).toBe(Math.floor(leaf!.notAfter.getTime() / 1000));
    const key = await json(await req('GET', '/keys/acme-one'));
    const jwk = (await crypto.subtle.exportKey('jwk', await leaf!.publicKey.export())) as JsonWebKey;
    expect({ x: key.key.x, y: key.key.y }).toEqual({ x: jwk.x, y: jwk.y });
    // Nothing is left for the cron.
    expect((await runCertificateIssuance(env as Env, nowSeconds() + 7200)).due).toBe(0);
    // The job's completion is on the audit trail, made by no caller, once.
    expect(await issuanceAudits('acme-one')).toEqual([{ status: 200, error_code: null, caller_oid: null }]);
  });

  it('completes the operation with the server refusal when the CA refuses the account (wrong EAB key)', async () => {
    // A vault of its own: an account key the CA already knows is not asked for its binding again.
    const other = await setupVault();
    await putAcme('pebble-wrong-eab', { hmac: btoa('w'.repeat(32)).replace(/=+$/, '') }, other);
    const { status, op } = await create('acme-refused', policy('pebble-wrong-eab', ['refused.example.test']), other);
    expect(status).toBe(202);
    expect(op).toMatchObject({
      status: 'completed',
      error: { code: 'IssuerError', message: expect.stringMatching(/^ACME server/) },
    });
    expect(op.target).toBeUndefined();
    expect(JSON.stringify(op)).not.toContain('w'.repeat(16));
    await expectNoIssuedCertificate('acme-refused', other);
    expect((await req('GET', '/secrets/acme-refused', undefined, other)).status).toBe(404);
  });

  it('completes the operation with an error when the CA cannot be reached', async () => {
    await putAcme('acme-down', { directory: `${deadOrigin()}/dir` });
    const { op } = await create('acme-down-cert', policy('acme-down', ['down.example.test']));
    expect(op).toMatchObject({
      status: 'completed',
      error: { code: 'IssuerError', message: expect.stringMatching(/unreachable/) },
    });
    await expectNoIssuedCertificate('acme-down-cert');
    expect((await req('GET', '/secrets/acme-down-cert')).status).toBe(404);
  });

  it('retries a pending order while the CA is unreachable, and gives up with an error after the deadline', async () => {
    await putAcme('pebble-flaky');
    const { op } = await create('acme-flaky', policy('pebble-flaky', ['flaky.example.test']));
    expect(op.status).toBe('inProgress');
    // The CA goes away: the cron keeps the operation pending and tries again later.
    expect(
      (await req('PATCH', '/certificates/issuers/pebble-flaky', { org_details: { id: `${deadOrigin()}/dir` } })).status,
    ).toBe(200);
    const run = await runCertificateIssuance(env as Env, nowSeconds() + 600);
    expect(run.retried).toBeGreaterThanOrEqual(1);
    expect((await json(await req('GET', '/certificates/acme-flaky/pending'))).status).toBe('inProgress');
    await runCertificateIssuance(env as Env, nowSeconds() + ISSUANCE_DEADLINE_SECONDS + 3600);
    const failed = await json(await req('GET', '/certificates/acme-flaky/pending'));
    expect(failed).toMatchObject({
      status: 'completed',
      error: { code: 'IssuerError', message: expect.stringMatching(/in time/) },
    });
    await expectNoIssuedCertificate('acme-flaky');
    // Retries are not audited; giving up is, with the operation's error code.
    expect(await issuanceAudits('acme-flaky')).toEqual([{ status: 500, error_code: 'IssuerError', caller_oid: null }]);
  });

  it('stops a pending issuance that is cancelled: the cron issues nothing', async () => {
    const { op } = await create('acme-cancel', policy('pebble', ['cancel.example.test']));
    expect(op.status).toBe('inProgress');
    const cancelled = await json(await req('PATCH', '/certificates/acme-cancel/pending', { cancellation_requested: true }));
    expect(cancelled).toMatchObject({ status: 'cancelled', cancellation_requested: true });
    for (let i = 1; i <= 4; i++) await runCertificateIssuance(env as Env, nowSeconds() + i * 600);
    // Azure shows the request (cancellation_requested) with the outcome, on every later read.
    expect(await json(await req('GET', '/certificates/acme-cancel/pending'))).toMatchObject({
      status: 'cancelled',
      cancellation_requested: true,
    });
    await expectNoIssuedCertificate('acme-cancel');
    expect((await req('GET', '/secrets/acme-cancel')).status).toBe(404);
    // A new create is allowed once the old operation is no longer in progress.
    expect((await create('acme-cancel', policy('pebble', ['cancel.example.test']))).op.status).toBe('inProgress');
  });
});

/**
 * A store as the cron and the routes make one, whose `race` runs between the completion's storing
 * of the version and its finishing the operation (the version stored, the operation still
 * inProgress): a request made there lands exactly where a concurrent PATCH or DELETE …/pending
 * would. It records the versions it announces (CertificateNewVersionCreated).
 */
class RacedStore extends CertificateStore {
  readonly announced: string[] = [];
  /** What happened, in order: 'finished' (this call finished the operation), 'announced'. */
  readonly steps: string[] = [];
  constructor(
    svc: ReturnType<typeof services>,
    vaultRecord: VaultRecord,
    private readonly race: () => Promise<void>,
  ) {
    super(svc.db, svc.keys, svc.bridge, vaultRecord, {
      onNewVersion: (r) => {
        this.announced.push(r.version);
        this.steps.push('announced');
      },
    });
  }
  protected override async finishOperation(name: string, requestId: string, error?: { code: string; message: string }) {
    if (!error) await this.race();
    const finished = await super.finishOperation(name, requestId, error);
    if (finished) this.steps.push('finished');
    return finished;
  }
}

describe('a cancel or DELETE …/pending landing while the version completes', () => {
  // First mark wins, as on Azure.
  let db: ReturnType<typeof services>['db'];
  let vaultId: string;
  beforeAll(async () => {
    expect((await putAcme('pebble-race')).status).toBe(200);
    db = services(env as Env).db;
    vaultId = (await findVault(db, vault))!.id;
  });

  async function racedStore(race: () => Promise<void>) {
    const svc = services(env as Env);
    return new RacedStore(svc, (await findVault(svc.db, vault))!, race);
  }
  const opIs = (name: string) => and(eq(certificateOperations.vaultId, vaultId), eq(certificateOperations.name, name));
  /** Other files' scheduled runs share the D1: the operation is kept from them and driven here alone. */
  const hideFromCron = (name: string) => db.update(certificateOperations).set({ nextAttemptAt: null }).where(opIs(name));
  const versionRows = (name: string) =>
    db
      .select({ version: certificateVersions.version })
      .from(certificateVersions)
      .where(and(eq(certificateVersions.vaultId, vaultId), eq(certificateVersions.name, name)))
      .all();
  const renewalDue = async (name: string) =>
    (
      await db
        .select({ due: certificates.renewalDueAt })
        .from(certificates)
        .where(and(eq(certificates.vaultId, vaultId), eq(certificates.name, name)))
        .get()
    )?.due;

  it('the cron completing an ACME order that a cancel marks first: cancelled, and no certificate, key or secret version stays', async () => {
    const name = 'race-cancel';
    const { op } = await create(name, policy('pebble-race', [`${name}.example.test`]));
    expect(op.status).toBe('inProgress');
    await hideFromCron(name);
    let cancel: any;
    const store = await racedStore(async () => {
      cancel = await json(await req('PATCH', `/certificates/${name}/pending`, { cancellation_requested: true }));
    });
    const { requestId } = await store.operation(name);
    let status = 'pending';
    for (let i = 0; i < 8 && status === 'pending'; i++) {
      status = await store.continueIssuance(name, requestId, nowSeconds());
      await hideFromCron(name);
    }
    // The cancel landed after the version was stored, and won: the completion undid itself.
    expect(cancel).toMatchObject({ status: 'cancelled', cancellation_requested: true });
    expect(status).toBe('gone');
    expect(await json(await req('GET', `/certificates/${name}/pending`))).toMatchObject({
      status: 'cancelled',
      cancellation_requested: true,
    });
    await expectNoIssuedCertificate(name);
    expect(await versionRows(name)).toEqual([]);
    expect(await renewalDue(name)).toBeUndefined();
    expect((await json(await req('GET', `/keys/${name}`))).error.code).toBe('KeyNotFound');
    expect((await json(await req('GET', `/keys/${name}/versions`))).value).toEqual([]);
    expect((await json(await req('GET', `/secrets/${name}`))).error.code).toBe('SecretNotFound');
    expect((await json(await req('GET', `/secrets/${name}/versions`))).value).toEqual([]);
    // Nothing announced a version that is gone.
    expect(store.announced).toEqual([]);
  });

  it('the cron completing an ACME order that nothing races: finished first, then announced', async () => {
    const name = 'race-none';
    await create(name, policy('pebble-race', [`${name}.example.test`]));
    await hideFromCron(name);
    let statusWhenRaced: string | undefined;
    const store = await racedStore(async () => {
      statusWhenRaced = (await json(await req('GET', `/certificates/${name}/pending`))).status;
    });
    const { requestId } = await store.operation(name);
    let status = 'pending';
    for (let i = 0; i < 8 && status === 'pending'; i++) {
      status = await store.continueIssuance(name, requestId, nowSeconds());
      await hideFromCron(name);
    }
    expect(status).toBe('issued');
    expect(statusWhenRaced).toBe('inProgress');
    const issued = await json(await req('GET', `/certificates/${name}`));
    expect(store.announced).toEqual([issued.id.split('/').pop()]);
    expect(store.steps).toEqual(['finished', 'announced']);
  });

  it('a merge that a DELETE …/pending removes first: 404, and the issued version stays the latest of the three, due as before', async () => {
    const name = 'race-merge';
    const emailed = [{ trigger: { days_before_expiry: 30 }, action: { action_type: 'EmailContacts' } }];
    const base = {
      key_props: { kty: 'EC', crv: 'P-256', exportable: true },
      x509_props: { subject: `CN=${name}.example.test`, validity_months: 3 },
      lifetime_actions: emailed,
    };
    await create(name, { ...base, issuer: { name: 'Self' } });
    const issued = await json(await req('GET', `/certificates/${name}`));
    expect(issued.cer).toEqual(expect.any(String));
    const due = await renewalDue(name);
    expect(due).toEqual(expect.any(Number));

    const { op } = await create(name, { ...base, issuer: { name: 'Unknown' } });
    expect(op.status).toBe('inProgress');
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const caKeys = (await crypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: '02',
      subject: `CN=${name}.example.test`,
      issuer: 'CN=Race CA',
      publicKey: new x509.Pkcs10CertificateRequest(b64(op.csr)).publicKey,
      signingKey: caKeys.privateKey,
      signingAlgorithm: alg,
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 365 * 86_400_000),
    });
    let deleted: Response | undefined;
    let dueWhileMerged: number | null | undefined;
    const store = await racedStore(async () => {
      dueWhileMerged = await renewalDue(name);
      deleted = await req('DELETE', `/certificates/${name}/pending`);
    });
    await expect(store.merge(name, { x5c: [leaf.toString('base64')] })).rejects.toMatchObject({
      status: 404,
      code: 'PendingCertificateNotFound',
    });
    expect(deleted?.status).toBe(200);
    expect((await req('GET', `/certificates/${name}/pending`)).status).toBe(404);
    // The merged version had moved the schedule (a year's leaf); it is back with the issued version.
    expect(dueWhileMerged).not.toBe(due);
    expect(await renewalDue(name)).toBe(due);
    const latest = await json(await req('GET', `/certificates/${name}`));
    expect({ id: latest.id, kid: latest.kid, sid: latest.sid, cer: latest.cer }).toEqual({
      id: issued.id,
      kid: issued.kid,
      sid: issued.sid,
      cer: issued.cer,
    });
    expect(await versionRows(name)).toEqual([{ version: issued.id.split('/').pop() }]);
    expect((await json(await req('GET', `/keys/${name}`))).key.kid).toBe(issued.kid);
    expect((await json(await req('GET', `/keys/${name}/versions`))).value).toHaveLength(1);
    expect((await json(await req('GET', `/secrets/${name}`))).id).toBe(issued.sid);
    expect((await json(await req('GET', `/secrets/${name}/versions`))).value).toHaveLength(1);
    expect(store.announced).toEqual([]);
  });
});

describe('ACME issuer with dns-01 (Cloudflare DNS)', () => {
  const CF_TOKEN = 'cf-api-token-Zz9yX8wV7uT6sR5qP4oN3mL2';
  const newZone = () => Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
  const cf = (method: string, path: string, body?: unknown) =>
    fetch(`${env.WEBHOOK_RECEIVER_URL}/control/cloudflare/zones/${path}`, {
      method,
      headers: { authorization: `Bearer ${env.WEBHOOK_RECEIVER_CONTROL_TOKEN}` },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  const cfCalls = async (zone: string) => (await (await cf('GET', `${zone}/calls`)).json()) as CloudflareCall[];
  const cfRecords = async (zone: string) => (await (await cf('GET', `${zone}/records`)).json()) as unknown[];
  const dnsBundle = (zone: string, dns: Record<string, unknown> = {}) => ({
    provider: 'ACME',
    credentials: { account_id: env.ACME_EAB_KID, pwd: env.ACME_EAB_HMAC_KEY },
    org_details: { id: env.ACME_DIRECTORY_URL },
    dns_01: { provider: 'Cloudflare', zone_id: zone, api_token: CF_TOKEN, ...dns },
  });
  const b64url = (bytes: ArrayBuffer) =>
    btoa(String.fromCharCode(...new Uint8Array(bytes)))
      .replace(/\+/g, '-')
      .replace(/\//g, '_')
      .replace(/=+$/, '');

  it('keeps the API token sealed like the EAB key: never shown; dns_01 refused where it cannot work', async () => {
    const zone = newZone();
    expect((await req('PUT', '/certificates/issuers/pebble-dns-shown', dnsBundle(zone))).status).toBe(200);
    const bundle = await json(await req('GET', '/certificates/issuers/pebble-dns-shown'));
    expect(bundle).toMatchObject({ provider: 'ACME', dns_01: { provider: 'Cloudflare', zone_id: zone } });
    expect(bundle.dns_01.api_token).toBeUndefined();
    expect(JSON.stringify(bundle)).not.toContain(CF_TOKEN);
    const { db } = services(env as Env);
    const row = (await db
      .select()
      .from(certificateIssuers)
      .where(
        and(eq(certificateIssuers.vaultId, (await findVault(db, vault))!.id), eq(certificateIssuers.name, 'pebble-dns-shown')),
      )
      .get())!;
    expect(row.dnsTokenCiphertext).toEqual(expect.any(String));
    expect(`${row.dns01}${row.dnsTokenCiphertext}${row.passwordCiphertext}`).not.toContain(CF_TOKEN);
    // A new zone alone keeps the token; null removes dns-01 (and the token) again.
    const other = newZone();
    const patched = await req('PATCH', '/certificates/issuers/pebble-dns-shown', {
      dns_01: { provider: 'Cloudflare', zone_id: other },
    });
    expect(patched.status).toBe(200);
    expect((await json(patched)).dns_01).toEqual({ provider: 'Cloudflare', zone_id: other });
    expect((await req('PATCH', '/certificates/issuers/pebble-dns-shown', { dns_01: null })).status).toBe(200);
    expect((await json(await req('GET', '/certificates/issuers/pebble-dns-shown'))).dns_01).toBeUndefined();

    const bad = async (body: Record<string, unknown>) => {
      const res = await req('PUT', '/certificates/issuers/bad-dns', body);
      expect(res.status).toBe(400);
      expect((await json(res)).error.code).toBe('BadParameter');
    };
    await bad(dnsBundle(zone, { api_token: null }));
    await bad(dnsBundle('not-a-zone-id'));
    await bad(dnsBundle(zone, { provider: 'Route53' }));
    await bad({ provider: 'EdgeKeyVaultCA', dns_01: { provider: 'Cloudflare', zone_id: zone, api_token: CF_TOKEN } });
  });

  it('answers dns-01 with a TXT record per name through Cloudflare DNS, and removes the records once issued', async () => {
    const zone = newZone();
    expect((await req('PUT', '/certificates/issuers/pebble-dns', dnsBundle(zone))).status).toBe(200);
    // A wildcard and its base name: two authorizations, two records of one name (RFC 8555 §8.4).
    const names = ['dns-one.example.test', '*.dns-one.example.test'];
    const { status, op } = await create('acme-dns', policy('pebble-dns', names));
    expect(status).toBe(202);
    expect(op).toMatchObject({ status: 'inProgress', issuer: { name: 'pebble-dns' } });

    const created = await cfCalls(zone);
    expect(created).toHaveLength(2);
    for (const call of created) {
      expect(call).toMatchObject({
        method: 'POST',
        path: `/client/v4/zones/${zone}/dns_records`,
        authorization: `Bearer ${CF_TOKEN}`,
        body: { type: 'TXT', name: '_acme-challenge.dns-one.example.test', ttl: 60 },
      });
    }
    // Each value is base64url(SHA-256(key authorization)), the key authorization being the
    // challenge token and the account key's JWK thumbprint: read back from pebble here.
    const { db, keys } = services(env as Env);
    const vaultId = (await findVault(db, vault))!.id;
    const account = await new D1AcmeAccounts(db, keys, vaultId, env.ACME_DIRECTORY_URL).load();
    const opRow = (await db
      .select()
      .from(certificateOperations)
      .where(and(eq(certificateOperations.vaultId, vaultId), eq(certificateOperations.name, 'acme-dns')))
      .get())!;
    const orderUrl = (JSON.parse(atob(opRow.resume!.replace(/-/g, '+').replace(/_/g, '/'))) as { order: string }).order;
    const client = new AcmeClient(env.ACME_DIRECTORY_URL, account.key, account.accountUrl);
    const { order } = await client.order(orderUrl);
    const thumbprint = await calculateJwkThumbprint(account.key.jwk);
    const expected: string[] = [];
    for (const url of order.authorizations) {
      const authz = await client.authorization(url);
      const challenge = authz.challenges.find((c) => c.type === 'dns-01')!;
      // Not yet told: the records get time to reach the zone's name servers before the CA looks.
      expect(challenge.status).toBe('pending');
      const token = challenge.token;
      expected.push(`"${b64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(`${token}.${thumbprint}`)))}"`);
    }
    expect(created.map((c) => (c.body as { content: string }).content).sort()).toEqual(expected.sort());
    expect(await cfRecords(zone)).toHaveLength(2);

    const done = await resumeUntilDone('acme-dns');
    expect(done).toMatchObject({ status: 'completed', target: `${origin}/certificates/acme-dns` });
    expect(done.error).toBeUndefined();
    const cert = await json(await req('GET', '/certificates/acme-dns'));
    const leaf = new x509.X509Certificate(b64(cert.cer));
    expect(leaf.issuer).toMatch(/Pebble/);
    expect(
      leaf
        .getExtension(x509.SubjectAlternativeNameExtension)!
        .names.toJSON()
        .map((n) => n.value)
        .sort(),
    ).toEqual([...names].sort());
    // Both records deleted by the ids Cloudflare gave them (the stand-in refuses unknown ids): none left.
    const deletes = (await cfCalls(zone)).slice(2);
    expect(deletes).toHaveLength(2);
    for (const call of deletes) {
      expect(call.method).toBe('DELETE');
      expect(call.path).toMatch(new RegExp(`^/client/v4/zones/${zone}/dns_records/[0-9a-f]{32}$`));
      expect(call.authorization).toBe(`Bearer ${CF_TOKEN}`);
    }
    expect(await cfRecords(zone)).toEqual([]);
  });

  it('removes the TXT records of an order that is cancelled, or deleted while pending', async () => {
    for (const how of ['cancel', 'delete'] as const) {
      const zone = newZone();
      expect((await req('PUT', `/certificates/issuers/pebble-dns-${how}`, dnsBundle(zone))).status).toBe(200);
      const name = `acme-dns-${how}`;
      const { op } = await create(name, policy(`pebble-dns-${how}`, [`${how}-dns.example.test`]));
      expect(op.status).toBe('inProgress');
      expect(await cfRecords(zone)).toHaveLength(1);
      if (how === 'cancel')
        expect((await req('PATCH', `/certificates/${name}/pending`, { cancellation_requested: true })).status).toBe(200);
      else expect((await req('DELETE', `/certificates/${name}/pending`)).status).toBe(200);
      expect(await cfRecords(zone)).toEqual([]);
      const [created, deleted, ...rest] = await cfCalls(zone);
      expect(created).toMatchObject({ method: 'POST' });
      expect(deleted).toMatchObject({ method: 'DELETE', authorization: `Bearer ${CF_TOKEN}` });
      expect(rest).toEqual([]);
    }
  });

  it('removes the TXT records of an order that gives up at the deadline', async () => {
    const zone = newZone();
    expect((await req('PUT', '/certificates/issuers/pebble-dns-late', dnsBundle(zone))).status).toBe(200);
    expect((await create('acme-dns-late', policy('pebble-dns-late', ['late-dns.example.test']))).op.status).toBe('inProgress');
    expect(await cfRecords(zone)).toHaveLength(1);
    await runCertificateIssuance(env as Env, nowSeconds() + ISSUANCE_DEADLINE_SECONDS + 3600);
    expect(await json(await req('GET', '/certificates/acme-dns-late/pending'))).toMatchObject({
      status: 'completed',
      error: { code: 'IssuerError', message: expect.stringMatching(/in time/) },
    });
    expect(await cfRecords(zone)).toEqual([]);
    expect((await req('GET', '/keys/acme-dns-late')).status).toBe(404);
  });

  it('completes the operation with an Azure-shaped error when Cloudflare refuses the token (403)', async () => {
    const zone = newZone();
    expect((await cf('PUT', zone, { refuse: true })).status).toBe(204);
    expect((await req('PUT', '/certificates/issuers/pebble-dns-refused', dnsBundle(zone))).status).toBe(200);
    const { status, op } = await create('acme-dns-refused', policy('pebble-dns-refused', ['refused-dns.example.test']));
    expect(status).toBe(202);
    expect(op).toMatchObject({
      status: 'completed',
      error: {
        code: 'IssuerError',
        message: expect.stringMatching(/^Cloudflare DNS POST failed: HTTP 403 \(10000 Authentication error\)/),
      },
    });
    expect(op.target).toBeUndefined();
    expect(JSON.stringify(op)).not.toContain(CF_TOKEN);
    const calls = await cfCalls(zone);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ method: 'POST', authorization: `Bearer ${CF_TOKEN}` });
    await expectNoIssuedCertificate('acme-dns-refused');
    expect((await req('GET', '/secrets/acme-dns-refused')).status).toBe(404);
    expect((await runCertificateIssuance(env as Env, nowSeconds() + 7200)).due).toBe(0);
  });
});
