/**
 * Global setup of the `worker` suite's federated-credential tests: a local OIDC issuer host on
 * 127.0.0.1 (test/support/oidc-issuer.ts), which the Worker in workerd fetches discovery and JWKS
 * from, and whose control endpoints the tests (also in workerd) use to publish their keys.
 */
import { randomBytes } from 'node:crypto';
import type { TestProject } from 'vitest/node';
import { startOidcIssuerHost } from './oidc-issuer.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const controlToken = randomBytes(24).toString('base64url');
  const host = await startOidcIssuerHost({ controlToken });
  project.provide('oidcIssuerHost', { url: host.baseUrl, controlToken });
  return () => host.close();
}
