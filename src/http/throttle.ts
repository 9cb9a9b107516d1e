/**
 * Request limits in Azure Key Vault's manner: a vault answers 429 with Retry-After and
 * `{"error":{"code":"Throttled","message":"Request was not processed because too many requests
 * were received. Reason: …"}}`, which the Azure SDKs already back off on; the token service answers
 * an OAuth2-shaped 429 to a client or address that keeps failing to authenticate.
 *
 * Limits (wrangler vars, per 10 s unless said; "0" turns one off), Azure's published figures:
 *   per vault, every request            THROTTLE_VAULT_REQUESTS        4000 (secrets, software keys)
 *   per vault, creates                  THROTTLE_VAULT_CREATES          300 (secret set, key create…)
 *   per vault, cryptographic operations THROTTLE_VAULT_KEY_OPERATIONS  2000 (the HSM figure: a key's
 *                                       type is known only after a D1 read, so every key counts so)
 *   per caller (object id), all vaults  THROTTLE_CALLER_REQUESTS       2000
 *   failed token requests per minute    THROTTLE_TOKEN_FAILURES_PER_CLIENT 10, …_PER_ADDRESS 30
 *
 * Counted in isolate memory (src/core/token-bucket.ts): no D1 round trip on the hot path; a
 * throttled request is refused before anything is read or written, and still audited (the audit
 * middleware records every answer). One small interface, so a shared counter (the Workers Rate
 * Limiting binding) can replace the isolate's without touching the routes.
 */
import type { Env } from '../core/env';
import { TokenBuckets, type BucketLimit, type TakeResult } from '../core/token-bucket';
import type { AppContext } from './context';
import { errorResponse } from './errors';

export interface ThrottleLimits {
  vaultRequests: number;
  vaultCreates: number;
  vaultKeyOperations: number;
  callerRequests: number;
  tokenFailuresPerClient: number;
  tokenFailuresPerAddress: number;
}

export const DEFAULT_LIMITS: ThrottleLimits = {
  vaultRequests: 4000,
  vaultCreates: 300,
  vaultKeyOperations: 2000,
  callerRequests: 2000,
  tokenFailuresPerClient: 10,
  tokenFailuresPerAddress: 30,
};

const VARS: Record<keyof ThrottleLimits, keyof Env> = {
  vaultRequests: 'THROTTLE_VAULT_REQUESTS',
  vaultCreates: 'THROTTLE_VAULT_CREATES',
  vaultKeyOperations: 'THROTTLE_VAULT_KEY_OPERATIONS',
  callerRequests: 'THROTTLE_CALLER_REQUESTS',
  tokenFailuresPerClient: 'THROTTLE_TOKEN_FAILURES_PER_CLIENT',
  tokenFailuresPerAddress: 'THROTTLE_TOKEN_FAILURES_PER_ADDRESS',
};

const TEN_SECONDS = 10_000;
const ONE_MINUTE = 60_000;

/** Operations that make something new (Azure's lower "create" limit). */
const CREATES = new Set(['SecretSet', 'SecretRestore', 'KeyCreate', 'KeyImport', 'KeyRestore', 'KeyRotate']);
/** Cryptographic operations with a key. */
const KEY_OPERATIONS = new Set(['KeySign', 'KeyVerify', 'KeyEncrypt', 'KeyDecrypt', 'KeyWrap', 'KeyUnwrap']);

const AZURE_MESSAGE = 'Request was not processed because too many requests were received.';

/** The counters. Replaceable as a whole (tests; a shared counter later). */
export interface Limiter {
  takeAll(entries: readonly { key: string; limit: BucketLimit }[]): TakeResult;
  peek(key: string, limit: BucketLimit): TakeResult;
  charge(key: string, limit: BucketLimit): void;
}

const limiter: Limiter = new TokenBuckets();
const parsed = new WeakMap<object, ThrottleLimits>();

/** The configured limits; a value that is not a whole number ≥ 0 keeps the default (and says so). */
export function throttleLimits(env: Env): ThrottleLimits {
  const cached = parsed.get(env);
  if (cached) return cached;
  const limits = { ...DEFAULT_LIMITS };
  for (const [field, name] of Object.entries(VARS) as [keyof ThrottleLimits, keyof Env][]) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    const n = Number(raw);
    if (Number.isSafeInteger(n) && n >= 0) limits[field] = n;
    else console.error(`${name} is not a whole number of requests; the default ${DEFAULT_LIMITS[field]} applies`);
  }
  parsed.set(env, limits);
  return limits;
}

function throttled(c: AppContext, result: TakeResult, reason: string): Response {
  c.header('Retry-After', String(result.retryAfterSeconds));
  return errorResponse(c, 429, 'Throttled', `${AZURE_MESSAGE} Reason: ${reason}`);
}

/**
 * Counts an authenticated data-plane request against its vault and its caller; the 429 to answer
 * when a limit is reached, else undefined (and the request is counted).
 */
export function throttleVaultRequest(c: AppContext, vaultName: string, operation: string): Response | undefined {
  const limits = throttleLimits(c.env);
  const vault = vaultName.toLowerCase();
  const entries: { key: string; limit: BucketLimit; reason: string }[] = [];
  const add = (key: string, capacity: number, reason: string) => {
    if (capacity > 0) entries.push({ key, limit: { capacity, periodMs: TEN_SECONDS }, reason });
  };
  add(`v:${vault}`, limits.vaultRequests, 'VaultRequestTypeLimitReached');
  if (CREATES.has(operation)) add(`vc:${vault}`, limits.vaultCreates, 'VaultRequestTypeLimitReached');
  if (KEY_OPERATIONS.has(operation)) add(`vk:${vault}`, limits.vaultKeyOperations, 'VaultRequestTypeLimitReached');
  const caller = c.get('caller');
  if (caller) add(`c:${caller.objectId}`, limits.callerRequests, 'CallerRequestLimitReached');
  return take(c, entries);
}

/** Counts a management request against its caller. */
export function throttleCaller(c: AppContext): Response | undefined {
  const caller = c.get('caller');
  const capacity = throttleLimits(c.env).callerRequests;
  if (!caller || capacity === 0) return undefined;
  return take(c, [
    { key: `c:${caller.objectId}`, limit: { capacity, periodMs: TEN_SECONDS }, reason: 'CallerRequestLimitReached' },
  ]);
}

function take(c: AppContext, entries: { key: string; limit: BucketLimit; reason: string }[]): Response | undefined {
  if (entries.length === 0) return undefined;
  const result = limiter.takeAll(entries);
  if (result.ok) return undefined;
  return throttled(c, result, entries[result.refused?.[0] ?? 0]!.reason);
}

// The token endpoint: failed attempts only. A client that authenticates is never slowed down here
// (its requests are cheap and it caches tokens); one that keeps failing (a wrong secret in a retry
// loop, or someone guessing) is refused for a while, by client id and by address.

function tokenFailureBuckets(c: AppContext, clientId: string | undefined): { key: string; limit: BucketLimit }[] {
  const limits = throttleLimits(c.env);
  const out: { key: string; limit: BucketLimit }[] = [];
  if (clientId && limits.tokenFailuresPerClient > 0)
    out.push({
      key: `tc:${clientId.toLowerCase().slice(0, 64)}`,
      limit: { capacity: limits.tokenFailuresPerClient, periodMs: ONE_MINUTE },
    });
  const address = c.req.header('cf-connecting-ip');
  if (address && limits.tokenFailuresPerAddress > 0)
    out.push({ key: `ta:${address.slice(0, 64)}`, limit: { capacity: limits.tokenFailuresPerAddress, periodMs: ONE_MINUTE } });
  return out;
}

/** Seconds to wait when this client or address has failed too often lately; undefined: go ahead. */
export function tokenAttemptRefused(c: AppContext, clientId: string | undefined): number | undefined {
  let wait: number | undefined;
  for (const b of tokenFailureBuckets(c, clientId)) {
    const r = limiter.peek(b.key, b.limit);
    if (!r.ok) wait = Math.max(wait ?? 0, r.retryAfterSeconds);
  }
  return wait;
}

/** Counts a failed client authentication against the client id and the address. */
export function recordTokenFailure(c: AppContext, clientId: string | undefined): void {
  for (const b of tokenFailureBuckets(c, clientId)) limiter.charge(b.key, b.limit);
}
