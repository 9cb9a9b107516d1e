/**
 * Several Workers in one workerd, for the service-binding tests (test/e2e/edge-rpc.e2e.test.ts):
 * two instances of the vault Worker (`vault-a`, `vault-b`: two isolates, one D1 database, as two
 * isolates of one location are in production), and edge apps bound to vault-a's VaultRpc
 * entrypoint with `props` naming their application. The vault is bundled as `wrangler deploy`
 * bundles it; D1 gets the repository's migrations in order; the HSM bridge is the e2e stack's own
 * (real SoftHSM2 token).
 */
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { build } from 'esbuild';
import { convertV4MiniflareOptions, Miniflare, type V4WorkerOptions as WorkerOptions } from 'miniflare';
import { REPO_DIR } from '../../scripts/lib/stack.js';
import { runToCompletion } from '../../scripts/lib/process.js';
import type { E2eStackInfo } from './e2e-context.js';

export const ZONE = 'vault.localhost';
export const BOOTSTRAP_SECRET = 'edge-rpc-bootstrap-secret-0123456789abcdef';
const D1_ID = '00000000-0000-4000-8000-000000000000';
const COMPAT = { compatibilityDate: '2026-08-01', compatibilityFlags: ['nodejs_compat'] };

/** The vault Worker exactly as `wrangler deploy` would upload it (nodejs_compat handling included). */
async function bundleVault(dir: string): Promise<string> {
  const out = join(dir, 'vault');
  const wrangler = join(REPO_DIR, 'node_modules', 'wrangler', 'bin', 'wrangler.js');
  await runToCompletion('wrangler deploy --dry-run', process.execPath, [wrangler, 'deploy', '--dry-run', '--outdir', out], {
    cwd: REPO_DIR,
    env: { ...process.env, CI: 'true', WRANGLER_SEND_METRICS: 'false', WRANGLER_LOG_PATH: join(dir, 'logs'), NO_COLOR: '1' },
    timeoutMs: 180_000,
  });
  return join(out, 'index.js');
}

/** An edge app (it imports only the client package): esbuild is enough. */
async function bundleApp(entry: string, outfile: string): Promise<string> {
  await build({
    entryPoints: [join(REPO_DIR, entry)],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    outfile,
    logLevel: 'silent',
  });
  return outfile;
}

export interface EdgeWorkers {
  mf: Miniflare;
  /** Rebinds the edge apps to applications known only once the vault is set up. */
  bind(
    bindings: Record<string, { clientId: string; vault: string }>,
    exampleApp?: { clientId: string; vault: string; secretName: string },
  ): Promise<void>;
  /** fetch on one of the workers. */
  fetch(worker: 'vault-a' | 'vault-b' | 'edge-driver' | 'edge-app', url: string, init?: RequestInit): Promise<Response>;
  d1(): ReturnType<Miniflare['getD1Database']>;
  dispose(): Promise<void>;
}

export async function startEdgeWorkers(stack: E2eStackInfo): Promise<EdgeWorkers> {
  const dir = await mkdtemp(join(stack.stateDir, 'edge-rpc-'));
  const persistTo = join(dir, 'persist');
  const [vaultScript, driverScript, exampleScript] = await Promise.all([
    bundleVault(dir),
    bundleApp('test/support/edge-driver/index.ts', join(dir, 'driver.js')),
    bundleApp('examples/edge-app/src/index.ts', join(dir, 'example.js')),
  ]);
  const bridgeSecret = (await readFile(join(stack.stateDir, 'bridge-hmac-secret'), 'utf8')).trim();

  const vault = (name: string, consumes: boolean): WorkerOptions => ({
    name,
    modules: true,
    scriptPath: vaultScript,
    ...COMPAT,
    bindings: {
      VAULT_ZONE: ZONE,
      BRIDGE_URL: stack.bridgeUrl,
      BRIDGE_HMAC_SECRET: bridgeSecret,
      BOOTSTRAP_SECRET,
      ALLOW_LOOPBACK_HTTP_ISSUERS: 'false',
      AUDIT_ARCHIVE_PERIOD: 'day',
      AUDIT_RETENTION_DAYS: '365',
    },
    d1Databases: { DB: D1_ID },
    queueProducers: { AUDIT_QUEUE: 'ekv-audit', EVENTS_QUEUE: 'ekv-events' },
    // One consumer for both instances: the audit chain has one writer, as with one deployed Worker.
    ...(consumes
      ? {
          queueConsumers: {
            'ekv-audit': { maxBatchSize: 100, maxBatchTimeout: 1, maxRetries: 10 },
            'ekv-events': { maxBatchSize: 100, maxBatchTimeout: 1 },
          },
        }
      : {}),
  });

  const options = (
    bindings: Record<string, { clientId: string; vault: string }>,
    example?: { clientId: string; vault: string; secretName: string },
  ) => ({
    d1Persist: join(persistTo, 'd1'),
    workers: [
      vault('vault-a', true),
      vault('vault-b', false),
      {
        name: 'edge-driver',
        modules: true,
        scriptPath: driverScript,
        ...COMPAT,
        serviceBindings: Object.fromEntries(
          Object.entries(bindings).map(([binding, props]) => [binding, { name: 'vault-a', entrypoint: 'VaultRpc', props }]),
        ),
      },
      {
        name: 'edge-app',
        modules: true,
        scriptPath: exampleScript,
        ...COMPAT,
        bindings: { SECRET_NAME: example?.secretName ?? 'greeting' },
        serviceBindings: {
          VAULT: {
            name: 'vault-a',
            entrypoint: 'VaultRpc',
            props: example ? { vault: example.vault, clientId: example.clientId } : {},
          },
        },
      },
    ] satisfies WorkerOptions[],
  });

  const mf = new Miniflare(convertV4MiniflareOptions(options({})));
  await mf.ready;
  await migrate(await mf.getD1Database('DB', 'vault-a'));
  return {
    mf,
    async bind(bindings, example) {
      await mf.setOptions(convertV4MiniflareOptions(options(bindings, example)));
    },
    async fetch(worker, url, init) {
      const fetcher = await mf.getWorker(worker);
      return (await fetcher.fetch(url, init as never)) as unknown as Response;
    },
    d1: () => mf.getD1Database('DB', 'vault-a'),
    dispose: () => mf.dispose(),
  };
}

/** migrations/*.sql in order, statement by statement (they hold no triggers, so `;` ends each). */
async function migrate(db: Awaited<ReturnType<Miniflare['getD1Database']>>): Promise<void> {
  const dir = join(REPO_DIR, 'migrations');
  for (const file of (await readdir(dir)).filter((f) => f.endsWith('.sql')).sort()) {
    const sql = (await readFile(join(dir, file), 'utf8'))
      .split('\n')
      .filter((line) => !line.trimStart().startsWith('--'))
      .join('\n');
    const statements = sql
      .split(/;\s*(?:\n|$)/)
      .map((s) => s.trim())
      .filter(Boolean);
    await db.batch(statements.map((s) => db.prepare(s)));
  }
}
