/**
 * The pre-deploy check: reads the configuration wrangler would deploy for an environment (wrangler
 * resolves it: environments inherit no bindings, so what the top level says does not count) and
 * refuses what only makes sense on a developer's machine: a loopback or plain-http bridge, the
 * placeholder database, trust in loopback http issuers, a `*.localhost` zone, example hosts,
 * missing or short secrets, a short audit retention. Each refusal names the setting and the fix.
 *
 * `npm run predeploy:check -- --env production [--config wrangler.toml]`; `scripts/deploy.ts`
 * runs it before anything else. Secret values are checked, never printed.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';

/** The part of wrangler's resolved config the check reads. */
export interface DeployConfig {
  vars: Record<string, unknown>;
  routes?: unknown[];
  d1_databases: { binding: string; database_name?: string; database_id?: string }[];
  r2_buckets: { binding: string; bucket_name?: string }[];
  queues: { producers?: { binding: string; queue: string }[]; consumers?: { queue: string; dead_letter_queue?: string }[] };
  triggers: { crons?: string[] };
}

export interface Refusal {
  setting: string;
  problem: string;
  fix: string;
}

export const REQUIRED_SECRETS = ['BRIDGE_HMAC_SECRET', 'BOOTSTRAP_SECRET'] as const;
export type SecretName = (typeof REQUIRED_SECRETS)[number];
const MIN_SECRET_LENGTH: Record<SecretName, number> = { BRIDGE_HMAC_SECRET: 32, BOOTSTRAP_SECRET: 32 };
const PLACEHOLDER_DATABASE_ID = /^0{8}-0{4}-/;
const MIN_AUDIT_RETENTION_DAYS = 30;

export interface SecretsSeen {
  /** Values that would be set (from the environment or NAME_FILE). */
  supplied: Partial<Record<SecretName, string>>;
  /** Names already set on the deployed Worker (`wrangler secret list`), when known. */
  alreadySet?: ReadonlySet<string>;
}

function isLoopbackHost(host: string): boolean {
  const h = host
    .toLowerCase()
    .replace(/^\[|\]$/g, '')
    .replace(/\.$/, '');
  return h === 'localhost' || h.endsWith('.localhost') || /^127\./.test(h) || h === '::1' || h === '0.0.0.0' || h === '::';
}

/** RFC 2606 names: what this repository's example production config says until someone edits it. */
function isExampleHost(host: string): boolean {
  return /(^|\.)example\.(com|net|org)$/i.test(host.replace(/\.$/, ''));
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

export function checkDeployConfig(config: DeployConfig, env: string, secrets: SecretsSeen): Refusal[] {
  const refusals: Refusal[] = [];
  const refuse = (setting: string, problem: string, fix: string) => refusals.push({ setting, problem, fix });
  const section = `[env.${env}.vars]`;

  const zone = str(config.vars.VAULT_ZONE);
  if (!zone)
    refuse('VAULT_ZONE', 'is not set', `set VAULT_ZONE in ${section} to the apex of the vault hostnames, e.g. vault.contoso.net`);
  else if (isLoopbackHost(zone))
    refuse(
      'VAULT_ZONE',
      `is '${zone}', a local development name`,
      `set VAULT_ZONE in ${section} to the public zone the vaults live under`,
    );
  else if (isExampleHost(zone))
    refuse('VAULT_ZONE', `is '${zone}', the example value`, `set VAULT_ZONE in ${section} (and the routes) to your own zone`);

  const bridge = str(config.vars.BRIDGE_URL);
  let bridgeUrl: URL | undefined;
  try {
    bridgeUrl = bridge ? new URL(bridge) : undefined;
  } catch {
    /* refused below */
  }
  if (!bridgeUrl)
    refuse(
      'BRIDGE_URL',
      bridge ? 'is not a URL' : 'is not set',
      `set BRIDGE_URL in ${section} to the HSM bridge's https URL, reachable from Cloudflare`,
    );
  else {
    if (bridgeUrl.protocol !== 'https:')
      refuse(
        'BRIDGE_URL',
        `uses ${bridgeUrl.protocol.replace(':', '')}`,
        'serve the bridge over https (BRIDGE_TLS_CERT_FILE/BRIDGE_TLS_KEY_FILE, or behind a Cloudflare Tunnel) and use its https URL',
      );
    if (isLoopbackHost(bridgeUrl.hostname))
      refuse(
        'BRIDGE_URL',
        `points at ${bridgeUrl.hostname}, which is loopback`,
        "a deployed Worker cannot reach your machine's loopback: use the bridge's public (or tunnelled) hostname",
      );
    else if (isExampleHost(bridgeUrl.hostname))
      refuse(
        'BRIDGE_URL',
        `points at ${bridgeUrl.hostname}, the example value`,
        `set BRIDGE_URL in ${section} to your bridge's hostname`,
      );
  }

  if (str(config.vars.ALLOW_LOOPBACK_HTTP_ISSUERS) === 'true') {
    refuse(
      'ALLOW_LOOPBACK_HTTP_ISSUERS',
      'is "true": federated credentials would trust plain-http issuers on loopback',
      `set it to "false" in ${section} (only the tests and the local stack need it)`,
    );
  }

  const retentionRaw = str(config.vars.AUDIT_RETENTION_DAYS) ?? '365';
  const retention = Number(retentionRaw);
  if (!Number.isInteger(retention) || retention < MIN_AUDIT_RETENTION_DAYS) {
    refuse(
      'AUDIT_RETENTION_DAYS',
      `is '${retentionRaw}'`,
      `set it in ${section} to a whole number of days of at least ${MIN_AUDIT_RETENTION_DAYS} (the audit job refuses less and prunes nothing)`,
    );
  }

  const db = config.d1_databases.find((d) => d.binding === 'DB');
  if (!db)
    refuse(
      'd1_databases.DB',
      'is not bound',
      `add [[env.${env}.d1_databases]] with binding = "DB" (environments inherit no bindings)`,
    );
  else if (!db.database_id || PLACEHOLDER_DATABASE_ID.test(db.database_id)) {
    refuse(
      'd1_databases.DB.database_id',
      db.database_id ? `is the placeholder ${db.database_id}` : 'is not set',
      `create the database (npx wrangler d1 create ${db.database_name ?? 'edge-key-vault'}) and set database_id in [[env.${env}.d1_databases]] to the id it prints (npx wrangler d1 list shows it again)`,
    );
  }
  const producers = new Set((config.queues.producers ?? []).map((p) => p.binding));
  for (const binding of ['AUDIT_QUEUE', 'EVENTS_QUEUE', 'EVENT_DELIVERY_QUEUE', 'CERTIFICATE_RENEWAL_QUEUE']) {
    if (!producers.has(binding))
      refuse(
        `queues.producers.${binding}`,
        'is not bound',
        `add [[env.${env}.queues.producers]] binding = "${binding}" (and its consumer), as at the top level`,
      );
  }
  if (!config.r2_buckets.some((b) => b.binding === 'AUDIT_ARCHIVE')) {
    refuse(
      'r2_buckets.AUDIT_ARCHIVE',
      'is not bound: closed audit periods are never archived nor pruned',
      `add [[env.${env}.r2_buckets]] binding = "AUDIT_ARCHIVE"`,
    );
  }
  if (!config.r2_buckets.some((b) => b.binding === 'EVENT_DEADLETTER')) {
    refuse(
      'r2_buckets.EVENT_DEADLETTER',
      'is not bound: webhook deliveries that give up could not be dead-lettered',
      `add [[env.${env}.r2_buckets]] binding = "EVENT_DEADLETTER"`,
    );
  }
  if (!config.triggers.crons?.length)
    refuse(
      'triggers.crons',
      'is empty: no purge, rotation or audit checkpoints would ever run',
      `add [env.${env}.triggers] crons = ["*/5 * * * *"]`,
    );
  if (!config.routes?.length)
    refuse(
      'routes',
      'is empty: no hostname reaches the Worker',
      `add routes for "*.${zone ?? 'vault.example.com'}/*" and "${zone ?? 'vault.example.com'}/*" to [env.${env}]`,
    );

  for (const name of REQUIRED_SECRETS) {
    const value = secrets.supplied[name];
    if (value !== undefined) {
      if (value.length < MIN_SECRET_LENGTH[name])
        refuse(
          name,
          `is shorter than ${MIN_SECRET_LENGTH[name]} characters`,
          `use a random value of at least ${MIN_SECRET_LENGTH[name]} characters (e.g. openssl rand -base64 48)`,
        );
    } else if (!secrets.alreadySet?.has(name)) {
      refuse(
        name,
        secrets.alreadySet ? 'is not set on the Worker and not supplied' : 'is not supplied',
        `export ${name} or ${name}_FILE (a file holding it) before deploying; the deploy sets it with wrangler secret put`,
      );
    }
  }
  return refusals;
}

/** Secrets from NAME or NAME_FILE in `env` (both set is ambiguous and refused). */
export function suppliedSecrets(env: NodeJS.ProcessEnv = process.env): Partial<Record<SecretName, string>> {
  const out: Partial<Record<SecretName, string>> = {};
  for (const name of REQUIRED_SECRETS) {
    const direct = env[name];
    const file = env[`${name}_FILE`];
    if (direct && file) throw new Error(`both ${name} and ${name}_FILE are set: keep one`);
    if (direct) out[name] = direct;
    else if (file) out[name] = readFileSync(file, 'utf8').trim();
  }
  return out;
}

/** What wrangler would deploy for `env`, as wrangler itself resolves it. */
export async function readDeployConfig(configPath: string, env: string): Promise<DeployConfig> {
  // Wrangler's own reader (the one `wrangler deploy` uses), not a TOML parser of ours: no
  // dependency to add, and environment resolution exactly as deployed.
  const { unstable_readConfig } = await import('wrangler');
  const config = unstable_readConfig({ config: configPath, env }, { hideWarnings: true });
  return config as unknown as DeployConfig;
}

export function describeRefusals(refusals: Refusal[], env: string): string {
  if (refusals.length === 0) return `pre-deploy check (${env}): nothing refused`;
  return [
    `pre-deploy check (${env}): ${refusals.length} setting(s) refused:`,
    ...refusals.map((r) => `  ✗ ${r.setting} ${r.problem}.\n      → ${r.fix}.`),
  ].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { env: { type: 'string' }, config: { type: 'string', default: 'wrangler.toml' } } });
  if (!values.env) throw new Error('--env is required, e.g. npm run predeploy:check -- --env production');
  const config = await readDeployConfig(resolve(values.config), values.env);
  const refusals = checkDeployConfig(config, values.env, { supplied: suppliedSecrets() });
  console.log(describeRefusals(refusals, values.env));
  if (refusals.length) process.exitCode = 1;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((err: unknown) => {
    console.error(`[predeploy:check] failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
