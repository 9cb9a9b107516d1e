/**
 * `npm run deploy -- --env production [--dry-run] [--config wrangler.toml]`: one command from a
 * Cloudflare account to a running vault, safe to repeat. In order: the pre-deploy check (refuses
 * development values, nothing touched), the D1 database, queues and R2 bucket (each created only
 * when absent), D1 migrations (remote), the Worker's secrets that are not set yet (from NAME or
 * NAME_FILE), then `wrangler deploy`. `--dry-run` checks and prints the plan, builds the bundle,
 * and changes nothing in the account.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  checkDeployConfig,
  describeRefusals,
  readDeployConfig,
  REQUIRED_SECRETS,
  suppliedSecrets,
  type DeployConfig,
} from './lib/predeploy-check.js';
import { REPO_DIR } from './lib/stack.js';
import { d1Databases, ensureOk, exists, listRemoteSecrets, remoteWrangler, type RemoteWrangler } from './lib/wrangler-remote.js';

const log = (message: string) => console.log(`[deploy] ${message}`);

function queueNames(config: DeployConfig): string[] {
  const names = new Set<string>();
  for (const p of config.queues.producers ?? []) names.add(p.queue);
  for (const c of config.queues.consumers ?? []) {
    names.add(c.queue);
    if (c.dead_letter_queue) names.add(c.dead_letter_queue);
  }
  return [...names];
}

async function ensureDatabase(w: RemoteWrangler, config: DeployConfig, dryRun: boolean): Promise<string> {
  const db = config.d1_databases.find((d) => d.binding === 'DB')!;
  const name = db.database_name ?? 'edge-key-vault';
  if (dryRun) {
    log(`would create D1 database ${name} if absent, and apply migrations to it (--remote)`);
    return name;
  }
  let found = (await d1Databases(w)).find((d) => d.name === name);
  if (!found) {
    log(`creating D1 database ${name}`);
    ensureOk('wrangler d1 create', await w.run(['d1', 'create', name]));
    found = (await d1Databases(w)).find((d) => d.name === name);
    if (!found) throw new Error(`D1 database ${name} was created but is not listed`);
  }
  if (found.uuid !== db.database_id) {
    throw new Error(
      `database_id of ${name} is ${db.database_id}, but the account's database ${name} has id ${found.uuid}: set database_id to ${found.uuid} and run again`,
    );
  }
  return name;
}

async function ensureResource(
  w: RemoteWrangler,
  kind: string,
  infoArgs: string[],
  createArgs: string[],
  dryRun: boolean,
): Promise<void> {
  if (dryRun) {
    log(`would create ${kind} if absent: wrangler ${createArgs.join(' ')}`);
    return;
  }
  if (await exists(w, `wrangler ${infoArgs.join(' ')}`, infoArgs)) return;
  log(`creating ${kind}`);
  ensureOk(`wrangler ${createArgs.join(' ')}`, await w.run(createArgs));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      env: { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
      config: { type: 'string', default: 'wrangler.toml' },
    },
  });
  const env = values.env;
  if (!env) throw new Error('--env is required, e.g. npm run deploy -- --env production');
  const dryRun = values['dry-run'];
  const configPath = resolve(values.config);
  const w = remoteWrangler(REPO_DIR);

  // Before anything: nothing in the account changes unless the configuration is fit to deploy.
  const config = await readDeployConfig(configPath, env);
  const supplied = suppliedSecrets();
  // A dry run may have no login: then it knows only the secrets supplied here.
  const alreadySet = dryRun ? await listRemoteSecrets(w, env).catch(() => undefined) : await listRemoteSecrets(w, env);
  const refusals = checkDeployConfig(config, env, { supplied, alreadySet });
  console.log(describeRefusals(refusals, env));
  if (refusals.length) {
    process.exitCode = 1;
    return;
  }

  const database = await ensureDatabase(w, config, dryRun);
  for (const queue of queueNames(config)) {
    await ensureResource(w, `queue ${queue}`, ['queues', 'info', queue], ['queues', 'create', queue], dryRun);
  }
  for (const bucket of config.r2_buckets) {
    if (bucket.bucket_name)
      await ensureResource(
        w,
        `R2 bucket ${bucket.bucket_name}`,
        ['r2', 'bucket', 'info', bucket.bucket_name],
        ['r2', 'bucket', 'create', bucket.bucket_name],
        dryRun,
      );
  }

  if (!dryRun) {
    log('applying D1 migrations (remote)');
    ensureOk(
      'wrangler d1 migrations apply',
      await w.run(['d1', 'migrations', 'apply', database, '--remote', '--env', env, '--config', configPath]),
    );
  }

  for (const name of REQUIRED_SECRETS) {
    // Never overwritten: rotating the bridge secret is a deliberate act (the bridge must change too).
    if (alreadySet?.has(name)) continue;
    const value = supplied[name]!; // the check refused a secret neither set nor supplied
    if (dryRun) {
      log(`would set secret ${name} (wrangler secret put) unless the Worker already has it`);
      continue;
    }
    log(`setting secret ${name}`);
    ensureOk(
      `wrangler secret put ${name}`,
      await w.run(['secret', 'put', name, '--env', env, '--config', configPath], { input: value }),
    );
  }

  if (dryRun) {
    log('building the bundle (wrangler deploy --dry-run)');
    const outdir = await mkdtemp(join(tmpdir(), 'ekv-deploy-'));
    ensureOk(
      'wrangler deploy --dry-run',
      await w.run(['deploy', '--dry-run', '--env', env, '--config', configPath, '--outdir', outdir]),
    );
    log(`dry run: bundle in ${outdir}; nothing in the account was changed`);
    return;
  }
  log('deploying the Worker');
  const deployed = ensureOk('wrangler deploy', await w.run(['deploy', '--env', env, '--config', configPath]));
  console.log(deployed.stdout.trim());
}

main().catch((err: unknown) => {
  console.error(`[deploy] failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
