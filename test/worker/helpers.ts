/** Shared helpers of the workerd tests: hosts, requests through the Worker, vaults and tokens. */
import { createExecutionContext, waitOnExecutionContext } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import worker from '../../src/index';
import type { Env } from '../../src/core/env';
import { VaultRpc } from '../../src/rpc/entrypoint';
import { createApplication } from '../../src/identity/applications';
import { findTenantId } from '../../src/identity/tenant';
import { database } from '../../src/storage/db';

/** Test hosts: the apex and vault hosts as the Worker sees them (no port in tests). */
export const APEX = 'https://vault.localhost';
export const vaultOrigin = (name: string) => `https://${name}.vault.localhost`;
export const API = 'api-version=7.6';

export interface CallOptions {
  token?: string;
  body?: unknown;
  headers?: Record<string, string>;
  /** Run against a modified environment (e.g. a bridge that is down). */
  env?: Partial<Env>;
}

/** Calls the Worker's own fetch handler in workerd, waiting for its background work (audit). */
export async function call(method: string, url: string, opts: CallOptions = {}): Promise<Response> {
  const headers = new Headers(opts.headers);
  if (opts.token) headers.set('authorization', `Bearer ${opts.token}`);
  let body: string | undefined;
  if (opts.body !== undefined) {
    body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
    if (!headers.has('content-type')) headers.set('content-type', 'application/json');
  }
  const ctx = createExecutionContext();
  const res = await worker.fetch(new Request(url, { method, headers, body }) as never, { ...env, ...opts.env } as Env, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

export async function json<T = any>(res: Response): Promise<T> {
  return (await res.json()) as T;
}

export const BOOTSTRAP_SECRET = 'test-bootstrap-secret-0123456789abcdef0123';

/**
 * Makes sure the deployment is bootstrapped and returns an administrator's credentials. Storage
 * may be shared between test files, so when another file bootstrapped first, a fresh
 * administrator is created directly in D1 (the bootstrap itself is tested on its own).
 */
export async function admin(): Promise<{ tenantId: string; clientId: string; clientSecret: string }> {
  const res = await call('POST', `${APEX}/management/bootstrap`, {
    headers: { authorization: `Bootstrap ${BOOTSTRAP_SECRET}` },
    body: {},
  });
  if (res.status === 201) return json(res);
  if (res.status !== 409) throw new Error(`bootstrap failed: ${res.status} ${await res.text()}`);
  const db = database(env.DB);
  const tenantId = (await findTenantId(db))!;
  const created = await createApplication(db, tenantId, { displayName: 'test admin', isAdmin: true });
  return { tenantId, clientId: created.app.clientId, clientSecret: created.clientSecret };
}

export async function tokenFor(creds: { tenantId: string; clientId: string; clientSecret: string }): Promise<string> {
  const res = await call('POST', `${APEX}/${creds.tenantId}/oauth2/v2.0/token`, {
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: creds.clientId,
      client_secret: creds.clientSecret,
      scope: `${APEX}/.default`,
    }).toString(),
  });
  if (res.status !== 200) throw new Error(`token request failed: ${res.status} ${await res.text()}`);
  return (await json(res)).access_token;
}

let counter = 0;
/** A vault of its own for a test (names are unique per run). */
export async function newVault(token: string, settings: Record<string, unknown> = {}): Promise<string> {
  const name = `t${Date.now().toString(36)}${(counter++).toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`.slice(
    0,
    24,
  );
  const res = await call('PUT', `${APEX}/management/vaults/${name}`, { token, body: settings });
  if (res.status !== 201) throw new Error(`vault create failed: ${res.status} ${await res.text()}`);
  return name;
}

/** An administrator token and a fresh vault: the usual starting point. */
export async function setupVault(settings: Record<string, unknown> = {}) {
  const creds = await admin();
  const token = await tokenFor(creds);
  const name = await newVault(token, settings);
  return { creds, token, vault: name, origin: vaultOrigin(name) };
}

export { env };

/**
 * One call through VaultRpc as a service binding whose props name `vault` and `clientId` would
 * make it (in this Worker's env, or `rpcEnv`), after the call's waitUntil work has settled.
 */
export async function viaBinding<T>(
  vault: string,
  clientId: string,
  call: (rpc: VaultRpc) => Promise<T>,
  rpcEnv: Env = env as unknown as Env,
): Promise<T> {
  const ctx = createExecutionContext();
  const bindingCtx = {
    waitUntil: (p: Promise<unknown>) => ctx.waitUntil(p),
    passThroughOnException: () => ctx.passThroughOnException(),
    props: { vault, clientId },
  } as unknown as ExecutionContext;
  const result = await call(new VaultRpc(bindingCtx, rpcEnv));
  await waitOnExecutionContext(ctx);
  return result;
}
