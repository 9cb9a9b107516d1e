import { and, isNotNull, lte } from 'drizzle-orm';
import type { BridgeClient } from '../crypto/bridge-client';
import type { Database } from '../storage/db';
import { keys, secrets } from '../storage/schema';
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
