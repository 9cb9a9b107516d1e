/**
 * The isolate cache: TTL, bounds, forgetting, and that a request never awaits another request's
 * load in flight.
 */
import { describe, expect, it } from 'vitest';
import { clearIsolateCaches, IsolateCache } from '../../src/core/cache';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A loader that counts its runs and answers `answer()` after `ms`. */
function counted<T>(answer: () => T | undefined, ms = 10) {
  const loader = async () => {
    loader.runs++;
    await sleep(ms);
    return answer();
  };
  loader.runs = 0;
  return loader;
}

describe('IsolateCache', () => {
  it('makes one load for concurrent misses, whether they share an owner or not, and keeps the value for its TTL', async () => {
    const cache = new IsolateCache<string>({ ttlMs: 60_000, maxEntries: 10 });
    const load = counted(() => 'value');
    const owner = {};
    const values = await Promise.all([
      ...Array.from({ length: 4 }, () => cache.load('k', load, { owner })),
      ...Array.from({ length: 4 }, () => cache.load('k', load)), // strangers: they wait for the outcome
    ]);
    expect(values).toEqual(Array(8).fill('value'));
    expect(load.runs).toBe(1);
    expect(await cache.load('k', load)).toBe('value');
    expect(load.runs).toBe(1);
    expect(cache.hits).toBe(1);
    cache.forget('k');
    await cache.load('k', load);
    expect(load.runs).toBe(2);
  });

  it('does not keep misses, and reloads after expiry', async () => {
    const cache = new IsolateCache<string>({ ttlMs: 20, maxEntries: 10 });
    let answer: string | undefined;
    const load = counted(() => answer, 0);
    expect(await cache.load('k', load)).toBeUndefined();
    answer = 'now exists';
    expect(await cache.load('k', load)).toBe('now exists');
    await sleep(30);
    answer = 'changed';
    expect(await cache.load('k', load)).toBe('changed');
    expect(load.runs).toBe(3);
  });

  it("hands a failed load's error to the requests that waited for it, and keeps nothing", async () => {
    const cache = new IsolateCache<string>({ ttlMs: 60_000, maxEntries: 10 });
    const load = counted((): string => {
      throw new Error('bridge down');
    });
    const results = await Promise.allSettled(Array.from({ length: 3 }, () => cache.load('k', load)));
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(load.runs).toBe(1);
    expect(cache.size).toBe(0);
  });

  it('keeps a load that a forget overtook from storing what it read', async () => {
    const cache = new IsolateCache<string>({ ttlMs: 60_000, maxEntries: 10 });
    let answer = 'before the write';
    const load = async () => {
      const read = answer; // what D1 held when the query ran
      await sleep(20);
      return read;
    };
    const inFlight = cache.load('k', load);
    await sleep(5);
    answer = 'after the write';
    cache.forget('k');
    expect(await inFlight).toBe('before the write'); // it asked before the write
    expect(cache.get('k')).toBeUndefined();
    expect(await cache.load('k', load)).toBe('after the write');
  });

  it("loads for itself when another request's load does not settle in time", async () => {
    const cache = new IsolateCache<string>({ ttlMs: 60_000, maxEntries: 10, waitMs: 30 });
    const stuck = cache.load('k', () => new Promise<string>(() => {})); // e.g. its request was cancelled
    void stuck;
    expect(await cache.load('k', async () => 'own')).toBe('own');
    expect(cache.get('k')).toBe('own');
  });

  it('reloads on refresh even when the value is fresh', async () => {
    const cache = new IsolateCache<number>({ ttlMs: 60_000, maxEntries: 10 });
    let n = 0;
    const load = counted(() => ++n, 0);
    expect(await cache.load('k', load)).toBe(1);
    expect(await cache.load('k', load, { refresh: true })).toBe(2);
    expect(cache.get('k')).toBe(2);
  });

  it('is bounded, evicting the least recently used', () => {
    const cache = new IsolateCache<string>({ ttlMs: 60_000, maxEntries: 2 });
    cache.set('a', 'A');
    cache.set('b', 'B');
    cache.get('a');
    cache.set('c', 'C');
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')).toBe('A');
    expect(cache.size).toBe(2);
  });

  it('clears the named caches of the isolate on request', () => {
    const named = new IsolateCache<string>({ ttlMs: 60_000, maxEntries: 2, name: 'test-named' });
    const unnamed = new IsolateCache<string>({ ttlMs: 60_000, maxEntries: 2 });
    named.set('a', 'A');
    unnamed.set('a', 'A');
    clearIsolateCaches();
    expect(named.get('a')).toBeUndefined();
    expect(unnamed.get('a')).toBe('A');
  });
});
