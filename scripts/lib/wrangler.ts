/**
 * Runs wrangler for the local stack: D1 migrations and `wrangler dev` serving HTTPS with the
 * development certificate. Wrangler (which needs Node >= 22.12) runs on the repo's pinned Node
 * (the `node` devDependency), whatever Node runs us, from the repo's own node_modules.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { writePrivateFile } from './files.js';
import { runToCompletion, spawnManaged, type ManagedProcess } from './process.js';

const require = createRequire(import.meta.url);
const WRANGLER_BIN = join(dirname(require.resolve('wrangler/package.json')), 'bin', 'wrangler.js');
export const D1_DATABASE = 'edge-key-vault';

function nodeBinary(repoDir: string): string {
  const pinned = join(repoDir, 'node_modules', '.bin', 'node');
  return existsSync(pinned) ? pinned : process.execPath;
}

export interface WranglerContext {
  /** The repository root (where wrangler.toml lives). */
  repoDir: string;
  /** Local persistence for D1, Queues, caches: `--persist-to`. */
  persistTo: string;
  /** Where this stack keeps wrangler's dev registry and logs, so two stacks never share them. */
  stateDir: string;
}

function wranglerEnv(ctx: WranglerContext): NodeJS.ProcessEnv {
  return {
    ...process.env,
    CI: 'true', // non-interactive: confirmations take their default, no interactive dev session
    WRANGLER_SEND_METRICS: 'false',
    WRANGLER_SEND_ERROR_REPORTS: 'false',
    WRANGLER_REGISTRY_PATH: join(ctx.stateDir, 'wrangler-registry'),
    WRANGLER_LOG_PATH: join(ctx.stateDir, 'logs'),
    NO_COLOR: '1',
    FORCE_COLOR: '0',
  };
}

export async function applyMigrations(ctx: WranglerContext): Promise<string> {
  return runToCompletion(
    'wrangler d1 migrations apply',
    nodeBinary(ctx.repoDir),
    [WRANGLER_BIN, 'd1', 'migrations', 'apply', D1_DATABASE, '--local', '--persist-to', ctx.persistTo],
    { cwd: ctx.repoDir, env: wranglerEnv(ctx), timeoutMs: 120_000 },
  );
}

export interface WranglerDevOptions extends WranglerContext {
  port: number;
  inspectorPort: number;
  certPath: string;
  keyPath: string;
  /** Plain variables, passed as `--var NAME:value`. */
  vars: Record<string, string>;
  /** Secrets, written to a 0600 env file that wrangler reads with `--env-file` (never argv). */
  secrets: Record<string, string>;
  onLine?: (line: string) => void;
}

function dotenvLine(name: string, value: string): string {
  if (!/^[A-Z_][A-Z0-9_]*$/.test(name) || /["\\\n\r]/.test(value)) throw new Error(`cannot write ${name} to an env file`);
  return `${name}="${value}"\n`;
}

export async function startWranglerDev(opts: WranglerDevOptions): Promise<ManagedProcess> {
  // With --env-file wrangler ignores .dev.vars and binds exactly the keys of this file as secrets.
  const envFile = join(opts.stateDir, 'worker.env');
  await writePrivateFile(
    envFile,
    Object.entries(opts.secrets)
      .map(([k, v]) => dotenvLine(k, v))
      .join(''),
  );
  const args = [
    WRANGLER_BIN,
    'dev',
    '--local',
    '--ip',
    '127.0.0.1',
    '--port',
    String(opts.port),
    '--inspector-port',
    String(opts.inspectorPort),
    '--local-protocol',
    'https',
    '--https-key-path',
    opts.keyPath,
    '--https-cert-path',
    opts.certPath,
    '--persist-to',
    opts.persistTo,
    '--env-file',
    envFile,
    '--show-interactive-dev-session=false',
    '--live-reload=false',
    ...Object.entries(opts.vars).flatMap(([k, v]) => ['--var', `${k}:${v}`]),
  ];
  return spawnManaged('wrangler dev', nodeBinary(opts.repoDir), args, {
    cwd: opts.repoDir,
    env: wranglerEnv(opts),
    onLine: opts.onLine,
  });
}
