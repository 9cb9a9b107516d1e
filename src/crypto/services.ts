/**
 * What a request (or a job) uses below the object layer: the database, the bridge client and the
 * data keys, with the isolate-wide data-key cache.
 */
import { BridgeClient, type BridgeFetch } from './bridge-client';
import { DataKeyCache, DataKeyManager, DEFAULT_POLICY } from './data-keys';
import type { Env } from '../core/env';
import { newMeter, type RequestMeter } from '../core/log';
import { d1FaultRate, database, type Database } from '../storage/db';

/** Isolate-wide: unwrapped data keys outlive requests, which is what keeps warm reads off the bridge. */
export const dataKeyCache = new DataKeyCache(DEFAULT_POLICY, 'data-keys');

export interface Services {
  db: Database;
  bridge: BridgeClient;
  keys: DataKeyManager;
  /** What this request (or job) did, for its log line and metrics (src/core/log.ts). */
  meter: RequestMeter;
}

export function services(env: Env): Services {
  const db = database(env.DB, d1FaultRate(env));
  // With an mTLS certificate binding, the bridge is reached through it so the Worker presents its certificate.
  const mtls = env.BRIDGE_MTLS;
  const meter = newMeter();
  const bridge = new BridgeClient(
    env.BRIDGE_URL,
    env.BRIDGE_HMAC_SECRET,
    metered(meter, mtls ? (input, init) => mtls.fetch(input, init) : (input, init) => fetch(input, init)),
  );
  const keys = new DataKeyManager(db, bridge, dataKeyCache);
  keys.meter = meter;
  return { db, bridge, keys, meter };
}

/**
 * Counts each HTTP call to the bridge, and those that failed as the bridge's (no answer, a refused
 * signature, a 5xx); a 4xx about the caller's input is an answer, not a bridge error.
 */
function metered(meter: RequestMeter, send: BridgeFetch): BridgeFetch {
  return (input, init) => {
    meter.bridgeCalls++;
    return send(input, init).then(
      (res) => {
        if (res.status >= 500 || res.status === 401) meter.bridgeErrors++;
        return res;
      },
      (err: unknown) => {
        meter.bridgeErrors++;
        throw err;
      },
    );
  };
}
