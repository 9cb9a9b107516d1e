/**
 * The Worker's entry: routes requests by host to the apex or vault app, consumes the queues, and
 * runs the scheduled jobs.
 */
import { persistAuditBatch, type PersistOutcome } from './audit/consumer';
import { unknownHostEvent } from './audit/event';
import type { AuditEvent } from './audit/event';
import { queueAuditEvent } from './audit/send';
import type { Env } from './core/env';
import { logBatch, type BatchSummary } from './core/log';
import { batchPoint } from './core/metrics';
import { withRequestScope } from './core/request-scope';
import { persistEventBatch } from './events/consumer';
import { deliverBatch } from './events/delivery';
import { DELIVERY_QUEUE_NAME } from './events/fanout';
import { EVENTS_QUEUE_NAME, type VaultEvent } from './events/event';
import { createApexApp } from './http/apex-app';
import { observeRequest } from './audit/observe';
import { errorBody } from './http/errors';
import { classifyHost, hostOfUrl } from './http/hosts';
import { createVaultApp } from './http/vault-app';
import { runAuditJobs } from './jobs/audit';
import { runCertificateIssuance } from './jobs/certificate-issuance';
import { consumeRenewalBatch, RENEWAL_QUEUE_NAME, scanDueRenewals, type RenewalMessage } from './jobs/certificate-renewal';
import { runExpiryNotices } from './jobs/expiry';
import { runKekRewrap } from './jobs/kek';
import { purgeExpiredCertificates, purgeExpiredKeys, purgeExpiredSecrets } from './jobs/purge';
import { observeJob, type JobReport } from './jobs/outcomes';
import { runKeyRotation } from './jobs/rotation';
import { runSigningKeyMaintenance } from './jobs/signing-keys';
import { services } from './crypto/services';

// Workers of the same account bind this class (service-binding RPC, README "Service bindings").
export { VaultRpc } from './rpc/entrypoint';

const apex = createApexApp();
const vaults = createVaultApp();

/** A request no app serves: audited, logged and measured like the rest. */
function refusedHost(env: Env, ctx: ExecutionContext, event: AuditEvent): void {
  queueAuditEvent(ctx, env.AUDIT_QUEUE as Queue<AuditEvent>, event);
  observeRequest(env, event, event.correlationId);
}

export default {
  /** Routes by host: the zone apex, or a vault at `{vault}.{zone}`. */
  fetch(request, env, ctx) {
    const host = hostOfUrl(request.url);
    if (host === null) {
      // A Host header that is not a host (e.g. a port past 65535): the request is malformed, so
      // 400 as RFC 9112 §3.2 asks (Azure's front end answers "Bad Request - Invalid Hostname").
      refusedHost(
        env,
        ctx,
        unknownHostEvent(request, Date.now(), { operation: 'InvalidHost', status: 400, errorCode: 'BadParameter' }),
      );
      return Response.json(errorBody('BadParameter', 'The Host header is not a valid host name and port.'), { status: 400 });
    }
    const target = classifyHost(host, env.VAULT_ZONE);
    // The request's waitUntil, for the caches' background renewals (src/core/request-scope.ts).
    if (target.kind === 'apex') return withRequestScope(ctx, () => apex.fetch(request, env, ctx));
    if (target.kind === 'vault') return withRequestScope(ctx, () => vaults.fetch(request, env, ctx));
    refusedHost(env, ctx, unknownHostEvent(request));
    return Response.json(errorBody('NotFound', 'This host is not served by this vault service.'), { status: 404 });
  },

  /**
   * One Worker consumes every queue; they are told apart by name. The audit queue and its
   * dead-letter queue (ekv-audit-dlq) are drained alike into the audit chains. Each batch gets one
   * log line and metrics data point (src/core/log.ts), with the lag of its oldest message.
   */
  async queue(batch, env) {
    const started = Date.now();
    let outcome: PersistOutcome | undefined;
    let failed = false;
    try {
      if (batch.queue === EVENTS_QUEUE_NAME) await persistEventBatch(batch as MessageBatch<VaultEvent>, env);
      else if (batch.queue === DELIVERY_QUEUE_NAME) await deliverBatch(batch, env);
      else if (batch.queue === RENEWAL_QUEUE_NAME) await consumeRenewalBatch(batch as MessageBatch<RenewalMessage>, env);
      else outcome = await persistAuditBatch(batch, env);
    } catch (err) {
      failed = true;
      throw err;
    } finally {
      const oldest = Math.min(started, ...batch.messages.map((m) => m.timestamp.getTime()));
      const summary: BatchSummary = {
        queue: batch.queue,
        messages: batch.messages.length,
        acked: outcome?.acked ?? (failed ? 0 : batch.messages.length),
        retried: outcome?.retried ?? (failed ? batch.messages.length : 0),
        maxLagMs: started - oldest,
        durationMs: Date.now() - started,
        failed,
      };
      logBatch(summary);
      batchPoint(env.METRICS, summary);
    }
  },

  /** Every job through observeJob: a log line, a metrics point and its last outcome per job and run. */
  async scheduled(controller, env, ctx) {
    const { db, bridge } = services(env);
    const seconds = Math.floor(controller.scheduledTime / 1000);
    const purged = (n: number) => ({ counts: { purged: n } });
    ctx.waitUntil(observeJob(env, 'purge-secrets', () => purgeExpiredSecrets(db), purged));
    ctx.waitUntil(observeJob(env, 'purge-keys', () => purgeExpiredKeys(db, bridge), purged));
    ctx.waitUntil(observeJob(env, 'purge-certificates', () => purgeExpiredCertificates(db), purged));
    ctx.waitUntil(
      observeJob(
        env,
        'key-rotation',
        () => runKeyRotation(env, seconds),
        (r) => ({
          counts: { rotated: r.rotated, notified: r.notified, failed: r.failed },
        }),
      ),
    );
    ctx.waitUntil(
      observeJob(
        env,
        'certificate-renewal-scan',
        // Never ahead of the wall clock: in production the scheduled time is always behind it, and a
        // test's shifted clock must not renew every certificate of the shared test database.
        () => scanDueRenewals(env, Math.floor(Math.min(controller.scheduledTime, Date.now()) / 1000)),
        (r) => ({ counts: { queued: r.queued, more: r.more ? 1 : 0 } }),
      ),
    );
    ctx.waitUntil(
      observeJob(
        env,
        'expiry-notices',
        () => runExpiryNotices(env, seconds),
        (r) => ({
          counts: {
            ...Object.fromEntries(Object.entries(r.sent).map(([type, n]) => [type.replace('Microsoft.KeyVault.', ''), n ?? 0])),
            failed: r.failed,
          },
        }),
      ),
    );
    ctx.waitUntil(
      observeJob(
        env,
        'signing-keys',
        () => runSigningKeyMaintenance(env, seconds),
        (gone) => ({ counts: { deleted: gone.length } }),
      ),
    );
    ctx.waitUntil(
      observeJob(
        env,
        'kek-rewrap',
        () => runKekRewrap(env),
        // null: the bridge was down. Progress is `rewrapped`; rows that do not unwrap are `failed`.
        (r): JobReport =>
          r ? { counts: { rewrapped: r.rewrapped, failed: r.failed.length, raced: r.raced } } : { counts: {}, deferred: true },
      ),
    );
    ctx.waitUntil(
      observeJob(
        env,
        'certificate-issuance',
        () => runCertificateIssuance(env, seconds),
        (r) => ({ counts: { issued: r.issued, pending: r.pending, failed: r.failed, retried: r.retried } }),
      ),
    );
    ctx.waitUntil(
      observeJob(
        env,
        'audit',
        () => runAuditJobs(env, controller.scheduledTime),
        (r) => ({
          counts: {
            checkpoints: r.checkpoints,
            archived: r.archived,
            prunedRecords: r.prunedRecords,
            deletedObjects: r.deletedObjects,
            refusedChains: r.refused.length,
          },
          // The bridge was down: checkpoints and archiving wait for the next run.
          deferred: r.deferred,
        }),
      ),
    );
  },
} satisfies ExportedHandler<Env, AuditEvent | VaultEvent | RenewalMessage>;
