/**
 * The one per-isolate cache (vault records, application existence, authorization data, unwrapped
 * data keys, issuers' public keys): bounded (least recently used evicted first), with a TTL,
 * single-flight loads, and invalidation that also stops a load in flight from storing what it read.
 *
 * Why it is built this way. In Workers an I/O object (a stream, a response body, a D1 or fetch
 * result in flight) belongs to the request that created it, and a promise that settles through
 * one request's I/O must not be what another request awaits: doing so answered a few requests of
 * every cold burst with 500 ("Cannot perform I/O on behalf of a different request"). So:
 *
 *  - Across requests only SETTLED plain values are shared: the entries, and the outcome of a load
 *    (its value, its miss, or its error), written by the loading request's own continuation.
 *    Values must be plain data or CryptoKeys, never a Response, stream or anything holding I/O.
 *  - A load's promise is awaited only by its owner: pass the per-request object (`owner`, e.g. the
 *    request's DataKeyManager) and concurrent calls of the same request share the promise.
 *  - A request that finds another request's load in flight does not await it: it waits on its own
 *    timers, reading the load's outcome once it is there, so a cold burst still makes one load per
 *    key. If the load has not settled within `waitMs` (its request may have been cancelled, and
 *    its I/O with it) the waiter loads for itself. A call without an owner is a stranger to every
 *    load, its own request's included: it waits the same way, which is always safe.
 *
 * Hence a burst of cold requests for one key costs one load in the common case and never more than
 * one per request, and no request ever awaits another request's I/O.
 *
 * Refresh-ahead (caches of D1 records, `refreshAhead`): a value served after half its bound (the
 * call's maxAgeMs, or the TTL if tighter) also starts one owner-less background load of its key,
 * kept alive by the serving request's waitUntil (core/request-scope.ts), while the stored value is
 * answered at once. That load stores or drops (a miss: the record is gone) as any load does, so a
 * warm key is renewed before it expires and no read waits on D1 for it; nobody awaits its promise.
 * If it fails, nothing changes: the value expires on time and the next read loads as usual.
 */
import { runInBackground } from './request-scope';

export interface CacheOptions {
  /** How long a stored value is served; Infinity keeps it until evicted or forgotten. */
  ttlMs: number;
  /** At most this many values; the least recently used goes first. */
  maxEntries: number;
  /** How long a request waits for another request's load before loading itself (default 10 s). */
  waitMs?: number;
  /** Registers the cache with clearIsolateCaches (module-level caches only). */
  name?: string;
  /**
   * Renew a value in the background once it is past half its bound (see above). Only for caches
   * whose loads are D1 reads: a background bridge call (data keys) is not wanted.
   */
  refreshAhead?: boolean;
}

export interface LoadOptions<V = unknown> {
  /** The per-request object whose concurrent calls may share this load's promise. */
  owner?: object;
  /** Load even when a fresh value is stored (e.g. an issuer's keys lack the kid asked for). */
  refresh?: boolean;
  /**
   * Serve a stored value only while it is younger than this (ms), a bound tighter than the TTL
   * that the caller decides per call (a vault's read-cache bound), or that the value itself says
   * (a vault record carries its own bound); 0 always loads.
   */
  maxAgeMs?: MaxAge<V>;
}

export type MaxAge<V> = number | ((value: V) => number);

type Outcome<V> = { value: V | undefined } | { error: unknown };

interface Load<V> {
  owner: object | undefined;
  startedAt: number;
  promise: Promise<V | undefined>;
  /** Set by the loading request when the load settles: all other requests read only this. */
  outcome?: Outcome<V>;
}

const registry = new Map<string, IsolateCache<unknown>>();

/** Drops every named cache of this isolate (the management API's cache reset; tests). */
export function clearIsolateCaches(): void {
  for (const cache of registry.values()) cache.clear();
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface Entry<V> {
  value: V;
  stored: number;
  expires: number;
}

export class IsolateCache<V> {
  /** Calls answered from a stored value, calls that were not, loads started (background ones too), and background ones. */
  hits = 0;
  misses = 0;
  loads = 0;
  refreshes = 0;
  private readonly entries = new Map<string, Entry<V>>();
  private readonly loading = new Map<string, Load<V>>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly waitMs: number;
  private readonly refreshAhead: boolean;

  constructor(options: CacheOptions) {
    this.ttlMs = options.ttlMs;
    this.maxEntries = options.maxEntries;
    this.waitMs = options.waitMs ?? 10_000;
    this.refreshAhead = options.refreshAhead ?? false;
    if (options.name !== undefined) registry.set(options.name, this as IsolateCache<unknown>);
  }

  /**
   * The stored value while fresh (and it becomes the most recently used), else undefined.
   * `maxAgeMs` also treats a value stored longer ago than that as gone.
   */
  get(key: string, maxAgeMs: MaxAge<V> = Infinity): V | undefined {
    return this.fresh(key, maxAgeMs)?.entry.value;
  }

  /** The stored value whatever its age, without touching its order: what a load would replace. */
  peek(key: string): V | undefined {
    return this.entries.get(key)?.value;
  }

  /** get()'s entry, with the time left before it is past half its bound (ms). */
  private fresh(key: string, maxAgeMs: MaxAge<V>): { entry: Entry<V>; halfLeft: number } | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    const t = Date.now();
    const maxAge = typeof maxAgeMs === 'function' ? maxAgeMs(entry.value) : maxAgeMs;
    if (entry.expires <= t || entry.stored + maxAge <= t) {
      this.entries.delete(key);
      return undefined;
    }
    this.entries.delete(key); // re-insert: Map order is the LRU order
    this.entries.set(key, entry);
    const bound = Math.min(maxAge, entry.expires - entry.stored);
    return { entry, halfLeft: entry.stored + bound / 2 - t };
  }

  /** `stored`: when the value was read (default now); its bound and TTL run from then. */
  set(key: string, value: V, stored = Date.now()): void {
    this.entries.delete(key);
    this.entries.set(key, { value, stored, expires: stored + this.ttlMs });
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }

  /**
   * The stored value, or what `loader` finds (stored unless undefined: a miss is not kept, so a
   * new object is seen at once). Concurrent calls share one load as described above.
   */
  async load(key: string, loader: () => Promise<V | undefined>, options: LoadOptions<V> = {}): Promise<V | undefined> {
    if (!options.refresh) {
      const hit = this.fresh(key, options.maxAgeMs ?? Infinity);
      if (hit) {
        this.hits++;
        if (this.refreshAhead && hit.halfLeft <= 0) this.renew(key, loader, hit.entry);
        return hit.entry.value;
      }
    }
    this.misses++;
    const current = this.loading.get(key);
    if (current && !current.outcome) {
      if (options.owner !== undefined && current.owner === options.owner) return current.promise;
      const outcome = await this.outcomeOf(current);
      if (outcome) {
        if ('error' in outcome) throw outcome.error;
        return outcome.value;
      }
    }
    return this.start(key, loader, options.owner);
  }

  /**
   * Starts one background load of `key` (owner-less: no request awaits it) unless one is in flight,
   * within the request's scope; without a scope (tests, jobs) nothing happens.
   */
  private renew(key: string, loader: () => Promise<V | undefined>, entry: Entry<V>): void {
    const current = this.loading.get(key);
    // A load whose request was cancelled may never settle: after waitMs it no longer holds renewal off.
    if (current && !current.outcome && Date.now() < current.startedAt + this.waitMs) return;
    runInBackground(() => {
      this.refreshes++;
      return this.start(key, loader, undefined, entry);
    });
  }

  /** Whether a load of `key` is in flight. */
  isLoading(key: string): boolean {
    const current = this.loading.get(key);
    return current !== undefined && !current.outcome;
  }

  /** Drops the value, and keeps a load in flight from storing what it read before this call. */
  forget(key: string): void {
    this.entries.delete(key);
    this.loading.delete(key);
  }

  /** forget() for every key starting with `prefix` (all versions of one object, say). */
  forgetPrefix(prefix: string): void {
    for (const key of [...this.entries.keys()]) if (key.startsWith(prefix)) this.entries.delete(key);
    for (const key of [...this.loading.keys()]) if (key.startsWith(prefix)) this.loading.delete(key);
  }

  clear(): void {
    this.entries.clear();
    this.loading.clear();
  }

  get size(): number {
    return this.entries.size;
  }

  /** Waits on this request's own timers for another request's load; undefined if it took too long. */
  private async outcomeOf(load: Load<V>): Promise<Outcome<V> | undefined> {
    const deadline = load.startedAt + this.waitMs;
    for (let delay = 1; !load.outcome; delay = Math.min(delay * 2, 16)) {
      if (Date.now() >= deadline) return undefined;
      await sleep(delay);
    }
    return load.outcome;
  }

  /**
   * `renewing`: the entry a background load renews. Its miss drops that entry (the record is gone:
   * seen at once, not at expiry), and only that one, never a value stored meanwhile.
   */
  private start(
    key: string,
    loader: () => Promise<V | undefined>,
    owner: object | undefined,
    renewing?: Entry<V>,
  ): Promise<V | undefined> {
    this.loads++;
    const load: Load<V> = { owner, startedAt: Date.now(), promise: Promise.resolve(undefined) };
    const current = () => this.loading.get(key) === load;
    load.promise = (async () => loader())().then(
      (value) => {
        load.outcome = { value };
        if (current()) {
          this.loading.delete(key);
          // A renewal is dated from its start: what it read is no older than that, so the bound
          // holds from the moment D1 could have answered, not from when the answer arrived.
          if (value !== undefined) this.set(key, value, renewing ? load.startedAt : Date.now());
          else if (renewing && this.entries.get(key) === renewing) this.entries.delete(key);
        }
        return value;
      },
      (error: unknown) => {
        load.outcome = { error };
        if (current()) this.loading.delete(key);
        throw error;
      },
    );
    this.loading.set(key, load);
    return load.promise;
  }
}
