/**
 * The signing-key cron step: a staged token-signing key starts signing by the clock (see
 * src/identity/signing-keys.ts); what is left to the cron is deleting the keys every token of
 * which has expired, so they leave D1 as they left the JWKS.
 */
import type { Env } from '../core/env';
import { services } from '../crypto/services';
import { pruneSigningKeys } from '../identity/signing-keys';

export async function runSigningKeyMaintenance(env: Env, now?: number): Promise<string[]> {
  return pruneSigningKeys(services(env).db, now);
}
