import { defineConfig } from 'vitest/config';
import { preparePebbleTls } from './test/support/pebble-tls.js';

// Before miniflare loads (it reads NODE_EXTRA_CA_CERTS once): the worker suite's ACME tests reach
// pebble over verified HTTPS (test/support/pebble-tls.ts). Hence the pool's dynamic import.
preparePebbleTls();
const { cloudflareTest, readD1Migrations } = await import('@cloudflare/vitest-pool-workers');

// Five suites, all against real parts:
//  - worker: the Worker in workerd with local D1 and Queues, talking to a real bridge over a real
//    SoftHSM2 token (started by the global setup);
//  - bridge: the HSM bridge in Node against a real SoftHSM2 token;
//  - scripts: the operations scripts in Node (no stack);
//  - deploy: the compiled bridge from a production-only install, as its systemd unit and container run it;
//  - issuers: the certificate issuers in Node against openssl, node:https and pebble;
//  - e2e: the whole stack started as `npm run dev` starts it, driven by the official Azure SDKs.
const WORKER_EXCLUSIVE = ['test/worker/key-rotation.test.ts'];

/** The Worker in workerd with its local bindings and the suite's servers (the global setups). */
const workerPool = () =>
  cloudflareTest(async ({ inject }) => ({
    wrangler: { configPath: './wrangler.toml' },
    miniflare: {
      bindings: {
        TEST_MIGRATIONS: await readD1Migrations('./migrations'),
        BRIDGE_URL: inject<string>('bridgeUrl'),
        BRIDGE_HMAC_SECRET: inject<string>('bridgeSecret'),
        BOOTSTRAP_SECRET: 'test-bootstrap-secret-0123456789abcdef0123',
        // Federated credentials may trust the suite's own plain-http issuer on loopback.
        ALLOW_LOOPBACK_HTTP_ISSUERS: 'true',
        OIDC_ISSUER_HOST: inject('oidcIssuerHost').url,
        OIDC_ISSUER_CONTROL_TOKEN: inject('oidcIssuerHost').controlToken,
        // Every test request comes from the same (absent) client address, so the failed
        // token attempt limits would trip across unrelated files; throttle.test.ts sets
        // small limits per request instead.
        THROTTLE_TOKEN_FAILURES_PER_ADDRESS: '0',
        THROTTLE_TOKEN_FAILURES_PER_CLIENT: '0',
        // test/worker/fuzz.test.ts: replay one seed, or run longer (`npm run fuzz`).
        FUZZ_SEED: process.env.FUZZ_SEED ?? '',
        FUZZ_RUNS: process.env.FUZZ_RUNS ?? '',
        // Event delivery: the suite's webhook receivers, and their stub DNS-over-HTTPS resolver.
        WEBHOOK_RECEIVER_URL: inject('webhookReceiver').url,
        WEBHOOK_RECEIVER_CONTROL_TOKEN: inject('webhookReceiver').controlToken,
        WEBHOOK_DEAD_URL: inject('webhookReceiver').deadUrl,
        EVENTS_DOH_URL: `${inject('webhookReceiver').url}/dns-query`,
        // Certificates issued by ACME: pebble over HTTPS, its listener CA trusted (pebble-tls.ts).
        ACME_DIRECTORY_URL: inject('pebble').directoryUrl,
        ACME_EAB_KID: inject('pebble').eab.kid,
        ACME_EAB_HMAC_KEY: inject('pebble').eab.hmacKey,
        // dns-01's Cloudflare API: the receiver's stand-in (test/support/cloudflare-dns-fake.ts).
        ACME_DNS_API_BASE: `${inject('webhookReceiver').url}/cloudflare/client/v4`,
      },
    },
  }));

export default defineConfig({
  test: {
    projects: [
      {
        plugins: [workerPool()],
        test: {
          name: 'worker',
          include: ['test/worker/**/*.test.ts'],
          exclude: WORKER_EXCLUSIVE,
          globalSetup: [
            'test/support/bridge-global-setup.ts',
            'test/support/oidc-issuer-global-setup.ts',
            'test/support/webhook-receiver-global-setup.ts',
            'test/support/pebble-global-setup.ts',
          ],
          setupFiles: ['test/worker/setup.ts'],
        },
      },
      {
        // Tests that change what every file shares (the deployment's token-signing key) run
        // alone, after the other projects: run beside them they refused other files' tokens.
        plugins: [workerPool()],
        test: {
          name: 'worker-exclusive',
          include: WORKER_EXCLUSIVE,
          sequence: { groupOrder: 1 },
          globalSetup: [
            'test/support/bridge-global-setup.ts',
            'test/support/oidc-issuer-global-setup.ts',
            'test/support/webhook-receiver-global-setup.ts',
            'test/support/pebble-global-setup.ts',
          ],
          setupFiles: ['test/worker/setup.ts'],
        },
      },
      {
        test: {
          name: 'bridge',
          environment: 'node',
          include: ['hsm-bridge/test/**/*.test.ts'],
          testTimeout: 30_000,
        },
      },
      {
        // The operations scripts (pre-deploy check): Node only, no stack.
        test: {
          name: 'scripts',
          environment: 'node',
          include: ['test/scripts/**/*.test.ts'],
          testTimeout: 60_000,
        },
      },
      {
        // The bridge as deployed (test/deploy): built, installed with production dependencies only
        // (npm ci, cached outside the checkout), started as the systemd unit and container would.
        test: {
          name: 'deploy',
          environment: 'node',
          include: ['test/deploy/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 300_000,
        },
      },
      {
        // Certificate issuers checked by outside implementations (openssl, node:https) and a real
        // ACME server (pebble): Node, with the same issuer modules the Worker runs.
        test: {
          name: 'issuers',
          environment: 'node',
          include: ['test/issuers/**/*.test.ts'],
          globalSetup: ['test/support/issuers-global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'e2e',
          environment: 'node',
          include: ['test/e2e/**/*.test.ts'],
          globalSetup: ['test/support/e2e-global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
