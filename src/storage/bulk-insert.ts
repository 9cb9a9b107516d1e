/**
 * One INSERT for many rows of a wide table, and one `IN` for many values: they travel as one JSON
 * parameter that SQLite's json_each unpacks. D1 binds at most 100 parameters a statement, so the audit chain's 16 columns
 * took a statement per 6 rows, and each bound value costs the D1 client (statement construction,
 * serialisation, the local runtime's parsing) more than its row costs SQLite: in a CPU profile of
 * the audit consumer that was half of its time. Columns come from the table, in its order, and a
 * row must give each (null for none). Only for text, integer and null values: json_extract gives
 * those back as SQLite stores them; drizzle's per-column mapping (mapToDriverValue, boolean and
 * timestamp modes) is not applied, so only for columns that store what they are given.
 */
import { getTableColumns, sql } from 'drizzle-orm';
import type { SQLiteTable } from 'drizzle-orm/sqlite-core';
import type { Database } from './db';

export type JsonRowValue = string | number | null;

export function insertRowsAsJson<T extends SQLiteTable>(db: Database, table: T, rows: readonly T['$inferInsert'][]) {
  const columns = Object.entries(getTableColumns(table));
  const values = columns.map((_, i) => `json_extract(value, '$[${i}]')`).join(', ');
  const matrix = rows.map((row) =>
    columns.map(([key]) => {
      const value = (row as Record<string, unknown>)[key] ?? null;
      if (value !== null && typeof value !== 'string' && typeof value !== 'number')
        throw new TypeError(`insertRowsAsJson: column ${key} holds a ${typeof value}`);
      return value as JsonRowValue;
    }),
  );
  // insert().select() with SQL: a statement db.batch() runs in its transaction, like any insert.
  return db.insert(table).select(sql`${sql.raw(`SELECT ${values} FROM json_each(`)}${JSON.stringify(matrix)})`);
}

/** `column IN (…)` for any number of text or integer values, as one parameter: for inArray(). */
export function jsonValues(values: readonly JsonRowValue[]) {
  return sql`(SELECT value FROM json_each(${JSON.stringify(values)}))`;
}
