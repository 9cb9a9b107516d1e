/** The replay cache: nonces are remembered for the skew window; memory is bounded without reopening replays. */
import { describe, expect, it } from 'vitest';
import { ReplayCache } from '../src/replay-cache.js';

describe('ReplayCache', () => {
  it('accepts a nonce once', () => {
    const cache = new ReplayCache(100, 60);
    expect(cache.accept('n1', 1000, 1000)).toBe(true);
    expect(cache.accept('n1', 1000, 1000)).toBe(false);
    expect(cache.accept('n1', 1001, 1030)).toBe(false); // still inside the window
    expect(cache.accept('n2', 1000, 1000)).toBe(true);
  });

  it('stays within its capacity under a flood', () => {
    const cache = new ReplayCache(1000, 60);
    for (let i = 0; i < 50_000; i++) cache.accept(`n${i}`, 5000, 5000);
    expect(cache.size).toBeLessThanOrEqual(1000);
  });

  it('never accepts a replay of an evicted nonce', () => {
    const cache = new ReplayCache(10, 60);
    expect(cache.accept('victim', 1000, 1000)).toBe(true);
    for (let i = 0; i < 100; i++) cache.accept(`n${i}`, 1001 + Math.floor(i / 10), 1010);
    // 'victim' was evicted long ago, yet its timestamp is still inside the window at 1010.
    expect(cache.accept('victim', 1000, 1010)).toBe(false);
  });

  it('forgets expired nonces first, without refusing current requests', () => {
    const cache = new ReplayCache(10, 60);
    for (let i = 0; i < 10; i++) expect(cache.accept(`old${i}`, 1000, 1000)).toBe(true);
    // 100 s later the old entries are stale, so room is made without raising the floor.
    expect(cache.accept('fresh', 1100, 1100)).toBe(true);
    expect(cache.size).toBe(1);
    expect(cache.accept('fresh2', 1099, 1100)).toBe(true);
  });

  it('refuses everything at or below a floor it is given (a restart), never lowering it', () => {
    const cache = new ReplayCache(100, 60);
    cache.refuseUpTo(1000);
    expect(cache.accept('unseen', 1000, 1000)).toBe(false);
    expect(cache.accept('older', 990, 1000)).toBe(false);
    cache.refuseUpTo(-Infinity); // an empty state directory does not undo it
    expect(cache.accept('still', 999, 1000)).toBe(false);
    expect(cache.accept('next', 1001, 1001)).toBe(true);
  });
});
