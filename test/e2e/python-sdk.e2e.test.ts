/**
 * The Azure SDK for Python (Debian's python3-azure, run by /usr/bin/python3) against the running
 * stack, at its default api-versions: widely installed builds default to preview versions
 * (azure-keyvault-keys 4.8 sends 7.4-preview.1), so this proves the vault answers them, and that
 * the challenge, token service and TLS work for a second SDK family, not only the JS one.
 * The Python side is test/e2e/python/sdk_smoke.py; it prints what it saw, asserted here.
 * Skipped, saying why, where the Python SDK is not installed (.ci/run installs it).
 */
import { execFile, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { stackInfo } from '../support/e2e.js';

const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('./python/sdk_smoke.py', import.meta.url));

const probe = spawnSync(PYTHON, ['-c', 'import azure.keyvault.secrets, azure.keyvault.keys, azure.identity'], {
  encoding: 'utf8',
});
const available = probe.status === 0;
const reason = available
  ? ''
  : ` (SKIPPED: ${PYTHON} cannot import the Azure SDK: ${(probe.error?.message ?? probe.stderr ?? '').trim().split('\n').pop()}; install it with apt-get install python3-azure)`;
if (!available) console.warn(`python-sdk.e2e: skipped${reason}`);

interface Observations {
  secret: { id: string; name: string; valueRoundTrips: boolean; sameVersion: boolean; versions: string[] };
  missingVersions: { items: string[] } | { status: number; error: string; code: string | null };
  key: { id: string; kty: string; bits: number; sameVersion: boolean };
  signature: { keyId: string; bytes: number; valid: boolean; tamperedValid: boolean };
  requests: string[];
}

function runScript(): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const info = stackInfo();
  const c = info.credentials;
  const caFile = join(info.stateDir, 'python-ca.pem');
  writeFileSync(caFile, info.caPem);
  return new Promise((resolve) => {
    execFile(
      PYTHON,
      [SCRIPT],
      {
        timeout: 120_000,
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          // Trust the development CA the honest way (requests reads the first, ssl the second).
          REQUESTS_CA_BUNDLE: caFile,
          SSL_CERT_FILE: caFile,
          EKV_VAULT_URL: c.vaultUrl,
          EKV_AUTHORITY_HOST: c.authorityHost,
          EKV_TENANT_ID: c.tenantId,
          EKV_CLIENT_ID: c.clientId,
          EKV_CLIENT_SECRET: c.clientSecret,
        },
      },
      (error, stdout, stderr) => resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe.skipIf(!available)(`Azure SDK for Python against the local vault${reason}`, () => {
  it('gets a token, sets and reads secrets, creates an RSA key and signs/verifies with it, at the SDK default api-versions', async () => {
    const { code, stdout, stderr } = await runScript();
    expect(code, stderr).toBe(0);
    // The script never prints the client secret, and neither does anything it calls.
    expect(stdout + stderr).not.toContain(stackInfo().credentials.clientSecret);
    const out = JSON.parse(stdout) as Observations;
    const vaultUrl = stackInfo().credentials.vaultUrl;

    expect(out.secret.valueRoundTrips).toBe(true);
    expect(out.secret.sameVersion).toBe(true);
    expect(out.secret.id).toMatch(new RegExp(`^${vaultUrl}/secrets/${out.secret.name}/[0-9a-f]{32}$`));
    expect(out.secret.versions).toEqual([out.secret.id.split('/').pop()]);
    // As Azure: the versions of a name that does not exist are an empty list, not an error.
    expect(out.missingVersions).toEqual({ items: [] });

    expect(out.key.kty).toBe('RSA');
    expect(out.key.bits).toBe(2048);
    expect(out.key.sameVersion).toBe(true);
    expect(out.key.id).toMatch(new RegExp(`^${vaultUrl}/keys/py-key-[0-9a-f]{12}/[0-9a-f]{32}$`));
    expect(out.signature).toEqual({ keyId: out.key.id, bytes: 256, valid: true, tamperedValid: false });

    // The defaults went out and were answered: secrets at 7.3, keys and crypto at the 7.4 preview,
    // the sign itself at the service (not done locally by the SDK).
    const versionsOf = (path: RegExp) =>
      new Set(out.requests.filter((r) => path.test(r.split(' ')[1]!)).map((r) => r.split(' ')[2]));
    expect(versionsOf(/^\/secrets\//)).toEqual(new Set(['7.3']));
    expect(versionsOf(/^\/keys\//)).toEqual(new Set(['7.4-preview.1']));
    expect(out.requests).toContainEqual(
      expect.stringMatching(/^POST \/keys\/py-key-[0-9a-f]{12}\/[0-9a-f]{32}\/sign 7\.4-preview\.1$/),
    );
  }, 180_000);
});
