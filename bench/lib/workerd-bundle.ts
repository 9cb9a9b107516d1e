/**
 * One Worker entry bundled for workerd, as the bench's Miniflare harnesses load them: ESM, the
 * product's own src/ pulled in through the entry's imports, `node:*` and `cloudflare:*` left to
 * the runtime (nodejs_compat provides the former), workerd's package conditions first.
 */
import { build } from 'esbuild';

export async function bundleForWorkerd(entry: string): Promise<string> {
  const out = await build({
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    conditions: ['workerd', 'worker', 'browser'],
    mainFields: ['module', 'main'],
    external: ['node:*', 'cloudflare:*'],
    write: false,
    logLevel: 'silent',
  });
  return out.outputFiles[0]!.text;
}
