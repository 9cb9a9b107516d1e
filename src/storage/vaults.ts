/**
 * Vault lookup by name, cached per isolate. Vault settings change rarely and are read on every
 * request, so each isolate keeps them for a short while (30 s, or the vault's own read-cache
 * bound when shorter: a vault deleted or reconfigured elsewhere is seen within that bound); this
 * is part of what keeps a warm read off D1. Writers call `forgetVault` so this isolate sees their
 * change at once.
 */
import { eq } from 'drizzle-orm';
import { IsolateCache } from '../core/cache';
import { readCacheMs, type VaultRecord } from '../core/vault';
import type { Database } from './db';
import { vaults } from './schema';

// The schema's row type and the core's record must stay the same shape.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const schemaMatchesRecord: Same<typeof vaults.$inferSelect, VaultRecord> = true;
void schemaMatchesRecord;

// Renewed in the background past half its bound (core/cache.ts) so a warm request never waits for it.
const cache = new IsolateCache<VaultRecord>({ name: 'vaults', ttlMs: 30_000, maxEntries: 10_000, refreshAhead: true });

export function forgetVault(name: string): void {
  cache.forget(name.toLowerCase());
}

export function findVault(db: Database, name: string): Promise<VaultRecord | undefined> {
  const key = name.toLowerCase();
  return cache.load(key, () => db.select().from(vaults).where(eq(vaults.name, key)).get(), { maxAgeMs: readCacheMs });
}
