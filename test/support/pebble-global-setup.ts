/**
 * Global setup of the `issuers` suite: a real ACME server, Debian's `pebble`, on 127.0.0.1 (free
 * ports), its HTTPS listener under a throwaway CA made here with openssl. External Account
 * Binding is required, so every account the tests create goes through the EAB path. Challenges
 * are not validated (PEBBLE_VA_ALWAYS_VALID): nothing on the internet can reach this machine.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { fetchTrusting } from './fetch-trusting.js';
import { preparePebbleTls } from './pebble-tls.js';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = await mkdtemp(join(tmpdir(), 'ekv-pebble-'));
  let child: ChildProcess | undefined;
  try {
    // The listener certificate vitest.config.ts made (pebble-tls.ts), so the Worker suite trusts
    // it too; made here when this setup runs without that config.
    preparePebbleTls();
    const tlsDir = process.env.EKV_PEBBLE_TLS_DIR!;
    const cert = join(tlsDir, 'cert.pem');
    const key = join(tlsDir, 'key.pem');
    const [port, managementPort] = [await freePort(), await freePort()];
    const eab = { kid: 'ekv-test-kid', hmacKey: randomBytes(32).toString('base64url') };
    const config = join(dir, 'pebble-config.json');
    await writeFile(
      config,
      JSON.stringify({
        pebble: {
          listenAddress: `127.0.0.1:${port}`,
          managementListenAddress: `127.0.0.1:${managementPort}`,
          certificate: cert,
          privateKey: key,
          httpPort: 5002,
          tlsPort: 5001,
          ocspResponderURL: '',
          externalAccountBindingRequired: true,
          externalAccountMACKeys: { [eab.kid]: eab.hmacKey },
        },
      }),
    );
    const output: string[] = [];
    child = spawn('pebble', ['-config', config], {
      env: { ...process.env, PEBBLE_VA_ALWAYS_VALID: '1', PEBBLE_VA_NOSLEEP: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d) => output.push(String(d)));
    child.stderr!.on('data', (d) => output.push(String(d)));
    const caPem = await readFile(cert, 'utf8');
    const fetch = fetchTrusting(caPem);
    const directoryUrl = `https://127.0.0.1:${port}/dir`;
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`pebble exited: ${output.join('').slice(-2000)}`);
      const ok = await fetch(directoryUrl).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`pebble did not start: ${output.join('').slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    project.provide('pebble', { directoryUrl, managementUrl: `https://127.0.0.1:${managementPort}`, listenerCaPem: caPem, eab });
    return async () => {
      child?.kill();
      await rm(dir, { recursive: true, force: true });
    };
  } catch (err) {
    child?.kill();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
