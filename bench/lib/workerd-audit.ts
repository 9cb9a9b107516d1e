/**
 * The audit consumer's throughput in workerd: bench/workers/audit-consumer.js, bundled with esbuild
 * together with the product's unchanged src/audit/consumer.ts, runs under wrangler's own Miniflare
 * (the workerd `wrangler dev` runs the vault on, with wrangler.toml's compatibility date and flags)
 * with a local D1 of its own, to which the project's migrations (migrations/*.sql) are applied
 * statement by statement when it starts.
 *
 * A round is one request: the Worker hands N batches of 100 events to persistAuditBatch one after
 * the other, as the queue does with one consumer invocation at a time, and returns workerd's time
 * for them and the D1 statements they prepared. Building the events is outside that time.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bundleForWorkerd } from './workerd-bundle.js';
import { compatibility, wranglersMiniflare, type MiniflareLike } from './workerd-webcrypto.js';

export interface ConsumerRound {
  events: number;
  batches: number;
  chains: number;
  elapsedMs: number;
  /** Events persisted per second (workerd's clock). */
  perSecond: number;
  statements: number;
}

/** The project's migrations, in order, split at drizzle's statement breakpoints. */
export async function migrationStatements(repoDir: string): Promise<string[]> {
  const dir = join(repoDir, 'migrations');
  const files = (await readdir(dir)).filter((f) => f.endsWith('.sql')).sort();
  const out: string[] = [];
  for (const f of files) {
    const sql = await readFile(join(dir, f), 'utf8');
    for (const s of sql.split('--> statement-breakpoint')) if (s.trim()) out.push(s.trim());
  }
  return out;
}

export class WorkerdAuditConsumer {
  private constructor(private readonly mf: MiniflareLike) {}

  static async start(repoDir: string): Promise<WorkerdAuditConsumer> {
    const { Miniflare, convertV4 } = wranglersMiniflare();
    const compat = await compatibility(repoDir);
    const script = await bundleForWorkerd(join(repoDir, 'bench', 'workers', 'audit-consumer.js'));
    const mf = new Miniflare(
      convertV4({
        workers: [
          {
            name: 'bench-audit-consumer',
            compatibilityDate: compat.date,
            compatibilityFlags: compat.flags,
            modules: true,
            script,
            d1Databases: { DB: 'bench-audit-consumer' },
          },
        ],
      }),
    );
    await mf.ready;
    const self = new WorkerdAuditConsumer(mf);
    const statements = await migrationStatements(repoDir);
    const res = await mf.dispatchFetch('http://bench/migrate', { method: 'POST', body: JSON.stringify(statements) });
    if (res.status !== 200)
      throw new Error(`audit consumer Worker: migrations: HTTP ${res.status} ${(await res.text()).slice(0, 300)}`);
    return self;
  }

  async count(): Promise<{ records: number; heads: number; headSeqs: number }> {
    const res = await this.mf.dispatchFetch('http://bench/count');
    if (res.status !== 200) throw new Error(`audit consumer Worker: count: HTTP ${res.status}`);
    return (await res.json()) as { records: number; heads: number; headSeqs: number };
  }

  /** `batches` batches of `size` events over `chains` vault chains; checks every event was stored. */
  async run(batches: number, size: number, chains: number): Promise<ConsumerRound> {
    const before = await this.count();
    const t0 = process.hrtime.bigint();
    const res = await this.mf.dispatchFetch(`http://bench/run?batches=${batches}&size=${size}&chains=${chains}`, {
      method: 'POST',
    });
    const body = await res.text();
    const outerMs = Number(process.hrtime.bigint() - t0) / 1e6;
    if (res.status !== 200) throw new Error(`audit consumer Worker: HTTP ${res.status} ${body.slice(0, 300)}`);
    const r = JSON.parse(body) as { events: number; acked: number; retried: number; elapsedMs: number; statements: number };
    if (r.acked !== r.events || r.retried !== 0)
      throw new Error(`audit consumer: ${r.acked} of ${r.events} acknowledged, ${r.retried} retried`);
    const after = await this.count();
    if (after.records - before.records !== r.events)
      throw new Error(`audit consumer: ${after.records - before.records} records stored for ${r.events} events`);
    if (after.headSeqs - before.headSeqs !== r.events)
      throw new Error('audit consumer: the chain heads did not move by the number of events');
    if (!(r.elapsedMs > 0) || r.elapsedMs > outerMs + 1)
      throw new Error(`audit consumer: workerd's clock gave ${r.elapsedMs} ms for a request that took ${outerMs.toFixed(1)} ms`);
    return {
      events: r.events,
      batches,
      chains,
      elapsedMs: r.elapsedMs,
      perSecond: (r.events * 1000) / r.elapsedMs,
      statements: r.statements,
    };
  }

  async stop(): Promise<void> {
    await this.mf.dispose();
  }
}
