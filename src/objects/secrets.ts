import type { DataKeyManager } from '../crypto/data-keys';
import { fromUtf8, utf8 } from '../core/encoding';
import type { Database } from '../storage/db';
import { secrets, secretVersions } from '../storage/schema';
import { conflict, forbidden, notFound } from '../core/errors';
import type { Page } from '../core/paging';
import { MAX_SECRET_VALUE_BYTES, type SetSecretInput, type UpdateSecretInput } from '../core/validation';
import { now } from '../core/clock';
import { type VaultRecord } from '../core/vault';
import type { ObjectKind } from './engine/kind';
import { VersionedStore } from './engine/store';

// Secrets as a description over the versioned-object engine (engine/): a version's payload is
// the secret value (UTF-8, sealed), plus contentType; Azure's wording of the Secrets errors.

type HeadRow = typeof secrets.$inferSelect;
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

/** A version as a backup carries it: the record with its value. */
type BackupVersion = SecretRecord & { value: string };

const secretKind: ObjectKind<HeadRow, VersionRow, SecretRecord, BackupVersion> = {
  kind: 'secret',
  tables: { head: secrets, versions: secretVersions },
  errors: {
    notFound: (name) => notFound('SecretNotFound', `A secret with (name/id) ${name} was not found in this key vault.`),
    deletedNotFound: (name) => notFound('SecretNotFound', `Deleted Secret not found: ${name}`),
    deletedConflict: (name) =>
      conflict(
        `Secret ${name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can be recovered or purged.`,
      ),
    nameTaken: (name) => conflict(`Secret ${name} already exists in this vault; restore needs an unused name.`),
    changed: (name) => conflict(`Secret ${name} changed while a new version was being made.`),
    versionTaken: (name, version) => conflict(`Secret ${name} already has version ${version}.`),
  },
  toRecord,
  backup: {
    export: async (row, open) => ({ ...toRecord(row), value: fromUtf8(await open(row.ciphertext)) }),
    accepts: (v) => typeof v.value === 'string' && utf8(v.value).byteLength <= MAX_SECRET_VALUE_BYTES,
    import: async (v, seal) => {
      const sealed = await seal(utf8(v.value));
      return {
        version: v.version,
        ciphertext: sealed.ciphertext,
        dataKeyId: sealed.dataKeyId,
        contentType: v.contentType,
        tags: v.tags ? JSON.stringify(v.tags) : null,
        enabled: v.enabled,
        nbf: v.nbf,
        exp: v.exp,
        created: v.created,
        updated: v.updated,
      };
    },
  },
};

/** The Secrets API of one vault, independent of HTTP. */
export class SecretStore {
  private readonly engine: VersionedStore<HeadRow, VersionRow, SecretRecord, BackupVersion>;

  constructor(db: Database, keys: DataKeyManager, vault: VaultRecord) {
    this.engine = new VersionedStore(db, keys, vault, secretKind);
  }

  /** Stores a new version; it becomes the latest. */
  async set(name: string, input: SetSecretInput): Promise<SecretRecord> {
    const record = await this.engine.add(name, async (_version, _head, seal) => {
      const sealed = await seal(utf8(input.value));
      return {
        row: {
          ciphertext: sealed.ciphertext,
          dataKeyId: sealed.dataKeyId,
          contentType: input.contentType ?? null,
          tags: input.tags ? JSON.stringify(input.tags) : null,
          enabled: input.attributes?.enabled ?? true,
          nbf: input.attributes?.nbf ?? null,
          exp: input.attributes?.exp ?? null,
        },
      };
    });
    return { ...record, value: input.value };
  }

  /** Reads a version (latest when none is given) with its value: one D1 query. */
  async get(name: string, version?: string): Promise<SecretRecord> {
    const { row, open } = await this.engine.read(name, version);
    const record = toRecord(row);
    assertUsable(record, 'get');
    return { ...record, value: fromUtf8(await open(row.ciphertext)) };
  }

  /** Changes contentType, attributes or tags of a version (latest when none is given). */
  update(name: string, version: string | undefined, input: UpdateSecretInput): Promise<SecretRecord> {
    return this.engine.update(name, version, input, () => (input.contentType !== undefined ? { contentType: input.contentType } : {}));
  }

  /** Latest version of each live secret, by name, without values. */
  list(maxResults: number, skipToken?: string): Promise<Page<SecretRecord>> {
    return this.engine.list(maxResults, skipToken);
  }

  /** Every version of one live secret, oldest first, without values. */
  listVersions(name: string, maxResults: number, skipToken?: string): Promise<Page<SecretRecord>> {
    return this.engine.listVersions(name, maxResults, skipToken);
  }

  /** Soft delete: the secret keeps its versions until purged or the retention period ends. */
  delete(name: string): Promise<SecretRecord> {
    return this.engine.delete(name);
  }

  getDeleted(name: string): Promise<SecretRecord> {
    return this.engine.getDeleted(name);
  }

  /** Latest version of each deleted secret, by name, without values. */
  listDeleted(maxResults: number, skipToken?: string): Promise<Page<SecretRecord>> {
    return this.engine.listDeleted(maxResults, skipToken);
  }

  recover(name: string): Promise<SecretRecord> {
    return this.engine.recover(name);
  }

  /** Permanently removes a deleted secret, unless the vault has purge protection. */
  purge(name: string): Promise<void> {
    return this.engine.purge(name);
  }

  /** All versions of a live secret, sealed into a blob only this deployment can open. */
  backup(name: string): Promise<string> {
    return this.engine.backup(name);
  }

  /** Restores a backup under its original name; 409 when that name is taken (even if deleted). */
  restore(blob: string): Promise<SecretRecord> {
    return this.engine.restore(blob);
  }
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
