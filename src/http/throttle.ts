/**
 * Request limits in Azure Key Vault's manner: a vault answers 429 with Retry-After and
 * `{"error":{"code":"Throttled","message":"Request was not processed because too many requests
 * were received. Reason: …"}}`, which the Azure SDKs already back off on; the token service answers
 * an OAuth2-shaped 429 to a client or address that keeps failing to authenticate.
 *
 * The limits and their counters are src/core/request-limits.ts, shared with service-binding RPC.
 *
 * Counted in isolate memory (src/core/token-bucket.ts): no D1 round trip on the hot path; a
 * throttled request is refused before anything is read or written, and still audited (the audit
 * middleware records every answer). One small interface, so a shared counter (the Workers Rate
 * Limiting binding) can replace the isolate's without touching the routes.
 */
import {
  limiter,
  takeLimits,
  TEN_SECONDS,
  THROTTLED_MESSAGE,
  throttleLimits,
  vaultRequestEntries,
  type LimitEntry,
} from '../core/request-limits';
import type { BucketLimit } from '../core/token-bucket';
import type { AppContext } from './context';
import { errorResponse } from './errors';

export { DEFAULT_LIMITS, throttleLimits, type ThrottleLimits } from '../core/request-limits';

const ONE_MINUTE = 60_000;

function throttled(c: AppContext, retryAfterSeconds: number, reason: string): Response {
  c.header('Retry-After', String(retryAfterSeconds));
  return errorResponse(c, 429, 'Throttled', `${THROTTLED_MESSAGE} Reason: ${reason}`);
}

/**
 * Counts an authenticated data-plane request against its vault and its caller; the 429 to answer
 * when a limit is reached, else undefined (and the request is counted).
 */
export function throttleVaultRequest(c: AppContext, vaultName: string, operation: string): Response | undefined {
  return take(c, vaultRequestEntries(c.env, vaultName, operation, c.get('caller')?.objectId));
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

function take(c: AppContext, entries: LimitEntry[]): Response | undefined {
  const refused = takeLimits(entries);
  return refused && throttled(c, refused.retryAfterSeconds, refused.reason);
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
