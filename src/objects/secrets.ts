// Secrets as a description over the versioned-object engine (engine/): a version's payload is
// the secret value (UTF-8, sealed), plus contentType; Azure's wording of the Secrets errors.
import type { DataKeyManager } from '../crypto/data-keys';
import { fromUtf8, utf8 } from '../core/encoding';
import type { Database } from '../storage/db';
import { secrets, secretVersions } from '../storage/schema';
import { forbidden } from '../core/errors';
import { MAX_SECRET_VALUE_BYTES, type SetSecretInput, type UpdateSecretInput } from '../core/validation';
import { now } from '../core/clock';
import { type VaultRecord } from '../core/vault';
import { azureErrors } from './engine/errors';
import type { ObjectKind, VersionedRecord } from './engine/kind';
import { VersionedStore } from './engine/store';

type HeadRow = typeof secrets.$inferSelect;
type VersionRow = typeof secretVersions.$inferSelect;

/** One version of a secret as the vault logic sees it; the HTTP layer renders it Azure-shaped. */
export interface SecretRecord extends VersionedRecord {
  value?: string;
  contentType: string | null;
  /** The secret of a certificate: changed only through the certificate. */
  managed: boolean;
}

/** A version as a backup carries it: the record with its value. */
type BackupVersion = SecretRecord & { value: string };

const secretKind: ObjectKind<HeadRow, VersionRow, SecretRecord, BackupVersion> = {
  kind: 'secret',
  tables: { head: secrets, versions: secretVersions },
  errors: azureErrors('secret', 'SecretNotFound'),
  toRecord,
  backup: {
    export: async (row, open) => ({ ...toRecord(row), value: fromUtf8(await open(row.ciphertext)) }),
    accepts: (v) => typeof v.value === 'string' && utf8(v.value).byteLength <= MAX_SECRET_VALUE_BYTES,
    import: async (v, seal) => {
      const sealed = await seal(utf8(v.value));
      return {
        ciphertext: sealed.ciphertext,
        dataKeyId: sealed.dataKeyId,
        contentType: v.contentType,
        managed: v.managed === true,
      };
    },
  },
};

/**
 * The Secrets API of one vault, independent of HTTP: list, listVersions, delete, getDeleted,
 * listDeleted, recover, purge, backup and restore are the engine's.
 */
export class SecretStore extends VersionedStore<HeadRow, VersionRow, SecretRecord, BackupVersion> {
  constructor(db: Database, keys: DataKeyManager, vault: VaultRecord) {
    super(db, keys, vault, secretKind);
  }

  /** Stores a new version; it becomes the latest. A certificate's secret is refused (Azure's 403). */
  async set(name: string, input: SetSecretInput): Promise<SecretRecord> {
    return this.write(name, input, false);
  }

  /**
   * A new version of a certificate's secret (src/objects/certificates/), under the certificate's
   * version id; `managed` marks it as written only through the certificate.
   */
  setManaged(name: string, version: string, input: SetSecretInput): Promise<SecretRecord> {
    return this.write(name, input, true, version);
  }

  private async write(name: string, input: SetSecretInput, managed: boolean, version?: string): Promise<SecretRecord> {
    const record = await this.add(
      name,
      input,
      async (_version, head, seal) => {
        if (head && !managed && (await this.record(head.name, head.latestVersion, false)).managed) throw managedRefusal('set');
        const sealed = await seal(utf8(input.value));
        return {
          row: { ciphertext: sealed.ciphertext, dataKeyId: sealed.dataKeyId, contentType: input.contentType ?? null, managed },
        };
      },
      { version },
    );
    return { ...record, value: input.value };
  }

  /** Reads a version (latest when none is given) with its value: one D1 query. */
  async get(name: string, version?: string): Promise<SecretRecord> {
    const { row, open } = await this.read(name, version);
    const record = toRecord(row);
    assertUsable(record, 'get');
    return { ...record, value: fromUtf8(await open(row.ciphertext)) };
  }

  /** Changes contentType, attributes or tags of a version (latest when none is given). */
  async update(name: string, version: string | undefined, input: UpdateSecretInput, managed = false): Promise<SecretRecord> {
    if (!managed && (await this.record(name, version)).managed) throw managedRefusal('update');
    return this.patch(name, version, input, () => (input.contentType !== undefined ? { contentType: input.contentType } : {}));
  }

  /** Soft delete; a certificate's secret goes only with its certificate (`managed`). */
  override async delete(name: string, managed = false): Promise<SecretRecord> {
    if (!managed && (await this.record(name)).managed) throw managedRefusal('delete');
    return super.delete(name);
  }
}

/** Azure's answer to a direct write of a certificate's secret. */
const managedRefusal = (operation: string) =>
  forbidden(
    `Operation "${operation}" is not allowed as this object's lifetime is managed by Key Vault.`,
    'SecretManagedByKeyVault',
  );

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
    managed: row.managed,
    tags: row.tags ? (JSON.parse(row.tags) as Record<string, string>) : null,
    enabled: row.enabled,
    nbf: row.nbf,
    exp: row.exp,
    created: row.created,
    updated: row.updated,
  };
}
