import type { DevCredentials } from '../../scripts/lib/stack.js';

/** What the e2e global setup hands the test files (see test/support/e2e-global-setup.ts). */
export interface E2eStackInfo {
  credentials: DevCredentials;
  /** PEM of the stack's development CA. */
  caPem: string;
  /** `https://vault.localhost:{port}`: token service, management, health. */
  apexUrl: string;
  zone: string;
  vaultPort: number;
  /** The stack's state directory (local D1, queues, token) and the Worker's and bridge's output. */
  stateDir: string;
  outputLog: string;
  /** The HSM bridge (plain http on loopback); its HMAC secret is `{stateDir}/bridge-hmac-secret`. */
  bridgeUrl: string;
  /** The test-only control endpoint that stops and restarts the HSM bridge. */
  control: { url: string; token: string };
}

declare module 'vitest' {
  export interface ProvidedContext {
    e2eStack: E2eStackInfo;
  }
}
