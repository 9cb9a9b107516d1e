/**
 * The request a piece of code runs for, without passing it down: its `waitUntil`, so the caches
 * (which are handed a database, never an ExecutionContext) can renew an entry in the background
 * and keep that work alive past the response (core/cache.ts, refresh-ahead), and whether the code
 * runs inside such a background refresh, so the statement counters can tell it apart from what a
 * request waited on (storage/db.ts).
 *
 * Set once per request at the Worker's entries (src/index.ts, src/rpc/entrypoint.ts). Without a scope
 * (a test calling a function directly, a queue batch, a cron job) nothing runs in the background.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

interface Scope {
  waitUntil(promise: Promise<unknown>): void;
  /** True inside work started by runInBackground. */
  background: boolean;
}

const scopes = new AsyncLocalStorage<Scope>();

/** Runs `fn` as the work of a request whose lifetime `ctx.waitUntil` extends. */
export function withRequestScope<T>(ctx: Pick<ExecutionContext, 'waitUntil'>, fn: () => T): T {
  return scopes.run({ waitUntil: (promise) => ctx.waitUntil(promise), background: false }, fn);
}

/**
 * Starts `task` in the background of the current request, kept alive by its waitUntil; its
 * rejection is swallowed (the caller records outcomes itself). False, and `task` not started, when
 * there is no request scope. The caller must never await what `task` returns from another request.
 */
export function runInBackground(task: () => Promise<unknown>): boolean {
  const scope = scopes.getStore();
  if (!scope) return false;
  const promise = scopes.run({ waitUntil: scope.waitUntil, background: true }, task);
  scope.waitUntil(promise.catch(() => undefined));
  return true;
}

/** Whether the running code is a background task (runInBackground), not what a request waits on. */
export function inBackground(): boolean {
  return scopes.getStore()?.background === true;
}
