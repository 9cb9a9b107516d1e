// What the versioned-object engine (store.ts) needs to know about one kind of object (secret,
// key, certificate): its tables, how a version becomes a record, what its backup carries, Azure's
// errors worded for it, and the hooks where the kind does more than storing rows. Each kind's
// file (secrets.ts, keys.ts) is such a description plus the operations only that kind has.
import type { SQLiteColumn, SQLiteTable } from 'drizzle-orm/sqlite-core';
import type { VaultError } from '../../core/errors';

/** The columns every head table has (src/storage/versioned-tables.ts). */
export type HeadTable = SQLiteTable & {
  vaultId: SQLiteColumn;
  name: SQLiteColumn;
  latestVersion: SQLiteColumn;
  deletedAt: SQLiteColumn;
  scheduledPurgeAt: SQLiteColumn;
};

/** The columns every version table has (src/storage/versioned-tables.ts), and its data key. */
export type VersionTable = SQLiteTable & {
  vaultId: SQLiteColumn;
  name: SQLiteColumn;
  version: SQLiteColumn;
  created: SQLiteColumn;
  dataKeyId: SQLiteColumn;
};

export interface HeadRow {
  vaultId: string;
  name: string;
  latestVersion: string;
  deletedAt: number | null;
  scheduledPurgeAt: number | null;
}

export interface VersionRow {
  vaultId: string;
  name: string;
  version: string;
  dataKeyId: string | null;
  tags: string | null;
  enabled: boolean;
  nbf: number | null;
  exp: number | null;
  created: number;
  updated: number;
}

/** Tags and attributes: what every version of every kind has. */
export interface VersionAttributes {
  tags: Record<string, string> | null;
  enabled: boolean;
  nbf: number | null;
  exp: number | null;
  created: number;
  updated: number;
}

/** A version as the API layer sees it; deleted objects carry their deletion times. */
export interface VersionedRecord extends VersionAttributes {
  name: string;
  version: string;
  deletedAt?: number | null;
  scheduledPurgeAt?: number | null;
}

/** What a backup carries of every version, whatever its kind. */
export interface BackupRecord extends VersionAttributes {
  version: string;
}

/** The version columns every kind has, filled by the engine (key, times, tags and attributes). */
export type CommonVersionColumns = 'vaultId' | 'name' | 'version' | 'tags' | 'enabled' | 'nbf' | 'exp' | 'created' | 'updated';

/** A payload sealed under the vault's current data key, bound to its object and version. */
export interface Sealed {
  ciphertext: string;
  dataKeyId: string;
}

/** Seals a version's payload (the engine binds it to the object, version and data key). */
export type Seal = (payload: Uint8Array) => Promise<Sealed>;

/** Opens a version's sealed payload; a missing or altered one is an integrity failure. */
export type Open = (ciphertext: string | null) => Promise<Uint8Array>;

/** Azure's errors, worded for this kind. */
export interface KindErrors {
  notFound(name: string): VaultError;
  deletedNotFound(name: string): VaultError;
  /** A write to a name that is deleted but recoverable. */
  deletedConflict(name: string): VaultError;
  /** Restore to a name that exists (live or deleted). */
  nameTaken(name: string): VaultError;
  /** A new version made from a latest version that is no longer the latest. */
  changed(name: string): VaultError;
  versionTaken(name: string, version: string): VaultError;
}

/** Why the head's own columns are being recomputed (see `latestChanged`). */
export type LatestChange = 'added' | 'restored' | 'updated';

export interface ObjectKind<H extends HeadRow, V extends VersionRow, R extends VersionedRecord, B extends BackupRecord> {
  /** Names the kind in the ciphertext binding, in backups and in logs. */
  kind: 'secret' | 'key' | 'certificate';
  tables: { head: HeadTable; versions: VersionTable };
  errors: KindErrors;
  toRecord(row: V): R;
  backup: {
    /** Refuses to back up an object whose versions cannot all be carried (HSM keys). */
    refuse?(name: string, versions: V[]): VaultError | undefined;
    /** A version as the backup carries it, its payload opened with `open`. */
    export(row: V, open: Open): Promise<B>;
    /** Whether a version read from an opened backup is one this kind restores. */
    accepts(version: Record<string, unknown>): boolean;
    /** The kind's columns of the row a backed-up version restores to (its payload sealed with `seal`). */
    import(version: B, seal: Seal): Promise<Omit<V, CommonVersionColumns>>;
  };
  hooks?: {
    /**
     * Head columns that follow the latest version, written with it: when a version becomes the
     * latest (added, restored) or a PATCH changes one of `follows` on the latest version.
     * Undefined: nothing to write. (Key rotation recomputes its due time here.)
     */
    latestChanged?(head: H | undefined, latest: V, change: LatestChange): Partial<H> | undefined;
    /** The version columns the head's own columns depend on. */
    follows?: readonly (keyof V)[];
    /**
     * Runs before a deleted object's rows are removed for good, with all its versions. If it
     * throws, nothing is removed (and a later purge tries again).
     */
    beforePurge?(versions: V[]): Promise<void>;
  };
}
