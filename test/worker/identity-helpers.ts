/** Helpers for the identity tests: the challenge header, token requests and client credentials. */
import { SignJWT, type JWTPayload } from 'jose';
import { expect } from 'vitest';
import { activeSigningKey } from '../../src/identity/signing-keys';
import { services } from '../../src/crypto/services';
import { APEX, call, env, json } from './helpers';

/** The one challenge header every Azure SDK expects, for a given resource origin. */
export const challengeFor = (tenantId: string, resource = APEX) =>
  `Bearer authorization="${resource}/${tenantId}", resource="${resource}"`;

/**
 * A 401 with exactly one WWW-Authenticate header naming the tenant and resource. Repeated
 * headers would be joined with ", " by Headers.get, so an exact match also proves "exactly one".
 */
export async function expectChallenge(res: Response, tenantId: string, resource = APEX): Promise<void> {
  expect(res.status).toBe(401);
  expect(res.headers.get('www-authenticate')).toBe(challengeFor(tenantId, resource));
  const body = await json(res);
  expect(body.error.code).toBe('Unauthorized');
}

/** POSTs a form to the token endpoint of `tenant`. */
export function tokenRequest(tenant: string, params: Record<string, string>, headers: Record<string, string> = {}) {
  return call('POST', `${APEX}/${tenant}/oauth2/v2.0/token`, {
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(params).toString(),
  });
}

export const clientCredentials = (creds: { clientId: string; clientSecret: string }, extra: Record<string, string> = {}) => ({
  grant_type: 'client_credentials',
  client_id: creds.clientId,
  client_secret: creds.clientSecret,
  scope: `${APEX}/.default`,
  ...extra,
});

/** Rows of a raw SQL query against the test D1 database. */
export async function rows<T = Record<string, unknown>>(query: string, ...params: unknown[]): Promise<T[]> {
  const result = await env.DB.prepare(query)
    .bind(...params)
    .all<T>();
  return result.results;
}

export async function count(table: string, where = '1 = 1', ...params: unknown[]): Promise<number> {
  const [row] = await rows<{ n: number }>(`select count(*) as n from ${table} where ${where}`, ...params);
  return row!.n;
}

/**
 * Signs arbitrary claims with this deployment's real token-signing key (read through the Worker's
 * own code), so the tests can present tokens the token endpoint would never issue: expired, not
 * yet valid, another tenant, another issuer.
 */
export async function signWithVaultKey(claims: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
  const { db, keys } = services(env);
  const { kid, key } = await activeSigningKey(db, keys);
  return new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT', ...header }).sign(key);
}

/** Standard valid claims for `creds`, which individual tests then break one at a time. */
export function validClaims(creds: { tenantId: string; clientId: string }, objectId: string): JWTPayload {
  const t = Math.floor(Date.now() / 1000);
  return {
    iss: `${APEX}/${creds.tenantId}/v2.0`,
    aud: APEX,
    tid: creds.tenantId,
    oid: objectId,
    appid: creds.clientId,
    sub: objectId,
    iat: t,
    nbf: t,
    exp: t + 3600,
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** SHA-256 hex of a UTF-8 string. */
export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** A random id suitable for x-ms-client-request-id (letters, digits, hyphens). */
export const requestId = () => crypto.randomUUID();
