/** What the benchmark ran on and with: recorded next to every result. */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const require = createRequire(import.meta.url);

/** A package's version, as `from` (a package.json path) resolves it; default: as the benchmark does. */
async function packageVersion(name: string, from?: string): Promise<string | undefined> {
  try {
    const path = (from ? createRequire(from) : require).resolve(`${name}/package.json`);
    return (JSON.parse(await readFile(path, 'utf8')) as { version?: string }).version;
  } catch {
    return undefined;
  }
}

async function command(cmd: string, args: string[], cwd?: string): Promise<string | undefined> {
  try {
    const { stdout } = await execFileAsync(cmd, args, { cwd, timeout: 10_000 });
    return stdout.trim();
  } catch {
    return undefined;
  }
}

export interface MachineInfo {
  cpuModel: string;
  logicalCpus: number;
  memoryGiB: number;
  os: string;
  node: string;
  loadAverageAtStart: number[];
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    logicalCpus: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    loadAverageAtStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

export interface SoftwareInfo {
  wrangler?: string;
  /** The workerd and Miniflare wrangler runs (its own dependencies, not the top-level copies). */
  workerd?: string;
  miniflare?: string;
  graphenePk11?: string;
  softhsm?: string;
  git: { commit?: string; dirty: boolean };
}

export async function softwareInfo(repoDir: string): Promise<SoftwareInfo> {
  let wranglerPackage: string | undefined;
  try {
    wranglerPackage = require.resolve('wrangler/package.json');
  } catch {
    wranglerPackage = undefined;
  }
  const [wrangler, workerd, miniflare, graphenePk11, softhsm, commit, status] = await Promise.all([
    packageVersion('wrangler'),
    packageVersion('workerd', wranglerPackage),
    packageVersion('miniflare', wranglerPackage),
    packageVersion('graphene-pk11'),
    command('softhsm2-util', ['--version']),
    command('git', ['rev-parse', '--short', 'HEAD'], repoDir),
    // The benchmark's own outputs do not make the tree dirty.
    command('git', ['status', '--porcelain', '--', '.', ':!bench/results', ':!BENCHMARKS.md'], repoDir),
  ]);
  return { wrangler, workerd, miniflare, graphenePk11, softhsm, git: { commit, dirty: Boolean(status) } };
}
