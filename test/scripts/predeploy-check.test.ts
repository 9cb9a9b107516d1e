/**
 * The pre-deploy check against configurations as wrangler resolves them: the repository's own
 * development shape (and its example production environment) are refused, each reason named; a
 * filled-in production configuration passes. No stack, no account: only wrangler's config reader.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkDeployConfig, describeRefusals, readDeployConfig, suppliedSecrets } from '../../scripts/lib/predeploy-check.js';
import { REPO_DIR } from '../../scripts/lib/stack.js';

const GOOD_SECRETS = { BRIDGE_HMAC_SECRET: 'b'.repeat(48), BOOTSTRAP_SECRET: 'c'.repeat(48) };
const REAL_DB_ID = '5b0d3f7e-2c11-4a55-9b7e-0c6c2d9a1e42';

/** The repository's production environment with every example value replaced by a real one. */
async function goodProductionToml(): Promise<string> {
  const toml = await readFile(join(REPO_DIR, 'wrangler.toml'), 'utf8');
  const production = toml.indexOf('\n[env.production]');
  const filled = toml
    .slice(production)
    .replaceAll('vault.example.com', 'vault.contoso-keys.net')
    .replaceAll('zone_name = "example.com"', 'zone_name = "contoso-keys.net"')
    .replace('https://hsm-bridge.example.com', 'https://hsm-bridge.contoso-keys.net')
    .replace(/database_id = "0{8}-[^"]*"/, `database_id = "${REAL_DB_ID}"`);
  return toml.slice(0, production) + filled;
}

describe('pre-deploy check', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ekv-predeploy-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses the development configuration, naming every reason', async () => {
    const dev = await readDeployConfig(join(REPO_DIR, 'wrangler.toml'), '');
    // As the local stack runs it (it passes ALLOW_LOOPBACK_HTTP_ISSUERS=true), with a short retention.
    const refusals = checkDeployConfig(
      { ...dev, vars: { ...dev.vars, ALLOW_LOOPBACK_HTTP_ISSUERS: 'true', AUDIT_RETENTION_DAYS: '7' } },
      'production',
      {
        supplied: { BRIDGE_HMAC_SECRET: 'too-short' },
      },
    );
    const settings = refusals.map((r) => r.setting);
    expect(settings).toEqual(
      expect.arrayContaining([
        'VAULT_ZONE',
        'BRIDGE_URL',
        'ALLOW_LOOPBACK_HTTP_ISSUERS',
        'AUDIT_RETENTION_DAYS',
        'd1_databases.DB.database_id',
        'routes',
        'BRIDGE_HMAC_SECRET',
        'BOOTSTRAP_SECRET',
      ]),
    );
    const byName = Object.fromEntries(refusals.map((r) => [r.setting, r]));
    expect(byName.VAULT_ZONE!.problem).toMatch(/local development name/);
    expect(
      refusals
        .filter((r) => r.setting === 'BRIDGE_URL')
        .map((r) => r.problem)
        .join(' '),
    ).toMatch(/http.*loopback|loopback.*http/s);
    expect(byName['d1_databases.DB.database_id']!.fix).toMatch(/wrangler d1 create edge-key-vault/);
    expect(byName.BRIDGE_HMAC_SECRET!.problem).toMatch(/shorter than 32/);
    expect(byName.AUDIT_RETENTION_DAYS!.fix).toMatch(/at least 30/);
    // Every refusal says what to do; no secret value reaches the report.
    for (const r of refusals) expect(r.fix.length).toBeGreaterThan(10);
    expect(describeRefusals(refusals, 'production')).not.toContain('too-short');
  });

  it("refuses the repository's example production environment until it is filled in", async () => {
    const example = await readDeployConfig(join(REPO_DIR, 'wrangler.toml'), 'production');
    const settings = checkDeployConfig(example, 'production', { supplied: GOOD_SECRETS }).map((r) => r.setting);
    expect(settings.sort()).toEqual(['BRIDGE_URL', 'VAULT_ZONE', 'd1_databases.DB.database_id']);
  });

  it('passes a filled-in production configuration', async () => {
    const path = join(dir, 'wrangler.toml');
    await writeFile(path, await goodProductionToml());
    const config = await readDeployConfig(path, 'production');
    expect(config.vars.VAULT_ZONE).toBe('vault.contoso-keys.net');
    const refusals = checkDeployConfig(config, 'production', { supplied: GOOD_SECRETS });
    expect(refusals, describeRefusals(refusals, 'production')).toEqual([]);
    // Secrets already on the Worker count as set; supplied ones are still checked.
    expect(
      checkDeployConfig(config, 'production', { supplied: {}, alreadySet: new Set(['BRIDGE_HMAC_SECRET', 'BOOTSTRAP_SECRET']) }),
    ).toEqual([]);
    expect(
      checkDeployConfig(config, 'production', { supplied: {}, alreadySet: new Set(['BRIDGE_HMAC_SECRET']) }).map(
        (r) => r.setting,
      ),
    ).toEqual(['BOOTSTRAP_SECRET']);
  });

  it('reads secrets from NAME or NAME_FILE, never both', async () => {
    const file = join(dir, 'bootstrap');
    await writeFile(file, `${'d'.repeat(40)}\n`);
    expect(suppliedSecrets({ BRIDGE_HMAC_SECRET: 'x'.repeat(40), BOOTSTRAP_SECRET_FILE: file })).toEqual({
      BRIDGE_HMAC_SECRET: 'x'.repeat(40),
      BOOTSTRAP_SECRET: 'd'.repeat(40),
    });
    expect(() => suppliedSecrets({ BRIDGE_HMAC_SECRET: 'x', BRIDGE_HMAC_SECRET_FILE: file })).toThrow(/keep one/);
  });
});
