import { describe, expect, it } from 'vitest';
import { LookupCache } from '../../src/core/cache';

describe('LookupCache', () => {
  it('shares one load between concurrent misses and keeps the value for its TTL', async () => {
    const cache = new LookupCache<string>(60_000);
    let loads = 0;
    const load = async () => {
      loads++;
      await new Promise((r) => setTimeout(r, 10));
      return 'value';
    };
    const values = await Promise.all(Array.from({ length: 8 }, () => cache.get('k', load)));
    expect(values).toEqual(Array(8).fill('value'));
    expect(loads).toBe(1);
    await cache.get('k', load);
    expect(loads).toBe(1);
    cache.forget('k');
    await cache.get('k', load);
    expect(loads).toBe(2);
  });

  it('does not keep misses, and reloads after expiry', async () => {
    const cache = new LookupCache<string>(20);
    let answer: string | undefined;
    let loads = 0;
    const load = async () => {
      loads++;
      return answer;
    };
    expect(await cache.get('k', load)).toBeUndefined();
    answer = 'now exists';
    expect(await cache.get('k', load)).toBe('now exists');
    await new Promise((r) => setTimeout(r, 30));
    answer = 'changed';
    expect(await cache.get('k', load)).toBe('changed');
    expect(loads).toBe(3);
  });
});
