/**
 * `npm run audit:verify` against the running stack: the chain is exported over HTTPS and verified
 * here with the same verifyChain the Worker runs; the published checkpoint key is pinned on first
 * use, and a different trusted key is reported. Chains are bound to vault ids: a deleted vault's is
 * found in GET /management/audit/chains and verified with --chain.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { verifyRemote, type VerifyTarget } from '../../scripts/audit-verify.js';
import { REPO_DIR } from '../../scripts/lib/stack.js';
import { createVault, managementRequest, secretClient, stackInfo, uniqueName, vaultUrl } from './../support/e2e.js';

const run = promisify(execFile);

function target(): VerifyTarget {
  const { credentials: c, caPem, apexUrl } = stackInfo();
  return { apexUrl, tenantId: c.tenantId, clientId: c.clientId, clientSecret: c.clientSecret, caPem };
}

const vaultName = () => new URL(stackInfo().credentials.vaultUrl).hostname.split('.')[0]!;

/** Requests to the default vault, and time for the queue to put their records in the chain. */
async function someRecords(): Promise<void> {
  const client = secretClient();
  await client.setSecret(`audit-verify-${Date.now()}`, 'v');
  for (const _ of [1, 2]) await client.getSecret('does-not-exist').catch(() => {});
  await new Promise((r) => setTimeout(r, 2_000));
}

/** The chains the deployment lists (GET /management/audit/chains), as its administrators see them. */
async function chains(): Promise<Array<{ chain: string; vaultId: string | null; vaultName: string | null; live: boolean }>> {
  const res = await managementRequest('/management/audit/chains');
  expect(res.status, res.text).toBe(200);
  return res.json<{ value: Array<{ chain: string; vaultId: string | null; vaultName: string | null; live: boolean }> }>().value;
}

describe('audit:verify', () => {
  it('verifies a vault chain exported from the stack, pinning the published key', async () => {
    await someRecords();
    const dir = await mkdtemp(join(tmpdir(), 'ekv-audit-verify-'));
    const pinFile = join(dir, 'pins.json');
    const out = await verifyRemote(target(), { vault: vaultName(), pinFile });
    expect(out.result.ok, out.message).toBe(true);
    expect(out.rows).toBeGreaterThan(0);
    expect(out.message).toMatch(/^intact through sequence \d+/);
    const pins = JSON.parse(await readFile(pinFile, 'utf8'));
    expect(Object.values(pins.keys)).toEqual([expect.objectContaining({ kid: out.kid })]);

    // Another trusted key than the published one is reported.
    const other = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
    const jwk = await crypto.subtle.exportKey('jwk', other.publicKey);
    const warned = await verifyRemote(target(), { vault: vaultName(), key: { kty: 'EC', crv: 'P-256', x: jwk.x!, y: jwk.y! } });
    expect(warned.keyWarning).toMatch(/differs from the trusted one/);
  });

  it('runs as the npm script, with the stack’s credentials file, exit code 0', async () => {
    await someRecords();
    const dir = await mkdtemp(join(tmpdir(), 'ekv-audit-verify-'));
    const credentialsPath = join(dir, 'credentials.json');
    await writeFile(credentialsPath, JSON.stringify(stackInfo().credentials));
    const tsx = join(REPO_DIR, 'node_modules', '.bin', 'tsx');
    const { stdout } = await run(
      tsx,
      ['scripts/audit-verify.ts', '--vault', vaultName(), '--credentials', credentialsPath, '--pin-file', join(dir, 'pins.json')],
      {
        cwd: REPO_DIR,
        timeout: 60_000,
      },
    );
    // The vault's chain is named by its id, as the administrators' chain list says.
    const listed = (await chains()).find((c) => c.vaultName === vaultName() && c.live);
    expect(listed?.chain).toMatch(/^vault:/);
    expect(stdout).toMatch(new RegExp(`^${listed!.chain}: intact through sequence \\d+`));
    const deployment = await run(
      tsx,
      ['scripts/audit-verify.ts', '--deployment', '--credentials', credentialsPath, '--pin-file', join(dir, 'pins.json')],
      { cwd: REPO_DIR, timeout: 60_000 },
    );
    expect(deployment.stdout).toMatch(/^deployment: intact through sequence \d+/);
  });

  it("verifies a deleted vault's chain by its id (--chain), which no vault host serves any more", async () => {
    const name = uniqueName('gone');
    await createVault(name);
    await secretClient(vaultUrl(name)).setSecret('before-deletion', 'v');
    // The chain is listed once the queue has delivered the vault's first record.
    let chain: string | undefined;
    for (let i = 0; i < 30 && !chain; i++) {
      await new Promise((r) => setTimeout(r, 500));
      chain = (await chains()).find((c) => c.vaultName === name && c.live)?.chain;
    }
    expect(chain).toMatch(/^vault:[0-9a-f-]{36}$/);
    expect((await managementRequest(`/management/vaults/${name}`, { method: 'DELETE' })).status).toBe(204);
    expect((await chains()).find((c) => c.chain === chain)).toMatchObject({ vaultName: name, live: false });

    const dir = await mkdtemp(join(tmpdir(), 'ekv-audit-verify-'));
    const credentialsPath = join(dir, 'credentials.json');
    await writeFile(credentialsPath, JSON.stringify(stackInfo().credentials));
    const tsx = join(REPO_DIR, 'node_modules', '.bin', 'tsx');
    const { stdout } = await run(
      tsx,
      ['scripts/audit-verify.ts', '--chain', chain!, '--credentials', credentialsPath, '--pin-file', join(dir, 'pins.json')],
      { cwd: REPO_DIR, timeout: 60_000 },
    );
    expect(stdout).toMatch(new RegExp(`^${chain}: intact through sequence [1-9]\\d*`));
    // Both a vault and a chain: refused before any request.
    await expect(verifyRemote(target(), { vault: name, chain: chain! })).rejects.toThrow(/either a vault or a chain/);
  });
});
