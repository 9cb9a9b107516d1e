/**
 * The request limits both transports apply (HTTP: src/http/throttle.ts; service-binding RPC:
 * src/rpc/call.ts), with one set of counters per isolate, so a caller that mixes the two is counted
 * once against its vault and itself. Azure's published figures, wrangler vars, per 10 s ("0" turns
 * one off):
 *   per vault, every request            THROTTLE_VAULT_REQUESTS        4000 (secrets, software keys)
 *   per vault, creates                  THROTTLE_VAULT_CREATES          300 (secret set, key create…)
 *   per vault, cryptographic operations THROTTLE_VAULT_KEY_OPERATIONS  2000 (the HSM figure: a key's
 *                                       type is known only after a D1 read, so every key counts so)
 *   per caller (object id), all vaults  THROTTLE_CALLER_REQUESTS       2000
 *   failed token requests per minute    THROTTLE_TOKEN_FAILURES_PER_CLIENT 10, …_PER_ADDRESS 30
 * Counted in isolate memory (token-bucket.ts): no I/O on the hot path.
 */
import type { Env } from './env';
import { TokenBuckets, type BucketLimit, type TakeResult } from './token-bucket';

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

export const TEN_SECONDS = 10_000;

/** Azure's message; the reason follows it. */
export const THROTTLED_MESSAGE = 'Request was not processed because too many requests were received.';

/** Operations that make something new (Azure's lower "create" limit). */
const CREATES = new Set(['SecretSet', 'SecretRestore', 'KeyCreate', 'KeyImport', 'KeyRestore', 'KeyRotate']);
/** Cryptographic operations with a key. */
const KEY_OPERATIONS = new Set(['KeySign', 'KeyVerify', 'KeyEncrypt', 'KeyDecrypt', 'KeyWrap', 'KeyUnwrap']);

/** The counters. Replaceable as a whole (a shared counter later). */
export interface Limiter {
  takeAll(entries: readonly { key: string; limit: BucketLimit }[]): TakeResult;
  peek(key: string, limit: BucketLimit): TakeResult;
  charge(key: string, limit: BucketLimit): void;
}

export const limiter: Limiter = new TokenBuckets();
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

export interface LimitEntry {
  key: string;
  limit: BucketLimit;
  /** Azure's reason, named in the refusal. */
  reason: string;
}

/** The buckets one data-plane operation on a vault by a caller counts against. */
export function vaultRequestEntries(env: Env, vaultName: string, operation: string, callerObjectId?: string): LimitEntry[] {
  const limits = throttleLimits(env);
  const vault = vaultName.toLowerCase();
  const entries: LimitEntry[] = [];
  const add = (key: string, capacity: number, reason: string) => {
    if (capacity > 0) entries.push({ key, limit: { capacity, periodMs: TEN_SECONDS }, reason });
  };
  add(`v:${vault}`, limits.vaultRequests, 'VaultRequestTypeLimitReached');
  if (CREATES.has(operation)) add(`vc:${vault}`, limits.vaultCreates, 'VaultRequestTypeLimitReached');
  if (KEY_OPERATIONS.has(operation)) add(`vk:${vault}`, limits.vaultKeyOperations, 'VaultRequestTypeLimitReached');
  if (callerObjectId) add(`c:${callerObjectId}`, limits.callerRequests, 'CallerRequestLimitReached');
  return entries;
}

/** Takes a token from every entry or from none: undefined when counted, else the refusal's reason and wait. */
export function takeLimits(entries: readonly LimitEntry[]): { reason: string; retryAfterSeconds: number } | undefined {
  if (entries.length === 0) return undefined;
  const result = limiter.takeAll(entries);
  if (result.ok) return undefined;
  return { reason: entries[result.refused?.[0] ?? 0]!.reason, retryAfterSeconds: result.retryAfterSeconds };
}
