import { drizzle, type DrizzleD1Database } from 'drizzle-orm/d1';
import * as schema from './schema';

export type Database = DrizzleD1Database<typeof schema>;

/**
 * Per-isolate counters of D1 statements, so tests and the benchmark can check the hot path's
 * round trips instead of assuming them.
 */
export const d1Stats = { statements: 0, auditStatements: 0 };

/** Wraps the binding so every prepared statement is counted (as the audit consumer's if `audit`). */
function counting(db: D1Database, audit: boolean): D1Database {
  return new Proxy(db, {
    get(target, prop, receiver) {
      if (prop === 'prepare') {
        return (query: string) => {
          // The audit consumer shares the isolate; its statements are counted apart from requests'.
          if (audit || query.includes('"audit_')) d1Stats.auditStatements++;
          else d1Stats.statements++;
          return target.prepare(query);
        };
      }
      const value = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

const cache = new WeakMap<D1Database, Database>();
const auditCache = new WeakMap<D1Database, Database>();

export function database(binding: D1Database): Database {
  let db = cache.get(binding);
  if (!db) {
    db = drizzle(counting(binding, false), { schema });
    cache.set(binding, db);
  }
  return db;
}

/** The audit consumer's handle: every statement it prepares counts as an audit statement. */
export function auditDatabase(binding: D1Database): Database {
  let db = auditCache.get(binding);
  if (!db) {
    db = drizzle(counting(binding, true), { schema });
    auditCache.set(binding, db);
  }
  return db;
}
