/**
 * Token buckets kept in isolate memory, keyed by string: the throttle's counters (src/http/
 * throttle.ts). A bucket holds up to `capacity` tokens and refills `capacity` per `periodMs`, so
 * "N per 10 s" allows a burst of N and then N per 10 s on average, as Azure's limits read. Memory
 * only, no I/O: a check costs a map lookup on the hot path.
 *
 * Counts are per isolate (Cloudflare runs many), so a limit is a per-isolate ceiling, not a
 * global count: what a client sees is at least the configured rate. The map is bounded; when it is
 * full the least recently used buckets go (a forgotten bucket starts full again: lenient, never
 * wrongly strict).
 */

export interface BucketLimit {
  capacity: number;
  periodMs: number;
}

export interface TakeResult {
  ok: boolean;
  /** When refused: whole seconds until a token is back (at least 1). */
  retryAfterSeconds: number;
  /** When refused: the indexes of the entries that had no token. */
  refused?: number[];
}

interface Bucket {
  tokens: number;
  updatedAt: number;
  capacity: number;
  periodMs: number;
}

export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly maxKeys = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  private refill(key: string, limit: BucketLimit): Bucket {
    const now = this.now();
    let bucket = this.buckets.get(key);
    if (!bucket || bucket.capacity !== limit.capacity || bucket.periodMs !== limit.periodMs) {
      bucket = { tokens: limit.capacity, updatedAt: now, ...limit };
    } else {
      const elapsed = Math.max(0, now - bucket.updatedAt);
      bucket.tokens = Math.min(limit.capacity, bucket.tokens + (elapsed * limit.capacity) / limit.periodMs);
      bucket.updatedAt = now;
    }
    // Re-inserted: the map's order is least recently used first.
    this.buckets.delete(key);
    this.buckets.set(key, bucket);
    while (this.buckets.size > this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
    return bucket;
  }

  private retryAfter(bucket: Bucket, needed: number): number {
    const missing = needed - bucket.tokens;
    return Math.max(1, Math.ceil((missing * bucket.periodMs) / bucket.capacity / 1000));
  }

  /** Whether `key` has a token now, without taking it. */
  peek(key: string, limit: BucketLimit): TakeResult {
    const bucket = this.refill(key, limit);
    return bucket.tokens >= 1 ? { ok: true, retryAfterSeconds: 0 } : { ok: false, retryAfterSeconds: this.retryAfter(bucket, 1) };
  }

  /**
   * Takes one token from every bucket named, or from none: a refused request costs nothing (as on
   * Azure, where a throttled request does not count against the limit).
   */
  takeAll(entries: readonly { key: string; limit: BucketLimit }[]): TakeResult {
    const buckets = entries.map((e) => this.refill(e.key, e.limit));
    const refused = buckets.flatMap((b, i) => (b.tokens < 1 ? [i] : []));
    if (refused.length)
      return { ok: false, retryAfterSeconds: Math.max(...refused.map((i) => this.retryAfter(buckets[i]!, 1))), refused };
    for (const b of buckets) b.tokens -= 1;
    return { ok: true, retryAfterSeconds: 0 };
  }

  /** Takes one token whatever is left (for counting failures after the fact). */
  charge(key: string, limit: BucketLimit): void {
    const bucket = this.refill(key, limit);
    bucket.tokens = Math.max(0, bucket.tokens - 1);
  }
}
