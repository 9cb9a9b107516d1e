// The audit record of certificate work the vault does on its own (no caller, no request): a
// renewal the cron made, a pending issuance the cron completed or gave up on. Each job names its
// operation; the record is shaped like a request's, with the certificate as its object, so the
// audit trail shows who changed a certificate even when nobody asked.
import type { AuditEvent } from '../audit/event';
import { sendAuditEvents } from '../audit/send';
import type { Env } from '../core/env';
import type { VaultRecord } from '../core/vault';
import { vaultOriginFor } from '../events/event';

export interface CertificateJobAudit {
  /** CertificateAutoRenew, CertificatePendingComplete. */
  operation: string;
  /** The job, as a request's user agent would be. */
  job: string;
  /** 200 done, 202 left pending, 500 failed. */
  status: number;
  errorCode: string | null;
}

/** Queues the audit record of a job's work on one certificate (awaited: a job has no waitUntil). Never throws. */
export async function auditCertificateJob(env: Env, vault: VaultRecord, name: string, what: CertificateJobAudit): Promise<void> {
  const origin = vaultOriginFor(env.VAULT_ZONE, vault);
  const event: AuditEvent = {
    v: 2,
    id: crypto.randomUUID(),
    time: Date.now(),
    vault: vault.name,
    vaultId: vault.id,
    tenantId: vault.tenantId,
    operation: what.operation,
    apiVersion: null,
    caller: null,
    objectId: `/certificates/${name}`,
    requestUri: `${origin}/certificates/${name}`,
    status: what.status,
    errorCode: what.errorCode,
    durationMs: 0,
    clientIp: null,
    correlationId: crypto.randomUUID(),
    clientInfo: what.job,
    authorization: null,
    authorizationModel: null,
  };
  await sendAuditEvents(env.AUDIT_QUEUE as Queue<AuditEvent>, [event]);
}
