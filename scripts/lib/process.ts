/**
 * Child processes for the dev stack: each runs in its own process group so stopping it also stops
 * whatever it spawned (wrangler starts workerd, esbuild), and its output is kept in a bounded tail
 * for error messages instead of flooding the console.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export interface ManagedProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** The last lines the process wrote (stdout and stderr interleaved). */
  output(): string;
  /** Resolves with the exit code (or signal) once the process has exited. */
  readonly exited: Promise<number | string>;
  /** SIGTERM to the whole group, SIGKILL after `graceMs`; resolves when the leader has exited. */
  stop(graceMs?: number): Promise<void>;
}

export interface SpawnOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Called with each complete output line, e.g. to echo it with a prefix. */
  onLine?: (line: string) => void;
  maxLines?: number;
}

export function spawnManaged(name: string, command: string, args: string[], opts: SpawnOptions = {}): ManagedProcess {
  const child = spawn(command, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    detached: true, // own process group: kill(-pid) reaches the grandchildren too
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`${name}: failed to spawn ${command}`);
  const pid = child.pid;
  const maxLines = opts.maxLines ?? 200;
  const lines: string[] = [];
  const collect = (stream: NodeJS.ReadableStream) => {
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const parts = (partial + chunk).split(/\r?\n/);
      partial = parts.pop() ?? '';
      for (const line of parts) {
        lines.push(line);
        if (lines.length > maxLines) lines.shift();
        opts.onLine?.(line);
      }
    });
  };
  collect(child.stdout!);
  collect(child.stderr!);

  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
    child.once('error', (err) => {
      lines.push(`spawn error: ${err.message}`);
      resolve('spawn-error');
    });
  });
  let stopping: Promise<void> | undefined;

  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-pid, signal);
    } catch {
      // the group is already gone
    }
  };

  return {
    name,
    child,
    pid,
    output: () => lines.join('\n'),
    exited,
    stop(graceMs = 5000) {
      stopping ??= (async () => {
        signalGroup('SIGTERM');
        const timer = setTimeout(() => signalGroup('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
        // The leader may exit before its children (workerd): make sure none is left behind.
        signalGroup('SIGKILL');
      })();
      return stopping;
    },
  };
}

/** Runs a command to completion; rejects with its output if it fails. */
export async function runToCompletion(
  name: string,
  command: string,
  args: string[],
  opts: SpawnOptions & { timeoutMs?: number } = {},
): Promise<string> {
  const proc = spawnManaged(name, command, args, { ...opts, maxLines: opts.maxLines ?? 500 });
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const timer = setTimeout(() => void proc.stop(), timeoutMs);
  const code = await proc.exited;
  clearTimeout(timer);
  if (code !== 0) throw new Error(`${name} failed (${code}):\n${proc.output()}`);
  return proc.output();
}
