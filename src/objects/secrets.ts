import { and, asc, eq, gt, isNotNull, isNull, or, sql } from 'drizzle-orm';
import type { DataKeyManager } from '../crypto/data-keys';
import { fromUtf8, newVersionId, utf8 } from '../core/encoding';
import { objectAad, open, seal } from '../crypto/envelope';
import type { Database } from '../storage/db';
import { violatedConstraint } from '../storage/errors';
import { dataKeys, secrets, secretVersions } from '../storage/schema';
import { openBackup, sealBackup } from './backup';
import { badParameter, conflict, forbidden, IntegrityError, notFound } from '../core/errors';
import { decodePageToken, type Page } from '../core/paging';
import {
  assertObjectName,
  isVersionId,
  MAX_SECRET_VALUE_BYTES,
  type SetSecretInput,
  type UpdateSecretInput,
} from '../core/validation';
import { now } from '../core/clock';
import { page } from '../core/paging';
import { insertIfGuard, purgeProtected, writeBatch } from './common';
import { type VaultRecord } from '../core/vault';

type VersionRow = typeof secretVersions.$inferSelect;

/** One version of a secret as the vault logic sees it; the HTTP layer renders it Azure-shaped. */
export interface SecretRecord {
  name: string;
  version: string;
  value?: string;
  contentType: string | null;
  tags: Record<string, string> | null;
  enabled: boolean;
  nbf: number | null;
  exp: number | null;
  created: number;
  updated: number;
  deletedAt?: number | null;
  scheduledPurgeAt?: number | null;
}


const notFoundError = (name: string) => notFound('SecretNotFound', `A secret with (name/id) ${name} was not found in this key vault.`);
const deletedNotFound = (name: string) =>
  notFound('SecretNotFound', `Deleted Secret not found: ${name}`);
const deletedConflict = (name: string) =>
  conflict(
    `Secret ${name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can be recovered or purged.`,
  );

/** The Secrets API of one vault, independent of HTTP. */
export class SecretStore {
  constructor(
    private readonly db: Database,
    private readonly keys: DataKeyManager,
    private readonly vault: VaultRecord,
  ) {}

  /** Stores a new version; it becomes the latest. */
  async set(name: string, input: SetSecretInput): Promise<SecretRecord> {
    assertObjectName(name);
    const head = await this.head(name);
    if (head?.deletedAt != null) throw deletedConflict(name);
    const version = newVersionId();
    const t = now();
    const dataKey = await this.keys.forWrite(this.vault.id);
    const ciphertext = await seal(dataKey.key, utf8(input.value), objectAad(this.vault.id, 'secret', name, version));
    const row: VersionRow = {
      vaultId: this.vault.id,
      name: head?.name ?? name,
      version,
      ciphertext,
      dataKeyId: dataKey.id,
      contentType: input.contentType ?? null,
      tags: input.tags ? JSON.stringify(input.tags) : null,
      enabled: input.attributes?.enabled ?? true,
      nbf: input.attributes?.nbf ?? null,
      exp: input.attributes?.exp ?? null,
      created: t,
      updated: t,
    };
    // One transaction: the head moves only if the version lands, and only while not deleted.
    const [upsert] = await writeBatch(this.db, this.vault, [
      this.db
        .insert(secrets)
        .values({ vaultId: this.vault.id, name, latestVersion: version })
        .onConflictDoUpdate({
          target: [secrets.vaultId, secrets.name],
          set: { latestVersion: version },
          setWhere: isNull(secrets.deletedAt),
        })
        .returning({ name: secrets.name }),
      // Lands only if the head moved to it (not if the secret was deleted in between).
      insertIfGuard(this.db, secretVersions, row, secrets, and(eq(secrets.vaultId, this.vault.id), eq(secrets.name, name), eq(secrets.latestVersion, version))),
      this.keys.countEncryption(dataKey.id),
    ] as const);
    if (upsert.length === 0) throw deletedConflict(name); // deleted between our read and write
    return { ...toRecord(row), name: upsert[0]!.name, value: input.value };
  }

  /** Reads a version (latest when none is given) with its value: one D1 query. */
  async get(name: string, version?: string): Promise<SecretRecord> {
    assertObjectName(name);
    if (version !== undefined && !isVersionId(version)) throw notFoundError(name);
    const row = await this.db
      .select({ v: secretVersions, deletedAt: secrets.deletedAt, wrapped: dataKeys.wrapped })
      .from(secrets)
      .innerJoin(secretVersions, versionOfHead(version))
      .leftJoin(dataKeys, eq(dataKeys.id, secretVersions.dataKeyId))
      .where(and(eq(secrets.vaultId, this.vault.id), eq(secrets.name, name)))
      .get();
    if (!row || row.deletedAt != null) throw notFoundError(name);
    const record = toRecord(row.v);
    assertUsable(record, 'get');
    return { ...record, value: await this.decrypt(row.v, row.wrapped) };
  }

  /** Changes contentType, attributes or tags of a version (latest when none is given). */
  async update(name: string, version: string | undefined, input: UpdateSecretInput): Promise<SecretRecord> {
    assertObjectName(name);
    const current = await this.version(name, version, true);
    const patch: Partial<VersionRow> = { updated: now() };
    if (input.contentType !== undefined) patch.contentType = input.contentType;
    if (input.tags !== undefined) patch.tags = input.tags ? JSON.stringify(input.tags) : null;
    const a = input.attributes;
    if (a?.enabled != null) patch.enabled = a.enabled;
    if (a?.nbf !== undefined) patch.nbf = a.nbf;
    if (a?.exp !== undefined) patch.exp = a.exp;
    const [updated] = await this.db
      .update(secretVersions)
      .set(patch)
      .where(this.versionKey(current.name, current.version))
      .returning();
    if (!updated) throw notFoundError(name);
    return toRecord(updated);
  }

  /** Latest version of each live secret, by name, without values. */
  list(maxResults: number, skipToken?: string): Promise<Page<SecretRecord>> {
    return this.heads(false, maxResults, skipToken);
  }

  /** Every version of one live secret, oldest first, without values. */
  async listVersions(name: string, maxResults: number, skipToken?: string): Promise<Page<SecretRecord>> {
    assertObjectName(name);
    const head = await this.head(name);
    if (!head || head.deletedAt != null) throw notFoundError(name);
    const after = skipToken ? decodePageToken(skipToken, 'c', 'v') : undefined;
    const rows = await this.db
      .select()
      .from(secretVersions)
      .where(
        and(
          eq(secretVersions.vaultId, this.vault.id),
          eq(secretVersions.name, name),
          after
            ? or(
                gt(secretVersions.created, Number(after.c)),
                and(eq(secretVersions.created, Number(after.c)), gt(secretVersions.version, after.v)),
              )
            : undefined,
        ),
      )
      .orderBy(asc(secretVersions.created), asc(secretVersions.version))
      .limit(maxResults + 1)
      .all();
    return page(rows.map(toRecord), maxResults, (last) => ({ c: String(last.created), v: last.version }));
  }

  /** Soft delete: the secret keeps its versions until purged or the retention period ends. */
  async delete(name: string): Promise<SecretRecord> {
    assertObjectName(name);
    const t = now();
    const scheduled = t + this.vault.softDeleteRetentionDays * 86400;
    const [head] = await this.db
      .update(secrets)
      .set({ deletedAt: t, scheduledPurgeAt: scheduled })
      .where(and(eq(secrets.vaultId, this.vault.id), eq(secrets.name, name), isNull(secrets.deletedAt)))
      .returning();
    if (!head) throw notFoundError(name);
    const latest = await this.version(head.name, head.latestVersion);
    return { ...latest, deletedAt: t, scheduledPurgeAt: scheduled };
  }

  async getDeleted(name: string): Promise<SecretRecord> {
    assertObjectName(name);
    const head = await this.head(name);
    if (!head || head.deletedAt == null) throw deletedNotFound(name);
    const latest = await this.version(head.name, head.latestVersion);
    return { ...latest, deletedAt: head.deletedAt, scheduledPurgeAt: head.scheduledPurgeAt };
  }

  /** Latest version of each deleted secret, by name, without values. */
  listDeleted(maxResults: number, skipToken?: string): Promise<Page<SecretRecord>> {
    return this.heads(true, maxResults, skipToken);
  }

  async recover(name: string): Promise<SecretRecord> {
    assertObjectName(name);
    const [head] = await this.db
      .update(secrets)
      .set({ deletedAt: null, scheduledPurgeAt: null })
      .where(and(eq(secrets.vaultId, this.vault.id), eq(secrets.name, name), isNotNull(secrets.deletedAt)))
      .returning();
    if (!head) throw deletedNotFound(name);
    return this.version(head.name, head.latestVersion);
  }

  /** Permanently removes a deleted secret, unless the vault has purge protection. */
  async purge(name: string): Promise<void> {
    assertObjectName(name);
    if (this.vault.purgeProtection) {
      throw forbidden(purgeProtected());
    }
    const removed = await this.db
      .delete(secrets)
      .where(and(eq(secrets.vaultId, this.vault.id), eq(secrets.name, name), isNotNull(secrets.deletedAt)))
      .returning({ name: secrets.name });
    if (removed.length === 0) throw deletedNotFound(name);
  }

  /** All versions of a live secret, sealed into a blob only this deployment can open. */
  async backup(name: string): Promise<string> {
    assertObjectName(name);
    const head = await this.head(name);
    if (!head || head.deletedAt != null) throw notFoundError(name);
    const rows = await this.db
      .select({ v: secretVersions, wrapped: dataKeys.wrapped })
      .from(secretVersions)
      .leftJoin(dataKeys, eq(dataKeys.id, secretVersions.dataKeyId))
      .where(and(eq(secretVersions.vaultId, this.vault.id), eq(secretVersions.name, name)))
      .orderBy(asc(secretVersions.created), asc(secretVersions.version))
      .all();
    const versions = [];
    for (const row of rows) versions.push({ ...toRecord(row.v), value: await this.decrypt(row.v, row.wrapped) });
    const payload: SecretBackup = { kind: 'secret', name: head.name, latestVersion: head.latestVersion, versions };
    return sealBackup(this.keys, 'secret', utf8(JSON.stringify(payload)));
  }

  /** Restores a backup under its original name; 409 when that name is taken (even if deleted). */
  async restore(blob: string): Promise<SecretRecord> {
    const payload = parseSecretBackup(await openBackup(this.keys, 'secret', blob));
    const name = payload.name;
    if (await this.head(name)) throw conflict(`Secret ${name} already exists in this vault; restore needs an unused name.`);
    const dataKey = await this.keys.forWrite(this.vault.id);
    const rows: VersionRow[] = [];
    for (const v of payload.versions) {
      rows.push({
        vaultId: this.vault.id,
        name,
        version: v.version,
        ciphertext: await seal(dataKey.key, utf8(v.value!), objectAad(this.vault.id, 'secret', name, v.version)),
        dataKeyId: dataKey.id,
        contentType: v.contentType,
        tags: v.tags ? JSON.stringify(v.tags) : null,
        enabled: v.enabled,
        nbf: v.nbf,
        exp: v.exp,
        created: v.created,
        updated: v.updated,
      });
    }
    try {
      await writeBatch(this.db, this.vault, [
        this.db.insert(secrets).values({ vaultId: this.vault.id, name, latestVersion: payload.latestVersion }),
        ...rows.map((row) => this.db.insert(secretVersions).values(row)),
        this.db
          .update(dataKeys)
          .set({ encryptions: sql`${dataKeys.encryptions} + ${rows.length}` })
          .where(eq(dataKeys.id, dataKey.id)),
      ]);
    } catch (err) {
      if (violatedConstraint(err) === 'unique') {
        throw conflict(`Secret ${name} already exists in this vault; restore needs an unused name.`);
      }
      throw err;
    }
    return toRecord(rows.find((r) => r.version === payload.latestVersion)!);
  }

  /** One page of secrets (live or deleted), each as its latest version, ordered by name. */
  private async heads(deleted: boolean, maxResults: number, skipToken?: string): Promise<Page<SecretRecord>> {
    const after = skipToken ? decodePageToken(skipToken, 'n') : undefined;
    const rows = await this.db
      .select({ v: secretVersions, deletedAt: secrets.deletedAt, scheduledPurgeAt: secrets.scheduledPurgeAt })
      .from(secrets)
      .innerJoin(secretVersions, versionOfHead())
      .where(
        and(
          eq(secrets.vaultId, this.vault.id),
          deleted ? isNotNull(secrets.deletedAt) : isNull(secrets.deletedAt),
          after ? gt(secrets.name, after.n) : undefined,
        ),
      )
      .orderBy(asc(secrets.name))
      .limit(maxResults + 1)
      .all();
    const records = rows.map((r) => ({ ...toRecord(r.v), deletedAt: r.deletedAt, scheduledPurgeAt: r.scheduledPurgeAt }));
    return page(records, maxResults, (last) => ({ n: last.name }));
  }

  private head(name: string) {
    return this.db
      .select()
      .from(secrets)
      .where(and(eq(secrets.vaultId, this.vault.id), eq(secrets.name, name)))
      .get();
  }

  /** One version (latest if none given) of a secret, without its value; `live` refuses deleted ones. */
  private async version(name: string, version?: string, live = false): Promise<SecretRecord> {
    if (version !== undefined && !isVersionId(version)) throw notFoundError(name);
    const row = await this.db
      .select({ v: secretVersions, deletedAt: secrets.deletedAt })
      .from(secrets)
      .innerJoin(secretVersions, versionOfHead(version))
      .where(and(eq(secrets.vaultId, this.vault.id), eq(secrets.name, name)))
      .get();
    if (!row || (live && row.deletedAt != null)) throw notFoundError(name);
    return toRecord(row.v);
  }

  private versionKey(name: string, version: string) {
    return and(eq(secretVersions.vaultId, this.vault.id), eq(secretVersions.name, name), eq(secretVersions.version, version));
  }

  private async decrypt(row: VersionRow, wrapped: string | null): Promise<string> {
    const key = await this.keys.forRead(row.dataKeyId, this.vault.id, wrapped);
    const plaintext = await open(key, row.ciphertext, objectAad(this.vault.id, 'secret', row.name, row.version));
    if (!plaintext) {
      console.error(`integrity check failed: vault=${this.vault.name} secret=${row.name} version=${row.version}`);
      throw new IntegrityError('secret');
    }
    return fromUtf8(plaintext);
  }
}

/** Joins a secret's head row to one of its versions: the latest, or the one asked for. */
function versionOfHead(version?: string) {
  return and(
    eq(secretVersions.vaultId, secrets.vaultId),
    eq(secretVersions.name, secrets.name),
    eq(secretVersions.version, version === undefined ? secrets.latestVersion : version.toLowerCase()),
  );
}

/** Azure refuses to serve a disabled secret, or one outside its nbf/exp window, with 403. */
function assertUsable(record: SecretRecord, operation: string): void {
  const t = now();
  if (!record.enabled) throw forbidden(`Operation ${operation} is not allowed on a disabled secret.`, 'SecretDisabled');
  if (record.nbf != null && t < record.nbf) {
    throw forbidden(`Operation ${operation} is not allowed on a secret that is not yet valid.`, 'SecretNotYetValid');
  }
  if (record.exp != null && t >= record.exp) {
    throw forbidden(`Operation ${operation} is not allowed on an expired secret.`, 'SecretExpired');
  }
}

function toRecord(row: VersionRow): SecretRecord {
  return {
    name: row.name,
    version: row.version,
    contentType: row.contentType,
    tags: row.tags ? (JSON.parse(row.tags) as Record<string, string>) : null,
    enabled: row.enabled,
    nbf: row.nbf,
    exp: row.exp,
    created: row.created,
    updated: row.updated,
  };
}

interface SecretBackup {
  kind: 'secret';
  name: string;
  latestVersion: string;
  versions: SecretRecord[];
}

function parseSecretBackup(bytes: Uint8Array): SecretBackup {
  let payload: SecretBackup;
  try {
    payload = JSON.parse(fromUtf8(bytes)) as SecretBackup;
  } catch {
    throw badParameter('The backup blob is corrupt.');
  }
  const ok =
    payload?.kind === 'secret' &&
    typeof payload.name === 'string' &&
    Array.isArray(payload.versions) &&
    payload.versions.length > 0 &&
    payload.versions.every((v) => isVersionId(v.version) && typeof v.value === 'string' && utf8(v.value).byteLength <= MAX_SECRET_VALUE_BYTES) &&
    payload.versions.some((v) => v.version === payload.latestVersion);
  if (!ok) throw badParameter('The backup blob is not a secret backup.');
  assertObjectName(payload.name);
  return payload;
}

