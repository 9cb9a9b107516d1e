/**
 * The Worker's entry: routes requests by host to the apex or vault app, consumes the queues, and
 * runs the scheduled jobs.
 */
import { persistAuditBatch } from './audit/consumer';
import { unknownHostEvent } from './audit/event';
import type { AuditEvent } from './audit/event';
import { queueAuditEvent } from './audit/send';
import type { Env } from './core/env';
import { persistEventBatch } from './events/consumer';
import { deliverBatch } from './events/delivery';
import { DELIVERY_QUEUE_NAME } from './events/fanout';
import { EVENTS_QUEUE_NAME, type VaultEvent } from './events/event';
import { createApexApp } from './http/apex-app';
import { errorBody } from './http/errors';
import { classifyHost, hostOfUrl } from './http/hosts';
import { createVaultApp } from './http/vault-app';
import { runAuditJobs } from './jobs/audit';
import { runCertificateIssuance } from './jobs/certificate-issuance';
import { consumeRenewalBatch, RENEWAL_QUEUE_NAME, scanDueRenewals, type RenewalMessage } from './jobs/certificate-renewal';
import { runExpiryNotices } from './jobs/expiry';
import { runKekRewrap } from './jobs/kek';
import { purgeExpiredCertificates, purgeExpiredKeys, purgeExpiredSecrets } from './jobs/purge';
import { runKeyRotation } from './jobs/rotation';
import { runSigningKeyMaintenance } from './jobs/signing-keys';
import { services } from './crypto/services';

// Workers of the same account bind this class (service-binding RPC, README "Service bindings").
export { VaultRpc } from './rpc/entrypoint';

const apex = createApexApp();
const vaults = createVaultApp();

export default {
  /** Routes by host: the zone apex, or a vault at `{vault}.{zone}`. */
  fetch(request, env, ctx) {
    const host = hostOfUrl(request.url);
    if (host === null) {
      // A Host header that is not a host (e.g. a port past 65535): the request is malformed, so
      // 400 as RFC 9112 §3.2 asks (Azure's front end answers "Bad Request - Invalid Hostname").
      ctx.waitUntil(
        queueAuditEvent(
          env.AUDIT_QUEUE,
          unknownHostEvent(request, Date.now(), { operation: 'InvalidHost', status: 400, errorCode: 'BadParameter' }),
        ),
      );
      return Response.json(errorBody('BadParameter', 'The Host header is not a valid host name and port.'), { status: 400 });
    }
    const target = classifyHost(host, env.VAULT_ZONE);
    if (target.kind === 'apex') return apex.fetch(request, env, ctx);
    if (target.kind === 'vault') return vaults.fetch(request, env, ctx);
    ctx.waitUntil(queueAuditEvent(env.AUDIT_QUEUE, unknownHostEvent(request)));
    return Response.json(errorBody('NotFound', 'This host is not served by this vault service.'), { status: 404 });
  },

  /**
   * One Worker consumes every queue; they are told apart by name. The audit queue and its
   * dead-letter queue (ekv-audit-dlq) are drained alike into the audit chains.
   */
  async queue(batch, env) {
    if (batch.queue === EVENTS_QUEUE_NAME) await persistEventBatch(batch as MessageBatch<VaultEvent>, env);
    else if (batch.queue === DELIVERY_QUEUE_NAME) await deliverBatch(batch, env);
    else if (batch.queue === RENEWAL_QUEUE_NAME) await consumeRenewalBatch(batch as MessageBatch<RenewalMessage>, env);
    else await persistAuditBatch(batch, env);
  },

  async scheduled(controller, env, ctx) {
    const { db, bridge } = services(env);
    ctx.waitUntil(
      purgeExpiredSecrets(db).then((n) => {
        if (n > 0) console.log(`purged ${n} secrets past their retention period`);
      }),
    );
    ctx.waitUntil(
      purgeExpiredKeys(db, bridge).then((n) => {
        if (n > 0) console.log(`purged ${n} keys past their retention period`);
      }),
    );
    ctx.waitUntil(
      purgeExpiredCertificates(db).then((n) => {
        if (n > 0) console.log(`purged ${n} certificates past their retention period`);
      }),
    );
    ctx.waitUntil(
      runKeyRotation(env, Math.floor(controller.scheduledTime / 1000)).then(
        (r) => {
          if (r.rotated + r.notified + r.failed > 0) {
            console.log(`key lifetime actions: ${r.rotated} rotated, ${r.notified} notified, ${r.failed} failed (retried later)`);
          }
        },
        (err: unknown) => console.error(`key rotation run failed: ${err instanceof Error ? err.name : 'error'}`),
      ),
    );
    ctx.waitUntil(
      // Never ahead of the wall clock: in production the scheduled time is always behind it, and a
      // test's shifted clock must not renew every certificate of the shared test database.
      scanDueRenewals(env, Math.floor(Math.min(controller.scheduledTime, Date.now()) / 1000)).then(
        (r) => {
          if (r.queued > 0)
            console.log(`certificate lifetime actions: ${r.queued} queued${r.more ? ', more continue in the queue' : ''}`);
        },
        (err: unknown) => console.error(`certificate renewal scan failed: ${err instanceof Error ? err.name : 'error'}`),
      ),
    );
    ctx.waitUntil(
      runExpiryNotices(env, Math.floor(controller.scheduledTime / 1000)).then(
        (r) => {
          const sent = Object.entries(r.sent).map(([type, n]) => `${n} ${type.replace('Microsoft.KeyVault.', '')}`);
          if (sent.length > 0 || r.failed > 0)
            console.log(
              `expiry notices: ${sent.join(', ') || 'none sent'}${r.failed > 0 ? `, ${r.failed} not queued (retried next run)` : ''}`,
            );
        },
        (err: unknown) => console.error(`expiry notices run failed: ${err instanceof Error ? err.name : 'error'}`),
      ),
    );
    ctx.waitUntil(
      runSigningKeyMaintenance(env, Math.floor(controller.scheduledTime / 1000)).then(
        (gone) => {
          if (gone.length > 0) console.log(`token signing keys retired and deleted: ${gone.join(', ')}`);
        },
        (err: unknown) => console.error(`signing key maintenance failed: ${err instanceof Error ? err.name : 'error'}`),
      ),
    );
    ctx.waitUntil(
      runKekRewrap(env).then(
        (r) => {
          if (r && r.rewrapped + r.failed.length > 0)
            console.log(`kek: ${r.rewrapped} data keys re-wrapped under ${r.current}, ${r.failed.length} failed`);
        },
        (err: unknown) => console.error(`kek re-wrap failed: ${err instanceof Error ? err.name : 'error'}`),
        ),
      );
    ctx.waitUntil(
      runCertificateIssuance(env, Math.floor(controller.scheduledTime / 1000)).then(
        (r) => {
          if (r.issued + r.failed + r.retried > 0)
            console.log(`certificate issuance: ${r.issued} issued, ${r.failed} failed, ${r.retried} retried later`);
        },
        (err: unknown) => console.error(`certificate issuance run failed: ${err instanceof Error ? err.name : 'error'}`),
      ),
    );
    ctx.waitUntil(
      runAuditJobs(env, controller.scheduledTime).then(
        (r) => {
          if (r.checkpoints + r.archived + r.prunedRecords + r.deletedObjects > 0 || r.deferred) {
            console.log(
              `audit: ${r.checkpoints} checkpoints, ${r.archived} periods archived, ${r.prunedRecords} records pruned, ${r.deletedObjects} archives deleted` +
                (r.deferred ? ' (bridge down: the rest deferred)' : ''),
            );
          }
        },
        (err: unknown) => console.error(`audit job failed: ${err instanceof Error ? `${err.name}: ${err.message}` : 'error'}`),
      ),
    );
  },
} satisfies ExportedHandler<Env, AuditEvent | VaultEvent | RenewalMessage>;
