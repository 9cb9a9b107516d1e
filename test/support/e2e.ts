/**
 * What every e2e test file needs: the stack's coordinates, SDK clients built exactly as a user
 * would build them, raw HTTPS for what the SDKs do not expose, and control of the HSM bridge.
 * Importing this module maps *.localhost to loopback for this process (see hosts.ts).
 */
import { createPublicKey, type JsonWebKey as NodeJsonWebKey, type KeyObject } from 'node:crypto';
import tls from 'node:tls';
import { expect, inject } from 'vitest';
import { ClientSecretCredential } from '@azure/identity';
import {
  CryptographyClient,
  KeyClient,
  type CryptographyClientOptions,
  type JsonWebKey,
  type KeyClientOptions,
  type KeyVaultKey,
} from '@azure/keyvault-keys';
import { isRestError, SecretClient, type RestError } from '@azure/keyvault-secrets';
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
    throw new Error(
      'this test worker does not trust the development CA: NODE_EXTRA_CA_CERTS was not inherited from the global setup',
    );
  }
}

export function credential(
  overrides: { clientSecret?: string; clientId?: string; tenantId?: string } = {},
): ClientSecretCredential {
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
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: c.clientId,
      client_secret: c.clientSecret,
      scope,
    }).toString(),
  });
}

export async function adminToken(): Promise<string> {
  const res = await tokenFor(`${stackInfo().credentials.resource}/.default`);
  if (res.status !== 200) throw new Error(`token request failed: ${res.status} ${res.text}`);
  return res.json<{ access_token: string }>().access_token;
}

async function controlBridge(action: 'stop' | 'start'): Promise<void> {
  const { control } = stackInfo();
  const res = await fetch(`${control.url}/bridge/${action}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${control.token}` },
  });
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

// ------------------------------------------------------------------------------------------ keys

/** Pipeline options that turn off the SDK's retries (a 503 with Retry-After is otherwise retried). */
export const NO_RETRY = { retryOptions: { maxRetries: 0 } } as const;

export function keyClient(
  url: string = stackInfo().credentials.vaultUrl,
  cred = credential(),
  options?: KeyClientOptions,
): KeyClient {
  return new KeyClient(url, cred, options);
}

/**
 * A CryptographyClient as a user builds one: from a key id (fetched on first use, then cached
 * with its key_ops and expiry, which the SDK checks itself) or from a KeyVaultKey (never fetched).
 */
export function cryptoClient(
  keyOrId: KeyVaultKey | string,
  cred = credential(),
  options?: CryptographyClientOptions,
): CryptographyClient {
  return new CryptographyClient(keyOrId, cred, options);
}

/** Awaits a promise that must fail with an HTTP error of `status` (and `code`); returns the error. */
export async function expectRestError(promise: Promise<unknown>, status: number, code?: string): Promise<RestError> {
  const err: unknown = await promise.then(
    (value) => ({ unexpectedSuccess: value }),
    (e: unknown) => e,
  );
  if (!isRestError(err))
    throw new Error(`expected HTTP ${status}, got ${err instanceof Error ? err.stack : JSON.stringify(err)}`);
  expect(err.statusCode, `${err.code}: ${err.message}`).toBe(status);
  if (code !== undefined) expect(err.code, err.message).toBe(code);
  return err;
}

/** Raw HTTPS to the default vault with an admin token: `path` is e.g. `/keys/x` (api-version added). */
export async function vaultRequest(
  path: string,
  opts: { method?: string; body?: unknown; token?: string; url?: string } = {},
): Promise<HttpsResponse> {
  const base = opts.url ?? stackInfo().credentials.vaultUrl;
  const sep = path.includes('?') ? '&' : '?';
  return request(`${base}${path}${sep}api-version=7.6`, {
    method: opts.method ?? 'GET',
    headers: {
      authorization: `Bearer ${opts.token ?? (await adminToken())}`,
      ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
  });
}

/** Private (or secret) members of a JSON Web Key: none may ever appear in an answer of the vault. */
export const PRIVATE_JWK_FIELDS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 't'] as const;

export const b64url = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');
export const fromB64url = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'base64url'));

const SDK_BYTE_FIELDS = ['n', 'e', 'd', 'p', 'q', 'dp', 'dq', 'qi', 'x', 'y', 'k', 't'] as const;

/** node:crypto's JWK export (base64url strings; secp256k1 named as node names it) as the SDK's JsonWebKey. */
export function toSdkJwk(jwk: NodeJsonWebKey): JsonWebKey {
  const out: JsonWebKey = { kty: jwk.kty as JsonWebKey['kty'] };
  if (jwk.crv) out.crv = jwk.crv === 'secp256k1' ? 'P-256K' : (jwk.crv as JsonWebKey['crv']);
  for (const field of SDK_BYTE_FIELDS) {
    const value = jwk[field];
    if (typeof value === 'string') out[field] = fromB64url(value);
  }
  return out;
}

/** The public key of a JsonWebKey the SDK returned, as node:crypto takes it (not for P-256K). */
export function nodePublicKey(key: JsonWebKey): KeyObject {
  const kty = key.kty?.replace(/-HSM$/, '');
  if (kty === 'RSA') return createPublicKey({ key: { kty, n: b64url(key.n!), e: b64url(key.e!) }, format: 'jwk' });
  if (kty === 'EC') return createPublicKey({ key: { kty, crv: key.crv, x: b64url(key.x!), y: b64url(key.y!) }, format: 'jwk' });
  throw new Error(`no public key for kty ${key.kty}`);
}

/** SEC1 uncompressed point 04 || x || y of an EC JsonWebKey (as @noble/curves takes public keys). */
export function ecPoint(key: JsonWebKey): Uint8Array {
  return new Uint8Array(Buffer.concat([Buffer.of(4), key.x!, key.y!]));
}

// -------------------------------------------------------------------------------- access control

/** An application made through the management API; its client secret is shown only at creation. */
export interface TestApplication {
  clientId: string;
  objectId: string;
  clientSecret: string;
}

/** Raw HTTPS to the management API on the zone apex, as an administrator (`path` starts with /management). */
export async function managementRequest(
  path: string,
  opts: { method?: string; body?: unknown; token?: string } = {},
): Promise<HttpsResponse> {
  return request(`${stackInfo().apexUrl}${path}`, {
    method: opts.method ?? 'GET',
    headers: {
      authorization: `Bearer ${opts.token ?? (await adminToken())}`,
      ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
  });
}

function expectStatus(res: HttpsResponse, status: number, what: string): void {
  if (res.status !== status) throw new Error(`${what}: expected ${status}, got ${res.status} ${res.text.slice(0, 500)}`);
}

/** `POST /management/applications`: a non-administrator application by default. */
export async function createApplication(
  displayName: string,
  opts: { isAdmin?: boolean; token?: string } = {},
): Promise<TestApplication> {
  const res = await managementRequest('/management/applications', {
    method: 'POST',
    body: { displayName, isAdmin: opts.isAdmin ?? false },
    token: opts.token,
  });
  expectStatus(res, 201, `creating application ${displayName}`);
  const { clientId, objectId, clientSecret } = res.json<TestApplication>();
  return { clientId, objectId, clientSecret };
}

/** The administrator's own application (its object id names it in role assignments and access policies). */
export async function adminApplication(token?: string): Promise<{ clientId: string; objectId: string }> {
  const { clientId } = stackInfo().credentials;
  const res = await managementRequest(`/management/applications/${clientId}`, { token });
  expectStatus(res, 200, 'reading the administrator application');
  return { clientId, objectId: res.json<{ objectId: string }>().objectId };
}

/** `PUT /management/vaults/{name}` (201), e.g. `{ enableRbacAuthorization: false }`. */
export async function createVault(name: string, body: Record<string, unknown> = {}, token?: string): Promise<void> {
  const res = await managementRequest(`/management/vaults/${name}`, { method: 'PUT', body, token });
  expectStatus(res, 201, `creating vault ${name}`);
}

/** `PUT /management/vaults/{name}/accessPolicies/{objectId}`: creates or replaces a principal's policy. */
export async function setAccessPolicy(
  vaultName: string,
  objectId: string,
  permissions: { keys?: string[]; secrets?: string[]; certificates?: string[] },
  token?: string,
): Promise<HttpsResponse> {
  const res = await managementRequest(`/management/vaults/${vaultName}/accessPolicies/${objectId}`, {
    method: 'PUT',
    body: { permissions },
    token,
  });
  if (res.status !== 200 && res.status !== 201)
    throw new Error(`access policy for ${objectId}: ${res.status} ${res.text.slice(0, 500)}`);
  return res;
}

/**
 * A role assignment made by the deployment's administrator through the management API
 * (`PUT /management/vaults/{vault}/providers/Microsoft.Authorization/roleAssignments/{guid}?scope=`,
 * the same body as the vault's own RBAC API): a vault's creator holds Key Vault Administrator,
 * which, as on Azure, cannot manage role assignments on the vault itself. `scope` is
 * vault-relative ('/', '/keys', '/secrets/{name}', …). Returns the assignment's name (a fresh GUID).
 */
export async function assignRole(
  vaultName: string,
  scope: string,
  roleDefinitionId: string,
  principalId: string,
  token?: string,
): Promise<string> {
  const name = crypto.randomUUID();
  const res = await managementRequest(
    `/management/vaults/${vaultName}/providers/Microsoft.Authorization/roleAssignments/${name}?scope=${encodeURIComponent(scope)}`,
    { method: 'PUT', body: { properties: { roleDefinitionId, principalId } }, token },
  );
  expectStatus(res, 201, `assigning ${roleDefinitionId} at ${scope} to ${principalId}`);
  return name;
}

/** A bearer token for the vault resource, as `app` (for raw requests). */
export async function tokenOf(app: TestApplication): Promise<string> {
  const token = await credential({ clientId: app.clientId, clientSecret: app.clientSecret }).getToken(
    `${stackInfo().credentials.resource}/.default`,
  );
  return token.token;
}

/** Runs at most `concurrency` of the given tasks at a time (the local stack is one workerd process). */
export function limiter(concurrency: number): <T>(task: () => Promise<T>) => Promise<T> {
  let active = 0;
  const queue: (() => void)[] = [];
  const next = () => {
    if (active >= concurrency) return;
    const start = queue.shift();
    if (start) {
      active++;
      start();
    }
  };
  return <T>(task: () => Promise<T>) =>
    new Promise<T>((resolve, reject) => {
      queue.push(() => {
        task()
          .then(resolve, reject)
          .finally(() => {
            active--;
            next();
          });
      });
      next();
    });
}
