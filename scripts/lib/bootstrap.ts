/**
 * First-run setup of a local stack, through the Worker's public API only: bootstrap the tenant
 * (creates the first administrator), get a token with the client-credentials grant, create the
 * default vault. Never logs any secret.
 */
import { httpsRequest, type HttpsResponse } from './https-client.js';

export interface BootstrapResult {
  tenantId: string;
  clientId: string;
  clientSecret: string;
}

export class HttpStatusError extends Error {
  override name = 'HttpStatusError';
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

function fail(what: string, res: HttpsResponse): never {
  // The body of an error answer is an Azure-style error; it never echoes request secrets.
  throw new HttpStatusError(`${what}: HTTP ${res.status} ${res.text.slice(0, 500)}`, res.status);
}

export async function bootstrapTenant(
  apexUrl: string,
  bootstrapSecret: string,
  ca: string,
): Promise<BootstrapResult | 'already-bootstrapped'> {
  const res = await httpsRequest(`${apexUrl}/management/bootstrap`, {
    method: 'POST',
    headers: { authorization: `Bootstrap ${bootstrapSecret}`, 'content-type': 'application/json' },
    body: '{}',
    ca,
  });
  if (res.status === 409) return 'already-bootstrapped';
  if (res.status !== 201) fail('POST /management/bootstrap', res);
  const body = res.json<Partial<BootstrapResult>>();
  if (!body.tenantId || !body.clientId || !body.clientSecret)
    throw new Error('POST /management/bootstrap: answer lacks tenantId/clientId/clientSecret');
  return { tenantId: body.tenantId, clientId: body.clientId, clientSecret: body.clientSecret };
}

/** Client-credentials grant at the vault's own token service, for `{resource}/.default`. */
export async function clientCredentialsToken(
  authorityHost: string,
  resource: string,
  creds: BootstrapResult,
  ca: string,
): Promise<string> {
  const form = new URLSearchParams({
    grant_type: 'client_credentials',
    client_id: creds.clientId,
    client_secret: creds.clientSecret,
    scope: `${resource}/.default`,
  });
  const res = await httpsRequest(`${authorityHost}/${encodeURIComponent(creds.tenantId)}/oauth2/v2.0/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: form.toString(),
    ca,
  });
  if (res.status !== 200) fail('token request', res);
  const token = res.json<{ access_token?: string }>().access_token;
  if (!token) throw new Error('token request: answer lacks access_token');
  return token;
}

/** Creates vault `name`; an existing vault is fine. */
export async function ensureVault(apexUrl: string, name: string, token: string, ca: string): Promise<'created' | 'exists'> {
  const res = await httpsRequest(`${apexUrl}/management/vaults/${encodeURIComponent(name)}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: '{}',
    ca,
  });
  if (res.status === 201) return 'created';
  if (res.status === 409) return 'exists';
  fail(`PUT /management/vaults/${name}`, res);
}
