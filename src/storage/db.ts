/**
 * The drizzle database over D1, with per-isolate statement counters (so tests and the bench
 * measure round trips) and the dev-only fault injection of the soak run.
 */
import { drizzle, type DrizzleD1Database } from 'drizzle-orm/d1';
import { inBackground } from '../core/request-scope';
import * as schema from './schema';

export type Database = DrizzleD1Database<typeof schema>;

/**
 * Per-isolate counters of D1 statements, so tests and the benchmark can check the hot path's
 * round trips instead of assuming them. `statements` are what requests waited on;
 * `refreshStatements` were made by the caches' background renewals (core/cache.ts, refresh-ahead),
 * which no request waits on.
 */
export const d1Stats = { statements: 0, auditStatements: 0, refreshStatements: 0 };

/** Wraps the binding so every prepared statement is counted (as the audit consumer's if `audit`). */
function counting(db: D1Database, audit: boolean): D1Database {
  return new Proxy(db, {
    get(target, prop, receiver) {
      if (prop === 'prepare') {
        return (query: string) => {
          // The audit consumer shares the isolate; its statements are counted apart from requests'.
          if (audit || query.includes('"audit_')) d1Stats.auditStatements++;
          else if (inBackground()) d1Stats.refreshStatements++;
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
const faultyCache = new WeakMap<D1Database, { rate: number; db: Database }>();

/**
 * The request path's handle. `faultRate` > 0 (development only, see d1FaultRate) makes that share
 * of its statements fail as D1 does when it is unavailable.
 */
export function database(binding: D1Database, faultRate = 0): Database {
  if (faultRate > 0) {
    let faulty = faultyCache.get(binding);
    if (faulty?.rate !== faultRate) {
      faulty = { rate: faultRate, db: drizzle(counting(withFaults(binding, faultRate), false), { schema }) };
      faultyCache.set(binding, faulty);
    }
    return faulty.db;
  }
  let db = cache.get(binding);
  if (!db) {
    db = drizzle(counting(binding, false), { schema });
    cache.set(binding, db);
  }
  return db;
}

// ---------------------------------------------------------------------------------------------
// FAULT INJECTION — development and soak runs only (`npm run soak`). Never set by wrangler.toml.

/** What an injected failure looks like: the message shape of D1's own transient errors. */
export const INJECTED_D1_FAULT = 'D1_ERROR: injected fault (D1_FAULT_RATE)';

/**
 * The share of request-path D1 statements to fail: `D1_FAULT_RATE` (0–1), honoured only when
 * `ALLOW_FAULT_INJECTION` is "true" as well (the local stack sets both for the soak run), so a
 * stray rate in a deployed configuration does nothing.
 */
export function d1FaultRate(env: { D1_FAULT_RATE?: string; ALLOW_FAULT_INJECTION?: string }): number {
  if (env.ALLOW_FAULT_INJECTION !== 'true' || !env.D1_FAULT_RATE) return 0;
  const rate = Number(env.D1_FAULT_RATE);
  return Number.isFinite(rate) && rate > 0 ? Math.min(rate, 1) : 0;
}

/** The binding with `rate` of its statement executions and batches rejected before reaching D1. */
function withFaults(db: D1Database, rate: number): D1Database {
  const fail = () => Promise.reject(new Error(INJECTED_D1_FAULT));
  const statement = (stmt: D1PreparedStatement): D1PreparedStatement => {
    const proxy = new Proxy(stmt, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver);
        if (typeof value !== 'function') return value;
        if (prop === 'bind') return (...args: unknown[]) => statement(value.apply(target, args));
        if (prop === 'run' || prop === 'all' || prop === 'first' || prop === 'raw') {
          return (...args: unknown[]) => (Math.random() < rate ? fail() : value.apply(target, args));
        }
        return value.bind(target);
      },
    });
    unwrappedStatements.set(proxy, stmt);
    return proxy;
  };
  return new Proxy(db, {
    get(target, prop, receiver) {
      if (prop === 'prepare') return (query: string) => statement(target.prepare(query));
      if (prop === 'batch')
        return (stmts: D1PreparedStatement[]) => (Math.random() < rate ? fail() : target.batch(stmts.map(unwrapped)));
      const value = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** D1's batch() wants its own statement objects, not our proxies. */
const unwrappedStatements = new WeakMap<object, D1PreparedStatement>();
function unwrapped(stmt: D1PreparedStatement): D1PreparedStatement {
  return unwrappedStatements.get(stmt) ?? stmt;
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
