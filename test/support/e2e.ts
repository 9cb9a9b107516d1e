/**
 * What every e2e test file needs: the stack's coordinates, SDK clients built exactly as a user
 * would build them, raw HTTPS for what the SDKs do not expose, and control of the HSM bridge.
 * Importing this module maps *.localhost to loopback for this process (see hosts.ts).
 */
import tls from 'node:tls';
import { inject } from 'vitest';
import { ClientSecretCredential } from '@azure/identity';
import { SecretClient } from '@azure/keyvault-secrets';
import { httpsRequest, type HttpsRequestOptions, type HttpsResponse } from '../../scripts/lib/https-client.js';
import type { E2eStackInfo } from './e2e-context.js';
import { installLoopbackResolver } from './hosts.js';

installLoopbackResolver();

export function stackInfo(): E2eStackInfo {
  const info = inject('e2eStack');
  if (!info) throw new Error('e2eStack was not provided: run the e2e project (its globalSetup starts the stack)');
  assertCaTrusted(info.caPem);
  return info;
}

/** The SDKs must trust the development CA the honest way: NODE_EXTRA_CA_CERTS, read at start-up. */
function assertCaTrusted(caPem: string): void {
  const normalize = (pem: string) => pem.replace(/\s+/g, '');
  const extra = tls.getCACertificates('extra').map(normalize);
  if (!extra.includes(normalize(caPem))) {
    throw new Error('this test worker does not trust the development CA: NODE_EXTRA_CA_CERTS was not inherited from the global setup');
  }
}

export function credential(overrides: { clientSecret?: string; clientId?: string; tenantId?: string } = {}): ClientSecretCredential {
  const c = stackInfo().credentials;
  return new ClientSecretCredential(
    overrides.tenantId ?? c.tenantId,
    overrides.clientId ?? c.clientId,
    overrides.clientSecret ?? c.clientSecret,
    { authorityHost: c.authorityHost, disableInstanceDiscovery: true },
  );
}

/** `https://{vault}.{zone}:{port}`. */
export function vaultUrl(vault: string): string {
  const { zone, vaultPort } = stackInfo();
  return `https://${vault}.${zone}:${vaultPort}`;
}

export function secretClient(url: string = stackInfo().credentials.vaultUrl, cred = credential()): SecretClient {
  return new SecretClient(url, cred);
}

/** Raw HTTPS to the stack, trusting only its CA. */
export function request(url: string, opts: Omit<HttpsRequestOptions, 'ca'> = {}): Promise<HttpsResponse> {
  return httpsRequest(url, { ...opts, ca: stackInfo().caPem });
}

/**
 * Asks the vault's token service for a token for `scope` (client credentials, raw HTTP).
 * `hostHeader` makes the request look addressed to another origin of the same deployment.
 */
export async function tokenFor(scope: string, opts: { hostHeader?: string } = {}): Promise<HttpsResponse> {
  const { credentials: c } = stackInfo();
  return request(`${c.authorityHost}/${c.tenantId}/oauth2/v2.0/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...(opts.hostHeader ? { host: opts.hostHeader } : {}) },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: c.clientId, client_secret: c.clientSecret, scope }).toString(),
  });
}

export async function adminToken(): Promise<string> {
  const res = await tokenFor(`${stackInfo().credentials.resource}/.default`);
  if (res.status !== 200) throw new Error(`token request failed: ${res.status} ${res.text}`);
  return res.json<{ access_token: string }>().access_token;
}

async function controlBridge(action: 'stop' | 'start'): Promise<void> {
  const { control } = stackInfo();
  const res = await fetch(`${control.url}/bridge/${action}`, { method: 'POST', headers: { authorization: `Bearer ${control.token}` } });
  if (res.status !== 204) throw new Error(`bridge ${action} failed: ${res.status} ${await res.text()}`);
}

export const bridge = {
  stop: () => controlBridge('stop'),
  start: () => controlBridge('start'),
};

/** A name no other test (or earlier run against a kept state) uses. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

export async function collect<T>(iter: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iter) out.push(item);
  return out;
}
