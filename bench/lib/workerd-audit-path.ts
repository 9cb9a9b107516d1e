/**
 * What the audit path costs a warm secret GET: the vault's own Worker (src/index.ts, bundled with
 * esbuild through the bench-only entry bench/workers/audit-path.js) runs twice in one Miniflare
 * (wrangler's own, hence the workerd `wrangler dev` runs; wrangler.toml's compatibility date and
 * flags, vars and queue settings), on one local D1 with the project's migrations:
 *
 *  - "audited": AUDIT_QUEUE is a real local queue (ekv-audit, max_batch_size 100,
 *    max_batch_timeout 1 s, as in wrangler.toml) consumed by the same Worker's queue handler in
 *    the same workerd process: the production path;
 *  - "unaudited": AUDIT_QUEUE is a stub that accepts send() and drops the event.
 *
 * Both use the stack's running HSM bridge (for the one unwrap of the data key per isolate) and
 * the same tenant, token, vault and secret, set up through the audited Worker's own API.
 * Requests go from this process to workerd through Miniflare's dispatch (plain HTTP on loopback,
 * no `wrangler dev` proxy, no TLS), with the vault's https URL, so the Worker sees the same URL.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bundleForWorkerd } from './workerd-bundle.js';
import { runFixed, type Operation, type RunResult } from './load.js';
import { migrationStatements } from './workerd-audit.js';
import { compatibility, wranglersMiniflare, type MiniflareLike } from './workerd-webcrypto.js';

interface FetcherLike {
  fetch(
    input: string,
    init?: { method?: string; body?: string; headers?: Record<string, string> },
  ): Promise<{ status: number; text(): Promise<string> }>;
}
interface D1Like {
  prepare(sql: string): {
    bind(...values: unknown[]): { first<T>(column?: string): Promise<T | null>; run(): Promise<unknown> };
    first<T>(column?: string): Promise<T | null>;
    run(): Promise<unknown>;
  };
}
interface MiniflareMore extends MiniflareLike {
  getWorker(name: string): Promise<FetcherLike>;
  getD1Database(binding: string, worker?: string): Promise<D1Like>;
}

const APEX = 'https://vault.localhost';
const VAULT = 'bench';
const SECRET = 'bench-secret';
const API_VERSION = '2026-04-01';

/** [vars] of wrangler.toml (plain one-line `KEY = "value"` entries). */
async function tomlVars(repoDir: string): Promise<Record<string, string>> {
  const toml = await readFile(join(repoDir, 'wrangler.toml'), 'utf8');
  const section = /^\[vars\]\n([\s\S]*?)(?=^\[)/m.exec(toml)?.[1] ?? '';
  return Object.fromEntries([...section.matchAll(/^([A-Z_]+)\s*=\s*"([^"]*)"/gm)].map((m) => [m[1]!, m[2]!]));
}

export interface AuditPathOptions {
  repoDir: string;
  bridgeUrl: string;
  bridgeHmacSecret: string;
  /** More vars, e.g. bench/lib/unthrottled.ts: the rounds run at saturation, past the per-caller limit. */
  extraVars?: Record<string, string>;
}

export class WorkerdAuditPath {
  private drainedSeq = 0;
  /** Audited requests for the vault since the last drain (each leaves one record in its chain). */
  private pending = 0;

  private constructor(
    private readonly mf: MiniflareMore,
    private readonly audited: FetcherLike,
    private readonly unaudited: FetcherLike,
    private readonly token: string,
    private readonly value: string,
  ) {}

  static async start(opts: AuditPathOptions): Promise<WorkerdAuditPath> {
    const { Miniflare, convertV4 } = wranglersMiniflare();
    const compat = await compatibility(opts.repoDir);
    const script = await bundleForWorkerd(join(opts.repoDir, 'bench', 'workers', 'audit-path.js'));
    const vars = {
      ...(await tomlVars(opts.repoDir)),
      ...opts.extraVars,
      VAULT_ZONE: 'vault.localhost',
      BRIDGE_URL: opts.bridgeUrl,
      BRIDGE_HMAC_SECRET: opts.bridgeHmacSecret,
      BOOTSTRAP_SECRET: randomBytes(32).toString('base64url'),
    };
    const common = {
      compatibilityDate: compat.date,
      compatibilityFlags: compat.flags,
      modules: true,
      script,
      d1Databases: { DB: 'bench-audit-path' },
      r2Buckets: { AUDIT_ARCHIVE: 'bench-audit-archive' },
      queueProducers: { AUDIT_QUEUE: { queueName: 'ekv-audit' }, EVENTS_QUEUE: { queueName: 'ekv-events' } },
    };
    const consumer = { maxBatchSize: 100, maxBatchTimeout: 1, maxRetries: 10 };
    const mf = new Miniflare(
      convertV4({
        workers: [
          {
            ...common,
            name: 'vault-audited',
            bindings: { ...vars, BENCH_AUDIT: 'queue' },
            queueConsumers: {
              'ekv-audit': { ...consumer, deadLetterQueue: 'ekv-audit-dlq' },
              'ekv-audit-dlq': consumer,
              'ekv-events': { maxBatchSize: 100, maxBatchTimeout: 1 },
            },
          },
          { ...common, name: 'vault-unaudited', bindings: { ...vars, BENCH_AUDIT: 'discard' } },
        ],
      }),
    ) as MiniflareMore;
    await mf.ready;
    const db = await mf.getD1Database('DB', 'vault-audited');
    for (const sql of await migrationStatements(opts.repoDir)) await db.prepare(sql).run();
    const audited = await mf.getWorker('vault-audited');
    const unaudited = await mf.getWorker('vault-unaudited');

    // Tenant, token, vault and secret, through the audited Worker's own API.
    const call = async (
      what: string,
      url: string,
      init: { method?: string; body?: string; headers?: Record<string, string> },
      expect: number[],
    ) => {
      const res = await audited.fetch(url, init);
      const text = await res.text();
      if (!expect.includes(res.status)) throw new Error(`audit path Worker: ${what}: HTTP ${res.status} ${text.slice(0, 300)}`);
      return text;
    };
    const boot = JSON.parse(
      await call(
        'bootstrap',
        `${APEX}/management/bootstrap`,
        {
          method: 'POST',
          headers: { authorization: `Bootstrap ${vars.BOOTSTRAP_SECRET}`, 'content-type': 'application/json' },
          body: '{}',
        },
        [201],
      ),
    ) as { tenantId: string; clientId: string; clientSecret: string };
    const form = new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: boot.clientId,
      client_secret: boot.clientSecret,
      scope: `${APEX}/.default`,
    });
    const token = (
      JSON.parse(
        await call(
          'token',
          `${APEX}/${boot.tenantId}/oauth2/v2.0/token`,
          { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString() },
          [200],
        ),
      ) as { access_token: string }
    ).access_token;
    const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    await call('create vault', `${APEX}/management/vaults/${VAULT}`, { method: 'PUT', headers: auth, body: '{}' }, [201]);
    const value = randomBytes(48).toString('base64url');
    await call(
      'PUT secret',
      `https://${VAULT}.vault.localhost/secrets/${SECRET}?api-version=${API_VERSION}`,
      { method: 'PUT', headers: auth, body: JSON.stringify({ value }) },
      [200],
    );
    const self = new WorkerdAuditPath(mf, audited, unaudited, token, value);
    self.pending = 1; // the PUT
    return self;
  }

  /** The warm GET on one of the two Workers; the first answer of each is checked. */
  operation(which: 'audited' | 'unaudited'): Operation {
    const fetcher = which === 'audited' ? this.audited : this.unaudited;
    const url = `https://${VAULT}.vault.localhost/secrets/${SECRET}/?api-version=${API_VERSION}`;
    const headers = { accept: 'application/json', 'content-type': 'application/json', authorization: `Bearer ${this.token}` };
    let checked = false;
    return async () => {
      const res = await fetcher.fetch(url, { headers });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`audit path, ${which} GET: HTTP ${res.status} ${text.slice(0, 200)}`);
      if (which === 'audited') this.pending++;
      if (!checked) {
        checked = true;
        if ((JSON.parse(text) as { value?: string }).value !== this.value)
          throw new Error(`audit path, ${which} GET: another value`);
      }
    };
  }

  async run(label: string, which: 'audited' | 'unaudited', count: number, concurrency: number): Promise<RunResult> {
    return runFixed(label, this.operation(which), count, concurrency);
  }

  /**
   * Waits until the vault's chain holds a record of every audited request so far (the consumer
   * has caught up), so no round starts with another round's backlog. Returns how long it took.
   */
  async drain(timeoutMs = 60_000): Promise<number> {
    const t0 = Date.now();
    const db = await this.mf.getD1Database('DB', 'vault-audited');
    const want = this.drainedSeq + this.pending;
    for (;;) {
      const seq =
        // A vault's chain is named by its id (src/audit/chains.ts), not its name.
        (await db
          .prepare("SELECT seq FROM audit_chain_heads WHERE chain = (SELECT 'vault:' || lower(id) FROM vaults WHERE name = ?)")
          .bind(VAULT)
          .first<number>('seq')) ?? 0;
      if (seq >= want) {
        if (seq > want) throw new Error(`audit path: the vault's chain has ${seq} records, ${want} expected`);
        this.drainedSeq = seq;
        this.pending = 0;
        return Date.now() - t0;
      }
      if (Date.now() - t0 > timeoutMs)
        throw new Error(`audit path: the consumer stored ${seq} of ${want} records in ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(): Promise<void> {
    await this.mf.dispose();
  }
}
