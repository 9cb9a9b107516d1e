/**
 * Remembers the nonces of accepted requests for as long as their timestamp is acceptable, so a
 * captured request cannot be replayed inside the clock-skew window.
 *
 * Memory is bounded. When full, entries that can no longer be replayed are dropped first; if that
 * is not enough, the oldest are evicted and `floor` rises to the newest evicted timestamp. Any
 * request timestamped at or below the floor is refused, so an evicted nonce can never be replayed:
 * under a flood the bridge degrades to refusing slightly old requests, never to accepting replays.
 */
import { MAX_CLOCK_SKEW_SECONDS } from '../../bridge-protocol/index.js';

export class ReplayCache {
  /** nonce → request timestamp (seconds); Map keeps insertion order, roughly oldest first. */
  private readonly seen = new Map<string, number>();
  private floor = -Infinity;

  constructor(
    readonly capacity = 100_000,
    private readonly windowSeconds = MAX_CLOCK_SKEW_SECONDS,
  ) {
    if (capacity < 10) throw new RangeError('replay cache capacity must be at least 10');
  }

  get size(): number {
    return this.seen.size;
  }

  /**
   * Refuses from now on every request timestamped at or below `timestamp`: those a bridge may have
   * answered before this cache existed (its restart), whose nonces it does not know.
   */
  refuseUpTo(timestamp: number): void {
    if (timestamp > this.floor) this.floor = timestamp;
  }

  /** Records a nonce; false when the request must be refused as a (possible) replay. */
  accept(nonce: string, timestamp: number, nowSeconds: number): boolean {
    if (timestamp <= this.floor || this.seen.has(nonce)) return false;
    if (this.seen.size >= this.capacity) this.makeRoom(nowSeconds);
    this.seen.set(nonce, timestamp);
    return true;
  }

  private makeRoom(nowSeconds: number): void {
    // Entries older than the window are refused as stale anyway; forgetting them is free.
    for (const [nonce, ts] of this.seen) {
      if (ts < nowSeconds - this.windowSeconds) this.seen.delete(nonce);
    }
    // Free at least 10% so the O(n) sweep above runs rarely (amortised O(1) per request).
    const target = Math.floor(this.capacity * 0.9);
    for (const [nonce, ts] of this.seen) {
      if (this.seen.size <= target) break;
      this.seen.delete(nonce);
      if (ts > this.floor) this.floor = ts;
    }
  }
}
