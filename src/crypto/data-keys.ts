/**
 * Per-vault data keys: generated in the Worker, wrapped by the HSM's KEK through the bridge,
 * cached unwrapped in the isolate for a while, rotated by age and use.
 */
import { desc, eq, sql } from 'drizzle-orm';
import type { Database } from '../storage/db';
import { dataKeys } from '../storage/schema';
import { BridgeUnavailableError, IntegrityError } from '../core/errors';
import type { BridgeClient } from './bridge-client';
import { randomBytes } from '../core/encoding';
import { importDataKey } from './envelope';
import { IsolateCache } from '../core/cache';
import type { RequestMeter } from '../core/log';

/** Scope of data keys that protect deployment-wide material (token signing keys, backups). */
export const SYSTEM_SCOPE = 'system';

export interface DataKeyPolicy {
  /** New writes move to a fresh data key after this many encryptions… */
  maxEncryptions: number;
  /** …or after this many seconds. */
  maxAgeSeconds: number;
  /** Unwrapped keys stay in isolate memory this long. */
  cacheTtlMs: number;
  /** and at most this many of them. */
  cacheSize: number;
}

export const DEFAULT_POLICY: DataKeyPolicy = {
  maxEncryptions: 1_000_000, // far below the 2^32 random-nonce bound of AES-GCM
  maxAgeSeconds: 30 * 24 * 3600,
  cacheTtlMs: 15 * 60 * 1000,
  cacheSize: 512,
};

export interface DataKey {
  id: string;
  key: CryptoKey;
}

type DataKeyRow = typeof dataKeys.$inferSelect;

/** A data key as D1 stores it: wrapped, and the label of the KEK that wrapped it. */
export type WrappedDataKey = Pick<DataKeyRow, 'wrapped' | 'kekLabel'>;

/** A data key as a left join finds it beside what it protects: both null when there is none. */
export type JoinedDataKey = { [K in keyof WrappedDataKey]: WrappedDataKey[K] | null };

/** What the bridge binds into each wrap, so a wrapped key cannot be moved to another scope. */
export const wrapContext = (scope: string, id: string) => `ekv-dk-v1|${scope}|${id}`;

/**
 * Unwrapped data keys in isolate memory: the core cache sized and timed by the policy. A burst of
 * cold reads unwraps a key once; each request passes its own DataKeyManager as the owner of the
 * unwrap it starts, so no request awaits another request's bridge call (see core/cache.ts).
 */
export class DataKeyCache extends IsolateCache<CryptoKey> {
  constructor(policy: Pick<DataKeyPolicy, 'cacheTtlMs' | 'cacheSize'>, name?: string) {
    super({ ttlMs: policy.cacheTtlMs, maxEntries: policy.cacheSize, name });
  }
}

/** Finds, unwraps, creates and rotates the data keys of each scope. */
export class DataKeyManager {
  /** The request's meter (services.ts): the object stores count their read-cache hits on it. */
  meter: RequestMeter | undefined;

  constructor(
    private readonly db: Database,
    private readonly bridge: BridgeClient,
    private readonly cache: DataKeyCache,
    private readonly policy: DataKeyPolicy = DEFAULT_POLICY,
  ) {}

  /** The key for reading something sealed under data key `id` (its wrapped form may be at hand). */
  async forRead(id: string, scope: string, known?: JoinedDataKey | null): Promise<CryptoKey> {
    const key = await this.cache.load(
      id,
      async () => {
        if (!known?.wrapped || !known.kekLabel) return this.unwrap(id, scope, await this.storedRow(id, scope));
        const given = { wrapped: known.wrapped, kekLabel: known.kekLabel };
        try {
          return await this.unwrap(id, scope, given);
        } catch (err) {
          // The copy at hand may predate a KEK rotation's re-wrap (an isolate's read cache, or a
          // read racing the cron) and its KEK be destroyed since: D1 holds the current wrap.
          if (!(err instanceof IntegrityError)) throw err;
          const row = await this.storedRow(id, scope);
          if (row.wrapped === given.wrapped && row.kekLabel === given.kekLabel) throw err;
          return this.unwrap(id, scope, row);
        }
      },
      { owner: this },
    );
    if (!key) throw new IntegrityError('data key');
    return key;
  }

  private async storedRow(id: string, scope: string): Promise<WrappedDataKey> {
    const row = await this.db.select().from(dataKeys).where(eq(dataKeys.id, id)).get();
    if (!row || row.scope !== scope) throw new IntegrityError('data key reference');
    return row;
  }

  private async unwrap(id: string, scope: string, blob: WrappedDataKey): Promise<CryptoKey> {
    return importDataKey(await this.bridge.unwrap(blob.wrapped, wrapContext(scope, id), blob.kekLabel));
  }

  /**
   * The key new writes in `scope` use: the newest one, unless it is due for rotation. When a
   * rotation is due but the bridge is down, writes go on under the current (still safe) key.
   */
  async forWrite(scope: string): Promise<DataKey> {
    const current = await this.db
      .select()
      .from(dataKeys)
      .where(eq(dataKeys.scope, scope))
      .orderBy(desc(dataKeys.createdAt), desc(dataKeys.id))
      .limit(1)
      .get();
    if (current && !this.rotationDue(current)) {
      return { id: current.id, key: await this.forRead(current.id, scope, current) };
    }
    try {
      return await this.create(scope);
    } catch (err) {
      if (current && err instanceof BridgeUnavailableError && this.cache.get(current.id)) {
        return { id: current.id, key: this.cache.get(current.id)! };
      }
      throw err;
    }
  }

  /** Generates a data key, has the HSM wrap it, and stores the wrapped form. */
  async create(scope: string): Promise<DataKey> {
    const prepared = await this.prepare(scope);
    await this.db.insert(dataKeys).values(prepared.row);
    return prepared.dataKey;
  }

  /**
   * Like create(), but returns the row unsaved, so a caller can insert it in the same batch as
   * what it protects (a new vault and its first key appear together, or not at all).
   */
  async prepare(scope: string): Promise<{ dataKey: DataKey; row: DataKeyRow }> {
    const id = crypto.randomUUID();
    const raw = randomBytes(32);
    const { wrapped, kekLabel } = await this.bridge.wrap(raw, wrapContext(scope, id));
    const key = await importDataKey(raw);
    raw.fill(0);
    this.cache.set(id, key);
    const row = { id, scope, wrapped, kekLabel, createdAt: Math.floor(Date.now() / 1000), encryptions: 0 };
    return { dataKey: { id, key }, row };
  }

  /** Statement that counts one more encryption under `id`; batch it with the write it counts. */
  countEncryption(id: string) {
    return this.db
      .update(dataKeys)
      .set({ encryptions: sql`${dataKeys.encryptions} + 1` })
      .where(eq(dataKeys.id, id));
  }

  private rotationDue(row: DataKeyRow): boolean {
    const age = Math.floor(Date.now() / 1000) - row.createdAt;
    return row.encryptions >= this.policy.maxEncryptions || age >= this.policy.maxAgeSeconds;
  }
}
