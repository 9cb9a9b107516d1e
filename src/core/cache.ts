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
 */

export interface CacheOptions {
  /** How long a stored value is served; Infinity keeps it until evicted or forgotten. */
  ttlMs: number;
  /** At most this many values; the least recently used goes first. */
  maxEntries: number;
  /** How long a request waits for another request's load before loading itself (default 10 s). */
  waitMs?: number;
  /** Registers the cache with clearIsolateCaches (module-level caches only). */
  name?: string;
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

export class IsolateCache<V> {
  /** Calls answered from a stored value, calls that were not, and loads started. */
  hits = 0;
  misses = 0;
  loads = 0;
  private readonly entries = new Map<string, { value: V; stored: number; expires: number }>();
  private readonly loading = new Map<string, Load<V>>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly waitMs: number;

  constructor(options: CacheOptions) {
    this.ttlMs = options.ttlMs;
    this.maxEntries = options.maxEntries;
    this.waitMs = options.waitMs ?? 10_000;
    if (options.name !== undefined) registry.set(options.name, this as IsolateCache<unknown>);
  }

  /**
   * The stored value while fresh (and it becomes the most recently used), else undefined.
   * `maxAgeMs` also treats a value stored longer ago than that as gone.
   */
  get(key: string, maxAgeMs: MaxAge<V> = Infinity): V | undefined {
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
    return entry.value;
  }

  set(key: string, value: V): void {
    this.entries.delete(key);
    const t = Date.now();
    this.entries.set(key, { value, stored: t, expires: t + this.ttlMs });
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }

  /**
   * The stored value, or what `loader` finds (stored unless undefined: a miss is not kept, so a
   * new object is seen at once). Concurrent calls share one load as described above.
   */
  async load(key: string, loader: () => Promise<V | undefined>, options: LoadOptions<V> = {}): Promise<V | undefined> {
    if (!options.refresh) {
      const hit = this.get(key, options.maxAgeMs);
      if (hit !== undefined) {
        this.hits++;
        return hit;
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

  private start(key: string, loader: () => Promise<V | undefined>, owner: object | undefined): Promise<V | undefined> {
    this.loads++;
    const load: Load<V> = { owner, startedAt: Date.now(), promise: Promise.resolve(undefined) };
    const current = () => this.loading.get(key) === load;
    load.promise = (async () => loader())().then(
      (value) => {
        load.outcome = { value };
        if (current()) {
          this.loading.delete(key);
          if (value !== undefined) this.set(key, value);
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
