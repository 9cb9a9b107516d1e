/**
 * Federated identity credentials: an application trusts tokens of an external OIDC issuer for one
 * (issuer, subject, audience), as Entra's workload identity federation does (GitHub Actions,
 * Kubernetes service accounts, other workload identities). The credentials themselves are read
 * from D1 on every token request, so a removed one stops working at once; only the issuers'
 * public keys are cached.
 */
import { and, asc, eq, sql } from 'drizzle-orm';
import { createLocalJWKSet, type JWK, type JWTVerifyGetKey } from 'jose';
import { IsolateCache } from '../core/cache';
import type { Database } from '../storage/db';
import { violatedConstraint } from '../storage/errors';
import { federatedCredentials } from '../storage/schema';
import { badParameter, conflict, notFound } from '../core/errors';
import { credentialRemovable, lastAdministrator } from './admin-guard';

export type FederatedCredentialRow = typeof federatedCredentials.$inferSelect;

/** The audience Entra expects federated tokens to carry, and the default here too. */
export const DEFAULT_FEDERATED_AUDIENCE = 'api://AzureADTokenExchange';
/** As in Entra: at most 20 federated identity credentials per application. */
export const MAX_FEDERATED_CREDENTIALS_PER_APP = 20;
const MAX_FIELD = 600;
const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{2,119}$/;

export interface FederatedCredentialInfo {
  id: string;
  name: string;
  issuer: string;
  subject: string;
  audiences: string[];
  description: string | null;
  createdAt: number;
}

export interface IssuerPolicy {
  /** Plain-http issuers on loopback, for tests and local development only (ALLOW_LOOPBACK_HTTP_ISSUERS). */
  allowLoopbackHttp: boolean;
}

/** The deployment's policy from its configuration: loopback http only where ALLOW_LOOPBACK_HTTP_ISSUERS is "true". */
export const issuerPolicyOf = (env: { ALLOW_LOOPBACK_HTTP_ISSUERS?: string }): IssuerPolicy => ({
  allowLoopbackHttp: env.ALLOW_LOOPBACK_HTTP_ISSUERS === 'true',
});

const isLoopback = (hostname: string) =>
  hostname === 'localhost' || hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);

/** Why a URL may not be an issuer (or an issuer's jwks_uri), or undefined when it may. */
export function issuerUrlProblem(value: string, policy: IssuerPolicy): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'is not a URL';
  }
  if (url.username || url.password) return 'must not contain credentials';
  if (url.search || url.hash || value.includes('#')) return 'must not contain a query or fragment';
  if (url.protocol === 'https:') return undefined;
  if (url.protocol === 'http:' && policy.allowLoopbackHttp && isLoopback(url.hostname)) return undefined;
  return 'must be an https URL';
}

const info = (row: FederatedCredentialRow): FederatedCredentialInfo => ({
  id: row.id,
  name: row.name,
  issuer: row.issuer,
  subject: row.subject,
  audiences: JSON.parse(row.audiences) as string[],
  description: row.description,
  createdAt: row.createdAt,
});

export interface FederatedCredentialInput {
  name: string;
  issuer: string;
  subject: string;
  audiences?: string[];
  description?: string | null;
}

function validate(input: FederatedCredentialInput, policy: IssuerPolicy): { audiences: string[] } {
  if (!NAME.test(input.name)) {
    throw badParameter('name must be 3-120 letters, digits, hyphens and underscores, starting with a letter or digit.');
  }
  if (input.issuer.length === 0 || input.issuer.length > MAX_FIELD)
    throw badParameter(`issuer must be 1-${MAX_FIELD} characters.`);
  const problem = issuerUrlProblem(input.issuer, policy);
  if (problem) throw badParameter(`issuer ${problem}.`);
  if (input.subject.length === 0 || input.subject.length > MAX_FIELD)
    throw badParameter(`subject must be 1-${MAX_FIELD} characters.`);
  const audiences = input.audiences ?? [DEFAULT_FEDERATED_AUDIENCE];
  // Entra accepts exactly one audience per federated identity credential.
  if (audiences.length !== 1) throw badParameter('audiences must hold exactly one value.');
  if (audiences.some((a) => a.length === 0 || a.length > MAX_FIELD))
    throw badParameter(`each audience must be 1-${MAX_FIELD} characters.`);
  if ((input.description ?? '').length > MAX_FIELD) throw badParameter(`description must be at most ${MAX_FIELD} characters.`);
  return { audiences };
}

export async function addFederatedCredential(
  db: Database,
  clientId: string,
  input: FederatedCredentialInput,
  policy: IssuerPolicy,
): Promise<FederatedCredentialInfo> {
  const { audiences } = validate(input, policy);
  const row: FederatedCredentialRow = {
    id: crypto.randomUUID(),
    clientId,
    name: input.name,
    issuer: input.issuer,
    subject: input.subject,
    audiences: JSON.stringify(audiences),
    description: input.description ?? null,
    createdAt: Math.floor(Date.now() / 1000),
  };
  // One statement: the limit, the unique name and the unique (issuer, subject) hold under races.
  let changes: number;
  try {
    const result = await db.run(sql`
      INSERT INTO federated_credentials (id, client_id, name, issuer, subject, audiences, description, created_at)
      SELECT ${row.id}, ${clientId}, ${row.name}, ${row.issuer}, ${row.subject}, ${row.audiences}, ${row.description}, ${row.createdAt}
      WHERE (SELECT count(*) FROM federated_credentials WHERE client_id = ${clientId}) < ${MAX_FEDERATED_CREDENTIALS_PER_APP}
        AND NOT EXISTS (SELECT 1 FROM federated_credentials WHERE client_id = ${clientId}
                        AND (lower(name) = lower(${row.name}) OR (issuer = ${row.issuer} AND subject = ${row.subject})))`);
    changes = result.meta.changes ?? 0;
  } catch (err) {
    if (violatedConstraint(err) === 'foreign-key') throw notFound('NotFound', `Application ${clientId} was not found.`);
    throw err;
  }
  if (changes === 0) {
    const existing = await db.select().from(federatedCredentials).where(eq(federatedCredentials.clientId, clientId)).all();
    if (existing.some((f) => f.name.toLowerCase() === row.name.toLowerCase())) {
      throw conflict(`The application already has a federated identity credential named '${row.name}'.`);
    }
    if (existing.some((f) => f.issuer === row.issuer && f.subject === row.subject)) {
      throw conflict('The application already has a federated identity credential for this issuer and subject.');
    }
    throw badParameter(`An application can hold at most ${MAX_FEDERATED_CREDENTIALS_PER_APP} federated identity credentials.`);
  }
  return info(row);
}

export async function listFederatedCredentials(db: Database, clientId: string): Promise<FederatedCredentialInfo[]> {
  const rows = await db
    .select()
    .from(federatedCredentials)
    .where(eq(federatedCredentials.clientId, clientId))
    .orderBy(asc(federatedCredentials.createdAt), asc(federatedCredentials.id))
    .all();
  return rows.map(info);
}

export async function getFederatedCredential(db: Database, clientId: string, id: string): Promise<FederatedCredentialInfo> {
  const row = await db
    .select()
    .from(federatedCredentials)
    .where(and(eq(federatedCredentials.clientId, clientId), eq(federatedCredentials.id, id)))
    .get();
  if (!row) throw notFound('NotFound', `Federated identity credential ${id.slice(0, 64)} was not found.`);
  return info(row);
}

export async function removeFederatedCredential(db: Database, clientId: string, id: string): Promise<void> {
  const which = and(eq(federatedCredentials.clientId, clientId), eq(federatedCredentials.id, id));
  const removed = await db
    .delete(federatedCredentials)
    .where(and(which, credentialRemovable(clientId, id)))
    .returning({ id: federatedCredentials.id });
  if (removed.length > 0) return;
  if (await db.select({ id: federatedCredentials.id }).from(federatedCredentials).where(which).get()) throw lastAdministrator();
  throw notFound('NotFound', `Federated identity credential ${id.slice(0, 64)} was not found.`);
}

/** Every federated credential of the application, read fresh (revocation takes effect at once). */
export async function federatedCredentialsOf(db: Database, clientId: string): Promise<FederatedCredentialInfo[]> {
  const rows = await db.select().from(federatedCredentials).where(eq(federatedCredentials.clientId, clientId)).all();
  return rows.map(info);
}

// ------------------------------------------------------------------------------- issuer keys

export class IssuerMetadataError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'IssuerMetadataError';
  }
}

interface IssuerKeys {
  keys: JWK[];
  fetchedAt: number;
}

/** How long an issuer's keys are used before they are fetched again. */
export const ISSUER_KEYS_TTL_MS = 10 * 60_000;
/** At most one fetch per issuer in this interval, so forged kids cannot become a fetch each. */
export const ISSUER_REFETCH_INTERVAL_MS = 5_000;
const FETCH_TIMEOUT_MS = 5_000;
const MAX_DOCUMENT_BYTES = 64 * 1024;
const MAX_JWKS_BYTES = 256 * 1024;
const MAX_KEYS = 100;
const MAX_ISSUERS = 256;

// Per isolate: issuer → its keys (kept past their TTL: a failed refresh serves them), and which
// issuers were fetched (or tried) within the refetch interval.
const keyCache = new IsolateCache<IssuerKeys>({ name: 'issuer-keys', ttlMs: Infinity, maxEntries: MAX_ISSUERS });
const recentAttempts = new IsolateCache<true>({
  name: 'issuer-attempts',
  ttlMs: ISSUER_REFETCH_INTERVAL_MS,
  maxEntries: MAX_ISSUERS,
});

/** Counters for tests: how many discovery and JWKS fetches this isolate made. */
export const issuerFetchStats = { discovery: 0, jwks: 0 };

async function fetchJson(url: string, limit: number): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url, {
      redirect: 'manual',
      headers: { accept: 'application/json' },
      signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
    });
  } catch (err) {
    throw new IssuerMetadataError(`${url} could not be reached (${err instanceof Error ? err.name : 'error'})`);
  }
  if (res.status !== 200) {
    await res.body?.cancel();
    throw new IssuerMetadataError(`${url} answered HTTP ${res.status}`);
  }
  if (Number(res.headers.get('content-length') ?? 0) > limit) {
    await res.body?.cancel();
    throw new IssuerMetadataError(`${url} answered a document larger than ${limit} bytes`);
  }
  const bytes = await res.arrayBuffer();
  if (bytes.byteLength > limit) throw new IssuerMetadataError(`${url} answered a document larger than ${limit} bytes`);
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new IssuerMetadataError(`${url} did not answer JSON`);
  }
}

/** OIDC Discovery 1.0 section 4: the issuer without its trailing slash, then the well-known path. */
export const discoveryUrl = (issuer: string) => `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;

async function fetchIssuerKeys(issuer: string, policy: IssuerPolicy): Promise<IssuerKeys> {
  const problem = issuerUrlProblem(issuer, policy);
  if (problem) throw new IssuerMetadataError(`the issuer URL ${problem}`);
  issuerFetchStats.discovery++;
  const doc = (await fetchJson(discoveryUrl(issuer), MAX_DOCUMENT_BYTES)) as { issuer?: unknown; jwks_uri?: unknown } | null;
  // Section 4.3: the document's issuer must be exactly the issuer it was asked for.
  if (!doc || doc.issuer !== issuer) throw new IssuerMetadataError('the discovery document names another issuer');
  if (typeof doc.jwks_uri !== 'string') throw new IssuerMetadataError('the discovery document has no jwks_uri');
  const jwksProblem = issuerUrlProblem(doc.jwks_uri, policy);
  if (jwksProblem) throw new IssuerMetadataError(`its jwks_uri ${jwksProblem}`);
  issuerFetchStats.jwks++;
  const jwks = (await fetchJson(doc.jwks_uri, MAX_JWKS_BYTES)) as { keys?: unknown } | null;
  if (!jwks || !Array.isArray(jwks.keys)) throw new IssuerMetadataError('its JWKS has no keys array');
  const keys = (jwks.keys as unknown[])
    .filter((k): k is JWK => typeof k === 'object' && k !== null && ['RSA', 'EC'].includes((k as JWK).kty ?? ''))
    // Public members only: a JWKS that (wrongly) publishes private keys does not get them stored.
    .map(({ d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, oth: _oth, ...pub }) => pub as JWK)
    .slice(0, MAX_KEYS);
  return { keys, fetchedAt: Date.now() };
}

async function refresh(issuer: string, policy: IssuerPolicy): Promise<IssuerKeys> {
  // A fetch in flight is joined (core/cache.ts waits for its outcome without awaiting its I/O).
  if (!keyCache.isLoading(issuer)) recentAttempts.set(issuer, true);
  return (await keyCache.load(issuer, () => fetchIssuerKeys(issuer, policy), { refresh: true }))!;
}

const mayRefetch = (issuer: string) => recentAttempts.get(issuer) === undefined;

/**
 * The issuer's current keys: cached for ISSUER_KEYS_TTL_MS; fetched again (at most every
 * ISSUER_REFETCH_INTERVAL_MS) when they are stale or when `unknownKid` says the cached set lacks
 * the signing key. A failed refresh keeps serving the keys it had.
 */
export async function issuerKeys(
  issuer: string,
  policy: IssuerPolicy,
  unknownKid = false,
): Promise<{ keys: JWK[]; refreshed: boolean }> {
  const cached = keyCache.get(issuer);
  const stale = !cached || Date.now() - cached.fetchedAt > ISSUER_KEYS_TTL_MS;
  if ((stale || unknownKid) && (mayRefetch(issuer) || keyCache.isLoading(issuer))) {
    try {
      return { keys: (await refresh(issuer, policy)).keys, refreshed: true };
    } catch (err) {
      if (!cached) throw err;
    }
  }
  if (!cached) throw new IssuerMetadataError('its metadata could not be retrieved recently; retry in a few seconds');
  return { keys: cached.keys, refreshed: false };
}

/**
 * A jose key resolver over the issuer's keys that refreshes them once (rate-limited) when no key
 * matches the token's header. Throws jose's ERR_JWKS_NO_MATCHING_KEY when none does after that.
 */
export function issuerKeyResolver(issuer: string, policy: IssuerPolicy): JWTVerifyGetKey {
  return async (header, token) => {
    const first = await issuerKeys(issuer, policy);
    try {
      return await createLocalJWKSet({ keys: first.keys })(header, token);
    } catch (err) {
      if ((err as { code?: string }).code !== 'ERR_JWKS_NO_MATCHING_KEY' || first.refreshed) throw err;
      const again = await issuerKeys(issuer, policy, true);
      if (!again.refreshed) throw err;
      return createLocalJWKSet({ keys: again.keys })(header, token);
    }
  };
}

/** Forgets every cached issuer key (tests). */
export function forgetIssuerKeys(): void {
  keyCache.clear();
  recentAttempts.clear();
}
