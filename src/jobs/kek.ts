/**
 * The KEK cron step: after a KEK rotation, re-wraps a bounded batch of data keys per run under the
 * current KEK (src/crypto/kek-rotation.ts), so the old KEK can be destroyed once none is left.
 * Nothing to do (one bridge call) when every data key is already under the current KEK.
 */
import type { Env } from '../core/env';
import { BridgeUnavailableError } from '../core/errors';
import { rewrapDataKeys, type RewrapRun } from '../crypto/kek-rotation';
import { services } from '../crypto/services';

/** null when the bridge is down (the next run catches up). */
export async function runKekRewrap(env: Env, limit?: number): Promise<RewrapRun | null> {
  const { db, bridge } = services(env);
  try {
    return await rewrapDataKeys(db, bridge, limit);
  } catch (err) {
    if (err instanceof BridgeUnavailableError) return null;
    throw err;
  }
}
