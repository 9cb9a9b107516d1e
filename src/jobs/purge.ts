/**
 * The cron job that purges soft-deleted secrets and keys whose retention period has ended (HSM
 * token objects first).
 */
import { and, eq, isNotNull, lte } from 'drizzle-orm';
import type { BridgeClient } from '../crypto/bridge-client';
import type { Database } from '../storage/db';
import { certificateOperations, certificatePolicies, certificates, keys, secrets } from '../storage/schema';
import { purgeKey } from '../objects/keys';

const unixNow = () => Math.floor(Date.now() / 1000);

/** Purges soft-deleted secrets whose retention period has ended (purge protection allows this). */
export async function purgeExpiredSecrets(db: Database, nowSeconds = unixNow()): Promise<number> {
  const removed = await db
    .delete(secrets)
    .where(and(isNotNull(secrets.deletedAt), lte(secrets.scheduledPurgeAt, nowSeconds)))
    .returning({ name: secrets.name });
  return removed.length;
}

/**
 * Purges soft-deleted keys whose retention period has ended, HSM token objects included. A key
 * whose token objects cannot be destroyed now (bridge down) stays for the next run.
 */
export async function purgeExpiredKeys(db: Database, bridge: BridgeClient, nowSeconds = unixNow()): Promise<number> {
  const due = await db
    .select({ vaultId: keys.vaultId, name: keys.name })
    .from(keys)
    .where(and(isNotNull(keys.deletedAt), lte(keys.scheduledPurgeAt, nowSeconds)))
    .limit(500)
    .all();
  let purged = 0;
  for (const key of due) {
    try {
      await purgeKey(db, bridge, key.vaultId, key.name);
      purged++;
    } catch (err) {
      console.error(`purge of key ${key.name} deferred: ${err instanceof Error ? err.name : 'error'}`);
    }
  }
  return purged;
}

/**
 * Purges soft-deleted certificates whose retention period has ended, with their policy and any
 * operation. Their managed key and secret were deleted with them and are purged by the two jobs
 * above on the same schedule.
 */
export async function purgeExpiredCertificates(db: Database, nowSeconds = unixNow()): Promise<number> {
  const removed = await db
    .delete(certificates)
    .where(and(isNotNull(certificates.deletedAt), lte(certificates.scheduledPurgeAt, nowSeconds)))
    .returning({ vaultId: certificates.vaultId, name: certificates.name });
  for (const c of removed) {
    await db.batch([
      db.delete(certificatePolicies).where(and(eq(certificatePolicies.vaultId, c.vaultId), eq(certificatePolicies.name, c.name))),
      db
        .delete(certificateOperations)
        .where(and(eq(certificateOperations.vaultId, c.vaultId), eq(certificateOperations.name, c.name))),
    ]);
  }
  return removed.length;
}
