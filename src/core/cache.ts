/**
 * A per-isolate cache of D1 lookups that keeps found values for a while and lets concurrent
 * misses share one query (so an expiry under load costs one lookup, not one per request in
 * flight). Misses (undefined) are not kept: a new object is seen at once.
 */
export class LookupCache<T> {
  private readonly entries = new Map<string, { value: T; expires: number }>();
  private readonly pending = new Map<string, Promise<T | undefined>>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
  ) {}

  async get(key: string, load: () => Promise<T | undefined>): Promise<T | undefined> {
    const hit = this.entries.get(key);
    if (hit && hit.expires > Date.now()) return hit.value;
    let inflight = this.pending.get(key);
    if (!inflight) {
      inflight = load().finally(() => this.pending.delete(key));
      this.pending.set(key, inflight);
    }
    const value = await inflight;
    if (value === undefined) this.entries.delete(key);
    else {
      if (this.entries.size >= this.maxEntries) this.entries.clear();
      this.entries.set(key, { value, expires: Date.now() + this.ttlMs });
    }
    return value;
  }

  forget(key: string): void {
    this.entries.delete(key);
  }
}
