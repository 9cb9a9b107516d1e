/**
 * The direct baseline of the software-key sign figures: WebCrypto signatures inside workerd, with
 * nothing around them. Starts bench/workers/webcrypto-sign.js with Miniflare's programmatic API,
 * using wrangler's own Miniflare (hence the workerd `wrangler dev` runs the vault on) and the
 * compatibility date and flags of wrangler.toml.
 *
 * A round is one request to that Worker: it runs N signatures with C in flight in its isolate and
 * returns the time they took, measured in workerd. The request's own overhead (dispatch, JSON) is
 * outside that time.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { RunResult } from './load.js';

/** The little of Miniflare 5 the benchmark uses (typed here: the top-level `miniflare` package is another version). */
export interface MiniflareLike {
  ready: Promise<URL>;
  dispatchFetch(
    input: string,
    init?: { method?: string; body?: string; headers?: Record<string, string> },
  ): Promise<{ status: number; text(): Promise<string>; json(): Promise<unknown> }>;
  dispose(): Promise<void>;
}
export type MiniflareClass = new (options: Record<string, unknown>) => MiniflareLike;
/** Miniflare 5 still takes Miniflare 4's flat options (bindings by kind) through this converter. */
export type ConvertV4 = (options: Record<string, unknown>) => Record<string, unknown>;

export type DirectAlg = 'ES256' | 'RS256';

export interface WebCryptoSample {
  publicJwk: Record<string, string>;
  message: string;
  signature: string;
}

/** Miniflare as wrangler depends on it, and its version. */
export function wranglersMiniflare(): { Miniflare: MiniflareClass; version: string; convertV4: ConvertV4 } {
  const fromBench = createRequire(import.meta.url);
  const fromWrangler = createRequire(fromBench.resolve('wrangler/package.json'));
  const mod = fromWrangler('miniflare') as { Miniflare: MiniflareClass; convertV4MiniflareOptions: ConvertV4 };
  const version = (fromWrangler('miniflare/package.json') as { version: string }).version;
  return { Miniflare: mod.Miniflare, version, convertV4: mod.convertV4MiniflareOptions };
}

/** compatibility_date and compatibility_flags of wrangler.toml (the two keys are plain one-liners there). */
export async function compatibility(repoDir: string): Promise<{ date: string; flags: string[] }> {
  const toml = await readFile(join(repoDir, 'wrangler.toml'), 'utf8');
  const date = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(toml)?.[1];
  if (!date) throw new Error('wrangler.toml: no compatibility_date');
  const flagsText = /^compatibility_flags\s*=\s*\[([^\]]*)\]/m.exec(toml)?.[1] ?? '';
  const flags = [...flagsText.matchAll(/"([^"]+)"/g)].map((m) => m[1]!);
  return { date, flags };
}

export class WorkerdWebCrypto {
  private constructor(
    private readonly mf: MiniflareLike,
    readonly miniflareVersion: string,
    readonly compatibilityDate: string,
  ) {}

  static async start(repoDir: string): Promise<WorkerdWebCrypto> {
    const { Miniflare, version } = wranglersMiniflare();
    const compat = await compatibility(repoDir);
    const script = await readFile(join(repoDir, 'bench', 'workers', 'webcrypto-sign.js'), 'utf8');
    const mf = new Miniflare({
      workers: [
        {
          config: {
            name: 'bench-webcrypto-sign',
            compatibilityDate: compat.date,
            compatibilityFlags: compat.flags,
            manifest: { mainModule: 'webcrypto-sign.js', modules: { 'webcrypto-sign.js': { type: 'esm', contents: script } } },
          },
        },
      ],
    });
    await mf.ready;
    return new WorkerdWebCrypto(mf, version, compat.date);
  }

  /** One signature and the public key, to check in Node that the Worker signs what it claims. */
  async sample(alg: DirectAlg): Promise<WebCryptoSample> {
    const res = await this.mf.dispatchFetch(`http://bench/sample?alg=${alg}`);
    if (res.status !== 200) throw new Error(`webcrypto sample ${alg}: HTTP ${res.status} ${(await res.text()).slice(0, 200)}`);
    return (await res.json()) as WebCryptoSample;
  }

  /** `count` signatures, at most `concurrency` in flight, timed inside workerd. No per-operation latencies. */
  async run(label: string, alg: DirectAlg, count: number, concurrency: number): Promise<RunResult> {
    const t0 = process.hrtime.bigint();
    const res = await this.mf.dispatchFetch(`http://bench/sign?alg=${alg}&n=${count}&c=${concurrency}`);
    const body = await res.text();
    const outerMs = Number(process.hrtime.bigint() - t0) / 1e6;
    if (res.status !== 200) throw new Error(`${label}: HTTP ${res.status} ${body.slice(0, 200)}`);
    const { count: done, elapsedMs } = JSON.parse(body) as { count: number; elapsedMs: number };
    if (done !== count) throw new Error(`${label}: the Worker signed ${done} times, not ${count}`);
    // A clock that did not move (workerd may freeze it between I/O) or one that ran past our own
    // timing of the whole request would make the rate meaningless.
    if (!(elapsedMs > 0) || elapsedMs > outerMs + 1) {
      throw new Error(`${label}: workerd's clock gave ${elapsedMs} ms for a request that took ${outerMs.toFixed(1)} ms`);
    }
    return {
      label,
      count,
      concurrency,
      wallMs: elapsedMs,
      opsPerSecond: (count * 1000) / elapsedMs,
      latenciesMs: new Float64Array(0),
    };
  }

  async stop(): Promise<void> {
    await this.mf.dispose();
  }
}
