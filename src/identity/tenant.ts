/** The one tenant of a deployment: written by bootstrap, then read once per isolate. */
import { eq } from 'drizzle-orm';
import type { Database } from '../storage/db';
import { settings } from '../storage/schema';

const TENANT_KEY = 'tenant_id';

// The tenant id never changes once bootstrapped, so each isolate reads it once.
let cachedTenantId: string | undefined;

export async function findTenantId(db: Database): Promise<string | undefined> {
  if (cachedTenantId) return cachedTenantId;
  const row = await db.select().from(settings).where(eq(settings.key, TENANT_KEY)).get();
  cachedTenantId = row?.value;
  return cachedTenantId;
}

/** Statement that records the tenant; fails on a second bootstrap (primary key). */
export function insertTenant(db: Database, tenantId: string) {
  return db.insert(settings).values({ key: TENANT_KEY, value: tenantId });
}
