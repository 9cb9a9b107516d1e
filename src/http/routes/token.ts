/**
 * The token service, in the shape MSAL (and so @azure/identity's ClientSecretCredential with an
 * authorityHost) expects from Entra: discovery, JWKS and the v2.0 token endpoint.
 */
import type { Hono } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { authenticateClientSecret, type Application } from '../../identity/applications';
import { ASSERTION_ALGORITHMS, authenticateClientAssertion, JWT_BEARER_ASSERTION_TYPE } from '../../identity/client-assertion';
import { issuerPolicyOf } from '../../identity/federation';
import { invalidClient, invalidRequest, OAuthRefusal } from '../../identity/oauth-refusal';
import { publicJwks } from '../../identity/signing-keys';
import { findTenantId } from '../../identity/tenant';
import { issueAccessToken, issuerFor, TOKEN_LIFETIME_SECONDS } from '../../identity/tokens';
import { BridgeUnavailableError } from '../../core/errors';
import { fromBase64, fromUtf8 } from '../../core/encoding';
import { auditAs, bodyText, type AppContext, type AppEnv } from '../context';
import { recordTokenFailure, tokenAttemptRefused } from '../throttle';

function oauthError(c: AppContext, status: ContentfulStatusCode, error: string, description: string, code?: number) {
  c.get('audit').errorCode = code === undefined ? error : `AADSTS${code}`;
  return c.json(
    {
      error,
      error_description: description,
      error_codes: code === undefined ? [] : [code],
      timestamp: new Date().toISOString().replace('T', ' ').slice(0, 19) + 'Z',
      trace_id: c.get('correlationId'),
      correlation_id: c.get('correlationId'),
    },
    status,
  );
}

const refused = (c: AppContext, r: OAuthRefusal) => oauthError(c, r.status, r.error, r.message, r.code);

/** The tenant in the path must be ours; answers with the OAuth error when it is not. */
async function ourTenant(c: AppContext): Promise<string | Response> {
  const tenantId = await findTenantId(c.get('services').db);
  if (!tenantId) return oauthError(c, 503, 'temporarily_unavailable', 'This vault service has not been bootstrapped yet.');
  if (c.req.param('tenant')?.toLowerCase() !== tenantId) {
    return oauthError(c, 400, 'invalid_request', `Tenant '${(c.req.param('tenant') ?? '').slice(0, 64)}' not found.`);
  }
  return tenantId;
}

function discovery(apexOrigin: string, tenantId: string) {
  const base = `${apexOrigin}/${tenantId}`;
  return {
    issuer: issuerFor(apexOrigin, tenantId),
    token_endpoint: `${base}/oauth2/v2.0/token`,
    authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
    jwks_uri: `${base}/discovery/v2.0/keys`,
    token_endpoint_auth_methods_supported: ['client_secret_post', 'client_secret_basic', 'private_key_jwt'],
    token_endpoint_auth_signing_alg_values_supported: ASSERTION_ALGORITHMS,
    grant_types_supported: ['client_credentials'],
    response_types_supported: ['token'],
    subject_types_supported: ['pairwise'],
    id_token_signing_alg_values_supported: ['ES256'],
    scopes_supported: ['.default'],
    claims_supported: ['aud', 'iss', 'iat', 'nbf', 'exp', 'tid', 'oid', 'appid', 'sub'],
    tenant_region_scope: null,
    cloud_instance_name: new URL(apexOrigin).hostname,
  };
}

/** Client credentials from the form (client_secret_post) or the Basic header (client_secret_basic). */
function clientCredentials(c: AppContext, form: URLSearchParams): { id: string; secret: string } | undefined {
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(c.req.header('authorization') ?? '')?.[1];
  if (basic) {
    try {
      const [id, secret] = fromUtf8(fromBase64(basic)).split(':').map(decodeURIComponent);
      if (id && secret) return { id, secret };
    } catch {
      return undefined;
    }
  }
  const id = form.get('client_id');
  const secret = form.get('client_secret');
  return id && secret ? { id, secret } : undefined;
}

/**
 * Who the client is, by exactly one method: a client secret (post or basic) or a client assertion
 * (certificate or federated). Credentials are read from D1 on every request, never from a cache,
 * so a removed or expired credential is refused from the next request on.
 */
async function authenticateClient(c: AppContext, form: URLSearchParams, tenantId: string): Promise<Application> {
  const { db } = c.get('services');
  const assertion = form.get('client_assertion');
  const assertionType = form.get('client_assertion_type');
  if (assertion !== null || assertionType !== null) {
    if (form.get('client_secret') !== null || /^Basic\s/i.test(c.req.header('authorization') ?? '')) {
      throw invalidRequest(
        undefined,
        'Only one client authentication method may be used: a client secret or a client assertion.',
      );
    }
    if (assertionType !== JWT_BEARER_ASSERTION_TYPE) {
      throw invalidRequest(undefined, `client_assertion_type must be '${JWT_BEARER_ASSERTION_TYPE}'.`);
    }
    if (!assertion)
      throw invalidClient(
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
      );
    const apexOrigin = c.get('apexOrigin');
    const { app } = await authenticateClientAssertion(db, form.get('client_id') ?? undefined, assertion, {
      tenantId,
      tokenEndpoint: `${apexOrigin}/${tenantId}/oauth2/v2.0/token`,
      issuer: issuerFor(apexOrigin, tenantId),
      policy: issuerPolicyOf(c.env),
    });
    return app;
  }
  const creds = clientCredentials(c, form);
  if (!creds)
    throw invalidClient(7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.");
  const result = await authenticateClientSecret(db, creds.id, creds.secret);
  if ('app' in result && result.app.tenantId === tenantId) return result.app;
  if ('refused' in result && result.refused === 'expired') {
    throw invalidClient(
      7000222,
      `The provided client secret keys for app '${creds.id}' are expired. Create new keys for your app (POST /management/applications/${creds.id}/secrets), or consider using certificate credentials for added security.`,
    );
  }
  // An unknown application and a wrong secret are answered alike.
  throw invalidClient(
    7000215,
    'Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, of a secret of this application.',
  );
}

export function tokenRoutes(app: Hono<AppEnv>): void {
  app.get('/common/discovery/instance', (c) => {
    auditAs(c, 'InstanceDiscovery');
    const apex = new URL(c.get('apexOrigin'));
    const authority = c.req.query('authorization_endpoint') ?? '';
    const tenant = /^https:\/\/[^/]+\/([^/]+)\//.exec(authority)?.[1] ?? 'common';
    return c.json({
      tenant_discovery_endpoint: `${apex.origin}/${tenant}/v2.0/.well-known/openid-configuration`,
      'api-version': '1.1',
      metadata: [{ preferred_network: apex.host, preferred_cache: apex.host, aliases: [apex.host] }],
    });
  });

  const openidConfig = async (c: AppContext) => {
    auditAs(c, 'OpenIdConfiguration');
    const tenantId = await ourTenant(c);
    if (tenantId instanceof Response) return tenantId;
    return c.json(discovery(c.get('apexOrigin'), tenantId));
  };
  app.get('/:tenant/v2.0/.well-known/openid-configuration', openidConfig);
  app.get('/:tenant/.well-known/openid-configuration', openidConfig);

  app.get('/:tenant/discovery/v2.0/keys', async (c) => {
    auditAs(c, 'JwksGet');
    const tenantId = await ourTenant(c);
    if (tenantId instanceof Response) return tenantId;
    return c.json({ keys: await publicJwks(c.get('services').db) });
  });

  app.post('/:tenant/oauth2/v2.0/token', async (c) => {
    auditAs(c, 'Authentication');
    const tenantId = await ourTenant(c);
    if (tenantId instanceof Response) return tenantId;
    let form: URLSearchParams;
    try {
      form = new URLSearchParams(await bodyText(c, 64 * 1024));
    } catch {
      return oauthError(c, 400, 'invalid_request', 'The request body is too large or not valid UTF-8.');
    }
    const grant = form.get('grant_type');
    if (grant !== 'client_credentials') {
      return oauthError(
        c,
        400,
        'unsupported_grant_type',
        `The grant type '${(grant ?? '').slice(0, 64)}' is not supported; use client_credentials.`,
      );
    }
    const apexOrigin = c.get('apexOrigin');
    const scopes = (form.get('scope') ?? '')
      .split(/\s+/)
      .filter((s) => s && !['openid', 'profile', 'offline_access'].includes(s));
    if (scopes.length !== 1 || scopes[0] !== `${apexOrigin}/.default`) {
      return oauthError(c, 400, 'invalid_scope', `The scope must be '${apexOrigin}/.default'.`);
    }
    const { db, keys } = c.get('services');
    // A client id or address that failed too often lately is not even checked (credentials are
    // a D1 read and a hash or signature check away): OAuth-shaped 429, which MSAL backs off on.
    const claimedClient = form.get('client_id') ?? clientCredentials(c, form)?.id;
    const wait = tokenAttemptRefused(c, claimedClient);
    if (wait !== undefined) {
      c.header('Retry-After', String(wait));
      return oauthError(
        c,
        429,
        'temporarily_unavailable',
        `Too many failed authentication attempts for this client or from this address; retry after ${wait} seconds.`,
      );
    }
    let app: Application;
    try {
      app = await authenticateClient(c, form, tenantId);
    } catch (err) {
      if (err instanceof OAuthRefusal) {
        recordTokenFailure(c, claimedClient);
        return refused(c, err);
      }
      throw err;
    }
    c.set('caller', { tenantId, objectId: app.objectId, appId: app.clientId });
    c.header('Cache-Control', 'no-store');
    let accessToken: string;
    try {
      accessToken = await issueAccessToken(db, keys, { issuer: issuerFor(apexOrigin, tenantId), audience: apexOrigin, app });
    } catch (err) {
      // MSAL parses OAuth errors only: an HSM outage (cold signing key) must look like one.
      if (err instanceof BridgeUnavailableError) {
        c.header('Retry-After', '5');
        return oauthError(c, 503, 'temporarily_unavailable', 'The token service cannot reach its HSM; retry later.');
      }
      throw err;
    }
    return c.json({
      token_type: 'Bearer',
      expires_in: TOKEN_LIFETIME_SECONDS,
      ext_expires_in: TOKEN_LIFETIME_SECONDS,
      access_token: accessToken,
    });
  });
}
