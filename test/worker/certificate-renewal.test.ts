/**
 * Scheduled certificate renewal and the certificate events: lifetime actions due by percentage and
 * by days, nothing when not due, one new version under overlapping scans and duplicated messages,
 * disabled and deleted certificates left alone, an Unknown issuer's renewal left pending, a failed
 * renewal retried then given up visibly, EmailContacts' near-expiry notice, and
 * CertificateNewVersionCreated / NearExpiry / Expired once per version.
 */
import 'reflect-metadata'; // tsyringe, under @peculiar/x509, needs the Reflect metadata API first
import * as x509 from '@peculiar/x509';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Env } from '../../src/core/env';
import type { VaultRecord } from '../../src/core/vault';
import {
  consumeRenewalBatch,
  renewCertificate,
  RENEWAL_ATTEMPTS,
  RENEWALS_PER_PAGE,
  runLifetimeActions,
  scanDueRenewals,
  type RenewalMessage,
} from '../../src/jobs/certificate-renewal';
import { EXPIRING_KINDS, NEAR_EXPIRY_SECONDS, runExpiryNotices } from '../../src/jobs/expiry';
import { database } from '../../src/storage/db';
import { findVault } from '../../src/storage/vaults';
import { EC_PEM } from './certificate-fixtures';
import { API, call, env, json, setupVault } from './helpers';
import { rows, sleep } from './identity-helpers';

x509.cryptoProvider.set(crypto);

const db = database(env.DB);
const DAY = 86_400;
const nowSeconds = () => Math.floor(Date.now() / 1000);
const certificateKind = EXPIRING_KINDS.find((k) => k.kind === 'certificate')!;

let fixture: Awaited<ReturnType<typeof setupVault>>;
let vault: VaultRecord;

beforeAll(async () => {
  fixture = await setupVault();
  vault = (await findVault(db, fixture.vault))!;
});

const req = (method: string, path: string, body?: unknown) =>
  call(method, `${fixture.origin}${path}${path.includes('?') ? '&' : '?'}${API}`, { token: fixture.token, body });

const policy = (actions: unknown[], extra: Record<string, unknown> = {}) => ({
  key_props: { kty: 'EC', crv: 'P-256' },
  issuer: { name: 'Self' },
  x509_props: { subject: 'CN=renew.example.com', validity_months: 12 },
  lifetime_actions: actions,
  ...extra,
});
const autoRenewAt = (trigger: Record<string, number>) => [{ trigger, action: { action_type: 'AutoRenew' } }];

async function create(name: string, p: unknown) {
  const res = await req('POST', `/certificates/${name}/create`, { policy: p });
  const op = await json(res);
  expect(res.status, JSON.stringify(op)).toBe(202);
  expect(op.status).toBe('inProgress'); // accepted, as Azure answers a create; Self completes at once
  expect((await json(await req('GET', `/certificates/${name}/pending`))).status).toBe('completed');
  return json(await req('GET', `/certificates/${name}`));
}

const versionOf = (id: string) => id.split('/').pop()!;

async function head(name: string) {
  const [row] = await rows<{ latest_version: string; renewal_due_at: number | null; renewal_claim: string | null }>(
    'select latest_version, renewal_due_at, renewal_claim from certificates where vault_id = ? and name = ?',
    vault.id,
    name,
  );
  return row!;
}

const versions = (name: string) =>
  rows<{ version: string; nbf: number; exp: number }>(
    'select version, nbf, exp from certificate_versions where vault_id = ? and name = ? order by created, rowid',
    vault.id,
    name,
  );

/** The vault's env with a renewal queue that only records what is sent (the consumer is driven by the test). */
function recordingEnv() {
  const sent: RenewalMessage[] = [];
  const queue = {
    send: async (body: RenewalMessage) => void sent.push(body),
    sendBatch: async (msgs: { body: RenewalMessage }[]) => void sent.push(...msgs.map((m) => m.body)),
  };
  return { env: { ...(env as Env), CERTIFICATE_RENEWAL_QUEUE: queue as unknown as Queue<unknown> }, sent };
}

/** Scans this vault only (the test database is shared by every test file) at `now`. */
async function scan(now: number) {
  const r = recordingEnv();
  const result = await scanDueRenewals(r.env, now, { vaultId: vault.id });
  return { ...result, sent: r.sent, env: r.env };
}

const renewMessages = (sent: RenewalMessage[]) =>
  sent.filter((m): m is Extract<RenewalMessage, { type: 'renew' }> => m.type === 'renew');

/** The vault's stored events of a type (the real events queue's consumer stores them). */
async function storedEvents(type: string, expected: number, timeoutMs = 8000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await rows<{ subject: string; version: string; body: string }>(
      'select subject, version, body from events where vault = ? and event_type = ? order by event_time, subject',
      vault.name,
      `Microsoft.KeyVault.${type}`,
    );
    if (found.length >= expected || Date.now() > deadline) return found;
    await sleep(100);
  }
}

describe('scheduled renewal', () => {
  it('schedules the latest version by lifetime_percentage and renews it once due, with a new key and secret', async () => {
    const bundle = await create('by-percent', policy(autoRenewAt({ lifetime_percentage: 80 })));
    const [v1] = await versions('by-percent');
    const dueAt = v1!.nbf + Math.floor((v1!.exp - v1!.nbf) * 0.8);
    expect((await head('by-percent')).renewal_due_at).toBe(dueAt);

    // Not due: nothing queued, nothing claimed.
    const early = await scan(dueAt - 60);
    expect(renewMessages(early.sent).filter((m) => m.name === 'by-percent')).toEqual([]);
    expect((await head('by-percent')).renewal_claim).toBeNull();

    const due = await scan(dueAt);
    const [message] = renewMessages(due.sent).filter((m) => m.name === 'by-percent');
    expect(message).toMatchObject({ vaultId: vault.id, version: versionOf(bundle.id), now: dueAt });
    expect(await runLifetimeActions(due.env, message!)).toBe('renewed');

    const after = await versions('by-percent');
    expect(after).toHaveLength(2);
    const v2 = after[1]!;
    const renewed = await head('by-percent');
    expect(renewed).toMatchObject({ latest_version: v2.version, renewal_claim: null });
    expect(renewed.renewal_due_at).toBe(v2.nbf + Math.floor((v2.exp - v2.nbf) * 0.8));
    const newer = await json(await req('GET', '/certificates/by-percent'));
    expect(newer.cer).not.toBe(bundle.cer);
    const [k1, k2] = await Promise.all(
      [v1!.version, v2.version].map(async (v) => json(await req('GET', `/keys/by-percent/${v}`))),
    );
    expect(k2.key.x).not.toBe(k1.key.x); // reuse_key false: a new key
    expect((await req('GET', `/secrets/by-percent/${v2.version}`)).status).toBe(200);
    // The message again (a redelivery): the claim is gone and the version moved on, nothing more.
    expect(await runLifetimeActions(due.env, message!)).toBe('skipped');
    expect(await versions('by-percent')).toHaveLength(2);
  }, 30_000);

  it('renews by days_before_expiry, keeping the key when the policy says reuse_key', async () => {
    const bundle = await create(
      'by-days',
      policy(autoRenewAt({ days_before_expiry: 45 }), { key_props: { kty: 'EC', crv: 'P-256', reuse_key: true } }),
    );
    const [v1] = await versions('by-days');
    expect((await head('by-days')).renewal_due_at).toBe(v1!.exp - 45 * DAY);
    const mine = (sent: RenewalMessage[]) => renewMessages(sent).filter((m) => m.name === 'by-days');
    expect(mine((await scan(v1!.exp - 46 * DAY)).sent)).toEqual([]);
    const due = await scan(v1!.exp - 45 * DAY);
    const messages = mine(due.sent);
    expect(messages).toHaveLength(1);
    expect(await runLifetimeActions(due.env, messages[0]!)).toBe('renewed');
    const [, v2] = await versions('by-days');
    const keys = await Promise.all(
      [versionOf(bundle.id), v2!.version].map(async (v) => json(await req('GET', `/keys/by-days/${v}`))),
    );
    expect(keys[1].key.x).toBe(keys[0].key.x);
  }, 30_000);

  it('makes exactly one new version when scans and consumers overlap', async () => {
    await create('overlap', policy(autoRenewAt({ lifetime_percentage: 50 })));
    const [v1] = await versions('overlap');
    const at = v1!.nbf + Math.floor((v1!.exp - v1!.nbf) * 0.5) + 10;
    // Three scans at once: the certificate is claimed and queued by one of them.
    const scans = await Promise.all([scan(at), scan(at), scan(at)]);
    const messages = scans.flatMap((s) => renewMessages(s.sent)).filter((m) => m.name === 'overlap');
    expect(messages).toHaveLength(1);
    // The message delivered twice, handled concurrently, plus a scheduled run's own attempt.
    const outcomes = await Promise.all([
      runLifetimeActions(scans[0]!.env, messages[0]!),
      runLifetimeActions(scans[0]!.env, messages[0]!),
      renewCertificate(env as Env, vault, 'overlap', { version: v1!.version, now: at }).then(
        (r) => r.status,
        (err: { status?: number }) => err.status,
      ),
    ]);
    expect(outcomes.filter((o) => o === 'renewed' || o === 'completed')).toHaveLength(1);
    expect(outcomes.filter((o) => o === 'skipped' || o === 409)).toHaveLength(2);
    expect(await versions('overlap')).toHaveLength(2);
  }, 30_000);

  it('runs through the real queue: the scan queues, the consumer renews, CertificateNewVersionCreated is stored', async () => {
    await create('queued', policy(autoRenewAt({ lifetime_percentage: 30 })));
    const [v1] = await versions('queued');
    const at = v1!.nbf + Math.floor((v1!.exp - v1!.nbf) * 0.3);
    const result = await scanDueRenewals(env as Env, at, { vaultId: vault.id });
    expect(result.queued).toBeGreaterThanOrEqual(1);
    const deadline = Date.now() + 15_000;
    while ((await versions('queued')).length < 2 && Date.now() < deadline) await sleep(100);
    const [, v2] = await versions('queued');
    expect(v2).toBeDefined();
    let stored: { subject: string; version: string }[] = [];
    while (stored.length < 2 && Date.now() < deadline) {
      stored = (await storedEvents('CertificateNewVersionCreated', 0)).filter((e) => e.subject === 'queued');
      await sleep(100);
    }
    expect(stored.map((e) => e.version).sort()).toEqual([v1!.version, v2!.version].sort());
  }, 30_000);

  it('pages through many due certificates, continuing through a scan message past its pages', async () => {
    const names = ['page-a', 'page-b', 'page-c'];
    for (const n of names) await create(n, policy(autoRenewAt({ lifetime_percentage: 1 })));
    const [v1] = await versions('page-c');
    const at = v1!.exp - DAY;
    const r = recordingEnv();
    const first = await scanDueRenewals(r.env, at, { vaultId: vault.id, pages: 0 });
    expect(first).toEqual({ queued: 0, more: true });
    expect(r.sent).toEqual([{ type: 'scan', now: at, vaultId: vault.id }]);
    const rest = await scanDueRenewals(r.env, at, { vaultId: vault.id });
    expect(rest.more).toBe(false);
    expect(rest.queued).toBeLessThanOrEqual(RENEWALS_PER_PAGE);
    expect(renewMessages(r.sent).map((m) => m.name)).toEqual(expect.arrayContaining(names));
    // Claimed: a second scan finds none of them.
    expect(renewMessages((await scan(at)).sent).filter((m) => names.includes(m.name))).toEqual([]);
  }, 30_000);

  it('leaves disabled and deleted certificates alone, and schedules a re-enabled one again', async () => {
    const bundle = await create('disabled', policy(autoRenewAt({ lifetime_percentage: 40 })));
    await create('deleted', policy(autoRenewAt({ lifetime_percentage: 40 })));
    const [v1] = await versions('disabled');
    const at = v1!.exp - DAY;
    expect((await req('DELETE', '/certificates/deleted')).status).toBe(200);
    // Disabled by the latest version's attributes after it was queued: the consumer skips it.
    const due = await scan(at);
    const queued = renewMessages(due.sent);
    expect(queued.map((m) => m.name)).not.toContain('deleted');
    const message = queued.find((m) => m.name === 'disabled')!;
    expect(
      (await req('PATCH', `/certificates/disabled/${versionOf(bundle.id)}`, { attributes: { enabled: false } })).status,
    ).toBe(200);
    expect(await runLifetimeActions(due.env, message)).toBe('skipped');
    expect(await versions('disabled')).toHaveLength(1);
    expect((await head('disabled')).renewal_due_at).toBeNull();
    expect(renewMessages((await scan(at)).sent).map((m) => m.name)).not.toContain('disabled');
    // Enabled again: due again.
    expect((await req('PATCH', `/certificates/disabled/${versionOf(bundle.id)}`, { attributes: { enabled: true } })).status).toBe(
      200,
    );
    expect((await head('disabled')).renewal_due_at).toBe(v1!.nbf + Math.floor((v1!.exp - v1!.nbf) * 0.4));
    expect(await versions('deleted')).toHaveLength(1);
  }, 30_000);

  it("leaves an Unknown issuer's renewal pending with a CSR, and answers that same operation to a second renewal", async () => {
    const res = await req('POST', '/certificates/manual/import', {
      value: EC_PEM,
      policy: { issuer: { name: 'Unknown' }, secret_props: { contentType: 'application/x-pem-file' } },
    });
    expect(res.status, await res.clone().text()).toBe(200);
    const now = nowSeconds();
    const outcome = await renewCertificate(env as Env, vault, 'manual', { now });
    expect(outcome.status).toBe('inProgress');
    expect(outcome.operation.csr.length).toBeGreaterThan(100);
    const pending = await json(await req('GET', '/certificates/manual/pending'));
    expect(pending).toMatchObject({ status: 'inProgress', csr: outcome.operation.csr });
    // Looked at again in a day, not every run; a second renewal answers the same operation.
    expect(await head('manual')).toMatchObject({ renewal_claim: null, renewal_due_at: now + DAY });
    const again = await renewCertificate(env as Env, vault, 'manual', { now });
    expect(again.operation.requestId).toBe(outcome.operation.requestId);
    expect(await versions('manual')).toHaveLength(1);
  }, 30_000);

  it('answers 404 for a missing or deleted certificate and 409 while another renewal holds it', async () => {
    await expect(renewCertificate(env as Env, vault, 'no-such-cert')).rejects.toMatchObject({ status: 404 });
    await expect(renewCertificate(env as Env, vault, 'deleted')).rejects.toMatchObject({ status: 404 });
    await create('held', policy(autoRenewAt({ lifetime_percentage: 60 })));
    const [v1] = await versions('held');
    const at = v1!.exp - DAY;
    expect(renewMessages((await scan(at)).sent).map((m) => m.name)).toContain('held');
    await expect(renewCertificate(env as Env, vault, 'held', { now: at })).rejects.toMatchObject({ status: 409 });
  }, 30_000);

  it('retries a failed renewal with a backoff, then gives up visibly: due again, audited, never lost', async () => {
    await create('hsm-down', policy(autoRenewAt({ lifetime_percentage: 70 }), { key_props: { kty: 'EC-HSM', crv: 'P-256' } }));
    const [v1] = await versions('hsm-down');
    const at = v1!.exp - DAY;
    const due = await scan(at);
    const message = renewMessages(due.sent).find((m) => m.name === 'hsm-down')!;
    const down = { ...due.env, BRIDGE_URL: 'http://127.0.0.1:9' } as Env;

    const batch = (attempts: number) => {
      const acked: string[] = [];
      const retried: (number | undefined)[] = [];
      const b = {
        queue: 'ekv-certificate-renewal',
        messages: [
          {
            id: crypto.randomUUID(),
            timestamp: new Date(),
            attempts,
            body: message,
            ack: () => void acked.push('ack'),
            retry: (o?: QueueRetryOptions) => void retried.push(o?.delaySeconds),
          },
        ],
      } as unknown as MessageBatch<RenewalMessage>;
      return { b, acked, retried };
    };
    const first = batch(1);
    await consumeRenewalBatch(first.b, down);
    expect(first.retried).toEqual([60]);
    expect(first.acked).toEqual([]);
    // The claim was given back: the retry may take it again.
    expect((await head('hsm-down')).renewal_claim).toBeNull();
    const later = batch(2);
    await consumeRenewalBatch(later.b, down);
    expect(later.retried).toEqual([120]);

    const last = batch(RENEWAL_ATTEMPTS);
    await consumeRenewalBatch(last.b, down);
    expect(last.acked).toEqual(['ack']);
    expect(last.retried).toEqual([]);
    const given = await head('hsm-down');
    expect(given.renewal_claim).toBeNull();
    expect(given.renewal_due_at).toBeGreaterThanOrEqual(at + 3600);
    expect(await versions('hsm-down')).toHaveLength(1);
    const deadline = Date.now() + 8000;
    let audited: { status: number; error_code: string | null }[] = [];
    while (audited.length === 0 && Date.now() < deadline) {
      audited = await rows(
        "select status, error_code from audit_records where operation = 'CertificateAutoRenew' and object_id like '%/certificates/hsm-down'",
      );
      if (audited.length === 0) await sleep(100);
    }
    expect(audited).toEqual([{ status: 500, error_code: expect.any(String) }]);

    // With the bridge back, the next scan after that hour renews it.
    const again = await scan(given.renewal_due_at!);
    const retry = renewMessages(again.sent).find((m) => m.name === 'hsm-down')!;
    expect(await runLifetimeActions(again.env, retry)).toBe('renewed');
    expect(await versions('hsm-down')).toHaveLength(2);
  }, 60_000);
});

describe('EmailContacts and the certificate expiry events', () => {
  it('raises CertificateNearExpiry once at the action, which the expiry job then does not repeat', async () => {
    await create('contacts', policy([{ trigger: { lifetime_percentage: 50 }, action: { action_type: 'EmailContacts' } }]));
    const [v1] = await versions('contacts');
    const at = v1!.nbf + Math.floor((v1!.exp - v1!.nbf) * 0.5);
    const due = await scan(at);
    const message = renewMessages(due.sent).find((m) => m.name === 'contacts')!;
    const outcomes = await Promise.all([runLifetimeActions(due.env, message), runLifetimeActions(due.env, message)]);
    expect(outcomes.sort()).toEqual(['notified', 'skipped']);
    expect(await versions('contacts')).toHaveLength(1);
    // Done for this version: nothing more scheduled.
    expect(await head('contacts')).toMatchObject({ renewal_due_at: null, renewal_claim: null });
    await runExpiryNotices(env as Env, v1!.exp - 10 * DAY, { kinds: [certificateKind] });
    const near = await storedEvents('CertificateNearExpiry', 1);
    expect(near.filter((e) => e.subject === 'contacts').map((e) => e.version)).toEqual([v1!.version]);
    expect(JSON.parse(near.find((e) => e.subject === 'contacts')!.body).data).toEqual({
      Id: `${fixture.origin}/certificates/contacts/${v1!.version}`,
      VaultName: vault.name,
      ObjectType: 'Certificate',
      ObjectName: 'contacts',
      Version: v1!.version,
      NBF: v1!.nbf,
      EXP: v1!.exp,
    });
  }, 30_000);

  it('sends CertificateNearExpiry 30 days before exp and CertificateExpired after it, once per version', async () => {
    await create('expiring', policy([{ trigger: { days_before_expiry: 1 }, action: { action_type: 'EmailContacts' } }]));
    const [v1] = await versions('expiring');
    const run = (t: number) => Promise.all([0, 1].map(() => runExpiryNotices(env as Env, t, { kinds: [certificateKind] })));
    await run(v1!.exp - NEAR_EXPIRY_SECONDS);
    await run(v1!.exp - NEAR_EXPIRY_SECONDS + 60);
    await run(v1!.exp);
    await run(v1!.exp + 60);
    const markers = await rows<{ event_type: string }>(
      "select event_type from expiry_notices where vault_id = ? and kind = 'certificate' and name = 'expiring' order by event_type",
      vault.id,
    );
    expect(markers.map((m) => m.event_type)).toEqual([
      'Microsoft.KeyVault.CertificateExpired',
      'Microsoft.KeyVault.CertificateNearExpiry',
    ]);
    expect((await storedEvents('CertificateExpired', 1)).filter((e) => e.subject === 'expiring')).toHaveLength(1);
    // The EmailContacts action at 1 day before exp finds its notice sent already.
    const due = await scan(v1!.exp - DAY);
    const message = renewMessages(due.sent).find((m) => m.name === 'expiring')!;
    expect(await runLifetimeActions(due.env, message)).toBe('rescheduled');
  }, 30_000);

  it('announces CertificateNewVersionCreated for a create, an import and a merge', async () => {
    const created = await create('announced', policy(autoRenewAt({ lifetime_percentage: 80 })));
    const imported = await req('POST', '/certificates/imported/import', { value: EC_PEM });
    expect(imported.status).toBe(200);
    const pending = await req('POST', '/certificates/merged/create', {
      policy: { issuer: { name: 'Unknown' }, key_props: { kty: 'EC', crv: 'P-256' }, x509_props: { subject: 'CN=merged' } },
    });
    const csr = new x509.Pkcs10CertificateRequest(Uint8Array.from(atob((await json(pending)).csr), (c) => c.charCodeAt(0)));
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const ca = (await crypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: '03',
      subject: 'CN=merged',
      issuer: 'CN=Renewal Test CA',
      publicKey: csr.publicKey,
      signingKey: ca.privateKey,
      signingAlgorithm: alg,
    });
    const merged = await req('POST', '/certificates/merged/pending/merge', { x5c: [leaf.toString('base64')] });
    expect(merged.status).toBe(201);
    const expected = {
      announced: versionOf(created.id),
      imported: versionOf((await json(imported)).id),
      merged: versionOf((await json(merged)).id),
    };
    const deadline = Date.now() + 8000;
    let stored: { subject: string; version: string; body: string }[] = [];
    while (Date.now() < deadline) {
      stored = (await storedEvents('CertificateNewVersionCreated', 0)).filter((e) => e.subject in expected);
      if (stored.length >= 3) break;
      await sleep(100);
    }
    expect(Object.fromEntries(stored.map((e) => [e.subject, e.version]))).toEqual(expected);
    expect(JSON.parse(stored[0]!.body)).toMatchObject({
      eventType: 'Microsoft.KeyVault.CertificateNewVersionCreated',
      data: { ObjectType: 'Certificate', VaultName: vault.name },
    });
    // A pending create is no new version: nothing for it until its merge.
    expect(stored.filter((e) => e.subject === 'merged')).toHaveLength(1);
  }, 30_000);
});
