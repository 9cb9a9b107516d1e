/**
 * `npm run dev`: the whole vault on this machine (Worker in workerd over HTTPS, HSM bridge on a
 * SoftHSM2 token), state in `.dev/`. Prints how to connect; Ctrl-C stops everything it started.
 */
import { join } from 'node:path';
import { cronIntervalFromEnv } from './lib/cron.js';
import { REPO_DIR, startStack, type Stack } from './lib/stack.js';

const stateDir = join(REPO_DIR, '.dev');
const log = (message: string) => console.log(`[dev] ${message}`);

function connectionHelp(stack: Stack, cronIntervalSeconds: number): string {
  const { credentials: c, credentialsPath } = stack;
  const vaultHost = new URL(c.vaultUrl).hostname;
  return `
Edge Key Vault is running.

  vault       ${c.vaultUrl}
  token/mgmt  ${c.authorityHost}
  credentials ${credentialsPath}   (tenantId, clientId, clientSecret; keep it private)

Trust the development CA (Node reads this only at start-up):

  export NODE_EXTRA_CA_CERTS=${c.caCertPath}

Connect with the Azure SDK:

  import { readFileSync } from 'node:fs';
  import { ClientSecretCredential } from '@azure/identity';
  import { SecretClient } from '@azure/keyvault-secrets';
  const c = JSON.parse(readFileSync('${credentialsPath}', 'utf8'));
  const credential = new ClientSecretCredential(c.tenantId, c.clientId, c.clientSecret,
    { authorityHost: c.authorityHost, disableInstanceDiscovery: true });
  const client = new SecretClient(c.vaultUrl, credential);
  await client.setSecret('hello', 'world');

Name resolution: curl and browsers map *.localhost to 127.0.0.1; Node and many other resolvers
do not. Add this line to /etc/hosts (one line per vault you create):

  127.0.0.1 ${stack.zone} ${vaultHost}

Scheduled jobs (purge, key rotation, audit checkpoints and archive): ${cronHelp(stack, cronIntervalSeconds)}
Run them now with \`npm run cron\`.

Ctrl-C stops the Worker and the bridge.
`;
}

function cronHelp(stack: Stack, cronIntervalSeconds: number): string {
  if (cronIntervalSeconds === 0) return 'not run by themselves (DEV_CRON_INTERVAL=0).';
  return `every ${cronIntervalSeconds} s (DEV_CRON_INTERVAL; 0 = off), through https://127.0.0.1:${stack.vaultPort}/cdn-cgi/local/scheduled.`;
}

async function main(): Promise<void> {
  const cronIntervalSeconds = cronIntervalFromEnv(process.env.DEV_CRON_INTERVAL);
  // eslint-disable-next-line prefer-const -- assigned once started; the shutdown handler reads it before
  let stack: Stack | undefined;
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping`);
    // Still starting: exiting runs the exit hooks that kill wrangler's process group and the bridge.
    if (!stack) process.exit(130);
    await stack.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));

  stack = await startStack({
    stateDir,
    log,
    cronIntervalSeconds,
    onOutput: (source, line) => {
      if (line.trim()) console.log(`[${source}] ${line}`);
    },
  });
  console.log(connectionHelp(stack, cronIntervalSeconds));
}

main().catch((err: unknown) => {
  console.error(`[dev] failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
