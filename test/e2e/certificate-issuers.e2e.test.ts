/**
 * The internal CA issuer through the unmodified CertificateClient on the whole stack: a certificate
 * created with a configured `EdgeKeyVaultCA` issuer verifies with `openssl verify` against the root
 * downloaded, unauthenticated, from `/pki/{vault}/ca.pem` (the PEM twin of ca.crt), as a relying
 * party would.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CertificateClient } from '@azure/keyvault-certificates';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { credential, request, secretClient, stackInfo, uniqueName, vaultRequest } from '../support/e2e.js';

const run = promisify(execFile);
let dir: string;
let caPem: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ekv-ca-e2e-'));
  const put = await vaultRequest('/certificates/issuers/vault-ca', { method: 'PUT', body: { provider: 'EdgeKeyVaultCA' } });
  expect(put.status).toBe(200);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The root as a relying party downloads it: PEM form of /pki/{vault}/ca.crt (the test client reads text). */
async function downloadCa(): Promise<string> {
  const { credentials, apexUrl } = stackInfo();
  const vault = new URL(credentials.vaultUrl).hostname.split('.')[0];
  const res = await request(`${apexUrl}/pki/${vault}/ca.pem`);
  expect(res.status).toBe(200);
  const out = join(dir, 'ca.pem');
  await writeFile(out, res.text);
  return out;
}

describe('internal CA issuer over the SDK', () => {
  for (const [label, keyType, exportable] of [
    ['software EC key', 'EC', true],
    ['non-exportable HSM key', 'EC-HSM', false],
  ] as const) {
    it(`issues a certificate (${label}) whose chain openssl verifies against the vault's public root`, async () => {
      const client = new CertificateClient(stackInfo().credentials.vaultUrl, credential());
      const name = uniqueName('ca-cert');
      const poller = await client.beginCreateCertificate(
        name,
        {
          issuerName: 'vault-ca',
          subject: `CN=${name}.example.test`,
          subjectAlternativeNames: { dnsNames: [`${name}.example.test`] },
          keyType,
          keyCurveName: 'P-256',
          exportable,
          contentType: 'application/x-pem-file',
          validityInMonths: 3,
        },
        { intervalInMs: 100 },
      );
      const cert = await poller.pollUntilDone();
      expect(cert.policy?.issuerName).toBe('vault-ca');

      caPem ??= await downloadCa();
      const secret = await secretClient().getSecret(name);
      expect(secret.value!.includes('PRIVATE KEY')).toBe(exportable);
      const leaf = join(dir, `${name}.pem`);
      await writeFile(leaf, secret.value!.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/)![0]);
      const { stdout } = await run('openssl', [
        'verify',
        '-CAfile',
        caPem,
        '-purpose',
        'sslserver',
        '-verify_hostname',
        `${name}.example.test`,
        leaf,
      ]);
      expect(stdout.trim()).toBe(`${leaf}: OK`);
      // A certificate it did not issue does not verify.
      const other = await run('openssl', ['verify', '-CAfile', leaf, caPem]).catch((err: { stdout: string }) => err);
      expect((other as { stdout: string }).stdout).not.toMatch(/: OK$/);
    });
  }
});
