// Scheduled certificate renewal: the cron finds certificates whose latest version has a lifetime
// action due (certificates.renewal_due_at, indexed) and fans them out through a queue; the queue's
// consumer carries the actions out, one certificate a message. AutoRenew makes a new version
// through the certificate's issuer (CertificateStore.renew: the create path with the stored
// policy); EmailContacts raises CertificateNearExpiry, which reaches the contacts through the
// events machinery (README "Certificate renewal").
//
// What bounds each invocation (Workers limits: subrequests, CPU, wall time):
//  - the cron's scan claims at most RENEWALS_PER_PAGE certificates a D1 statement (one
//    UPDATE … WHERE rowid IN (SELECT … LIMIT n) RETURNING) and queues them with one sendBatch
//    (≤ 100 messages, the Queues limit), for at most PAGES_PER_SCAN pages: 2 subrequests a page,
//    2 × PAGES_PER_SCAN at most, and no key generation. When more are due it queues a `scan`
//    message, so the next page of work runs in a consumer invocation of its own: 10,000 due
//    certificates are all queued within seconds, each invocation doing the same bounded work.
//  - the consumer takes max_batch_size (wrangler.toml: 10) messages an invocation, handled
//    concurrently (each mostly waits on D1); a renewal is ≈ 20 D1 statements, a key generation (RSA up to 4096 in the
//    Worker, or one bridge call for -HSM) and a signature: ≈ 250 subrequests and a few seconds of
//    CPU a batch at most, far inside the limits (1,000 subrequests, 30 s CPU by default).
//
// Exactly once: the scan's claim (a conditional UPDATE: no unexpired claim held) makes overlapping
// scans queue a certificate once; a message then takes the claim over only while it still holds
// the scan's token and the version it names is still the latest, so a redelivered or duplicated
// message renews nothing twice. A failure gives the claim back and the message is retried with a
// backoff; after the last attempt the certificate is due again RETRY_AFTER_GIVING_UP later and
// the failure is audited (CertificateAutoRenew with its error code), and an issuer's failure is
// also the certificate's failed pending operation. A consumer that dies leaves a claim that
// expires, after which the next scan queues the certificate again: nothing is lost.
import { and, asc, eq, inArray, isNotNull, isNull, lte, or, sql } from 'drizzle-orm';
import type { Env } from '../core/env';
import { conflict, VaultError } from '../core/errors';
import type { VaultRecord } from '../core/vault';
import { services as makeServices, type Services } from '../crypto/services';
import { emitEvents, newVersionEvent, vaultOriginFor, versionEvent, type VaultEvent } from '../events/event';
import type { CertificateRecord } from '../objects/certificates/kind';
import { dueActions, NEAR_EXPIRY_EVENT, nextRenewalDue } from '../objects/certificates/renewal-policy';
import { CertificateStore, type OperationRecord } from '../objects/certificates/store';
import type { Database } from '../storage/db';
import { describeError } from '../storage/errors';
import { claimNotices, noticeClaimed, releaseNotices, type Notice } from '../storage/expiry-notices';
import { certificates, vaults } from '../storage/schema';
import { auditCertificateJob } from './certificate-audit';

export const RENEWAL_QUEUE_NAME = 'ekv-certificate-renewal';
/** Certificates claimed and queued per page: sendBatch takes at most 100 messages. */
export const RENEWALS_PER_PAGE = 100;
/** Pages per scan invocation; more due → a `scan` message continues in a consumer invocation. */
export const PAGES_PER_SCAN = 10;
/**
 * How long a claim holds: longer than a message can wait in the queue and be handled (the
 * consumer's wall time is capped at 15 minutes), so an expired claim's holder is gone.
 */
export const RENEWAL_CLAIM_SECONDS = 30 * 60;
/** A renewal left pending by its issuer (ACME, Unknown) is looked at again after this long. */
const PENDING_RECHECK_SECONDS = 86_400;
/** Attempts of one message (mirrors max_retries + 1 of the queue's consumer in wrangler.toml). */
export const RENEWAL_ATTEMPTS = 5;
/** After the last attempt failed, the certificate is due again this much later. */
const RETRY_AFTER_GIVING_UP = 60 * 60;

export type RenewalMessage =
  | { type: 'renew'; vaultId: string; name: string; version: string; claim: string; now: number }
  | { type: 'scan'; now: number; vaultId?: string };

export interface ScanResult {
  /** Certificates claimed and queued. */
  queued: number;
  /** Whether more were due than this invocation queues (a `scan` message continues). */
  more: boolean;
}

// ---------------------------------------------------------------------------------------------
// The scan (the cron, and `scan` messages)
// ---------------------------------------------------------------------------------------------

/**
 * Claims and queues due certificates as of `now` (Unix seconds; tests shift it), page by page, and
 * queues a `scan` message to continue when the pages ran out before the due certificates did.
 * Safe to overlap with itself. `vaultId` limits the scan to one vault (an operator's run, and the
 * tests, which share one D1 between every test file).
 */
export async function scanDueRenewals(
  env: Env,
  now: number,
  options: { db?: Database; pages?: number; continueInQueue?: boolean; vaultId?: string } = {},
): Promise<ScanResult> {
  const db = options.db ?? makeServices(env).db;
  const queue = env.CERTIFICATE_RENEWAL_QUEUE as Queue<RenewalMessage>;
  const result: ScanResult = { queued: 0, more: false };
  for (let page = 0; page < (options.pages ?? PAGES_PER_SCAN); page++) {
    const claim = crypto.randomUUID();
    const claimed = await claimDuePage(db, claim, now, options.vaultId);
    if (claimed.length > 0) {
      try {
        await queue.sendBatch(
          claimed.map((c) => ({
            body: { type: 'renew', vaultId: c.vaultId, name: c.name, version: c.latestVersion, claim, now } as const,
          })),
        );
      } catch (err) {
        // Given back: the next scan queues them.
        await db
          .update(certificates)
          .set({ renewalClaim: null, renewalClaimUntil: null })
          .where(eq(certificates.renewalClaim, claim))
          .catch(() => undefined);
        throw err;
      }
      result.queued += claimed.length;
    }
    if (claimed.length < RENEWALS_PER_PAGE) return result;
  }
  result.more = true;
  if (options.continueInQueue !== false) await queue.send({ type: 'scan', now, vaultId: options.vaultId });
  return result;
}

/** Due, live, unclaimed certificates: the partial index on renewal_due_at answers the range. */
const dueAndFree = (now: number, vaultId?: string) =>
  and(
    vaultId ? eq(certificates.vaultId, vaultId) : undefined,
    isNotNull(certificates.renewalDueAt),
    lte(certificates.renewalDueAt, now),
    isNull(certificates.deletedAt),
    or(isNull(certificates.renewalClaim), lte(certificates.renewalClaimUntil, now)),
  );

/** One statement: claims up to a page of due certificates, soonest first, and answers them. */
export function claimDuePage(db: Database, claim: string, now: number, vaultId?: string) {
  const page = db
    .select({ rowid: sql`rowid` })
    .from(certificates)
    .where(dueAndFree(now, vaultId))
    .orderBy(asc(certificates.renewalDueAt))
    .limit(RENEWALS_PER_PAGE);
  return db
    .update(certificates)
    .set({ renewalClaim: claim, renewalClaimUntil: now + RENEWAL_CLAIM_SECONDS })
    .where(and(inArray(sql`rowid`, page), dueAndFree(now, vaultId)))
    .returning({ vaultId: certificates.vaultId, name: certificates.name, latestVersion: certificates.latestVersion });
}

// ---------------------------------------------------------------------------------------------
// Renewing one certificate (the consumer, and webhook-triggered renewal)
// ---------------------------------------------------------------------------------------------

export interface RenewalOutcome {
  /**
   * completed: a new version exists; inProgress: the issuer (or a merge) completes it later;
   * failed: the issuer refused (the operation is completed with an error, as Azure shows it).
   */
  status: OperationRecord['status'] | 'failed';
  operation: OperationRecord;
}

export interface RenewOptions {
  /** Unix seconds (default: now). */
  now?: number;
  svc?: Services;
  /** Renew only while this is still the latest version (else 409: it was renewed meanwhile). */
  version?: string;
  /** A claim token the caller already holds (a queued message's); otherwise none may be held. */
  claim?: string;
}

/**
 * Renews one certificate by name, now, through its issuer with its stored policy: the function
 * webhook-triggered renewal calls. Claims the certificate as the cron does, so it never races a
 * scheduled renewal of the same certificate; 409 Conflict when another renewal holds it (or
 * `version` is no longer the latest), 404 when there is no live certificate of that name.
 * CertificateNewVersionCreated is queued for a completed version. A failed issuance answers the
 * failed operation (also readable at /certificates/{name}/pending); other errors are thrown.
 */
export async function renewCertificate(
  env: Env,
  vault: VaultRecord,
  name: string,
  options: RenewOptions = {},
): Promise<RenewalOutcome> {
  const svc = options.svc ?? makeServices(env);
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const mine = crypto.randomUUID();
  const head = await takeClaim(svc.db, vault.id, name, mine, now, options);
  if (!head) {
    const store = storeFor(env, svc, vault);
    const found = await store.head(name);
    // Never issued (its first create was cancelled or failed): a create with the stored policy.
    // No claim to take, as the cron renews only issued versions; a create in progress answers 409.
    if (!found && (await store.storedPolicy(name))) return outcomeOf(await store.create(name, {}));
    if (!found || found.deletedAt != null) await store.get(name); // throws CertificateNotFound
    throw conflict(`Certificate ${name} is being renewed, or its latest version changed; try again later.`);
  }
  return renewClaimed(env, svc, vault, head.name, mine, now);
}

const outcomeOf = (operation: OperationRecord): RenewalOutcome => ({
  status: operation.error ? 'failed' : operation.status,
  operation,
});

type HeadRow = typeof certificates.$inferSelect;

const headIs = (vaultId: string, name: string) => and(eq(certificates.vaultId, vaultId), eq(certificates.name, name));

/** Takes the certificate's claim for `mine` if it is free (or held by `claim`) and still the version asked for. */
async function takeClaim(
  db: Database,
  vaultId: string,
  name: string,
  mine: string,
  now: number,
  options: { version?: string; claim?: string },
): Promise<HeadRow | undefined> {
  const free = or(isNull(certificates.renewalClaim), lte(certificates.renewalClaimUntil, now));
  const [head] = await db
    .update(certificates)
    .set({ renewalClaim: mine, renewalClaimUntil: now + RENEWAL_CLAIM_SECONDS })
    .where(
      and(
        headIs(vaultId, name),
        isNull(certificates.deletedAt),
        options.claim ? or(free, eq(certificates.renewalClaim, options.claim)) : free,
        options.version ? eq(certificates.latestVersion, options.version) : undefined,
      ),
    )
    .returning();
  return head;
}

/** Gives the claim back (if still ours), optionally with when to look again. */
async function release(db: Database, vaultId: string, name: string, mine: string, dueAt?: number | null): Promise<void> {
  await db
    .update(certificates)
    .set({ renewalClaim: null, renewalClaimUntil: null, ...(dueAt !== undefined ? { renewalDueAt: dueAt } : {}) })
    .where(and(headIs(vaultId, name), eq(certificates.renewalClaim, mine)));
}

/**
 * A store that queues CertificateNewVersionCreated for what it completes (awaited: a job has no
 * waitUntil). Every job that completes versions (renewal, pending issuance) makes its store here.
 */
export function storeFor(env: Env, svc: Services, vault: VaultRecord): CertificateStore {
  const origin = vaultOriginFor(env.VAULT_ZONE, vault);
  return new CertificateStore(svc.db, svc.keys, svc.bridge, vault, {
    onNewVersion: async (record: CertificateRecord) => {
      await emitEvents(env.EVENTS_QUEUE as Queue<VaultEvent>, [await newVersionEvent(origin, vault, record, 'Certificate')]);
    },
    dnsApiBase: env.ACME_DNS_API_BASE,
  });
}

/** Renews under a claim held as `mine`; the claim is released (or consumed by the new version). */
async function renewClaimed(
  env: Env,
  svc: Services,
  vault: VaultRecord,
  name: string,
  mine: string,
  now: number,
): Promise<RenewalOutcome> {
  let operation: OperationRecord;
  try {
    operation = await storeFor(env, svc, vault).renew(name);
  } catch (err) {
    await release(svc.db, vault.id, name, mine).catch(() => undefined);
    throw err;
  }
  // completed without error: the new version wrote its own schedule and cleared the claim.
  const { status } = outcomeOf(operation);
  if (status === 'inProgress') await release(svc.db, vault.id, name, mine, now + PENDING_RECHECK_SECONDS);
  else if (status !== 'completed') await release(svc.db, vault.id, name, mine);
  return { status, operation };
}

// ---------------------------------------------------------------------------------------------
// The consumer
// ---------------------------------------------------------------------------------------------

export type ActionsOutcome = 'renewed' | 'pending' | 'notified' | 'rescheduled' | 'skipped';

/** A renewal whose issuer failed: retried like any other failure, its error kept for the audit. */
class RenewalFailed extends Error {
  constructor(readonly code: string) {
    super(`the issuer failed (${code})`);
  }
}

/**
 * Carries out the due lifetime actions of the certificate a `renew` message names. Answers what
 * was done; 'skipped' when the message is stale (claim taken over, certificate renewed, deleted
 * or gone). Throws when the work failed and should be retried.
 */
export async function runLifetimeActions(
  env: Env,
  message: Extract<RenewalMessage, { type: 'renew' }>,
  options: { svc?: Services; now?: number } = {},
): Promise<ActionsOutcome> {
  const svc = options.svc ?? makeServices(env);
  const now = options.now ?? Math.max(message.now, Math.floor(Date.now() / 1000));
  const mine = crypto.randomUUID();
  const head = await takeClaim(svc.db, message.vaultId, message.name, mine, now, message);
  if (!head) return 'skipped';
  const vault = await svc.db.select().from(vaults).where(eq(vaults.id, message.vaultId)).get();
  if (!vault) return 'skipped';
  try {
    const store = storeFor(env, svc, vault);
    const latest = await store.get(head.name);
    const policy = await store.policy(head.name).then(
      (p) => p.policy,
      () => undefined,
    );
    // Disabled (or without a policy): nothing is due until it is enabled again (update reschedules).
    if (!policy || !latest.enabled) {
      await release(svc.db, vault.id, head.name, mine, null);
      return 'skipped';
    }
    const notice: Notice = {
      vaultId: vault.id,
      kind: 'certificate',
      name: head.name,
      version: latest.version,
      eventType: NEAR_EXPIRY_EVENT,
    };
    let notified = await noticeClaimed(svc.db, notice);
    const due = dueActions(policy, latest, now, { notified });
    let outcome: ActionsOutcome = 'rescheduled';
    if (due.notify && (await claimNotices(svc.db, [notice], now)).size > 0) {
      const origin = vaultOriginFor(env.VAULT_ZONE, vault);
      const event = await versionEvent('Certificate', 'NearExpiry', origin, vault, latest, now);
      if (!(await emitEvents(env.EVENTS_QUEUE as Queue<VaultEvent>, [event]))) {
        await releaseNotices(svc.db, [notice]);
        throw new Error('CertificateNearExpiry could not be queued');
      }
      outcome = 'notified';
    }
    notified ||= due.notify;
    if (due.renew) {
      const renewed = await renewClaimed(env, svc, vault, head.name, mine, now);
      if (renewed.status === 'failed' || renewed.status === 'cancelled')
        throw new RenewalFailed(renewed.operation.error?.code ?? 'IssuerError');
      await audit(env, vault, head.name, renewed.status === 'completed' ? 200 : 202, null);
      return renewed.status === 'completed' ? 'renewed' : 'pending';
    }
    await release(svc.db, vault.id, head.name, mine, nextRenewalDue(policy, latest, { notified }));
    return outcome;
  } catch (err) {
    await release(svc.db, vault.id, head.name, mine).catch(() => undefined);
    throw err;
  }
}

/** The queue consumer: `scan` messages continue the scan, `renew` messages are retried with backoff. */
export async function consumeRenewalBatch(batch: MessageBatch<RenewalMessage>, env: Env): Promise<void> {
  const svc = makeServices(env);
  const tally: Partial<Record<ActionsOutcome | 'scan' | 'retried' | 'failed', number>> = {};
  const count = (k: keyof typeof tally) => void (tally[k] = (tally[k] ?? 0) + 1);
  // Concurrently: the messages name different certificates (a duplicate loses the claim), and a
  // renewal mostly waits on D1, so the batch's wall time is about its slowest renewal.
  await Promise.all(batch.messages.map(handle));
  // One line a batch (names only in the failure lines); `npm run bench` counts messages from it.
  const summary = Object.entries(tally).map(([k, n]) => `${n} ${k}`);
  console.log(`certificate renewal batch: ${batch.messages.length} messages: ${summary.join(', ')}`);

  async function handle(message: Message<RenewalMessage>): Promise<void> {
    const body = message.body;
    try {
      if (body?.type === 'scan') {
        await scanDueRenewals(env, Math.max(body.now, Math.floor(Date.now() / 1000)), { db: svc.db, vaultId: body.vaultId });
        count('scan');
      } else if (body?.type === 'renew') count(await runLifetimeActions(env, body, { svc }));
      message.ack();
    } catch (err) {
      const what = body?.type === 'renew' ? `certificate ${body.name}` : 'the renewal scan';
      if (body?.type !== 'renew' || message.attempts < RENEWAL_ATTEMPTS) {
        console.error(`renewal of ${what} failed (attempt ${message.attempts}), retried: ${describeError(err)}`);
        message.retry({ delaySeconds: Math.min(30 * 2 ** message.attempts, 3600) });
        count('retried');
        return;
      }
      // Given up: due again later (never lost), and the failure on the record.
      console.error(`renewal of ${what} failed ${message.attempts} times, due again in an hour: ${describeError(err)}`);
      const now = Math.max(body.now, Math.floor(Date.now() / 1000));
      await svc.db
        .update(certificates)
        .set({ renewalDueAt: now + RETRY_AFTER_GIVING_UP })
        .where(
          and(headIs(body.vaultId, body.name), or(isNull(certificates.renewalClaim), lte(certificates.renewalClaimUntil, now))),
        )
        .catch(() => undefined);
      const vault = await svc.db
        .select()
        .from(vaults)
        .where(eq(vaults.id, body.vaultId))
        .get()
        .catch(() => undefined);
      if (vault) await audit(env, vault, body.name, 500, err instanceof RenewalFailed ? err.code : errorCodeOf(err));
      message.ack();
      count('failed');
    }
  }
}

const errorCodeOf = (err: unknown) => (err instanceof VaultError ? err.code : 'InternalError');

/** An audit record of a renewal the vault made itself (no caller): CertificateAutoRenew. */
const audit = (env: Env, vault: VaultRecord, name: string, status: number, errorCode: string | null) =>
  auditCertificateJob(env, vault, name, { operation: 'CertificateAutoRenew', job: 'certificate-renewal', status, errorCode });
