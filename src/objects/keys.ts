// Keys as a description over the versioned-object engine (engine/), plus what only keys do: making
// a version's material (in the Worker or in the HSM through the bridge), import, and handing a
// version's material to the cryptographic operations (key-operations.ts).
import { HsmKeyExistsError, type BridgeClient, type HsmKeySpec } from '../crypto/bridge-client';
import type { DataKeyManager } from '../crypto/data-keys';
import { fromUtf8, utf8 } from '../core/encoding';
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
import { keys, keyVersions } from '../storage/schema';
import { badParameter, conflict, forbidden } from '../core/errors';
import type { CreateKeyInput, ImportKeyInput, UpdateKeyInput } from './key-validation';
import { assertObjectName } from '../core/validation';
import { nextRotationDue } from './rotation-policy';
import { type VaultRecord } from '../core/vault';
import { azureErrors } from './engine/errors';
import type { ObjectKind, VersionedRecord } from './engine/kind';
import { purgeDeleted, VersionedStore } from './engine/store';

type VersionRow = typeof keyVersions.$inferSelect;
type HeadRow = typeof keys.$inferSelect;

/** What a new version is made of: its type and size, and where its private part lives. */
export interface KeySpec {
  kind: KeyKind;
  size?: number;
  crv?: Curve;
}

/** One version of a key as the vault logic sees it: public material only. */
export interface KeyRecord extends KeySpec, VersionedRecord {
  publicJwk: PublicJwk | null;
  keyOps: string[];
  /** The key of a certificate: changed only through the certificate. */
  managed: boolean;
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

/** A software version as a backup carries it: the record with its private JWK. */
type BackupVersion = KeyRecord & { privateJwk: Jwk };

/**
 * Keys as a description over the versioned-object engine (engine/): a version's payload is the
 * private JWK of a software key (sealed) or, for -HSM keys, the handle of its token object. The
 * hooks keep the rotation schedule following the latest version, and destroy token objects
 * through the bridge before a purge removes the rows.
 */
function keyKind(bridge: BridgeClient): ObjectKind<HeadRow, VersionRow, KeyRecord, BackupVersion> {
  return {
    kind: 'key',
    tables: { head: keys, versions: keyVersions },
    errors: azureErrors('key', 'KeyNotFound'),
    toRecord,
    backup: {
      // HSM keys: their private part cannot leave the token, and a backup without it could not
      // restore the key once purged.
      refuse: (name, versions) =>
        versions.some((v) => v.hsmHandle != null)
          ? badParameter(`Key ${name} is HSM-protected: its private material never leaves the HSM, so it cannot be backed up.`)
          : undefined,
      export: async (row, open) => ({
        ...toRecord(row),
        privateJwk: JSON.parse(fromUtf8(await open(row.privateCiphertext))) as Jwk,
      }),
      accepts: (v) => (v.kind === 'RSA' || v.kind === 'EC') && typeof v.privateJwk === 'object' && v.privateJwk !== null,
      import: async (v, seal) => {
        const sealed = await seal(utf8(JSON.stringify(v.privateJwk)));
        return {
          kty: v.kind,
          keySize: v.size ?? null,
          crv: v.crv ?? null,
          publicJwk: JSON.stringify(v.publicJwk),
          privateCiphertext: sealed.ciphertext,
          dataKeyId: sealed.dataKeyId,
          hsmHandle: null,
          keyOps: JSON.stringify(v.keyOps),
          managed: v.managed === true,
        };
      },
    },
    hooks: {
      // The policy's next due time follows the latest version (its creation and expiry); a new
      // latest version also ends any cron claim on the one before.
      latestChanged: (head, latest, change) => {
        const rotationDueAt = nextRotationDue(head?.rotationPolicy ?? null, latest);
        return change === 'added' ? { rotationDueAt, rotationClaim: null, rotationClaimUntil: null } : { rotationDueAt };
      },
      follows: ['exp'],
      // Token objects first (idempotent at the bridge): with the bridge down nothing is deleted,
      // and if the row delete fails a retry finds them already gone and finishes.
      beforePurge: async (versions) => {
        for (const v of versions) if (v.hsmHandle) await bridge.destroyKey(v.hsmHandle);
      },
    },
  };
}

/**
 * The Keys API of one vault (everything but the cryptographic operations), independent of HTTP:
 * list, listVersions, delete (token objects stay until purge: a deleted key must stay
 * recoverable), getDeleted, listDeleted, recover, purge, backup (software keys only) and restore
 * are the engine's.
 */
export class KeyStore extends VersionedStore<HeadRow, VersionRow, KeyRecord, BackupVersion> {
  constructor(
    db: Database,
    dataKeys: DataKeyManager,
    private readonly bridge: BridgeClient,
    vault: VaultRecord,
  ) {
    super(db, dataKeys, vault, keyKind(bridge));
  }

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
    options: { expectLatest?: string; version?: string; managed?: boolean } = {},
  ): Promise<KeyRecord> {
    const keyOps = checkKeyOps(spec.kind, fields.keyOps);
    const managed = options.managed === true;
    return this.add(
      name,
      { tags: fields.tags, attributes: fields },
      async (version, head, seal) => {
        if (head && !managed && (await this.record(head.name, head.latestVersion, false)).managed) throw managedRefusal('create');
        const made = await material(version);
        const sealed = made.privateJwk ? await seal(utf8(JSON.stringify(made.privateJwk))) : undefined;
        return {
          row: {
            kty: spec.kind,
            keySize: spec.size ?? null,
            crv: spec.crv ?? null,
            publicJwk: made.publicJwk ? JSON.stringify(made.publicJwk) : null,
            privateCiphertext: sealed?.ciphertext ?? null,
            dataKeyId: sealed?.dataKeyId ?? null,
            hsmHandle: made.hsmHandle ?? null,
            keyOps: JSON.stringify(keyOps),
            managed,
          },
          // Nothing references a token object whose version was not stored: destroy it.
          undo: made.hsmHandle ? () => this.bridge.destroyKey(made.hsmHandle!) : undefined,
        };
      },
      options,
    );
  }

  /** Generates material for a new version: in the Worker, or inside the token for -HSM types. */
  generator(spec: KeySpec): (id: string) => Promise<NewMaterial> {
    return async (id) => {
      if (spec.kind === 'RSA') return generateSoftwareKey({ kty: 'RSA', size: spec.size! });
      if (spec.kind === 'EC') return generateSoftwareKey({ kty: 'EC', crv: spec.crv! });
      // Sizes and curves were checked against the same lists the bridge accepts (specOf).
      const hsmSpec = (
        spec.kind === 'RSA-HSM'
          ? { kty: 'RSA', size: spec.size }
          : spec.kind === 'EC-HSM'
            ? { kty: 'EC', crv: spec.crv }
            : { kty: 'oct', size: spec.size }
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
  get(name: string, version?: string): Promise<KeyRecord> {
    return this.record(name, version);
  }

  /**
   * A live version for a cryptographic operation, in one D1 query: with its token handle (HSM
   * keys) or, when `withPrivate`, its opened private JWK (software keys).
   */
  async material(name: string, version: string | undefined, withPrivate: boolean): Promise<KeyMaterial> {
    const { row, open } = await this.read(name, version);
    const record = toRecord(row);
    if (row.hsmHandle) return { record, hsmHandle: row.hsmHandle };
    if (!withPrivate) return { record };
    return { record, privateJwk: JSON.parse(fromUtf8(await open(row.privateCiphertext))) as Jwk };
  }

  /** Soft delete; a certificate's key goes only with its certificate (`managed`). */
  override async delete(name: string, managed = false): Promise<KeyRecord> {
    if (!managed && (await this.record(name)).managed) throw managedRefusal('delete');
    return super.delete(name);
  }

  /** PATCH; a certificate's key changes only with its certificate (`managed`). */
  async update(name: string, version: string | undefined, input: UpdateKeyInput, managed = false): Promise<KeyRecord> {
    if (!managed && (await this.record(name, version)).managed) throw managedRefusal('update');
    return this.patch(name, version, input, (current) =>
      input.key_ops != null ? { keyOps: JSON.stringify(checkKeyOps(current.kind, input.key_ops)) } : {},
    );
  }
}

/** Azure's answer to a direct write of a certificate's key. */
const managedRefusal = (operation: string) =>
  forbidden(`Operation "${operation}" is not allowed as this object's lifetime is managed by Key Vault.`, 'KeyManagedByKeyVault');

/**
 * Destroys a deleted key for good (the purge cron): every version's token object, then the rows.
 * If the bridge is down nothing is deleted.
 */
export async function purgeKey(db: Database, bridge: BridgeClient, vaultId: string, name: string): Promise<void> {
  await purgeDeleted(db, keyKind(bridge), vaultId, name);
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
    if (!CURVES.includes(crv))
      throw badParameter(`The curve '${String(input.crv)}' is not supported: use P-256, P-384, P-521 or P-256K.`);
    if (input.key_size != null) throw badParameter('key_size does not apply to EC keys; name a curve (crv) instead.');
    return { kind, crv };
  }
  if (kind === 'oct-HSM') {
    const size = input.key_size ?? 256;
    if (!(AES_SIZES as readonly number[]).includes(size))
      throw badParameter(`The key size ${size} is not supported for oct-HSM keys: use 128, 192 or 256.`);
    return { kind, size };
  }
  throw badParameter(
    `The key type '${String(input.kty).slice(0, 16)}' is not supported: use RSA, RSA-HSM, EC, EC-HSM or oct-HSM.`,
  );
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
    managed: row.managed,
    tags: row.tags ? (JSON.parse(row.tags) as Record<string, string>) : null,
    enabled: row.enabled,
    nbf: row.nbf,
    exp: row.exp,
    created: row.created,
    updated: row.updated,
  };
}
