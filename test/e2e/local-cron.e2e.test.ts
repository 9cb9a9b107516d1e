/**
 * The local stack runs the Worker's scheduled handler by itself (wrangler dev runs no cron), and
 * `npm run cron` runs it on demand. Its own stack (the suite's shared one runs no cron timer, so
 * other files never see jobs run under them), with a short interval; the effect watched is one a
 * user can see through the API: the audit cron signs a checkpoint of a vault chain that moved.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientCredentialsToken } from '../../scripts/lib/bootstrap.js';
import { httpsRequest } from '../../scripts/lib/https-client.js';
import { findFreePort } from '../../scripts/lib/ports.js';
import { REPO_DIR, startStack, type Stack } from '../../scripts/lib/stack.js';
import { waitUntil } from '../../scripts/lib/wait.js';

const CRON_INTERVAL_SECONDS = 3;

interface Checkpoints {
  head: { seq: number } | null;
  checkpoints: { seq: number }[];
}

function npmRunCron(env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('npm', ['run', '--silent', 'cron'], {
      cwd: REPO_DIR,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, output }));
  });
}

describe('local cron', () => {
  let stack: Stack;
  let stateDir: string;
  let token: string;

  beforeAll(async () => {
    const root = join(REPO_DIR, '.test-state');
    await mkdir(root, { recursive: true });
    stateDir = await mkdtemp(join(root, 'cron-'));
    const outputLog = join(stateDir, 'output.log');
    stack = await startStack({
      stateDir,
      vaultPort: await findFreePort(),
      bridgePort: await findFreePort(),
      cronIntervalSeconds: CRON_INTERVAL_SECONDS,
      log: (line) => appendFileSync(outputLog, `[stack] ${line}\n`),
      onOutput: (source, line) => appendFileSync(outputLog, `[${source}] ${line}\n`),
    });
    token = await clientCredentialsToken(stack.apexUrl, stack.apexUrl, stack.credentials, stack.caPem);
  });

  afterAll(async () => {
    await stack?.stop();
    if (stateDir && process.env.KEEP_E2E_STATE !== '1') await rm(stateDir, { recursive: true, force: true });
  });

  const vaultRequest = (path: string, init: { method?: string; body?: string } = {}) =>
    httpsRequest(`${stack.credentials.vaultUrl}${path}${path.includes('?') ? '&' : '?'}api-version=7.6`, {
      method: init.method,
      body: init.body,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      ca: stack.caPem,
    });

  const checkpoints = async (): Promise<Checkpoints> => {
    const res = await vaultRequest('/audit/checkpoints');
    expect(res.status, res.text).toBe(200);
    return res.json<Checkpoints>();
  };

  it('signs a checkpoint of a moved audit chain without anyone asking', async () => {
    const write = await vaultRequest('/secrets/cron-moves-the-chain', { method: 'PUT', body: JSON.stringify({ value: 'tick' }) });
    expect(write.status, write.text).toBe(200);

    // The write's record reaches the chain through the audit queue; note the head it made.
    let headAfterWrite = 0;
    await waitUntil(
      'the write recorded in the vault chain',
      async () => {
        headAfterWrite = (await checkpoints()).head?.seq ?? 0;
        return headAfterWrite > 0;
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );

    // Nothing but the stack's timer runs the audit job here: a checkpoint at or past that head.
    await waitUntil(
      'a checkpoint covering the write',
      async () => (await checkpoints()).checkpoints.some((cp) => cp.seq >= headAfterWrite),
      {
        timeoutMs: CRON_INTERVAL_SECONDS * 1000 * 10,
        intervalMs: 1000,
      },
    );
  });

  it('runs the scheduled handler now with `npm run cron` and prints its answer', async () => {
    const result = await npmRunCron({ VAULT_PORT: String(stack.vaultPort), DEV_STATE_DIR: stateDir });
    expect(result.output).toContain(`https://127.0.0.1:${stack.vaultPort}/cdn-cgi/local/scheduled`);
    expect(result.output).toMatch(/HTTP 200 ok/);
    expect(result.code, result.output).toBe(0);
  });

  it("writes one JSON line per request and per cron job to wrangler's output, never the token", async () => {
    const write = await vaultRequest('/secrets/logged-by-wrangler', {
      method: 'PUT',
      body: JSON.stringify({ value: 'canary-e2e-value' }),
    });
    expect(write.status, write.text).toBe(200);
    const lines = () =>
      readFileSync(join(stateDir, 'output.log'), 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('[worker] '))
        .flatMap((l) => {
          const start = l.indexOf('{"type":');
          if (start < 0) return [];
          try {
            return [JSON.parse(l.slice(start)) as Record<string, unknown>];
          } catch {
            return [];
          }
        });
    await waitUntil(
      'the request and cron lines in the output',
      async () =>
        lines().some((l) => l.type === 'request' && l.operation === 'SecretSet') &&
        lines().some((l) => l.type === 'cron' && l.job === 'audit'),
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    const set = lines().find((l) => l.type === 'request' && l.operation === 'SecretSet')!;
    expect(set).toMatchObject({ status: 200, vault: expect.any(String), correlationId: expect.any(String) });
    const output = readFileSync(join(stateDir, 'output.log'), 'utf8');
    expect(output).not.toContain(token);
    expect(output).not.toContain(token.split('.')[2]!);
    expect(output).not.toContain('canary-e2e-value');
    expect(output).not.toContain(stack.credentials.clientSecret);
  });

  it('`npm run cron` says what to do when no stack answers', async () => {
    const result = await npmRunCron({ VAULT_PORT: String(await findFreePort()), DEV_STATE_DIR: stateDir });
    expect(result.code).toBe(1);
    expect(result.output).toMatch(/is `npm run dev` running/);
  });
});
