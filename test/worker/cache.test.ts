/**
 * The isolate cache: TTL, bounds, forgetting, that a request never awaits another request's
 * load in flight, and refresh-ahead (renewal in the background of the request that served).
 */
import { describe, expect, it } from 'vitest';
import { clearIsolateCaches, IsolateCache } from '../../src/core/cache';
import { withRequestScope } from '../../src/core/request-scope';

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

/** A request's waitUntil that collects what it is given, so a test can wait for it. */
function request() {
  const kept: Promise<unknown>[] = [];
  return {
    kept,
    run: <T>(fn: () => T): T => withRequestScope({ waitUntil: (p: Promise<unknown>) => void kept.push(p) }, fn),
    settled: () => Promise.all(kept),
  };
}

describe('IsolateCache refresh-ahead', () => {
  // The call's maxAgeMs; past half of it a served value is renewed. A second, so the margins around
  // half and whole bounds stay far above a busy machine's timer and scheduling delays.
  const BOUND = 1_000;
  const renewing = () => new IsolateCache<string>({ ttlMs: 60_000, maxEntries: 10, refreshAhead: true });

  /** A cache holding 'v1' for `k`, now past half its bound, and a loader answering `answer.value`. */
  async function halfStale(cache = renewing()) {
    const answer: { value: string | undefined; error?: Error } = { value: 'v1' };
    const load = counted(() => {
      if (answer.error) throw answer.error;
      return answer.value;
    }, 20);
    expect(await cache.load('k', load, { maxAgeMs: BOUND })).toBe('v1');
    await sleep(BOUND / 2 + 10);
    return { cache, answer, load };
  }

  it('serves the stored value at once and renews it with one background load, stored after', async () => {
    const { cache, answer, load } = await halfStale();
    answer.value = 'v2';
    const r = request();
    const served = await r.run(() => Promise.all([1, 2, 3].map(() => cache.load('k', load, { maxAgeMs: BOUND }))));
    expect(served).toEqual(['v1', 'v1', 'v1']);
    expect(cache.isLoading('k')).toBe(true); // answered before the 20 ms load settled
    expect(load.runs).toBe(2);
    expect(r.kept).toHaveLength(1); // kept alive by the request, awaited by nobody
    await r.settled();
    expect(cache.refreshes).toBe(1);
    expect(await cache.load('k', load, { maxAgeMs: BOUND })).toBe('v2');
    expect(load.runs).toBe(2);
    // The renewed value has a whole bound again (dated from when its load started).
    await sleep(BOUND / 2 - 30);
    expect(cache.get('k', BOUND)).toBe('v2');
  });

  it('renews nothing without a request scope, before half the bound, or when the cache did not opt in', async () => {
    const { cache, load } = await halfStale();
    expect(await cache.load('k', load, { maxAgeMs: BOUND })).toBe('v1'); // no scope: as before
    expect(load.runs).toBe(1);

    const r = request();
    const young = renewing();
    await young.load('k', load, { maxAgeMs: BOUND });
    expect(await r.run(() => young.load('k', load, { maxAgeMs: BOUND }))).toBe('v1');
    const plain = new IsolateCache<string>({ ttlMs: 60_000, maxEntries: 10 });
    await plain.load('k', load, { maxAgeMs: BOUND });
    await sleep(BOUND / 2 + 10);
    expect(await r.run(() => plain.load('k', load, { maxAgeMs: BOUND }))).toBe('v1');
    expect(r.kept).toHaveLength(0);
    expect(load.runs).toBe(3);
  });

  it('renews past half of the TTL when it is tighter than the call bound', async () => {
    const cache = new IsolateCache<string>({ ttlMs: BOUND, maxEntries: 10, refreshAhead: true });
    const { load } = await halfStale(cache);
    const r = request();
    expect(await r.run(() => cache.load('k', load, { maxAgeMs: 60_000 }))).toBe('v1');
    expect(r.kept).toHaveLength(1);
  });

  it('lets a forget during the renewal win: what it read is not stored', async () => {
    const { cache, answer, load } = await halfStale();
    answer.value = 'read before the write';
    const r = request();
    await r.run(() => cache.load('k', load, { maxAgeMs: BOUND }));
    cache.forget('k'); // a write in this isolate
    await r.settled();
    expect(cache.get('k')).toBeUndefined();
    answer.value = 'after the write';
    expect(await cache.load('k', load, { maxAgeMs: BOUND })).toBe('after the write');
  });

  it('keeps the old value until its expiry when the renewal fails; the read after that loads and fails', async () => {
    const { cache, answer, load } = await halfStale();
    answer.error = new Error('D1 unavailable');
    const r = request();
    expect(await r.run(() => cache.load('k', load, { maxAgeMs: BOUND }))).toBe('v1');
    await r.settled(); // the rejection is not the request's: waitUntil got a settled promise
    expect(cache.isLoading('k')).toBe(false);
    expect(await cache.load('k', load, { maxAgeMs: BOUND })).toBe('v1');
    await sleep(BOUND / 2);
    await expect(cache.load('k', load, { maxAgeMs: BOUND })).rejects.toThrow('D1 unavailable');
    expect(cache.size).toBe(0);
  });

  it('drops the entry when the renewal finds the record gone, and only that entry', async () => {
    const { cache, answer, load } = await halfStale();
    answer.value = undefined; // deleted in D1 by another isolate
    const r = request();
    expect(await r.run(() => cache.load('k', load, { maxAgeMs: BOUND }))).toBe('v1');
    await r.settled();
    expect(cache.size).toBe(0); // seen at once, not at expiry

    // A value stored meanwhile (this isolate's own write, which forgot the key) is not dropped.
    const again = await halfStale();
    again.answer.value = undefined;
    const r2 = request();
    await r2.run(() => again.cache.load('k', again.load, { maxAgeMs: BOUND }));
    again.cache.forget('k');
    again.cache.set('k', 'written here');
    await r2.settled();
    expect(again.cache.get('k')).toBe('written here');
  });
});
