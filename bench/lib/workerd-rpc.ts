/**
 * The RPC figure of the edge bench: the vault's own Worker (src/index.ts, VaultRpc exported)
 * bound by an edge Worker (bench/workers/rpc-driver.js) through a service binding with `props`
 * naming an application, as `[[services]] entrypoint = "VaultRpc"` binds it, next to a no-op
 * entrypoint (bench/workers/rpc-noop.js) bound the same way. All three run in one workerd
 * (wrangler's own Miniflare, wrangler.toml's compatibility date, flags and vars), with a local D1
 * (migrations applied), the audit queue consumed by the vault as in production, and the stack's
 * running HSM bridge. Each call is timed inside the driver, so the figure is the binding's, not
 * this process's HTTP hop into workerd.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { migrationStatements } from './workerd-audit.js';
import { bundleForWorkerd } from './workerd-bundle.js';
import { compatibility, wranglersMiniflare, type MiniflareLike } from './workerd-webcrypto.js';

interface FetcherLike {
  fetch(
    input: string,
    init?: { method?: string; body?: string; headers?: Record<string, string> },
  ): Promise<{ status: number; text(): Promise<string> }>;
}
interface MiniflareMore extends MiniflareLike {
  getWorker(name: string): Promise<FetcherLike>;
  getD1Database(binding: string, worker?: string): Promise<{ prepare(sql: string): { run(): Promise<unknown> } }>;
  setOptions(options: unknown): Promise<void>;
}

const APEX = 'https://vault.localhost';
const VAULT = 'bench';
const SECRET = 'bench-secret';
const API_VERSION = '2026-04-01';
const SECRETS_USER = '4633458b-17de-408a-b874-0445c86b69e6';

async function tomlVars(repoDir: string): Promise<Record<string, string>> {
  const toml = await readFile(join(repoDir, 'wrangler.toml'), 'utf8');
  const section = /^\[vars\]\n([\s\S]*?)(?=^\[)/m.exec(toml)?.[1] ?? '';
  return Object.fromEntries([...section.matchAll(/^([A-Z_]+)\s*=\s*"([^"]*)"/gm)].map((m) => [m[1]!, m[2]!]));
}

/** Calls per latency sample: workerd's clock moves in whole milliseconds and a call takes 0.05-0.2 ms, so 100 calls resolve 0.01 ms (20 made both sides of the ratio multiples of 0.05 ms). */
export const CALLS_PER_SAMPLE = 100;

export interface RpcRound {
  /** Per-call latency in ms, each the mean of CALLS_PER_SAMPLE consecutive calls, on workerd's clock inside the calling Worker. */
  latenciesMs: number[];
  calls: number;
}

export class WorkerdRpc {
  private constructor(
    private readonly mf: MiniflareMore,
    private readonly driver: FetcherLike,
    readonly value: string,
  ) {}

  static async start(opts: {
    repoDir: string;
    bridgeUrl: string;
    bridgeHmacSecret: string;
    extraVars?: Record<string, string>;
  }): Promise<WorkerdRpc> {
    const { Miniflare, convertV4 } = wranglersMiniflare();
    const compat = await compatibility(opts.repoDir);
    const [vaultScript, driverScript, noopScript] = await Promise.all([
      bundleForWorkerd(join(opts.repoDir, 'src', 'index.ts')),
      bundleForWorkerd(join(opts.repoDir, 'bench', 'workers', 'rpc-driver.js')),
      bundleForWorkerd(join(opts.repoDir, 'bench', 'workers', 'rpc-noop.js')),
    ]);
    const vars = {
      ...(await tomlVars(opts.repoDir)),
      ...opts.extraVars,
      VAULT_ZONE: 'vault.localhost',
      BRIDGE_URL: opts.bridgeUrl,
      BRIDGE_HMAC_SECRET: opts.bridgeHmacSecret,
      BOOTSTRAP_SECRET: randomBytes(32).toString('base64url'),
    };
    const value = randomBytes(48).toString('base64url');
    const common = { compatibilityDate: compat.date, compatibilityFlags: compat.flags, modules: true };
    const options = (props: { vault: string; clientId: string } | Record<string, never>) =>
      convertV4({
        // Every call logs its request line (src/audit/observe.ts), 10,000 a round: workerd still
        // writes them, but only warnings and errors are relayed to the bench's output.
        handleStructuredLogs: (log: { level: string; message: string }) => {
          if (log.level === 'error' || log.level === 'warn') process.stderr.write(`[rpc ${log.level}] ${log.message}\n`);
        },
        workers: [
          {
            ...common,
            name: 'vault',
            script: vaultScript,
            bindings: vars,
            d1Databases: { DB: 'bench-rpc' },
            r2Buckets: { AUDIT_ARCHIVE: 'bench-rpc-archive' },
            queueProducers: { AUDIT_QUEUE: { queueName: 'ekv-audit' }, EVENTS_QUEUE: { queueName: 'ekv-events' } },
            queueConsumers: {
              'ekv-audit': { maxBatchSize: 100, maxBatchTimeout: 1, maxRetries: 10 },
              'ekv-events': { maxBatchSize: 100, maxBatchTimeout: 1 },
            },
          },
          { ...common, name: 'noop', script: noopScript, bindings: { VALUE: value } },
          {
            ...common,
            name: 'driver',
            script: driverScript,
            serviceBindings: {
              VAULT: { name: 'vault', entrypoint: 'VaultRpc', props },
              NOOP: { name: 'noop', entrypoint: 'Noop', props },
            },
          },
        ],
      });
    const mf = new Miniflare(options({})) as MiniflareMore;
    await mf.ready;
    const db = await mf.getD1Database('DB', 'vault');
    for (const sql of await migrationStatements(opts.repoDir)) await db.prepare(sql).run();
    const vault = await mf.getWorker('vault');
    const call = async (what: string, url: string, init: Parameters<FetcherLike['fetch']>[1], expect: number) => {
      const res = await vault.fetch(url, init);
      const text = await res.text();
      if (res.status !== expect) throw new Error(`RPC bench: ${what}: HTTP ${res.status} ${text.slice(0, 300)}`);
      return JSON.parse(text || '{}') as Record<string, string>;
    };
    const json = { 'content-type': 'application/json' };
    const boot = await call(
      'bootstrap',
      `${APEX}/management/bootstrap`,
      { method: 'POST', headers: { authorization: `Bootstrap ${vars.BOOTSTRAP_SECRET}`, ...json }, body: '{}' },
      201,
    );
    const form = new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: boot.clientId!,
      client_secret: boot.clientSecret!,
      scope: `${APEX}/.default`,
    });
    const token = (
      await call(
        'token',
        `${APEX}/${boot.tenantId}/oauth2/v2.0/token`,
        { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString() },
        200,
      )
    ).access_token;
    const auth = { authorization: `Bearer ${token}`, ...json };
    await call('create vault', `${APEX}/management/vaults/${VAULT}`, { method: 'PUT', headers: auth, body: '{}' }, 201);
    const app = await call(
      'create application',
      `${APEX}/management/applications`,
      { method: 'POST', headers: auth, body: JSON.stringify({ displayName: 'bench edge app' }) },
      201,
    );
    await call(
      'role assignment',
      `${APEX}/management/vaults/${VAULT}/providers/Microsoft.Authorization/roleAssignments/${crypto.randomUUID()}?scope=%2F`,
      {
        method: 'PUT',
        headers: auth,
        body: JSON.stringify({
          properties: {
            roleDefinitionId: `/providers/Microsoft.Authorization/roleDefinitions/${SECRETS_USER}`,
            principalId: app.objectId,
          },
        }),
      },
      201,
    );
    await call(
      'PUT secret',
      `https://${VAULT}.vault.localhost/secrets/${SECRET}?api-version=${API_VERSION}`,
      { method: 'PUT', headers: auth, body: JSON.stringify({ value }) },
      200,
    );
    await mf.setOptions(options({ vault: VAULT, clientId: app.clientId! }));
    return new WorkerdRpc(mf, await mf.getWorker('driver'), value);
  }

  /** `samples` × CALLS_PER_SAMPLE getSecret calls one after the other through the binding to the vault or to the no-op. */
  async round(target: 'VAULT' | 'NOOP', samples: number): Promise<RpcRound> {
    const k = CALLS_PER_SAMPLE;
    const res = await this.driver.fetch(`https://driver.bench/?target=${target}&n=${samples}&k=${k}&name=${SECRET}`);
    const text = await res.text();
    if (res.status !== 200) throw new Error(`RPC bench, ${target}: HTTP ${res.status} ${text.slice(0, 300)}`);
    const body = JSON.parse(text) as { times: number[]; first: { value: string } };
    if (body.first.value !== this.value) throw new Error(`RPC bench, ${target}: another value`);
    return { latenciesMs: body.times, calls: samples * k };
  }

  async stop(): Promise<void> {
    await this.mf.dispose();
  }
}
