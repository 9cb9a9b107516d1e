/**
 * The size of the Worker bundle `wrangler deploy` would upload, gzipped as Cloudflare counts it,
 * with the packages that take the most of it (from esbuild's metafile). Shared by
 * `npm run check:bundle`, its test (the bundle must stay under BUNDLE_LIMIT_BYTES as features are
 * added: issue 13) and the edge benchmark, so all three measure the same thing.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';

const require = createRequire(import.meta.url);
const WRANGLER_BIN = join(dirname(require.resolve('wrangler/package.json')), 'bin', 'wrangler.js');

/** Issue 13's limit for the gzipped Worker bundle. */
export const BUNDLE_LIMIT_BYTES = 350 * 1024;

export interface BundleSize {
  files: string[];
  bytes: number;
  gzipBytes: number;
  /** Raw bytes each package (or src/<layer>) contributes to the output, largest first. */
  inputs: Array<{ name: string; bytes: number }>;
}

/** `node_modules/foo/…` → `foo`, `src/http/x.ts` → `src/http`: what one would act on. */
function owner(path: string): string {
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  if (pkg) return pkg[1]!;
  const parts = path.split('/').filter((p) => p !== '..' && p !== '.');
  return parts[0] === 'src' ? parts.slice(0, 2).join('/') : parts[0]!;
}

/**
 * `wrangler deploy --dry-run --outdir` with wrangler.toml's own build settings (no flags of ours,
 * so the check follows whatever deploy does); the `.js`/`.wasm` outputs gzipped at level 9, source
 * maps left out. wrangler wants Node 22, which the repository pins as the `node` package.
 */
export async function measureBundle(repoDir: string): Promise<BundleSize> {
  const outdir = await mkdtemp(join(os.tmpdir(), 'ekv-bundle-'));
  try {
    const metafile = join(outdir, 'meta.json');
    await promisify(execFile)(
      join(repoDir, 'node_modules', '.bin', 'node'),
      [WRANGLER_BIN, 'deploy', '--dry-run', '--outdir', join(outdir, 'out'), '--metafile', metafile],
      {
        cwd: repoDir,
        env: {
          ...process.env,
          CI: 'true',
          WRANGLER_SEND_METRICS: 'false',
          WRANGLER_SEND_ERROR_REPORTS: 'false',
          WRANGLER_LOG_PATH: join(outdir, 'logs'),
          NO_COLOR: '1',
        },
        timeout: 180_000,
        maxBuffer: 16 * 1024 * 1024,
      },
    );
    const files = (await readdir(join(outdir, 'out'), { recursive: true })).filter((f) => /\.(m?js|wasm)$/.test(f));
    let bytes = 0;
    let gzipBytes = 0;
    for (const f of files) {
      const path = join(outdir, 'out', f);
      if (!(await stat(path)).isFile()) continue;
      const content = await readFile(path);
      bytes += content.length;
      gzipBytes += gzipSync(content, { level: 9 }).length;
    }
    const meta = JSON.parse(await readFile(metafile, 'utf8')) as {
      outputs: Record<string, { inputs?: Record<string, { bytesInOutput: number }> }>;
    };
    const byOwner = new Map<string, number>();
    for (const output of Object.values(meta.outputs)) {
      for (const [path, input] of Object.entries(output.inputs ?? {})) {
        byOwner.set(owner(path), (byOwner.get(owner(path)) ?? 0) + input.bytesInOutput);
      }
    }
    const inputs = [...byOwner].map(([name, b]) => ({ name, bytes: b })).sort((a, b) => b.bytes - a.bytes);
    return { files, bytes, gzipBytes, inputs };
  } finally {
    await rm(outdir, { recursive: true, force: true });
  }
}

/** A human summary: total, limit and the largest contributors. */
export function describeBundle(size: BundleSize, top = 10): string {
  const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;
  return [
    `Worker bundle: ${kb(size.gzipBytes)} gzipped (${kb(size.bytes)} raw), limit ${kb(BUNDLE_LIMIT_BYTES)} gzipped`,
    'largest contributors (raw bytes in the output):',
    ...size.inputs.slice(0, top).map((i) => `  ${i.name.padEnd(28)} ${kb(i.bytes)}`),
  ].join('\n');
}
