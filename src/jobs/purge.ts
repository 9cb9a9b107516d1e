import { and, isNotNull, lte } from 'drizzle-orm';
import type { Database } from '../storage/db';
import { secrets } from '../storage/schema';

/** Purges soft-deleted secrets whose retention period has ended (purge protection allows this). */
export async function purgeExpiredSecrets(db: Database, nowSeconds = Math.floor(Date.now() / 1000)): Promise<number> {
  const removed = await db
    .delete(secrets)
    .where(and(isNotNull(secrets.deletedAt), lte(secrets.scheduledPurgeAt, nowSeconds)))
    .returning({ name: secrets.name });
  return removed.length;
}
