import { and, asc, eq, gt, isNotNull, isNull, or, sql } from 'drizzle-orm';
import { HsmKeyExistsError, type BridgeClient, type HsmKeySpec } from '../crypto/bridge-client';
import type { DataKeyManager } from '../crypto/data-keys';
import { fromUtf8, newVersionId, utf8 } from '../core/encoding';
import { objectAad, open, seal } from '../crypto/envelope';
import {
  AES_SIZES,
  CURVES,
  defaultKeyOps,
  generateSoftwareKey,
  parseImportJwk,
  RSA_SIZES,
  validKeyOps,
  type Curve,
  type Jwk,
  type KeyKind,
  type PublicJwk,
} from '../crypto/keys';
import type { Database } from '../storage/db';
import { violatedConstraint } from '../storage/errors';
import { dataKeys, keys, keyVersions } from '../storage/schema';
import { openBackup, sealBackup } from './backup';
import { badParameter, conflict, forbidden, IntegrityError, notFound } from '../core/errors';
import type { CreateKeyInput, ImportKeyInput, UpdateKeyInput } from './key-validation';
import { now } from '../core/clock';
import { page } from '../core/paging';
import { insertIfGuard, purgeProtected, writeBatch } from './common';
import { decodePageToken, type Page } from '../core/paging';
import { assertObjectName, isVersionId } from '../core/validation';
import { nextRotationDue } from './rotation-policy';
import { type VaultRecord } from '../core/vault';

type VersionRow = typeof keyVersions.$inferSelect;
type HeadRow = typeof keys.$inferSelect;

/** What a new version is made of: its type and size, and where its private part lives. */
export interface KeySpec {
  kind: KeyKind;
  size?: number;
  crv?: Curve;
}

/** One version of a key as the vault logic sees it: public material only. */
export interface KeyRecord extends KeySpec {
  name: string;
  version: string;
  publicJwk: PublicJwk | null;
  keyOps: string[];
  tags: Record<string, string> | null;
  enabled: boolean;
  nbf: number | null;
  exp: number | null;
  created: number;
  updated: number;
  deletedAt?: number | null;
  scheduledPurgeAt?: number | null;
}

/** A usable version with what performs its private operations: a sealed JWK or a token object. */
export interface KeyMaterial {
  record: KeyRecord;
  /** Software keys: the private JWK, opened for this request only. */
  privateJwk?: Jwk;
  /** HSM keys: the token object's handle at the bridge. */
  hsmHandle?: string;
}

/** What making a version produced: public part, and the private part or its token handle. */
export interface NewMaterial {
  publicJwk: PublicJwk | null;
  privateJwk?: Jwk;
  hsmHandle?: string;
}

/** Fields every new version may carry. */
export interface VersionFields {
  keyOps?: string[] | null;
  tags?: Record<string, string> | null;
  enabled?: boolean | null;
  nbf?: number | null;
  exp?: number | null;
}

export const isHsm = (kind: KeyKind) => kind.endsWith('-HSM');

const notFoundError = (name: string) => notFound('KeyNotFound', `A key with (name/id) ${name} was not found in this key vault.`);
const deletedNotFound = (name: string) => notFound('KeyNotFound', `Deleted Key not found: ${name}`);
const deletedConflict = (name: string) =>
  conflict(
    `Key ${name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the key can be recovered or purged.`,
  );

/** The Keys API of one vault (everything but the cryptographic operations), independent of HTTP. */
export class KeyStore {
  constructor(
    private readonly db: Database,
    private readonly dataKeys: DataKeyManager,
    private readonly bridge: BridgeClient,
    readonly vault: VaultRecord,
  ) {}

  /** POST /keys/{name}/create: a new key, or a new version of an existing one. */
  async create(name: string, input: CreateKeyInput): Promise<KeyRecord> {
    assertObjectName(name, 'key');
    const spec = specOf(input);
    return this.addVersion(name, spec, this.generator(spec), {
      keyOps: input.key_ops,
      tags: input.tags,
      ...input.attributes,
    });
  }

  /** PUT /keys/{name}: imports an RSA or EC private key, into the HSM when asked to. */
  async import(name: string, input: ImportKeyInput): Promise<KeyRecord> {
    assertObjectName(name, 'key');
    const parsed = parseImportJwk(input.key);
    const hsm = input.Hsm === true || String(input.key.kty).endsWith('-HSM');
    const kind = `${parsed.kty}${hsm ? '-HSM' : ''}` as KeyKind;
    const spec: KeySpec = { kind, size: parsed.size, crv: parsed.crv };
    const requestedOps = Array.isArray(input.key.key_ops) ? (input.key.key_ops as string[]) : undefined;
    return this.addVersion(
      name,
      spec,
      async (id) => {
        if (!hsm) return { publicJwk: parsed.publicJwk, privateJwk: parsed.privateJwk };
        const imported = await this.bridge.importKey(id, parsed.privateJwk as unknown as Record<string, string>);
        return { publicJwk: imported.publicJwk as PublicJwk, hsmHandle: imported.handle };
      },
      { keyOps: requestedOps, tags: input.tags, ...input.attributes },
    );
  }

  /**
   * Makes and stores a new version; it becomes the latest. With `expectLatest`, the head moves only
   * if it still points at that version (rotation: a concurrent rotation wins, this one is undone).
   */
  async addVersion(
    name: string,
    spec: KeySpec,
    material: (id: string) => Promise<NewMaterial>,
    fields: VersionFields,
    options: { expectLatest?: string; version?: string } = {},
  ): Promise<KeyRecord> {
    const keyOps = checkKeyOps(spec.kind, fields.keyOps);
    const head = await this.head(name);
    if (head?.deletedAt != null) throw deletedConflict(name);
    if (options.expectLatest !== undefined && head?.latestVersion !== options.expectLatest) {
      throw conflict(`Key ${name} changed while a new version was being made.`);
    }
    const version = options.version ?? newVersionId();
    const made = await material(version);
    const t = now();
    const row: VersionRow = {
      vaultId: this.vault.id,
      name: head?.name ?? name,
      version,
      kty: spec.kind,
      keySize: spec.size ?? null,
      crv: spec.crv ?? null,
      publicJwk: made.publicJwk ? JSON.stringify(made.publicJwk) : null,
      privateCiphertext: null,
      dataKeyId: null,
      hsmHandle: made.hsmHandle ?? null,
      keyOps: JSON.stringify(keyOps),
      tags: fields.tags ? JSON.stringify(fields.tags) : null,
      enabled: fields.enabled ?? true,
      nbf: fields.nbf ?? null,
      exp: fields.exp ?? null,
      created: t,
      updated: t,
    };
    const statements = [];
    if (made.privateJwk) {
      const dataKey = await this.dataKeys.forWrite(this.vault.id);
      row.dataKeyId = dataKey.id;
      row.privateCiphertext = await seal(dataKey.key, utf8(JSON.stringify(made.privateJwk)), this.aad(row.name, version));
      statements.push(this.dataKeys.countEncryption(dataKey.id));
    }
    // The policy's next due time follows the latest version (its creation and expiry).
    const rotationDueAt = nextRotationDue(head?.rotationPolicy ?? null, row);
    const moveHead = this.db
      .insert(keys)
      .values({ vaultId: this.vault.id, name, latestVersion: version, rotationDueAt })
      .onConflictDoUpdate({
        target: [keys.vaultId, keys.name],
        set: { latestVersion: version, rotationDueAt, rotationClaim: null, rotationClaimUntil: null },
        setWhere:
          options.expectLatest === undefined
            ? isNull(keys.deletedAt)
            : and(isNull(keys.deletedAt), eq(keys.latestVersion, options.expectLatest)),
      })
      .returning({ name: keys.name });
    try {
      const landed = and(eq(keys.vaultId, this.vault.id), eq(keys.name, name), eq(keys.latestVersion, version));
      const insert = insertIfGuard(this.db, keyVersions, row, keys, landed);
      const [moved] = await writeBatch(this.db, this.vault, [moveHead, insert, ...statements] as const);
      if (moved.length === 0) throw deletedConflict(name); // deleted or rotated between our read and write
      return { ...toRecord(row), name: moved[0]!.name };
    } catch (err) {
      // Nothing references a token object whose version was not stored: destroy it.
      if (made.hsmHandle) await this.bridge.destroyKey(made.hsmHandle).catch(() => undefined);
      if (violatedConstraint(err) === 'unique') {
        throw conflict(`Key ${name} already has version ${version}.`);
      }
      throw err;
    }
  }

  /** Generates material for a new version: in the Worker, or inside the token for -HSM types. */
  generator(spec: KeySpec): (id: string) => Promise<NewMaterial> {
    return async (id) => {
      if (spec.kind === 'RSA') return generateSoftwareKey({ kty: 'RSA', size: spec.size! });
      if (spec.kind === 'EC') return generateSoftwareKey({ kty: 'EC', crv: spec.crv! });
      // Sizes and curves were checked against the same lists the bridge accepts (specOf).
      const hsmSpec = (
        spec.kind === 'RSA-HSM' ? { kty: 'RSA', size: spec.size } : spec.kind === 'EC-HSM' ? { kty: 'EC', crv: spec.crv } : { kty: 'oct', size: spec.size }
      ) as HsmKeySpec;
      try {
        const made = await this.bridge.generateKey(id, hsmSpec);
        return { publicJwk: (made.publicJwk as PublicJwk | undefined) ?? null, hsmHandle: made.handle };
      } catch (err) {
        if (err instanceof HsmKeyExistsError) throw conflict(`A token object for version ${id} already exists.`);
        throw err;
      }
    };
  }

  /** A version's public record (latest when none is given); deleted keys are not found. */
  async get(name: string, version?: string): Promise<KeyRecord> {
    assertObjectName(name, 'key');
    return this.version(name, version, true);
  }

  /**
   * A live version for a cryptographic operation, in one D1 query: with its token handle (HSM
   * keys) or, when `withPrivate`, its opened private JWK (software keys).
   */
  async material(name: string, version: string | undefined, withPrivate: boolean): Promise<KeyMaterial> {
    assertObjectName(name, 'key');
    if (version !== undefined && !isVersionId(version)) throw notFoundError(name);
    const row = await this.db
      .select({ v: keyVersions, deletedAt: keys.deletedAt, wrapped: dataKeys.wrapped })
      .from(keys)
      .innerJoin(keyVersions, versionOfHead(version))
      .leftJoin(dataKeys, eq(dataKeys.id, keyVersions.dataKeyId))
      .where(and(eq(keys.vaultId, this.vault.id), eq(keys.name, name)))
      .get();
    if (!row || row.deletedAt != null) throw notFoundError(name);
    const record = toRecord(row.v);
    if (row.v.hsmHandle) return { record, hsmHandle: row.v.hsmHandle };
    return withPrivate ? { record, privateJwk: await this.openPrivate(row.v, row.wrapped) } : { record };
  }

  /** PATCH: key_ops, attributes and tags of a version (latest when none is given). */
  async update(name: string, version: string | undefined, input: UpdateKeyInput): Promise<KeyRecord> {
    assertObjectName(name, 'key');
    const current = await this.version(name, version, true);
    const patch: Partial<VersionRow> = { updated: now() };
    if (input.key_ops != null) patch.keyOps = JSON.stringify(checkKeyOps(current.kind, input.key_ops));
    if (input.tags !== undefined) patch.tags = input.tags ? JSON.stringify(input.tags) : null;
    const a = input.attributes;
    if (a?.enabled != null) patch.enabled = a.enabled;
    if (a?.nbf !== undefined) patch.nbf = a.nbf;
    if (a?.exp !== undefined) patch.exp = a.exp;
    const [updated] = await this.db
      .update(keyVersions)
      .set(patch)
      .where(this.versionKey(current.name, current.version))
      .returning();
    if (!updated) throw notFoundError(name);
    if (patch.exp !== undefined) await this.reschedule(updated);
    return toRecord(updated);
  }

  list(maxResults: number, skipToken?: string): Promise<Page<KeyRecord>> {
    return this.heads(false, maxResults, skipToken);
  }

  async listVersions(name: string, maxResults: number, skipToken?: string): Promise<Page<KeyRecord>> {
    assertObjectName(name, 'key');
    const head = await this.head(name);
    if (!head || head.deletedAt != null) throw notFoundError(name);
    const after = skipToken ? decodePageToken(skipToken, 'c', 'v') : undefined;
    const rows = await this.db
      .select()
      .from(keyVersions)
      .where(
        and(
          eq(keyVersions.vaultId, this.vault.id),
          eq(keyVersions.name, name),
          after
            ? or(
                gt(keyVersions.created, Number(after.c)),
                and(eq(keyVersions.created, Number(after.c)), gt(keyVersions.version, after.v)),
              )
            : undefined,
        ),
      )
      .orderBy(asc(keyVersions.created), asc(keyVersions.version))
      .limit(maxResults + 1)
      .all();
    return page(rows.map(toRecord), maxResults, (last) => ({ c: String(last.created), v: last.version }));
  }

  /** Soft delete. HSM token objects stay until purge: a deleted key must stay recoverable. */
  async delete(name: string): Promise<KeyRecord> {
    assertObjectName(name, 'key');
    const t = now();
    const scheduled = t + this.vault.softDeleteRetentionDays * 86400;
    const [head] = await this.db
      .update(keys)
      .set({ deletedAt: t, scheduledPurgeAt: scheduled })
      .where(and(eq(keys.vaultId, this.vault.id), eq(keys.name, name), isNull(keys.deletedAt)))
      .returning();
    if (!head) throw notFoundError(name);
    const latest = await this.version(head.name, head.latestVersion);
    return { ...latest, deletedAt: t, scheduledPurgeAt: scheduled };
  }

  async getDeleted(name: string): Promise<KeyRecord> {
    assertObjectName(name, 'key');
    const head = await this.head(name);
    if (!head || head.deletedAt == null) throw deletedNotFound(name);
    const latest = await this.version(head.name, head.latestVersion);
    return { ...latest, deletedAt: head.deletedAt, scheduledPurgeAt: head.scheduledPurgeAt };
  }

  listDeleted(maxResults: number, skipToken?: string): Promise<Page<KeyRecord>> {
    return this.heads(true, maxResults, skipToken);
  }

  async recover(name: string): Promise<KeyRecord> {
    assertObjectName(name, 'key');
    const [head] = await this.db
      .update(keys)
      .set({ deletedAt: null, scheduledPurgeAt: null })
      .where(and(eq(keys.vaultId, this.vault.id), eq(keys.name, name), isNotNull(keys.deletedAt)))
      .returning();
    if (!head) throw deletedNotFound(name);
    return this.version(head.name, head.latestVersion);
  }

  /** Permanently removes a deleted key: its token objects first, then its rows. */
  async purge(name: string): Promise<void> {
    assertObjectName(name, 'key');
    if (this.vault.purgeProtection) throw forbidden(purgeProtected());
    const head = await this.head(name);
    if (!head || head.deletedAt == null) throw deletedNotFound(name);
    await purgeKey(this.db, this.bridge, this.vault.id, head.name);
  }

  /**
   * All versions of a live software key, sealed into a blob only this deployment can open. HSM
   * keys are refused: their private part cannot leave the token, and a backup without it could
   * not restore the key once purged.
   */
  async backup(name: string): Promise<string> {
    assertObjectName(name, 'key');
    const head = await this.head(name);
    if (!head || head.deletedAt != null) throw notFoundError(name);
    const rows = await this.db
      .select({ v: keyVersions, wrapped: dataKeys.wrapped })
      .from(keyVersions)
      .leftJoin(dataKeys, eq(dataKeys.id, keyVersions.dataKeyId))
      .where(and(eq(keyVersions.vaultId, this.vault.id), eq(keyVersions.name, head.name)))
      .orderBy(asc(keyVersions.created), asc(keyVersions.version))
      .all();
    if (rows.some((r) => r.v.hsmHandle != null)) {
      throw badParameter(`Key ${head.name} is HSM-protected: its private material never leaves the HSM, so it cannot be backed up.`);
    }
    const versions: BackupVersion[] = [];
    for (const row of rows) versions.push({ ...toRecord(row.v), privateJwk: await this.openPrivate(row.v, row.wrapped) });
    const payload: KeyBackup = { kind: 'key', name: head.name, latestVersion: head.latestVersion, versions };
    return sealBackup(this.dataKeys, 'key', utf8(JSON.stringify(payload)));
  }

  /** Restores a backup under its original name; 409 when that name is taken (even if deleted). */
  async restore(blob: string): Promise<KeyRecord> {
    const payload = parseKeyBackup(await openBackup(this.dataKeys, 'key', blob));
    const name = payload.name;
    const taken = () => conflict(`Key ${name} already exists in this vault; restore needs an unused name.`);
    if (await this.head(name)) throw taken();
    const dataKey = await this.dataKeys.forWrite(this.vault.id);
    const rows: VersionRow[] = [];
    for (const v of payload.versions) {
      rows.push({
        vaultId: this.vault.id,
        name,
        version: v.version,
        kty: v.kind,
        keySize: v.size ?? null,
        crv: v.crv ?? null,
        publicJwk: JSON.stringify(v.publicJwk),
        privateCiphertext: await seal(dataKey.key, utf8(JSON.stringify(v.privateJwk)), this.aad(name, v.version)),
        dataKeyId: dataKey.id,
        hsmHandle: null,
        keyOps: JSON.stringify(v.keyOps),
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
        this.db.insert(keys).values({
          vaultId: this.vault.id,
          name,
          latestVersion: payload.latestVersion,
          rotationDueAt: nextRotationDue(null, rows.find((r) => r.version === payload.latestVersion)!),
        }),
        ...rows.map((row) => this.db.insert(keyVersions).values(row)),
        this.db
          .update(dataKeys)
          .set({ encryptions: sql`${dataKeys.encryptions} + ${rows.length}` })
          .where(eq(dataKeys.id, dataKey.id)),
      ]);
    } catch (err) {
      if (violatedConstraint(err) === 'unique') throw taken();
      throw err;
    }
    return toRecord(rows.find((r) => r.version === payload.latestVersion)!);
  }

  /** A changed exp moves the rotation schedule, if the version is still the latest. */
  private async reschedule(version: VersionRow): Promise<void> {
    const head = await this.head(version.name);
    if (!head || head.latestVersion !== version.version) return;
    await this.db
      .update(keys)
      .set({ rotationDueAt: nextRotationDue(head.rotationPolicy, version) })
      .where(and(eq(keys.vaultId, this.vault.id), eq(keys.name, version.name), eq(keys.latestVersion, version.version)));
  }

  /** The head row of a key (live or deleted), or undefined. */
  head(name: string): Promise<HeadRow | undefined> {
    return this.db
      .select()
      .from(keys)
      .where(and(eq(keys.vaultId, this.vault.id), eq(keys.name, name)))
      .get();
  }

  private async heads(deleted: boolean, maxResults: number, skipToken?: string): Promise<Page<KeyRecord>> {
    const after = skipToken ? decodePageToken(skipToken, 'n') : undefined;
    const rows = await this.db
      .select({ v: keyVersions, deletedAt: keys.deletedAt, scheduledPurgeAt: keys.scheduledPurgeAt })
      .from(keys)
      .innerJoin(keyVersions, versionOfHead())
      .where(
        and(
          eq(keys.vaultId, this.vault.id),
          deleted ? isNotNull(keys.deletedAt) : isNull(keys.deletedAt),
          after ? gt(keys.name, after.n) : undefined,
        ),
      )
      .orderBy(asc(keys.name))
      .limit(maxResults + 1)
      .all();
    const records = rows.map((r) => ({ ...toRecord(r.v), deletedAt: r.deletedAt, scheduledPurgeAt: r.scheduledPurgeAt }));
    return page(records, maxResults, (last) => ({ n: last.name }));
  }

  private async version(name: string, version?: string, live = false): Promise<KeyRecord> {
    if (version !== undefined && !isVersionId(version)) throw notFoundError(name);
    const row = await this.db
      .select({ v: keyVersions, deletedAt: keys.deletedAt })
      .from(keys)
      .innerJoin(keyVersions, versionOfHead(version))
      .where(and(eq(keys.vaultId, this.vault.id), eq(keys.name, name)))
      .get();
    if (!row || (live && row.deletedAt != null)) throw notFoundError(name);
    return toRecord(row.v);
  }

  private versionKey(name: string, version: string) {
    return and(eq(keyVersions.vaultId, this.vault.id), eq(keyVersions.name, name), eq(keyVersions.version, version));
  }

  private aad(name: string, version: string) {
    return objectAad(this.vault.id, 'key', name, version);
  }

  private async openPrivate(row: VersionRow, wrapped: string | null): Promise<Jwk> {
    if (!row.privateCiphertext || !row.dataKeyId) throw new IntegrityError('key');
    const key = await this.dataKeys.forRead(row.dataKeyId, this.vault.id, wrapped);
    const plaintext = await open(key, row.privateCiphertext, this.aad(row.name, row.version));
    if (!plaintext) {
      console.error(`integrity check failed: vault=${this.vault.name} key=${row.name} version=${row.version}`);
      throw new IntegrityError('key');
    }
    return JSON.parse(fromUtf8(plaintext)) as Jwk;
  }
}

/**
 * Destroys a key for good: every version's token object (idempotent at the bridge), then the
 * rows. If the bridge is down nothing is deleted; if the row delete fails, a retry finds the token
 * objects already gone and finishes.
 */
export async function purgeKey(db: Database, bridge: BridgeClient, vaultId: string, name: string): Promise<void> {
  const handles = await db
    .select({ handle: keyVersions.hsmHandle })
    .from(keyVersions)
    .where(and(eq(keyVersions.vaultId, vaultId), eq(keyVersions.name, name), isNotNull(keyVersions.hsmHandle)))
    .all();
  for (const { handle } of handles) await bridge.destroyKey(handle!);
  await db.delete(keys).where(and(eq(keys.vaultId, vaultId), eq(keys.name, name), isNotNull(keys.deletedAt)));
}

/** Joins a key's head row to one of its versions: the latest, or the one asked for. */
function versionOfHead(version?: string) {
  return and(
    eq(keyVersions.vaultId, keys.vaultId),
    eq(keyVersions.name, keys.name),
    eq(keyVersions.version, version === undefined ? keys.latestVersion : version.toLowerCase()),
  );
}

/** Azure's create rules: the type names the kind; size or curve default as Azure defaults them. */
function specOf(input: CreateKeyInput): KeySpec {
  const kind = input.kty as KeyKind;
  const rsa = kind === 'RSA' || kind === 'RSA-HSM';
  const ec = kind === 'EC' || kind === 'EC-HSM';
  if (rsa) {
    const size = input.key_size ?? 2048;
    if (!(RSA_SIZES as readonly number[]).includes(size)) {
      throw badParameter(`The key size ${size} is not supported for ${kind} keys: use 2048, 3072 or 4096.`);
    }
    if (input.public_exponent != null && input.public_exponent !== 65537) {
      throw badParameter('The public exponent must be 65537.');
    }
    return { kind, size };
  }
  if (ec) {
    const crv = (input.crv ?? 'P-256') as Curve;
    if (!CURVES.includes(crv)) throw badParameter(`The curve '${String(input.crv)}' is not supported: use P-256, P-384, P-521 or P-256K.`);
    if (input.key_size != null) throw badParameter('key_size does not apply to EC keys; name a curve (crv) instead.');
    return { kind, crv };
  }
  if (kind === 'oct-HSM') {
    const size = input.key_size ?? 256;
    if (!(AES_SIZES as readonly number[]).includes(size)) throw badParameter(`The key size ${size} is not supported for oct-HSM keys: use 128, 192 or 256.`);
    return { kind, size };
  }
  throw badParameter(`The key type '${String(input.kty).slice(0, 16)}' is not supported: use RSA, RSA-HSM, EC, EC-HSM or oct-HSM.`);
}

/** key_ops: Azure's defaults when none are given; otherwise only operations the key type can do. */
function checkKeyOps(kind: KeyKind, requested: string[] | null | undefined): string[] {
  if (requested == null) return defaultKeyOps(kind);
  const valid = validKeyOps(kind);
  for (const op of requested) {
    if (!valid.has(op)) throw badParameter(`The key operation '${op.slice(0, 32)}' is not valid for ${kind} keys.`);
  }
  return [...new Set(requested)];
}

function toRecord(row: VersionRow): KeyRecord {
  return {
    name: row.name,
    version: row.version,
    kind: row.kty as KeyKind,
    ...(row.keySize != null ? { size: row.keySize } : {}),
    ...(row.crv != null ? { crv: row.crv as Curve } : {}),
    publicJwk: row.publicJwk ? (JSON.parse(row.publicJwk) as PublicJwk) : null,
    keyOps: JSON.parse(row.keyOps) as string[],
    tags: row.tags ? (JSON.parse(row.tags) as Record<string, string>) : null,
    enabled: row.enabled,
    nbf: row.nbf,
    exp: row.exp,
    created: row.created,
    updated: row.updated,
  };
}

type BackupVersion = KeyRecord & { privateJwk: Jwk };

interface KeyBackup {
  kind: 'key';
  name: string;
  latestVersion: string;
  versions: BackupVersion[];
}

function parseKeyBackup(bytes: Uint8Array): KeyBackup {
  let payload: KeyBackup;
  try {
    payload = JSON.parse(fromUtf8(bytes)) as KeyBackup;
  } catch {
    throw badParameter('The backup blob is corrupt.');
  }
  const ok =
    payload?.kind === 'key' &&
    typeof payload.name === 'string' &&
    Array.isArray(payload.versions) &&
    payload.versions.length > 0 &&
    payload.versions.every((v) => isVersionId(v.version) && (v.kind === 'RSA' || v.kind === 'EC') && typeof v.privateJwk === 'object') &&
    payload.versions.some((v) => v.version === payload.latestVersion);
  if (!ok) throw badParameter('The backup blob is not a key backup.');
  assertObjectName(payload.name, 'key');
  return payload;
}
