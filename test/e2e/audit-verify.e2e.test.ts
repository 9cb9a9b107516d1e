/**
 * `npm run audit:verify` against the running stack: the chain is exported over HTTPS and verified
 * here with the same verifyChain the Worker runs; the published checkpoint key is pinned on first
 * use, and a different trusted key is reported.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { verifyRemote, type VerifyTarget } from '../../scripts/audit-verify.js';
import { REPO_DIR } from '../../scripts/lib/stack.js';
import { secretClient, stackInfo } from './../support/e2e.js';

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
    const { stdout } = await run(tsx, ['scripts/audit-verify.ts', '--vault', vaultName(), '--credentials', credentialsPath, '--pin-file', join(dir, 'pins.json')], {
      cwd: REPO_DIR,
      timeout: 60_000,
    });
    expect(stdout).toMatch(new RegExp(`^vault:${vaultName()}: intact through sequence \\d+`));
    const deployment = await run(tsx, ['scripts/audit-verify.ts', '--deployment', '--credentials', credentialsPath, '--pin-file', join(dir, 'pins.json')], { cwd: REPO_DIR, timeout: 60_000 });
    expect(deployment.stdout).toMatch(/^deployment: intact through sequence \d+/);
  });
});
