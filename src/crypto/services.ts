/**
 * What a request (or a job) uses below the object layer: the database, the bridge client and the
 * data keys, with the isolate-wide data-key cache.
 */
import { BridgeClient } from './bridge-client';
import { DataKeyCache, DataKeyManager, DEFAULT_POLICY } from './data-keys';
import type { Env } from '../core/env';
import { d1FaultRate, database, type Database } from '../storage/db';

/** Isolate-wide: unwrapped data keys outlive requests, which is what keeps warm reads off the bridge. */
export const dataKeyCache = new DataKeyCache(DEFAULT_POLICY, 'data-keys');

export interface Services {
  db: Database;
  bridge: BridgeClient;
  keys: DataKeyManager;
}

export function services(env: Env): Services {
  const db = database(env.DB, d1FaultRate(env));
  // With an mTLS certificate binding, the bridge is reached through it so the Worker presents its certificate.
  const mtls = env.BRIDGE_MTLS;
  const bridge = new BridgeClient(
    env.BRIDGE_URL,
    env.BRIDGE_HMAC_SECRET,
    mtls ? (input, init) => mtls.fetch(input, init) : undefined,
  );
  return { db, bridge, keys: new DataKeyManager(db, bridge, dataKeyCache) };
}
