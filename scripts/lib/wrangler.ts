/**
 * Runs wrangler for the local stack: D1 migrations and `wrangler dev` serving HTTPS with the
 * development certificate. Wrangler (which needs Node >= 22.12) runs on the repo's pinned Node
 * (the `node` devDependency), whatever Node runs us, from the repo's own node_modules.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writePrivateFile } from './files.js';
import { runToCompletion, spawnManaged, type ManagedProcess } from './process.js';

const require = createRequire(import.meta.url);
const execFileAsync = promisify(execFile);
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
    // The stack's output already carries every line. Wrangler would also append each one to a debug
    // file under WRANGLER_LOG_PATH, with an mkdir and a write per line: with one request line from
    // wrangler and one from the Worker per request, that was a third of wrangler's CPU under load
    // and cost the bench's GET about 0.1 of its rate ratio (BENCHMARKS.md). WRANGLER_WRITE_LOGS=true
    // in the caller's environment brings the file back for debugging wrangler itself.
    WRANGLER_WRITE_LOGS: process.env.WRANGLER_WRITE_LOGS ?? 'false',
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
  /** Port of wrangler's devtools inspector; with `inspector: false` there is none. */
  inspectorPort: number;
  /**
   * false: no devtools inspector (scripts/lib/wrangler-dev-headless.mjs says why the benchmarks
   * want that). Default true, as `wrangler dev` runs.
   */
  inspector?: boolean;
  /** Another wrangler config than the repo's wrangler.toml (the benchmark's hello-world Worker). */
  config?: string;
  certPath: string;
  keyPath: string;
  /** Plain variables, passed as `--var NAME:value`. */
  vars: Record<string, string>;
  /** Secrets, written to a 0600 env file that wrangler reads with `--env-file` (never argv). */
  secrets: Record<string, string>;
  onLine?: (line: string) => void;
  /** The process's name in errors and output; default 'wrangler dev'. */
  name?: string;
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
  const name = opts.name ?? 'wrangler dev';
  const spawn = (args: string[]) =>
    spawnManaged(name, nodeBinary(opts.repoDir), args, { cwd: opts.repoDir, env: wranglerEnv(opts), onLine: opts.onLine });
  if (opts.inspector === false) {
    const optionsFile = join(opts.stateDir, 'wrangler-dev.json');
    await writePrivateFile(
      optionsFile,
      JSON.stringify({
        config: opts.config ?? join(opts.repoDir, 'wrangler.toml'),
        ip: '127.0.0.1',
        port: opts.port,
        certPath: opts.certPath,
        keyPath: opts.keyPath,
        persistTo: opts.persistTo,
        envFile,
        vars: opts.vars,
      }),
    );
    return spawn([join(dirname(fileURLToPath(import.meta.url)), 'wrangler-dev-headless.mjs'), optionsFile]);
  }
  return spawn([
    WRANGLER_BIN,
    'dev',
    ...(opts.config ? ['--config', opts.config] : []),
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
  ]);
}

/**
 * A SQL export of the local D1 database (schema and rows, as `wrangler d1 export` writes for a
 * remote one), for backups of a local stack: `wrangler d1 export` has no --persist-to, so the
 * stack's SQLite file is dumped with the sqlite3 CLI instead, leaving out miniflare's own tables
 * and the transaction lines D1 refuses. Run it while the stack is stopped.
 */
export async function exportLocalD1(ctx: WranglerContext, outFile: string): Promise<void> {
  const dir = join(ctx.persistTo, 'v3', 'd1', 'miniflare-D1DatabaseObject');
  const files = (await readdir(dir)).filter((f) => f.endsWith('.sqlite') && f !== 'metadata.sqlite');
  if (files.length !== 1) throw new Error(`expected one local D1 database in ${dir}, found ${files.length}`);
  const db = join(dir, files[0]!);
  const sqlite = async (command: string) =>
    (await execFileAsync('sqlite3', ['-readonly', db, command], { maxBuffer: 512 * 1024 * 1024 })).stdout;
  const tables = (
    await sqlite(
      `select name from sqlite_master where type = 'table' and substr(name, 1, 4) != '_cf_' and substr(name, 1, 7) != 'sqlite_'`,
    )
  )
    .split('\n')
    .filter(Boolean);
  const keep = (text: string) =>
    text.split('\n').filter((line) => !/^(PRAGMA foreign_keys=OFF;|BEGIN TRANSACTION;|COMMIT;)$/.test(line));
  // Every table (and index) first, then the rows: a row's foreign key needs its parent table to
  // exist, whatever order the tables were created in; references are checked at the end.
  const names = tables.map((t) => `'${t.replace(/'/g, "''")}'`).join(', ');
  const schema = keep(
    await sqlite(
      `select sql || ';' from sqlite_master where tbl_name in (${names}) and sql is not null order by type = 'index', rowid`,
    ),
  );
  const rows = keep(await sqlite(`.dump --data-only ${tables.join(' ')}`));
  const lines = [...schema, ...rows];
  await writePrivateFile(outFile, ['PRAGMA defer_foreign_keys = true;', ...lines].join('\n'));
}

/** `wrangler d1 execute --local --file`: restores an export into an empty local database. */
export async function importLocalD1(ctx: WranglerContext, file: string): Promise<string> {
  return runToCompletion(
    'wrangler d1 execute',
    nodeBinary(ctx.repoDir),
    [WRANGLER_BIN, 'd1', 'execute', D1_DATABASE, '--local', '--persist-to', ctx.persistTo, '--file', file, '--yes'],
    { cwd: ctx.repoDir, env: wranglerEnv(ctx), timeoutMs: 120_000 },
  );
}
