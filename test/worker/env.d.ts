import type { D1Migration } from 'cloudflare:test';
import type { Env as WorkerEnv } from '../../src/core/env';

declare global {
  namespace Cloudflare {
    interface Env extends WorkerEnv {
      TEST_MIGRATIONS: D1Migration[];
      /** test/worker/fuzz.test.ts: one seed to replay, and runs per seed ('' for the defaults). */
      FUZZ_SEED: string;
      FUZZ_RUNS: string;
    }
  }
}
