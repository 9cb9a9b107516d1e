/**
 * Wrangler against the Cloudflare account (deploys, not the local stack): the repo's own wrangler
 * on the pinned Node, with the user's login or CLOUDFLARE_API_TOKEN. Queries answer "absent"
 * only on wrangler's not-found answers; any other failure (not logged in, network) stops.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
const WRANGLER_BIN = join(dirname(require.resolve('wrangler/package.json')), 'bin', 'wrangler.js');

export interface WranglerResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RemoteWrangler {
  run(args: string[], opts?: { input?: string }): Promise<WranglerResult>;
}

export function remoteWrangler(repoDir: string): RemoteWrangler {
  const pinned = join(repoDir, 'node_modules', '.bin', 'node');
  const node = existsSync(pinned) ? pinned : process.execPath;
  return {
    run(args, opts = {}) {
      return new Promise((resolve, reject) => {
        const child = spawn(node, [WRANGLER_BIN, ...args], {
          cwd: repoDir,
          env: { ...process.env, CI: 'true', WRANGLER_SEND_METRICS: 'false', NO_COLOR: '1', FORCE_COLOR: '0' },
          stdio: ['pipe', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
        child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
        child.on('error', reject);
        child.on('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
        // A secret goes through stdin only: never argv, never the environment of a child.
        child.stdin.end(opts.input ?? '');
      });
    },
  };
}

/** Throws with wrangler's own words (its output holds no secret: values only ever go to stdin). */
export function ensureOk(what: string, r: WranglerResult): WranglerResult {
  if (r.code !== 0) throw new Error(`${what} failed (${r.code}):\n${(r.stderr || r.stdout).trim().slice(-2000)}`);
  return r;
}

const NOT_FOUND = /not.?found|does not exist|doesn't exist|10006|10007|10013|11000/i;

/** Names of the secrets set on the Worker of `env`; none if the Worker was never deployed. */
export async function listRemoteSecrets(w: RemoteWrangler, env: string): Promise<Set<string>> {
  const r = await w.run(['secret', 'list', '--env', env, '--format', 'json']);
  if (r.code !== 0 && NOT_FOUND.test(r.stderr + r.stdout)) return new Set();
  ensureOk('wrangler secret list', r);
  const list = JSON.parse(r.stdout.slice(r.stdout.indexOf('['))) as { name: string }[];
  return new Set(list.map((s) => s.name));
}

/** Whether a resource exists, by a `… info NAME` style command; not-found answers mean no. */
export async function exists(w: RemoteWrangler, what: string, args: string[]): Promise<boolean> {
  const r = await w.run(args);
  if (r.code === 0) return true;
  if (NOT_FOUND.test(r.stderr + r.stdout)) return false;
  ensureOk(what, r);
  return false;
}

export async function d1Databases(w: RemoteWrangler): Promise<{ name: string; uuid: string }[]> {
  const r = ensureOk('wrangler d1 list', await w.run(['d1', 'list', '--json']));
  return JSON.parse(r.stdout.slice(r.stdout.indexOf('['))) as { name: string; uuid: string }[];
}
