/**
 * The edge bench's `wrangler dev` without a devtools inspector (scripts/lib/wrangler-dev-headless.mjs,
 * through startWranglerDev's `inspector: false`) must serve a Worker as the CLI would: HTTPS with
 * the given certificate, the plain vars and the env file's secrets bound, console output on the
 * process's output, nothing on the inspector port, and nothing left running once stopped.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureDevCa } from '../../scripts/lib/dev-ca.js';
import { httpsRequest } from '../../scripts/lib/https-client.js';
import { assertPortFree, findFreePort } from '../../scripts/lib/ports.js';
import type { ManagedProcess } from '../../scripts/lib/process.js';
import { REPO_DIR } from '../../scripts/lib/stack.js';
import { waitUntil } from '../../scripts/lib/wait.js';
import { startWranglerDev } from '../../scripts/lib/wrangler.js';

const WORKER = `export default {
  fetch(request, env) {
    console.log('headless-line ' + new URL(request.url).pathname);
    return Response.json({ plain: env.PLAIN, secret: env.SECRET });
  },
};
`;

describe('wrangler dev without its inspector', () => {
  let dir: string;
  let dev: ManagedProcess | undefined;
  afterAll(async () => {
    await dev?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it(
    'serves the Worker over HTTPS with its vars and secrets, logs to its output, and opens no inspector',
    { timeout: 180_000 },
    async () => {
      dir = await mkdtemp(join(os.tmpdir(), 'ekv-headless-'));
      await writeFile(join(dir, 'worker.js'), WORKER);
      await writeFile(
        join(dir, 'wrangler.toml'),
        'name = "headless-test"\nmain = "worker.js"\ncompatibility_date = "2026-08-01"\n',
      );
      const ca = await ensureDevCa(join(dir, 'ca'), 'vault.localhost');
      const [port, inspectorPort] = [await findFreePort(), await findFreePort()];
      const lines: string[] = [];
      dev = await startWranglerDev({
        name: 'wrangler dev (headless test)',
        repoDir: REPO_DIR,
        stateDir: dir,
        persistTo: join(dir, 'wrangler'),
        config: join(dir, 'wrangler.toml'),
        port,
        inspectorPort,
        inspector: false,
        certPath: ca.certPath,
        keyPath: ca.keyPath,
        vars: { PLAIN: 'plain-value' },
        secrets: { SECRET: 'secret-from-env-file' },
        onLine: (line) => lines.push(line),
      });
      const url = `https://localhost:${port}/probe`;
      const running = dev;
      await waitUntil(
        'headless wrangler dev',
        async () => (await httpsRequest(url, { ca: ca.caPem, timeoutMs: 5000 })).status === 200,
        {
          timeoutMs: 120_000,
          intervalMs: 500,
          describe: () => running.output(),
          abort: running.exited.then(String),
        },
      );
      const res = await httpsRequest(url, { ca: ca.caPem });
      expect(JSON.parse(res.text)).toEqual({ plain: 'plain-value', secret: 'secret-from-env-file' });
      await waitUntil('the log line', async () => lines.some((l) => l.includes('headless-line /probe')), {
        timeoutMs: 10_000,
        intervalMs: 100,
      });
      expect(lines.join('\n')).toContain('(no inspector)');
      // The CLI would listen on the inspector port; the headless runner leaves it alone.
      await assertPortFree(inspectorPort, 'inspector port');
      await dev.stop();
      dev = undefined;
      await expect(httpsRequest(url, { ca: ca.caPem, timeoutMs: 2000 })).rejects.toThrow();
    },
  );
});
