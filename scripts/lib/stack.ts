/**
 * The local stack, as `npm run dev` runs it and as the e2e suite drives it:
 * development CA → SoftHSM2 token → HSM bridge → D1 migrations → `wrangler dev` over HTTPS →
 * bootstrap (tenant, first client, default vault) → credentials.json.
 *
 * Everything lives in `stateDir` and is reused on later runs (CA, secrets, token, database,
 * credentials), so a second start is quick and keeps all data.
 */
import { mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ensureSoftHsmToken,
  findSoftHsmModule,
  SOFTHSM_MODULE_CANDIDATES,
  startBridgeProcess,
} from '../../hsm-bridge/dev/softhsm.js';
import { bootstrapTenant, clientCredentialsToken, ensureVault, HttpStatusError, type BootstrapResult } from './bootstrap.js';
import { startCronTimer, triggerScheduled, type CronAnswer, type CronTimer } from './cron.js';
import { ensureDevCa } from './dev-ca.js';
import { readJsonIfExists, writePrivateFile } from './files.js';
import { httpsRequest } from './https-client.js';
import { assertPortFree, findFreePort } from './ports.js';
import { ensureStackSecrets } from './secrets.js';
import { waitUntil } from './wait.js';
import { applyMigrations, startWranglerDev } from './wrangler.js';
import type { ManagedProcess } from './process.js';

export const REPO_DIR = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const HSM_TOKEN_LABEL = 'edge-key-vault';

/** What a client needs to connect; written to `{stateDir}/credentials.json` (mode 0600). */
export interface DevCredentials {
  vaultUrl: string;
  authorityHost: string;
  resource: string;
  tenantId: string;
  clientId: string;
  clientSecret: string;
  caCertPath: string;
}

export interface StackOptions {
  stateDir: string;
  /** HTTPS port of the Worker; default env VAULT_PORT or 8443. */
  vaultPort?: number;
  /** Port of the HSM bridge on 127.0.0.1; default env BRIDGE_PORT or 8788. */
  bridgePort?: number;
  zone?: string;
  /** The vault created on first run; default 'dev'. */
  vaultName?: string;
  /** Progress messages (never contain secrets). */
  log?: (message: string) => void;
  /** Every output line of wrangler and the bridge, e.g. to echo them; they are kept for errors anyway. */
  onOutput?: (source: 'worker' | 'bridge', line: string) => void;
  /** How long wrangler may take to answer /healthz; default 120 s (the first build is slow). */
  readyTimeoutMs?: number;
  /**
   * Seconds between runs of the Worker's scheduled handler (wrangler dev runs no cron); default 0,
   * off: `npm run dev` turns it on (DEV_CRON_INTERVAL), tests that want it say so.
   */
  cronIntervalSeconds?: number;
  /** More Worker variables, e.g. the soak run's D1 fault injection (D1_FAULT_RATE). */
  extraVars?: Record<string, string>;
  /**
   * false: wrangler dev without its devtools inspector, for measurements (the inspector makes
   * every console.log a devtools event relayed to wrangler's Node process and kept in a buffer;
   * scripts/lib/wrangler-dev-headless.mjs). Default true.
   */
  inspector?: boolean;
}

export interface BridgeControl {
  readonly url: string;
  readonly running: boolean;
  /** Stops the bridge process only; the Worker keeps running. */
  stop(): Promise<void>;
  /** Starts it again with the same token, secret and port, and waits for /healthz. */
  start(): Promise<void>;
}

export interface Stack {
  credentials: DevCredentials;
  credentialsPath: string;
  /** PEM of the development CA. */
  caPem: string;
  /** `https://{zone}:{port}`: token service, management, health. */
  apexUrl: string;
  zone: string;
  vaultPort: number;
  bridgePort: number;
  stateDir: string;
  bridge: BridgeControl;
  /** Runs the Worker's scheduled handler now (as `npm run cron` does); resolves once it has finished. */
  runCron(): Promise<CronAnswer>;
  /** Process group of wrangler dev and its workerd (for memory figures). */
  workerPid: number;
  /** wrangler's devtools inspector for the Worker's isolate (its heap, in bench/soak.ts); none with `inspector: false`. */
  inspectorPort?: number;
  /** Stops the Worker (wrangler and workerd) and the bridge. Idempotent. */
  stop(): Promise<void>;
}

function portFrom(value: number | undefined, envName: string, fallback: number): number {
  if (value !== undefined) return value;
  const raw = process.env[envName];
  if (!raw) return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${envName} must be a port number`);
  return port;
}

function softHsmModule(): string {
  const found = process.env.PKCS11_MODULE || findSoftHsmModule();
  if (!found)
    throw new Error(
      `SoftHSM2 not found (looked for ${SOFTHSM_MODULE_CANDIDATES.join(', ')}); install it (apt-get install softhsm2) or set PKCS11_MODULE`,
    );
  return found;
}

interface BridgeSettings {
  env: NodeJS.ProcessEnv;
  port: number;
  onOutput?: StackOptions['onOutput'];
}

function bridgeControl(settings: BridgeSettings): BridgeControl {
  let current: Awaited<ReturnType<typeof startBridgeProcess>> | undefined;
  const url = `http://127.0.0.1:${settings.port}`;
  return {
    url,
    get running() {
      return current !== undefined;
    },
    async start() {
      if (current) return;
      await assertPortFree(settings.port, 'HSM bridge');
      const bridge = await startBridgeProcess({
        env: settings.env,
        port: settings.port,
        onLine: settings.onOutput ? (line: string) => settings.onOutput!('bridge', line) : undefined,
      });
      current = bridge; // startBridgeProcess resolves only once /healthz answers 200
    },
    async stop() {
      const bridge = current;
      current = undefined;
      await bridge?.stop();
    },
  };
}

export async function startStack(opts: StackOptions): Promise<Stack> {
  const log = opts.log ?? (() => {});
  const stateDir = resolve(opts.stateDir);
  const zone = opts.zone ?? 'vault.localhost';
  const vaultName = opts.vaultName ?? 'dev';
  const vaultPort = portFrom(opts.vaultPort, 'VAULT_PORT', 8443);
  const bridgePort = portFrom(opts.bridgePort, 'BRIDGE_PORT', 8788);
  const apexUrl = `https://${zone}:${vaultPort}`;
  const vaultUrl = `https://${vaultName}.${zone}:${vaultPort}`;
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  await assertPortFree(vaultPort, 'vault (wrangler dev)');

  const ca = await ensureDevCa(join(stateDir, 'ca'), zone);
  const secrets = await ensureStackSecrets(stateDir);
  // The bridge reads its secret from a file: nothing secret on a command line or in `ps e`.
  const bridgeSecretFile = join(stateDir, 'bridge-hmac-secret');
  await writePrivateFile(bridgeSecretFile, secrets.bridgeHmacSecret);
  log(`development CA: ${ca.caCertPath}`);

  const token = await ensureSoftHsmToken({ dir: join(stateDir, 'softhsm'), label: HSM_TOKEN_LABEL });
  const bridge = bridgeControl({
    port: bridgePort,
    onOutput: opts.onOutput,
    // Added to our environment by startBridgeProcess; the empty values override a developer's own
    // bridge settings (both NAME and NAME_FILE set is refused).
    env: {
      PKCS11_MODULE: softHsmModule(),
      SOFTHSM2_CONF: token.confPath,
      HSM_TOKEN_LABEL: HSM_TOKEN_LABEL,
      HSM_PIN_FILE: token.pinFile,
      BRIDGE_HMAC_SECRET_FILE: bridgeSecretFile,
      BRIDGE_HOST: '127.0.0.1',
      BRIDGE_PORT: String(bridgePort),
      // Its nonce journal, kept with the rest of the stack's state so restarts stay replay-safe.
      BRIDGE_STATE_DIR: join(stateDir, 'hsm-bridge'),
      HSM_PIN: '',
      BRIDGE_HMAC_SECRET: '',
      HSM_KEK_LABEL: '',
      BRIDGE_TLS_CERT_FILE: '',
      BRIDGE_TLS_KEY_FILE: '',
    },
  });

  let worker: ManagedProcess | undefined;
  let cron: CronTimer | undefined;
  const cleanupOnExit = () => {
    // Last resort if our process dies without calling stop(): never leave workerd running.
    if (worker)
      try {
        process.kill(-worker.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
  };
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      process.off('exit', cleanupOnExit);
      cron?.stop();
      await worker?.stop();
      await bridge.stop();
    })());

  try {
    await bridge.start();
    log(`HSM bridge: ${bridge.url} (SoftHSM2 token '${HSM_TOKEN_LABEL}')`);

    const persistTo = join(stateDir, 'wrangler');
    const wranglerCtx = { repoDir: REPO_DIR, persistTo, stateDir };
    await applyMigrations(wranglerCtx);
    log('D1 migrations applied');

    process.on('exit', cleanupOnExit);
    const inspectorPort = await findFreePort();
    worker = await startWranglerDev({
      ...wranglerCtx,
      port: vaultPort,
      inspectorPort,
      inspector: opts.inspector,
      certPath: ca.certPath,
      keyPath: ca.keyPath,
      // Local only: federated credentials may trust a plain-http OIDC issuer on loopback (tests).
      vars: { ...opts.extraVars, VAULT_ZONE: zone, BRIDGE_URL: bridge.url, ALLOW_LOOPBACK_HTTP_ISSUERS: 'true' },
      secrets: { BRIDGE_HMAC_SECRET: secrets.bridgeHmacSecret, BOOTSTRAP_SECRET: secrets.bootstrapSecret },
      onLine: opts.onOutput ? (line) => opts.onOutput!('worker', line) : undefined,
    });
    const started = worker;
    await waitUntil(
      `Worker ${apexUrl}/healthz`,
      async () => (await httpsRequest(`${apexUrl}/healthz`, { ca: ca.caPem, timeoutMs: 5000 })).status === 200,
      {
        timeoutMs: opts.readyTimeoutMs ?? 120_000,
        intervalMs: 500,
        describe: () => started.output(),
        abort: started.exited.then(String),
      },
    );
    log(`Worker: ${apexUrl}`);

    const credentialsPath = join(stateDir, 'credentials.json');
    const credentials = await ensureCredentials({
      credentialsPath,
      apexUrl,
      vaultUrl,
      vaultName,
      caPem: ca.caPem,
      caCertPath: ca.caCertPath,
      bootstrapSecret: secrets.bootstrapSecret,
      log,
    });
    const cronIntervalSeconds = opts.cronIntervalSeconds ?? 0;
    if (cronIntervalSeconds > 0) {
      cron = startCronTimer({ vaultPort, caPem: ca.caPem, intervalSeconds: cronIntervalSeconds, log });
      log(`cron: the scheduled handler runs every ${cronIntervalSeconds} s`);
    }
    const runCron = () => triggerScheduled(vaultPort, ca.caPem);
    return {
      credentials,
      credentialsPath,
      caPem: ca.caPem,
      apexUrl,
      zone,
      vaultPort,
      bridgePort,
      stateDir,
      bridge,
      runCron,
      workerPid: started.pid,
      inspectorPort: opts.inspector === false ? undefined : inspectorPort,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function ensureCredentials(args: {
  credentialsPath: string;
  apexUrl: string;
  vaultUrl: string;
  vaultName: string;
  caPem: string;
  caCertPath: string;
  bootstrapSecret: string;
  log: (message: string) => void;
}): Promise<DevCredentials> {
  const { credentialsPath, apexUrl, caPem, log } = args;
  const saved = await readJsonIfExists<DevCredentials>(credentialsPath);
  let identity: BootstrapResult | undefined;
  let accessToken: string | undefined;
  let savedRefused: unknown;
  if (saved) {
    identity = { tenantId: saved.tenantId, clientId: saved.clientId, clientSecret: saved.clientSecret };
    try {
      accessToken = await clientCredentialsToken(apexUrl, apexUrl, identity, caPem);
    } catch (err) {
      // Maybe the database was reset (e.g. `.dev/wrangler` deleted) and the Worker no longer knows
      // these credentials: bootstrap succeeds only then; otherwise this error is the one to report.
      if (!(err instanceof HttpStatusError)) throw err;
      savedRefused = err;
      identity = undefined;
    }
  }
  if (!identity) {
    const result = await bootstrapTenant(apexUrl, args.bootstrapSecret, caPem);
    if (result === 'already-bootstrapped') {
      if (savedRefused) throw savedRefused;
      throw new Error(
        `the Worker is already bootstrapped but ${credentialsPath} is missing; delete ${dirname(credentialsPath)} to start from scratch`,
      );
    }
    identity = result;
    log(saved ? 'the database was reset: bootstrapped again' : 'bootstrapped the tenant and its first administrator');
  }
  const credentials: DevCredentials = {
    vaultUrl: args.vaultUrl,
    authorityHost: apexUrl,
    resource: apexUrl,
    ...identity,
    caCertPath: args.caCertPath,
  };
  // Written before anything else can fail: the client secret is shown only once by bootstrap.
  if (JSON.stringify(saved) !== JSON.stringify(credentials)) {
    await writePrivateFile(credentialsPath, JSON.stringify(credentials, null, 2) + '\n');
  }
  accessToken ??= await clientCredentialsToken(apexUrl, apexUrl, identity, caPem);
  if ((await ensureVault(apexUrl, args.vaultName, accessToken, caPem)) === 'created') log(`created vault '${args.vaultName}'`);
  return credentials;
}
