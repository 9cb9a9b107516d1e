/**
 * Helpers of the edge figures (`npm run bench -- --only edge`): a hello-world Worker under its own
 * `wrangler dev` started the way the stack starts the vault's, the CPU time of a process tree's
 * workerd processes (from /proc), the gzipped size of the Worker bundle `wrangler deploy` would
 * upload.
 */
import { readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { measureBundle, type BundleSize } from '../../scripts/lib/bundle-size.js';
import { spawnManaged, type ManagedProcess } from '../../scripts/lib/process.js';
import { compatibility } from './workerd-webcrypto.js';

const require = createRequire(import.meta.url);
const WRANGLER_BIN = join(dirname(require.resolve('wrangler/package.json')), 'bin', 'wrangler.js');

function nodeBinary(repoDir: string): string {
  return join(repoDir, 'node_modules', '.bin', 'node');
}

function wranglerEnv(stateDir: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    CI: 'true',
    WRANGLER_SEND_METRICS: 'false',
    WRANGLER_SEND_ERROR_REPORTS: 'false',
    WRANGLER_REGISTRY_PATH: join(stateDir, 'wrangler-registry'),
    WRANGLER_LOG_PATH: join(stateDir, 'logs'),
    NO_COLOR: '1',
    FORCE_COLOR: '0',
  };
}

/**
 * bench/workers/hello.js under `wrangler dev`, with the flags scripts/lib/wrangler.ts gives the
 * vault's (local, HTTPS with the stack's certificate, no live reload, its own persist directory).
 */
export async function startHelloWorker(opts: {
  repoDir: string;
  stateDir: string;
  port: number;
  inspectorPort: number;
  certPath: string;
  keyPath: string;
  onLine?: (line: string) => void;
}): Promise<ManagedProcess> {
  const vault = await compatibility(opts.repoDir);
  const toml = await readFile(join(opts.repoDir, 'bench', 'workers', 'hello.toml'), 'utf8');
  const date = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(toml)?.[1];
  const flags = [...(/^compatibility_flags\s*=\s*\[([^\]]*)\]/m.exec(toml)?.[1] ?? '').matchAll(/"([^"]+)"/g)].map((m) => m[1]!);
  if (date !== vault.date || flags.join(',') !== vault.flags.join(',')) {
    throw new Error(
      `bench/workers/hello.toml must have wrangler.toml's compatibility_date and flags (${vault.date}, ${vault.flags.join(',')})`,
    );
  }
  const args = [
    WRANGLER_BIN,
    'dev',
    '--config',
    join(opts.repoDir, 'bench', 'workers', 'hello.toml'),
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
    join(opts.stateDir, 'wrangler'),
    '--show-interactive-dev-session=false',
    '--live-reload=false',
  ];
  return spawnManaged('wrangler dev (hello)', nodeBinary(opts.repoDir), args, {
    cwd: opts.repoDir,
    env: wranglerEnv(opts.stateDir),
    onLine: opts.onLine,
  });
}

const TICKS_PER_SECOND = 100; // USER_HZ on Linux (getconf CLK_TCK)

interface ProcStat {
  pid: number;
  comm: string;
  ppid: number;
  ticks: number;
}

async function procStats(): Promise<ProcStat[]> {
  const out: ProcStat[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const text = await readFile(`/proc/${name}/stat`, 'utf8');
      // comm is in parentheses and may contain spaces; the fields after it are space-separated.
      const close = text.lastIndexOf(')');
      const comm = text.slice(text.indexOf('(') + 1, close);
      const f = text.slice(close + 2).split(' ');
      out.push({ pid: Number(name), comm, ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) });
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** CPU seconds (utime + stime) used so far by the workerd processes under `rootPid`. */
export async function workerdCpuSeconds(rootPid: number): Promise<{ seconds: number; pids: number[] }> {
  const all = await procStats();
  const children = new Map<number, ProcStat[]>();
  for (const p of all) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
  const tree: ProcStat[] = [];
  const walk = (pid: number) => {
    for (const c of children.get(pid) ?? []) {
      tree.push(c);
      walk(c.pid);
    }
  };
  walk(rootPid);
  const workerd = tree.filter((p) => p.comm.startsWith('workerd'));
  if (workerd.length === 0) throw new Error(`no workerd process under pid ${rootPid}`);
  return { seconds: workerd.reduce((n, p) => n + p.ticks, 0) / TICKS_PER_SECOND, pids: workerd.map((p) => p.pid) };
}

/** The bundle `wrangler deploy` would upload: the same measure as `npm run check:bundle`. */
export async function bundleSize(repoDir: string): Promise<BundleSize> {
  return measureBundle(repoDir);
}
