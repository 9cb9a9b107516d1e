/**
 * This isolate's copy of versions read for their payload (a secret's value, a key's material), so
 * a warm read asks D1 nothing. What is kept is the row as D1 holds it, sealed: the ciphertext and
 * the HSM-wrapped data key. The first read of a copy opens it with the (separately cached) data
 * key, so the GCM binding is checked exactly as for a row fresh from D1; the plaintext it yields
 * stays beside that copy (openedPayload), in this isolate's memory only, and goes when the copy
 * goes, so later reads of the same copy skip the base64 decode and AES-GCM. A copy that never
 * opened keeps nothing, and a reload (another row object) opens again, unless it is the same
 * sealed bytes under the same binding as the copy it replaces (carryOpened).
 *
 * Past half the bound a read still answers from its copy and renews it in the background
 * (core/cache.ts, refresh-ahead), so a warm read never waits on D1.
 *
 * Consistency (README, "Read caching"): writes through the engine forget the object's entries at
 * once, so this isolate reads its own writes; another isolate serves its copy for at most the
 * vault's readCacheSeconds. Attributes (enabled, nbf, exp) ride along in the row and are checked
 * at each read against the clock, never cached as a decision. Misses (unknown or deleted objects)
 * are never kept: a new object is seen at once.
 */
import { IsolateCache } from '../../core/cache';
import { MAX_READ_CACHE_SECONDS, readCacheMs, type VaultRecord } from '../../core/vault';
import type { JoinedDataKey } from '../../crypto/data-keys';
import type { VersionRow } from './kind';

export interface CachedRead<V extends VersionRow> {
  row: V;
  /**
   * The version's data key as D1 holds it (wrapped under the HSM's KEK the label names). A KEK
   * rotation may re-wrap it meanwhile; DataKeyManager.forRead then falls back to D1's row.
   */
  dataKey: JoinedDataKey;
}

// Entries are bounded by count; a secret's sealed value is at most ~34 KB (25 KB, base64url and
// GCM overhead), so the worst case stays near 34 MB and a usual one at a few hundred bytes each.
const cache = new IsolateCache<CachedRead<VersionRow>>({
  name: 'object-reads',
  ttlMs: MAX_READ_CACHE_SECONDS * 1000,
  maxEntries: 1_000,
  refreshAhead: true,
});

const objectPrefix = (kind: string, vaultId: string, name: string) => `${kind}\n${vaultId}\n${name.toLowerCase()}\n`;

/**
 * A version's sealed row: from this isolate's cache when read less than the vault's bound ago,
 * otherwise from `load` (one D1 query for a burst). A vault with readCacheSeconds 0 always loads.
 */
export async function readThrough<V extends VersionRow>(
  kind: string,
  vault: VaultRecord,
  name: string,
  version: string | undefined,
  load: () => Promise<CachedRead<V> | undefined>,
): Promise<CachedRead<V> | undefined> {
  if (vault.readCacheSeconds <= 0) return load();
  const key = objectPrefix(kind, vault.id, name) + (version?.toLowerCase() ?? '');
  const loadCarrying = async () => {
    const fresh = await load();
    const previous = cache.peek(key);
    if (fresh && previous) carryOpened(previous, fresh);
    return fresh;
  };
  return (await cache.load(key, loadCarrying, { maxAgeMs: readCacheMs(vault) })) as CachedRead<V> | undefined;
}

/** Forgets every cached version of an object (and its latest): call after any write to it. */
export function forgetObject(kind: string, vaultId: string, name: string): void {
  cache.forgetPrefix(objectPrefix(kind, vaultId, name));
}

// Plaintext of opened copies, keyed by the cached row object itself: an entry cannot outlive its
// copy (evicted, expired or forgotten rows take theirs with them), and a settled value, never a
// pending open, is what another request finds here.
const opened = new WeakMap<object, { sealed: string; plaintext: Uint8Array }>();

/** The payload this copy opened to, if `sealed` is what it opened (a copy of the bytes). */
export function openedPayload(row: object, sealed: string): Uint8Array | undefined {
  const hit = opened.get(row);
  return hit && hit.sealed === sealed ? hit.plaintext.slice() : undefined;
}

/**
 * A renewal (mostly the background one) brings the same version back as a new row object, which
 * would be opened again: AES-GCM, or a bridge call once the data key's cache entry has expired.
 * When it is the same version under the same data key, wrapped the same, as a copy that opened,
 * that copy's plaintext goes over to it. openedPayload still serves it only for the exact sealed
 * string that opened, so identical authenticated bytes under an identical binding (the GCM data
 * binds vault, kind, name and version) give the identical plaintext; anything else, a changed or
 * swapped payload included, is opened and authenticated afresh.
 */
function carryOpened(previous: CachedRead<VersionRow>, fresh: CachedRead<VersionRow>): void {
  const hit = opened.get(previous.row);
  const [a, b] = [previous.row, fresh.row];
  if (
    hit &&
    a.vaultId === b.vaultId &&
    a.name === b.name &&
    a.version === b.version &&
    a.dataKeyId === b.dataKeyId &&
    previous.dataKey.wrapped === fresh.dataKey.wrapped &&
    previous.dataKey.kekLabel === fresh.dataKey.kekLabel
  )
    opened.set(b, hit);
}

/** Keeps what `sealed` of this copy opened to (only after it authenticated). */
export function rememberOpened(row: object, sealed: string, plaintext: Uint8Array): void {
  opened.set(row, { sealed, plaintext: plaintext.slice() });
}

/** Calls answered from the cache, and loads started (the management stats). */
export const readCacheStats = () => ({ size: cache.size, hits: cache.hits, loads: cache.loads });
