/**
 * `npm run cron`: runs the scheduled handler of the running `npm run dev` stack now (purge, key
 * rotation, audit checkpoints, archive and retention) instead of waiting for its timer, and prints
 * workerd's answer. Reads the stack's CA from `.dev/ca/ca.pem` (DEV_STATE_DIR overrides `.dev`)
 * and its port from VAULT_PORT (default 8443), as `npm run dev` does.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { scheduledUrl, triggerScheduled } from './lib/cron.js';

// Not stack.ts's REPO_DIR: that module loads the whole stack (CA tooling, bridge), which this needs none of.
const REPO_DIR = resolve(fileURLToPath(new URL('..', import.meta.url)));

async function main(): Promise<void> {
  const stateDir = resolve(REPO_DIR, process.env.DEV_STATE_DIR || '.dev');
  const port = Number(process.env.VAULT_PORT || 8443);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error('VAULT_PORT must be a port number');
  const caPath = join(stateDir, 'ca', 'ca.pem');
  const caPem = await readFile(caPath, 'utf8').catch(() => {
    throw new Error(`no development CA at ${caPath}: start the stack with \`npm run dev\` first`);
  });
  const url = scheduledUrl(port);
  let answer;
  try {
    answer = await triggerScheduled(port, caPem);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ECONNREFUSED')
      throw new Error(`nothing answers on 127.0.0.1:${port}: is \`npm run dev\` running (VAULT_PORT)?`);
    throw err;
  }
  console.log(`[cron] GET ${url} → HTTP ${answer.status} ${answer.outcome}`);
  if (answer.status !== 200) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(`[cron] failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
