// The cron's half of issuance by CAs that take their time (ACME): certificate operations whose
// issuer answered 'pending' carry a resume token and a next-attempt time (an index, so the run
// never scans every operation). Each due one is claimed with a conditional UPDATE (two runs never
// resume the same order at once), resumed once, and left where the issuer says: issued (the
// version completes as a Self one does), pending again (a new next-attempt time), or failed.
// Bounded per run by a count and a time budget; the rest waits for the next run. An issuance the
// run completes or gives up on is audited (CertificatePendingComplete, no caller), as renewal is.
import { and, asc, eq, isNotNull, lte } from 'drizzle-orm';
import type { Env } from '../core/env';
import type { VaultRecord } from '../core/vault';
import { services as makeServices, type Services } from '../crypto/services';
import { purgeExpiredHttp01 } from '../objects/certificates/issuers/acme/stores';
import type { CertificateStore } from '../objects/certificates/store';
import { certificateOperations, vaults } from '../storage/schema';
import { auditCertificateJob } from './certificate-audit';
import { storeFor } from './certificate-renewal';

/** Operations resumed per run: each costs a few round trips to the CA. */
const OPERATIONS_PER_RUN = 20;
/** A run starts no resume after this long (the cron runs every 5 minutes). */
const RUN_BUDGET_MS = 60_000;
/** How long a claim holds: past any one resume (every CA request times out after 15 s). */
const CLAIM_SECONDS = 10 * 60;

export interface IssuanceRunResult {
  due: number;
  issued: number;
  pending: number;
  failed: number;
  /** Resumes that threw (CA or bridge unreachable): tried again later. */
  retried: number;
}

export async function runCertificateIssuance(
  env: Env,
  now: number,
  svc: Services = makeServices(env),
): Promise<IssuanceRunResult> {
  const due = await svc.db
    .select({ op: certificateOperations, vault: vaults })
    .from(certificateOperations)
    .innerJoin(vaults, eq(vaults.id, certificateOperations.vaultId))
    .where(
      and(
        isNotNull(certificateOperations.nextAttemptAt),
        lte(certificateOperations.nextAttemptAt, now),
        eq(certificateOperations.status, 'inProgress'),
      ),
    )
    .orderBy(asc(certificateOperations.nextAttemptAt))
    .limit(OPERATIONS_PER_RUN)
    .all();
  const result: IssuanceRunResult = { due: due.length, issued: 0, pending: 0, failed: 0, retried: 0 };
  const started = Date.now();
  for (const { op, vault } of due) {
    if (Date.now() - started > RUN_BUDGET_MS) break;
    const claimed = await svc.db
      .update(certificateOperations)
      .set({ nextAttemptAt: now + CLAIM_SECONDS })
      .where(
        and(
          eq(certificateOperations.vaultId, op.vaultId),
          eq(certificateOperations.name, op.name),
          eq(certificateOperations.requestId, op.requestId),
          eq(certificateOperations.nextAttemptAt, op.nextAttemptAt!),
        ),
      )
      .returning({ name: certificateOperations.name });
    if (claimed.length === 0) continue;
    const store = storeFor(env, svc, vault);
    try {
      const status = await store.continueIssuance(op.name, op.requestId, now);
      if (status === 'issued') result.issued++;
      else if (status === 'pending') result.pending++;
      else if (status === 'failed') result.failed++;
      if (status === 'issued' || status === 'failed') await audit(env, store, vault, op.name, status);
    } catch (err) {
      result.retried++;
      console.error(`certificate issuance resume failed: ${err instanceof Error ? err.name : 'error'}`);
    }
  }
  await purgeExpiredHttp01(svc.db, now);
  return result;
}

/** The audit record of an operation this run ended: 200 issued, 500 with the operation's error code failed. */
async function audit(env: Env, store: CertificateStore, vault: VaultRecord, name: string, status: 'issued' | 'failed') {
  const errorCode =
    status === 'failed' ? ((await store.operation(name).catch(() => undefined))?.error?.code ?? 'IssuerError') : null;
  await auditCertificateJob(env, vault, name, {
    operation: 'CertificatePendingComplete',
    job: 'certificate-issuance',
    status: status === 'issued' ? 200 : 500,
    errorCode,
  });
}
