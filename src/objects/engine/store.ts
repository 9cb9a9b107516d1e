// The versioned-object engine: everything secrets, keys (and certificates) do alike with a head
// row and its version rows, written once. Reads and listings, the guarded write that makes a new
// version the latest, soft delete, recover, purge, backup and restore; the kind description
// (kind.ts) supplies the rows' meaning, Azure's wording and the hooks. Each kind's store extends
// VersionedStore with its description and adds only what is its own (a secret's value, a key's
// material); the shared operations are the engine's public methods.
import * as z from 'zod';
import { and, asc, desc, eq, gt, isNotNull, isNull, ne, or, sql, type SQL } from 'drizzle-orm';
import { now } from '../../core/clock';
import { fromUtf8, newVersionId, utf8 } from '../../core/encoding';
import { forbidden, IntegrityError } from '../../core/errors';
import { decodePageToken, page, type Page } from '../../core/paging';
import { inBackground } from '../../core/request-scope';
import { assertObjectName, isVersionId } from '../../core/validation';
import type { VaultRecord } from '../../core/vault';
import type { DataKey, DataKeyManager, JoinedDataKey } from '../../crypto/data-keys';
import { objectAad, open, seal } from '../../crypto/envelope';
import type { Database } from '../../storage/db';
import { violatedConstraint } from '../../storage/errors';
import { dataKeys } from '../../storage/schema';
import { corruptBackup, openBackup, sealBackup } from '../backup';
import type { BackupRecord, CommonVersionColumns, HeadRow, ObjectKind, Open, Seal, VersionedRecord, VersionRow } from './kind';
import { forgetObject, openedPayload, readThrough, rememberOpened, type CachedRead } from './read-cache';
import { insertIfGuard, purgeProtected, writeBatch } from './writes';

/** What a kind makes for a new version: its own columns, and its undo. */
export interface NewVersion<V extends VersionRow> {
  row: Omit<V, CommonVersionColumns>;
  /** Undoes what making the version did outside D1 (a token object) when the version is not stored. */
  undo?: () => Promise<unknown>;
}

/** A version's tags and attributes as the API carries them (create, PATCH). */
export interface AttributeUpdate {
  tags?: Record<string, string> | null;
  attributes?: { enabled?: boolean | null; nbf?: number | null; exp?: number | null } | null;
}

const tagsColumn = (tags: Record<string, string> | null | undefined) => (tags ? JSON.stringify(tags) : null);

interface BackupPayload<B> {
  kind: string;
  name: string;
  latestVersion: string;
  versions: B[];
}

// drizzle's builders are typed per table; the engine works on any table with the common columns
// (kind.ts), so its rows are cast to the kind's row types at these few boundaries.
type Any = never;

export class VersionedStore<H extends HeadRow, V extends VersionRow, R extends VersionedRecord, B extends BackupRecord> {
  private readonly h;
  private readonly v;

  constructor(
    protected readonly db: Database,
    protected readonly keys: DataKeyManager,
    readonly vault: VaultRecord,
    private readonly kind: ObjectKind<H, V, R, B>,
  ) {
    this.h = kind.tables.head;
    this.v = kind.tables.versions;
  }

  /** The head row of an object (live or deleted), or undefined. */
  head(name: string): Promise<H | undefined> {
    return this.db.select().from(this.h).where(this.headIs(name)).get() as Promise<H | undefined>;
  }

  /** One version (latest when none is given), without its payload; `live` refuses deleted objects. */
  async record(name: string, version?: string, live = true): Promise<R> {
    assertObjectName(name, this.kind.kind);
    if (version !== undefined && !isVersionId(version)) throw this.kind.errors.notFound(name);
    const row = (await this.db
      .select({ v: this.v, deletedAt: this.h.deletedAt } as Any)
      .from(this.h)
      .innerJoin(this.v, this.versionOfHead(version))
      .where(this.headIs(name))
      .get()) as { v: V; deletedAt: number | null } | undefined;
    if (!row || (live && row.deletedAt != null)) throw this.kind.errors.notFound(name);
    return this.kind.toRecord(row.v);
  }

  /**
   * A live version's row with what opens its payload: one D1 query (the data key rides along), or
   * none while this isolate's sealed copy is within the vault's read-cache bound (read-cache.ts).
   */
  protected async read(name: string, version?: string): Promise<{ row: V; open: Open }> {
    assertObjectName(name, this.kind.kind);
    if (version !== undefined && !isVersionId(version)) throw this.kind.errors.notFound(name);
    let loaded = false;
    const found = await readThrough<V>(this.kind.kind, this.vault, name, version, async () => {
      // A background renewal this read started (read-cache.ts) is not what it waited on.
      if (!inBackground()) loaded = true;
      const row = (await this.db
        .select({ v: this.v, deletedAt: this.h.deletedAt, wrapped: dataKeys.wrapped, kekLabel: dataKeys.kekLabel } as Any)
        .from(this.h)
        .innerJoin(this.v, this.versionOfHead(version))
        .leftJoin(dataKeys, eq(dataKeys.id, this.v.dataKeyId))
        .where(this.headIs(name))
        .get()) as ({ v: V; deletedAt: number | null } & JoinedDataKey) | undefined;
      // Deleted is not found: a miss, never kept.
      return row && row.deletedAt == null
        ? ({ row: row.v, dataKey: { wrapped: row.wrapped, kekLabel: row.kekLabel } } satisfies CachedRead<V>)
        : undefined;
    });
    // For the request's log line: served by this isolate's copy (or another request's load), or read from D1.
    const meter = this.keys.meter;
    if (meter && loaded) meter.readMisses++;
    else if (meter) meter.readHits++;
    if (!found) throw this.kind.errors.notFound(name);
    // A copy that fails to open is dropped, so the next read looks at D1 again.
    return { row: found.row, open: this.opener(found.row, found.dataKey, () => this.forget(name)) };
  }

  /** Drops this isolate's cached reads of an object: every write to it calls this. */
  private forget(name: string): void {
    forgetObject(this.kind.kind, this.vault.id, name);
  }

  /**
   * Stores a new version with `fields` and what `make` makes; it becomes the latest. With
   * `expectLatest`, the head moves only if it still points at that version (rotation: a concurrent
   * one wins, this one is undone).
   */
  protected async add(
    name: string,
    fields: AttributeUpdate,
    make: (version: string, head: H | undefined, seal: Seal) => Promise<NewVersion<V>>,
    options: { expectLatest?: string; version?: string } = {},
  ): Promise<R> {
    assertObjectName(name, this.kind.kind);
    const { errors, hooks } = this.kind;
    const h = this.h;
    const head = await this.head(name);
    if (head?.deletedAt != null) throw errors.deletedConflict(name);
    if (options.expectLatest !== undefined && head?.latestVersion !== options.expectLatest) throw errors.changed(name);
    const version = options.version ?? newVersionId();
    const sealer = this.sealer(head?.name ?? name);
    const made = await make(version, head, sealer.seal(version));
    const t = now();
    const a = fields.attributes;
    const row = {
      ...made.row,
      vaultId: this.vault.id,
      name: head?.name ?? name,
      version,
      tags: tagsColumn(fields.tags),
      enabled: a?.enabled ?? true,
      nbf: a?.nbf ?? null,
      exp: a?.exp ?? null,
      created: t,
      updated: t,
    } as V;
    const follow = hooks?.latestChanged?.(head, row, 'added') ?? {};
    // One transaction: the head moves only while the object is not deleted (and, with
    // expectLatest, not moved on), and the version lands only if the head moved to it.
    const moveHead = this.db
      .insert(h)
      .values({ vaultId: this.vault.id, name, latestVersion: version, ...follow } as Any)
      .onConflictDoUpdate({
        target: [h.vaultId, h.name],
        set: { latestVersion: version, ...follow } as Any,
        setWhere:
          options.expectLatest === undefined
            ? isNull(h.deletedAt)
            : and(isNull(h.deletedAt), eq(h.latestVersion, options.expectLatest)),
      })
      .returning({ name: h.name });
    this.forget(name);
    try {
      const landed = and(this.headIs(name), eq(h.latestVersion, version));
      const insert = insertIfGuard(this.db, this.v, row as Any, h, landed);
      const [moved] = await writeBatch(this.db, this.vault, [moveHead, insert, ...sealer.statements()] as const);
      // Deleted (or rotated) between our read and our write.
      if (moved.length === 0) throw errors.deletedConflict(name);
      return this.kind.toRecord({ ...row, name: moved[0]!.name });
    } catch (err) {
      if (made.undo) await made.undo().catch(() => undefined);
      if (violatedConstraint(err) === 'unique') throw errors.versionTaken(name, version);
      throw err;
    } finally {
      // Also after the write: a read of this isolate that raced it must not keep the old latest.
      this.forget(name);
    }
  }

  /** PATCH of a version (latest when none is given): tags, attributes, and the kind's `extra`. */
  protected async patch(
    name: string,
    version: string | undefined,
    input: AttributeUpdate,
    extra?: (current: R) => Partial<V>,
  ): Promise<R> {
    const current = await this.record(name, version);
    const patch = { updated: now(), ...extra?.(current) } as Partial<V>;
    if (input.tags !== undefined) patch.tags = tagsColumn(input.tags);
    const a = input.attributes;
    if (a?.enabled != null) patch.enabled = a.enabled;
    if (a?.nbf !== undefined) patch.nbf = a.nbf;
    if (a?.exp !== undefined) patch.exp = a.exp;
    const [updated] = (await this.db
      .update(this.v)
      .set(patch as Any)
      .where(and(eq(this.v.vaultId, this.vault.id), eq(this.v.name, current.name), eq(this.v.version, current.version)))
      .returning()) as V[];
    this.forget(current.name);
    if (!updated) throw this.kind.errors.notFound(name);
    const follows = this.kind.hooks?.follows ?? [];
    if (follows.some((column) => patch[column] !== undefined)) await this.followLatest(updated);
    return this.kind.toRecord(updated);
  }

  /** Latest version of each live object, by name, without payloads. */
  list(maxResults: number, skipToken?: string): Promise<Page<R>> {
    return this.heads(false, maxResults, skipToken);
  }

  /** Latest version of each deleted object, by name, without payloads. */
  listDeleted(maxResults: number, skipToken?: string): Promise<Page<R>> {
    return this.heads(true, maxResults, skipToken);
  }

  /** Every version of a live object, oldest first; a name with none (or deleted) lists nothing, as on Azure. */
  async listVersions(name: string, maxResults: number, skipToken?: string): Promise<Page<R>> {
    assertObjectName(name, this.kind.kind);
    const { h, v } = this;
    const after = skipToken ? decodePageToken(skipToken, 'c', 'v') : undefined;
    const rows = (await this.db
      .select({ v } as Any)
      .from(v)
      .innerJoin(h, and(eq(h.vaultId, v.vaultId), eq(h.name, v.name)))
      .where(
        and(
          eq(v.vaultId, this.vault.id),
          eq(v.name, name),
          isNull(h.deletedAt),
          after ? or(gt(v.created, Number(after.c)), and(eq(v.created, Number(after.c)), gt(v.version, after.v))) : undefined,
        ),
      )
      .orderBy(asc(v.created), asc(v.version))
      .limit(maxResults + 1)
      .all()) as { v: V }[];
    return page(
      rows.map((r) => this.kind.toRecord(r.v)),
      maxResults,
      (last) => ({ c: String(last.created), v: last.version }),
    );
  }

  /**
   * Removes a version that was made for something that never happened (a certificate version
   * whose issuance failed or was cancelled), with what the kind keeps outside D1 (beforePurge: a
   * token object). The latest moves back to the newest other version; an object with no other
   * version goes. In that order: the version is first disabled and no longer the latest (one
   * batch), then its outside part removed, then its row; so a failure at any step (bridge down,
   * D1) leaves it disabled and unused, never usable with its token object gone. False when there
   * is no such version.
   */
  async discardVersion(name: string, version: string): Promise<boolean> {
    const { h, v } = this;
    const ofObject = and(eq(v.vaultId, this.vault.id), eq(v.name, name));
    const thisVersion = and(ofObject, eq(v.version, version));
    const row = (await this.db.select().from(v).where(thisVersion).get()) as V | undefined;
    const head = await this.head(name);
    // A deleted object keeps its versions until it is purged.
    if (!row || !head || head.deletedAt != null) return false;
    const previous = (await this.db
      .select()
      .from(v)
      .where(and(ofObject, ne(v.version, version)))
      .orderBy(desc(v.created), desc(sql`rowid`))
      .get()) as V | undefined;
    const stillLatest = and(this.headIs(name), eq(h.latestVersion, version), isNull(h.deletedAt));
    const disable = this.db
      .update(v)
      .set({ enabled: false } as Any)
      .where(thisVersion);
    this.forget(name);
    try {
      if (previous) {
        const follow = this.kind.hooks?.latestChanged?.(head, previous, 'updated') ?? {};
        await this.db.batch([
          this.db
            .update(h)
            .set({ latestVersion: previous.version, ...follow } as Any)
            .where(stillLatest),
          disable,
        ]);
      } else {
        await disable;
      }
      try {
        await this.kind.hooks?.beforePurge?.([row]);
      } catch (err) {
        console.error(`${this.kind.kind} version disabled, not removed: ${err instanceof Error ? err.name : 'error'}`);
        return true;
      }
      // Its only version: the object goes (its versions with it, by the foreign key).
      if (previous) await this.db.delete(v).where(thisVersion);
      else await this.db.batch([this.db.delete(h).where(stillLatest), this.db.delete(v).where(thisVersion)]);
    } finally {
      this.forget(name);
    }
    return true;
  }

  /** Soft delete: the object keeps its versions until purged or its retention period ends. */
  async delete(name: string): Promise<R> {
    assertObjectName(name, this.kind.kind);
    const t = now();
    const scheduled = t + this.vault.softDeleteRetentionDays * 86400;
    const [head] = (await this.db
      .update(this.h)
      .set({ deletedAt: t, scheduledPurgeAt: scheduled } as Any)
      .where(and(this.headIs(name), isNull(this.h.deletedAt)))
      .returning()) as H[];
    this.forget(name);
    if (!head) throw this.kind.errors.notFound(name);
    const latest = await this.record(head.name, head.latestVersion, false);
    return { ...latest, deletedAt: t, scheduledPurgeAt: scheduled };
  }

  async getDeleted(name: string): Promise<R> {
    assertObjectName(name, this.kind.kind);
    const head = await this.head(name);
    if (!head || head.deletedAt == null) throw this.kind.errors.deletedNotFound(name);
    const latest = await this.record(head.name, head.latestVersion, false);
    return { ...latest, deletedAt: head.deletedAt, scheduledPurgeAt: head.scheduledPurgeAt };
  }

  async recover(name: string): Promise<R> {
    assertObjectName(name, this.kind.kind);
    const [head] = (await this.db
      .update(this.h)
      .set({ deletedAt: null, scheduledPurgeAt: null } as Any)
      .where(and(this.headIs(name), isNotNull(this.h.deletedAt)))
      .returning()) as H[];
    this.forget(name);
    if (!head) throw this.kind.errors.deletedNotFound(name);
    return this.record(head.name, head.latestVersion, false);
  }

  /** Permanently removes a deleted object, unless the vault has purge protection. */
  async purge(name: string): Promise<void> {
    assertObjectName(name, this.kind.kind);
    if (this.vault.purgeProtection) throw forbidden(purgeProtected());
    if (!(await purgeDeleted(this.db, this.kind, this.vault.id, name))) throw this.kind.errors.deletedNotFound(name);
  }

  /** All versions of a live object, sealed into a blob only this deployment can open. */
  async backup(name: string): Promise<string> {
    assertObjectName(name, this.kind.kind);
    const head = await this.head(name);
    if (!head || head.deletedAt != null) throw this.kind.errors.notFound(name);
    const v = this.v;
    const rows = (await this.db
      .select({ v, wrapped: dataKeys.wrapped, kekLabel: dataKeys.kekLabel } as Any)
      .from(v)
      .leftJoin(dataKeys, eq(dataKeys.id, v.dataKeyId))
      .where(and(eq(v.vaultId, this.vault.id), eq(v.name, head.name)))
      .orderBy(asc(v.created), asc(v.version))
      .all()) as ({ v: V } & JoinedDataKey)[];
    const refusal = this.kind.backup.refuse?.(
      head.name,
      rows.map((r) => r.v),
    );
    if (refusal) throw refusal;
    const versions: B[] = [];
    for (const row of rows) versions.push(await this.kind.backup.export(row.v, this.opener(row.v, row)));
    const payload: BackupPayload<B> = { kind: this.kind.kind, name: head.name, latestVersion: head.latestVersion, versions };
    return sealBackup(this.keys, this.kind.kind, utf8(JSON.stringify(payload)));
  }

  /** Restores a backup under its original name; 409 when that name is taken (even if deleted). */
  async restore(blob: string): Promise<R> {
    const payload = this.parseBackup(await openBackup(this.keys, this.kind.kind, blob));
    const { name } = payload;
    if (await this.head(name)) throw this.kind.errors.nameTaken(name);
    const sealer = this.sealer(name);
    const rows: V[] = [];
    for (const b of payload.versions) {
      const own = await this.kind.backup.import(b, sealer.seal(b.version));
      const common = {
        version: b.version,
        tags: tagsColumn(b.tags),
        enabled: b.enabled,
        nbf: b.nbf,
        exp: b.exp,
        created: b.created,
        updated: b.updated,
      };
      rows.push({ ...own, ...common, vaultId: this.vault.id, name } as V);
    }
    const latest = rows.find((r) => r.version === payload.latestVersion)!;
    const follow = this.kind.hooks?.latestChanged?.(undefined, latest, 'restored') ?? {};
    try {
      await writeBatch(this.db, this.vault, [
        this.db.insert(this.h).values({ vaultId: this.vault.id, name, latestVersion: payload.latestVersion, ...follow } as Any),
        ...rows.map((row) => this.db.insert(this.v).values(row as Any)),
        ...sealer.statements(),
      ] as Any);
    } catch (err) {
      if (violatedConstraint(err) === 'unique') throw this.kind.errors.nameTaken(name);
      throw err;
    } finally {
      this.forget(name);
    }
    return this.kind.toRecord(latest);
  }

  /** The opened backup's payload, if it is one of this kind; anything else is Azure's corrupt-blob refusal. */
  private parseBackup(bytes: Uint8Array): BackupPayload<B> {
    const kind = this.kind;
    const payload = z
      .object({
        kind: z.literal(kind.kind),
        name: z.string().refine((name) => validName(name, kind.kind)),
        latestVersion: z.string(),
        versions: z
          .array(z.looseObject({ version: z.string().refine(isVersionId) }).refine((v) => kind.backup.accepts(v)))
          .min(1),
      })
      .loose()
      .refine((p) => p.versions.some((v) => v.version === p.latestVersion));
    try {
      return payload.parse(JSON.parse(fromUtf8(bytes))) as unknown as BackupPayload<B>;
    } catch {
      throw corruptBackup();
    }
  }

  /** The kind's head columns that follow a changed latest version, if `version` is still the latest. */
  private async followLatest(version: V): Promise<void> {
    const head = await this.head(version.name);
    if (!head || head.latestVersion !== version.version) return;
    const follow = this.kind.hooks?.latestChanged?.(head, version, 'updated');
    if (!follow) return;
    await this.db
      .update(this.h)
      .set(follow as Any)
      .where(and(this.headIs(version.name), eq(this.h.latestVersion, version.version)));
  }

  /** One page of objects (live or deleted), each as its latest version, ordered by name. */
  private async heads(deleted: boolean, maxResults: number, skipToken?: string): Promise<Page<R>> {
    const h = this.h;
    const after = skipToken ? decodePageToken(skipToken, 'n') : undefined;
    const rows = (await this.db
      .select({ v: this.v, deletedAt: h.deletedAt, scheduledPurgeAt: h.scheduledPurgeAt } as Any)
      .from(h)
      .innerJoin(this.v, this.versionOfHead())
      .where(
        and(
          eq(h.vaultId, this.vault.id),
          deleted ? isNotNull(h.deletedAt) : isNull(h.deletedAt),
          after ? gt(h.name, after.n) : undefined,
        ),
      )
      .orderBy(asc(h.name))
      .limit(maxResults + 1)
      .all()) as { v: V; deletedAt: number | null; scheduledPurgeAt: number | null }[];
    const records = rows.map((r) => ({
      ...this.kind.toRecord(r.v),
      deletedAt: r.deletedAt,
      scheduledPurgeAt: r.scheduledPurgeAt,
    }));
    return page(records, maxResults, (last) => ({ n: last.name }));
  }

  private headIs(name: string): SQL {
    return and(eq(this.h.vaultId, this.vault.id), eq(this.h.name, name))!;
  }

  /** Joins the head row to one of its versions: the latest, or the one asked for. */
  private versionOfHead(version?: string): SQL {
    const { h, v } = this;
    return and(
      eq(v.vaultId, h.vaultId),
      eq(v.name, h.name),
      eq(v.version, version === undefined ? h.latestVersion : version.toLowerCase()),
    )!;
  }

  /**
   * Seals payloads of one write under the vault's current data key (fetched once, when first
   * needed), bound to the object and version; `statements` counts the encryptions in the batch.
   */
  private sealer(name: string) {
    let dataKey: Promise<DataKey> | undefined;
    let count = 0;
    let keyId: string | undefined;
    return {
      seal:
        (version: string): Seal =>
        async (payload) => {
          const key = await (dataKey ??= this.keys.forWrite(this.vault.id));
          keyId = key.id;
          count++;
          return {
            ciphertext: await seal(key.key, payload, objectAad(this.vault.id, this.kind.kind, name, version)),
            dataKeyId: key.id,
          };
        },
      statements: () =>
        keyId === undefined
          ? []
          : [
              this.db
                .update(dataKeys)
                .set({ encryptions: sql`${dataKeys.encryptions} + ${count}` })
                .where(eq(dataKeys.id, keyId)),
            ],
    };
  }

  private opener(row: V, dataKey: JoinedDataKey, onFailure?: () => void): Open {
    return async (ciphertext) => {
      try {
        return await this.openWith(row, dataKey, ciphertext);
      } catch (err) {
        onFailure?.();
        throw err;
      }
    };
  }

  /** `dataKey`: the version's data key as joined (null columns when the join found none). */
  private async openWith(row: V, dataKey: JoinedDataKey, ciphertext: string | null): Promise<Uint8Array> {
    if (!ciphertext || !row.dataKeyId) throw new IntegrityError(this.kind.kind);
    const known = openedPayload(row, ciphertext);
    if (known) return known;
    const key = await this.keys.forRead(row.dataKeyId, this.vault.id, dataKey);
    const plaintext = await open(key, ciphertext, objectAad(this.vault.id, this.kind.kind, row.name, row.version));
    if (!plaintext) {
      console.error(`integrity check failed: vault=${this.vault.name} ${this.kind.kind}=${row.name} version=${row.version}`);
      throw new IntegrityError(this.kind.kind);
    }
    rememberOpened(row, ciphertext, plaintext);
    return plaintext;
  }
}

function validName(name: string, kind: string): boolean {
  try {
    assertObjectName(name, kind);
    return true;
  } catch {
    return false;
  }
}

/**
 * Removes a deleted object for good, after the kind's beforePurge hook has seen its versions (a
 * hook that throws, e.g. the HSM bridge being down, leaves everything in place for a retry).
 * False when no deleted object of that name exists. Used by the API's purge and the purge cron.
 */
export async function purgeDeleted<H extends HeadRow, V extends VersionRow, R extends VersionedRecord, B extends BackupRecord>(
  db: Database,
  kind: ObjectKind<H, V, R, B>,
  vaultId: string,
  name: string,
): Promise<boolean> {
  const { head: h, versions: v } = kind.tables;
  const deletedHead = and(eq(h.vaultId, vaultId), eq(h.name, name), isNotNull(h.deletedAt));
  if (kind.hooks?.beforePurge) {
    // Only versions of a head that is still deleted: a key recovered meanwhile keeps its token objects.
    const rows = (await db
      .select({ v } as Any)
      .from(v)
      .innerJoin(h, and(eq(h.vaultId, v.vaultId), eq(h.name, v.name)))
      .where(deletedHead)
      .all()) as { v: V }[];
    await kind.hooks.beforePurge(rows.map((r) => r.v));
  }
  const removed = await db.delete(h).where(deletedHead).returning({ name: h.name });
  forgetObject(kind.kind, vaultId, name);
  return removed.length > 0;
}
