/**
 * Global setup of the e2e suite: starts the whole stack exactly as `npm run dev` does, in a fresh
 * state directory and on free ports (so a running `npm run dev` is not disturbed), and stops it
 * after the suite.
 *
 * Test files run in forked workers, so they get what they need through `provide`, trust the
 * development CA through NODE_EXTRA_CA_CERTS (set here, before vitest forks its workers, which
 * inherit this process's environment; Node reads it only at start-up), and reach the bridge
 * through a small token-protected control endpoint on loopback.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { findFreePort } from '../../scripts/lib/ports.js';
import { REPO_DIR, startStack, type Stack } from '../../scripts/lib/stack.js';

/** A CA bundle for NODE_EXTRA_CA_CERTS: whatever was trusted that way before, plus our CA. */
async function caBundle(stateDir: string, caPem: string): Promise<string> {
  const previous = process.env.NODE_EXTRA_CA_CERTS;
  const before = previous ? await readFile(previous, 'utf8').catch(() => '') : '';
  const path = join(stateDir, 'ca-bundle.pem');
  await writeFile(path, `${before.trimEnd()}\n${caPem}`.trimStart());
  return path;
}

function startControlServer(stack: Stack, token: string): Promise<http.Server> {
  const expected = Buffer.from(`Bearer ${token}`);
  const server = http.createServer((req, res) => {
    const given = Buffer.from(req.headers.authorization ?? '');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      res.writeHead(401).end();
      return;
    }
    const actions: Record<string, () => Promise<void>> = {
      'POST /bridge/stop': () => stack.bridge.stop(),
      'POST /bridge/start': () => stack.bridge.start(),
    };
    const action = actions[`${req.method} ${req.url}`];
    if (!action) {
      res.writeHead(404).end();
      return;
    }
    action().then(
      () => res.writeHead(204).end(),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(err.message),
    );
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const root = join(REPO_DIR, '.test-state');
  await mkdir(root, { recursive: true });
  const stateDir = await mkdtemp(join(root, 'e2e-'));
  const outputLog = join(stateDir, 'output.log');
  const stack = await startStack({
    stateDir,
    vaultPort: await findFreePort(),
    bridgePort: await findFreePort(),
    zone: 'vault.localhost',
    // Kept in a file, not on the console: read it when a test fails (KEEP_E2E_STATE=1 keeps it).
    onOutput: (source, line) => appendFileSync(outputLog, `[${source}] ${line}\n`),
  });

  process.env.NODE_EXTRA_CA_CERTS = await caBundle(stateDir, stack.caPem);
  const token = randomBytes(24).toString('base64url');
  const control = await startControlServer(stack, token);

  project.provide('e2eStack', {
    credentials: stack.credentials,
    caPem: stack.caPem,
    apexUrl: stack.apexUrl,
    zone: stack.zone,
    vaultPort: stack.vaultPort,
    stateDir,
    outputLog,
    bridgeUrl: stack.bridge.url,
    control: { url: `http://127.0.0.1:${(control.address() as AddressInfo).port}`, token },
  });

  return async () => {
    await new Promise((resolve) => control.close(resolve));
    await stack.stop();
    if (process.env.KEEP_E2E_STATE === '1') console.log(`e2e state kept in ${stateDir} (output: ${outputLog})`);
    else await rm(stateDir, { recursive: true, force: true });
  };
}
