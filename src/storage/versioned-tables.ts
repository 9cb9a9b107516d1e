// Every versioned object kind (secrets, keys, soon certificates) is stored as a head table (one
// row per name: latest version, soft-delete state) and a version table (one row per version).
// The columns, keys and indexes the versioned-object engine (src/objects/engine/) relies on are
// declared once here, so a new kind cannot get them subtly different; each kind adds its own.
// Column order is kept as the migrations made it (drizzle-kit compares the schema by name, but a
// reader of the SQL should find the same table).
import { sql, type BuildColumns } from 'drizzle-orm';
import {
  customType,
  foreignKey,
  index,
  integer,
  primaryKey,
  sqliteTable,
  text,
  type AnySQLiteColumn,
  type SQLiteColumnBuilderBase,
  type SQLiteTableExtraConfigValue,
} from 'drizzle-orm/sqlite-core';

// drizzle's sqlite-core has no collation option, so the collation rides on the column type:
// drizzle-kit emits the type verbatim (`name` text COLLATE NOCASE NOT NULL).
export const nocaseText = customType<{ data: string; driverData: string }>({
  dataType: () => 'text COLLATE NOCASE',
});

type Columns = Record<string, SQLiteColumnBuilderBase>;

// Builders are made afresh per table: drizzle binds a column builder to the table it is built in.
const headColumns = (vaultIds: () => AnySQLiteColumn) => ({
  vaultId: text('vault_id').notNull().references(vaultIds, { onDelete: 'cascade' }),
  name: nocaseText('name').notNull(),
  latestVersion: text('latest_version').notNull(),
  deletedAt: integer('deleted_at'),
  scheduledPurgeAt: integer('scheduled_purge_at'),
});

const versionKeyColumns = () => ({
  vaultId: text('vault_id').notNull(),
  name: nocaseText('name').notNull(),
  version: text('version').notNull(),
});

const versionAttributeColumns = () => ({
  tags: text('tags'),
  enabled: integer('enabled', { mode: 'boolean' }).notNull(),
  nbf: integer('nbf'),
  exp: integer('exp'),
  created: integer('created').notNull(),
  updated: integer('updated').notNull(),
});

type HeadColumns = ReturnType<typeof headColumns>;

/**
 * A head table `{table}` whose rows belong to the vault `vaultIds()` names: primary key (vault,
 * name), and `{table}_purge`, the partial index the purge job scans. `extra` columns follow the
 * common ones; `extraIndexes` adds the kind's own indexes.
 */
export function headTable<N extends string, C extends Columns>(
  table: N,
  vaultIds: () => AnySQLiteColumn,
  extra: C,
  extraIndexes: (t: BuildColumns<N, HeadColumns & C, 'sqlite'>) => SQLiteTableExtraConfigValue[] = () => [],
) {
  return sqliteTable(table, { ...headColumns(vaultIds), ...extra } as HeadColumns & C, (t) => [
    primaryKey({ columns: [t.vaultId, t.name] }),
    // Raw column name: SQLite's partial-index WHERE may only name the indexed table's columns.
    index(`${table}_purge`)
      .on(t.scheduledPurgeAt)
      .where(sql`deleted_at IS NOT NULL`),
    ...extraIndexes(t),
  ]);
}

/**
 * A version table `{table}` of `head`: primary key (vault, name, version), a cascading foreign key
 * to the head, `{table}_order`, the index version listings page through (created, version), and
 * `{table}_exp`, the partial index the expiry job (src/jobs/expiry.ts) finds versions near or past
 * their expiry through, across vaults, without reading the versions that never expire.
 * `payload` columns (what the kind stores per version) sit between the key and the attributes.
 */
export function versionTable<N extends string, C extends Columns>(
  table: N,
  head: { vaultId: AnySQLiteColumn; name: AnySQLiteColumn },
  payload: C,
) {
  type All = ReturnType<typeof versionKeyColumns> & C & ReturnType<typeof versionAttributeColumns>;
  return sqliteTable(table, { ...versionKeyColumns(), ...payload, ...versionAttributeColumns() } as All, (t) => [
    primaryKey({ columns: [t.vaultId, t.name, t.version] }),
    foreignKey({
      columns: [t.vaultId, t.name],
      foreignColumns: [head.vaultId, head.name],
    }).onDelete('cascade'),
    index(`${table}_order`).on(t.vaultId, t.name, t.created, t.version),
    index(`${table}_exp`)
      .on(t.exp)
      .where(sql`exp IS NOT NULL`),
  ]);
}
