/**
 * Backup and restore of a whole deployment, as the README describes it: the D1 export and the HSM
 * token (its KEK) together restore everything; the export without that token restores nothing.
 * Stack A holds secrets (and has rotated its KEK, re-wrapped and destroyed the old one, so the
 * export names a KEK generation other than the first, and rotated its audit checkpoint key, with
 * checkpoints before and after verifying); its D1 is exported (exportLocalD1: what `wrangler d1
 * export` writes for a remote database); stack B starts empty on a copy of A's SoftHSM2 token, imports the export, and every
 * secret reads back through the SDK; stack C imports the same export on a fresh token, and is
 * refused (an integrity error), never served garbage.
 */
import { appendFileSync } from 'node:fs';
import { cp, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { clientCredentialsToken } from '../../scripts/lib/bootstrap.js';
import { httpsRequest } from '../../scripts/lib/https-client.js';
import { findFreePort } from '../../scripts/lib/ports.js';
import { REPO_DIR, startStack, type Stack } from '../../scripts/lib/stack.js';
import { exportLocalD1, importLocalD1 } from '../../scripts/lib/wrangler.js';
import { verifyRemote } from '../../scripts/audit-verify.js';
import { ClientSecretCredential } from '@azure/identity';
import { SecretClient } from '@azure/keyvault-secrets';
import { stackInfo } from '../support/e2e.js';

/** Each test starts a whole stack (wrangler's first build is slow on a busy machine). */
const STACK_TIMEOUT_MS = 300_000;
const dirs: string[] = [];
const stacks: Stack[] = [];

afterAll(async () => {
  for (const s of stacks) await s.stop();
  if (process.env.KEEP_E2E_STATE !== '1') for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** A state dir holding the suite's development CA, so the SDK (NODE_EXTRA_CA_CERTS) trusts it. */
async function stateDir(name: string): Promise<string> {
  const root = join(REPO_DIR, '.test-state');
  await mkdir(root, { recursive: true });
  const dir = await mkdtemp(join(root, `${name}-`));
  dirs.push(dir);
  await cp(join(stackInfo().stateDir, 'ca'), join(dir, 'ca'), { recursive: true });
  return dir;
}

async function start(dir: string): Promise<Stack> {
  const outputLog = join(dir, 'output.log');
  const stack = await startStack({
    stateDir: dir,
    vaultPort: await findFreePort(),
    bridgePort: await findFreePort(),
    log: (line) => appendFileSync(outputLog, `[stack] ${line}\n`),
    onOutput: (source, line) => appendFileSync(outputLog, `[${source}] ${line}\n`),
  });
  stacks.push(stack);
  return stack;
}

const wranglerCtx = (dir: string) => ({ repoDir: REPO_DIR, persistTo: join(dir, 'wrangler'), stateDir: dir });

async function api(stack: Stack, method: string, path: string, token: string) {
  const res = await httpsRequest(`${stack.apexUrl}${path}`, {
    method,
    ca: stack.caPem,
    headers: { authorization: `Bearer ${token}` },
  });
  return { status: res.status, body: res.text ? (JSON.parse(res.text) as Record<string, any>) : {} };
}

/** Runs the cron until the deployment chain has a checkpoint (signed by `kid` if given); its kid. */
async function checkpointedWith(stack: Stack, token: string, kid?: string): Promise<string> {
  for (let i = 0; i < 40; i++) {
    await stack.runCron();
    const list = (await api(stack, 'GET', '/management/audit/checkpoints', token)).body.checkpoints as Array<{ kid: string }>;
    const found = list.find((cp) => kid === undefined || cp.kid === kid);
    if (found) return found.kid;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`no checkpoint${kid ? ` signed by ${kid}` : ''} after 40 cron runs`);
}

/** The SDK as a user of that stack builds it: its own authority, tenant and application. */
function clientOf(stack: Stack): SecretClient {
  const c = stack.credentials;
  const cred = new ClientSecretCredential(c.tenantId, c.clientId, c.clientSecret, {
    authorityHost: c.authorityHost,
    disableInstanceDiscovery: true,
  });
  return new SecretClient(c.vaultUrl, cred);
}

describe('backup and restore of a deployment', () => {
  const values = Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`restored-${i}`, `value-${i}-${crypto.randomUUID()}`]));
  let dirA: string;
  let dump: string;
  let credentialsA: Stack['credentials'];

  it(
    'stack A: secrets written, the KEK rotated and the old one destroyed once nothing used it, the checkpoint key rotated, then D1 exported',
    async () => {
      dirA = await stateDir('backup-a');
      const a = await start(dirA);
      credentialsA = a.credentials;
      const token = await clientCredentialsToken(a.apexUrl, a.apexUrl, a.credentials, a.caPem);
      for (const [name, value] of Object.entries(values)) await clientOf(a).setSecret(name, value);

      const rotated = await api(a, 'POST', '/management/kek/rotate', token);
      expect(rotated.status).toBe(201);
      const old = rotated.body.keks.find((k: { current: boolean }) => !k.current).label as string;
      expect((await api(a, 'DELETE', `/management/kek/${old}`, token)).status).toBe(409);
      await a.runCron();
      const status = await api(a, 'GET', '/management/kek', token);
      expect(status.body).toMatchObject({ current: rotated.body.current, pending: 0 });
      expect((await api(a, 'DELETE', `/management/kek/${old}`, token)).status).toBe(204);
      expect((await api(a, 'GET', '/management/kek', token)).body.keks.map((k: { label: string }) => k.label)).toEqual([
        rotated.body.current,
      ]);
      expect((await clientOf(a).getSecret('restored-0')).value).toBe(values['restored-0']);

      // The audit checkpoint key rotates too: checkpoints before and after both verify, in the
      // Worker and in the offline verifier (which pins the new key as a rotation of the old).
      const target = {
        apexUrl: a.apexUrl,
        tenantId: a.credentials.tenantId,
        clientId: a.credentials.clientId,
        clientSecret: a.credentials.clientSecret,
        caPem: a.caPem,
      };
      const pinFile = join(dirA, 'audit-pins.json');
      const first = await checkpointedWith(a, token);
      expect((await verifyRemote(target, { pinFile })).result.ok).toBe(true);
      const rotatedCp = await httpsRequest(`${a.apexUrl}/management/audit/checkpoint-keys/rotate`, {
        method: 'POST',
        ca: a.caPem,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ currentKid: first }),
      });
      expect(rotatedCp.status).toBe(201);
      const second = (JSON.parse(rotatedCp.text) as { kid: string }).kid;
      expect(second).not.toBe(first);
      const published = JSON.parse((await httpsRequest(`${a.apexUrl}/audit/checkpoint-keys`, { ca: a.caPem })).text) as {
        keys: Array<{ kid: string }>;
      };
      expect(published.keys.map((k) => k.kid)).toEqual([first, second]);
      await checkpointedWith(a, token, second);
      const kids = new Set(
        ((await api(a, 'GET', '/management/audit/checkpoints', token)).body.checkpoints as Array<{ kid: string }>).map(
          (cp) => cp.kid,
        ),
      );
      expect([...kids].sort()).toEqual([first, second].sort());
      expect((await api(a, 'GET', '/management/audit/verify', token)).body).toMatchObject({
        ok: true,
        key: { kid: second, storedCopyMatches: true },
      });
      const offline = await verifyRemote(target, { pinFile });
      expect(offline.result.ok, offline.message).toBe(true);
      expect(offline.keyWarning).toBeUndefined();

      await a.stop();
      dump = join(dirA, 'd1-export.sql');
      await exportLocalD1(wranglerCtx(dirA), dump);
    },
    STACK_TIMEOUT_MS,
  );

  it(
    'stack B on the same HSM token with the export imported: every secret reads back through the SDK',
    async () => {
      const dirB = await stateDir('backup-b');
      // The HSM's own backup, here: a copy of the SoftHSM2 token (its KEK). Same credentials as A.
      await cp(join(dirA, 'softhsm'), join(dirB, 'softhsm'), { recursive: true });
      await cp(join(dirA, 'credentials.json'), join(dirB, 'credentials.json'));
      await importLocalD1(wranglerCtx(dirB), dump);
      const b = await start(dirB);
      expect(b.credentials.clientId).toBe(credentialsA.clientId);
      const client = clientOf(b);
      for (const [name, value] of Object.entries(values)) expect((await client.getSecret(name)).value).toBe(value);
      await b.stop();
    },
    STACK_TIMEOUT_MS,
  );

  it(
    'stack C with the export but a different HSM token: refused, not garbage',
    async () => {
      const dirC = await stateDir('backup-c');
      await cp(join(dirA, 'credentials.json'), join(dirC, 'credentials.json'));
      await importLocalD1(wranglerCtx(dirC), dump);
      // Tokens cannot even be issued: the signing key's data key does not unwrap without the KEK.
      await expect(start(dirC)).rejects.toThrow(/HTTP 500 .*DataIntegrityError/s);
    },
    STACK_TIMEOUT_MS,
  );
});
