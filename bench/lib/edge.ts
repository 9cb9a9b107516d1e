/**
 * Helpers of the edge figures (`npm run bench -- --only edge`): a hello-world Worker under its own
 * `wrangler dev` started the way the stack starts the vault's, the CPU time of a process tree's
 * workerd processes (from /proc), the gzipped size of the Worker bundle `wrangler deploy` would
 * upload.
 */
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { measureBundle, type BundleSize } from '../../scripts/lib/bundle-size.js';
import type { ManagedProcess } from '../../scripts/lib/process.js';
import { startWranglerDev } from '../../scripts/lib/wrangler.js';
import { compatibility } from './workerd-webcrypto.js';

/**
 * bench/workers/hello.js under `wrangler dev`, started by the function that starts the vault's
 * (scripts/lib/wrangler.ts: local, HTTPS with the stack's certificate, no live reload, its own
 * persist directory), with the same `inspector` choice.
 */
export async function startHelloWorker(opts: {
  repoDir: string;
  stateDir: string;
  port: number;
  inspectorPort: number;
  inspector: boolean;
  certPath: string;
  keyPath: string;
  onLine?: (line: string) => void;
}): Promise<ManagedProcess> {
  const config = join(opts.repoDir, 'bench', 'workers', 'hello.toml');
  const vault = await compatibility(opts.repoDir);
  const toml = await readFile(config, 'utf8');
  const date = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(toml)?.[1];
  const flags = [...(/^compatibility_flags\s*=\s*\[([^\]]*)\]/m.exec(toml)?.[1] ?? '').matchAll(/"([^"]+)"/g)].map((m) => m[1]!);
  if (date !== vault.date || flags.join(',') !== vault.flags.join(',')) {
    throw new Error(
      `bench/workers/hello.toml must have wrangler.toml's compatibility_date and flags (${vault.date}, ${vault.flags.join(',')})`,
    );
  }
  await mkdir(opts.stateDir, { recursive: true });
  return startWranglerDev({
    name: 'wrangler dev (hello)',
    repoDir: opts.repoDir,
    stateDir: opts.stateDir,
    persistTo: join(opts.stateDir, 'wrangler'),
    config,
    port: opts.port,
    inspectorPort: opts.inspectorPort,
    inspector: opts.inspector,
    certPath: opts.certPath,
    keyPath: opts.keyPath,
    vars: {},
    secrets: {},
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
