// The engine's write primitives (store.ts): how a write batch treats a vault that disappeared
// underneath it, and the guarded insert that makes a version land with its head.
import { getTableColumns, sql, type SQL } from 'drizzle-orm';
import type { SQLiteTable } from 'drizzle-orm/sqlite-core';
import type { Database } from '../../storage/db';
import { violatedConstraint } from '../../storage/errors';
import { notFound } from '../../core/errors';
import { type VaultRecord } from '../../core/vault';
import { forgetVault } from '../../storage/vaults';

/**
 * Runs a write batch (one transaction). A foreign-key failure means the vault itself is gone
 * (deleted through another isolate, whose cache had not expired here): a 404, not a server error.
 */
export async function writeBatch<T extends Parameters<Database['batch']>[0]>(db: Database, vault: VaultRecord, statements: T) {
  try {
    return await db.batch(statements);
  } catch (err) {
    if (violatedConstraint(err) === 'foreign-key') {
      forgetVault(vault.name);
      throw notFound('VaultNotFound', `The vault ${vault.name} does not exist.`);
    }
    throw err;
  }
}

/** The purge protection refusal, worded as Azure words it. */
export const purgeProtected = () =>
  `Operation "purge" is not allowed because purge protection is enabled for this vault. Key Vault service will automatically purge it after the retention period has passed.`;

/**
 * INSERT … SELECT that writes `row` only if the head row matched by `guard` exists. Batched after
 * the statement that moves an object's head to the new version, it makes the version land exactly
 * when the head moved: a head that was deleted or moved on concurrently leaves nothing behind.
 */
export function insertIfGuard<T extends SQLiteTable>(
  db: Database,
  table: T,
  row: T['$inferInsert'],
  guardTable: SQLiteTable,
  guard: SQL | undefined,
) {
  const columns = getTableColumns(table);
  const fields: Record<string, SQL.Aliased> = {};
  for (const [key, column] of Object.entries(columns)) {
    const value = (row as Record<string, unknown>)[key];
    fields[key] = sql`${value === undefined || value === null ? null : column.mapToDriverValue(value)}`.as(column.name);
  }
  return db.insert(table).select(db.select(fields).from(guardTable).where(guard) as never);
}
