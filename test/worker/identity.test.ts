/**
 * The token service: discovery, JWKS, client-credentials tokens, their claims, refusals in Entra's
 * shape.
 */
import {
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  jwtVerify,
  SignJWT,
  type JWK,
} from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { API, APEX, admin, call, json, newVault, tokenFor, vaultOrigin } from './helpers';
import { clientCredentials, expectChallenge, rows, signWithVaultKey, tokenRequest, validClaims } from './identity-helpers';

type Creds = { tenantId: string; clientId: string; clientSecret: string };

let creds: Creds;
let adminToken: string;
let vault: string;
let objectId: string;

/** A fresh non-admin application, created through the management API. */
async function newApp(displayName = 'identity test app'): Promise<Creds & { objectId: string; secretId: string }> {
  const res = await call('POST', `${APEX}/management/applications`, { token: adminToken, body: { displayName } });
  expect(res.status).toBe(201);
  const body = await json(res);
  return {
    tenantId: creds.tenantId,
    clientId: body.clientId,
    clientSecret: body.clientSecret,
    objectId: body.objectId,
    secretId: body.secret.id,
  };
}

beforeAll(async () => {
  creds = await admin();
  adminToken = await tokenFor(creds);
  vault = await newVault(adminToken);
  objectId = (await rows<{ object_id: string }>('select object_id from applications where client_id = ?', creds.clientId))[0]!
    .object_id;
});

describe('discovery', () => {
  it('serves the OpenID configuration MSAL reads, all on the https apex', async () => {
    const res = await call('GET', `${APEX}/${creds.tenantId}/v2.0/.well-known/openid-configuration`);
    expect(res.status).toBe(200);
    const doc = await json(res);
    expect(doc.issuer).toBe(`${APEX}/${creds.tenantId}/v2.0`);
    expect(doc.token_endpoint).toBe(`${APEX}/${creds.tenantId}/oauth2/v2.0/token`);
    expect(doc.authorization_endpoint).toBe(`${APEX}/${creds.tenantId}/oauth2/v2.0/authorize`);
    expect(doc.jwks_uri).toBe(`${APEX}/${creds.tenantId}/discovery/v2.0/keys`);
    for (const field of ['issuer', 'token_endpoint', 'authorization_endpoint', 'jwks_uri']) {
      expect(new URL(doc[field]).origin, field).toBe(APEX);
    }
  });

  it('keeps the request port in the discovery URLs', async () => {
    const res = await call('GET', `https://vault.localhost:8443/${creds.tenantId}/v2.0/.well-known/openid-configuration`);
    expect(res.status).toBe(200);
    const doc = await json(res);
    expect(doc.issuer).toBe(`https://vault.localhost:8443/${creds.tenantId}/v2.0`);
    expect(doc.token_endpoint).toBe(`https://vault.localhost:8443/${creds.tenantId}/oauth2/v2.0/token`);
  });

  it('refuses the OpenID configuration of another tenant', async () => {
    const res = await call('GET', `${APEX}/${crypto.randomUUID()}/v2.0/.well-known/openid-configuration`);
    expect(res.status).toBe(400);
    expect((await json(res)).error).toBe('invalid_request');
  });

  it('answers instance discovery', async () => {
    const authority = `${APEX}/${creds.tenantId}/oauth2/v2.0/authorize`;
    const res = await call(
      'GET',
      `${APEX}/common/discovery/instance?api-version=1.1&authorization_endpoint=${encodeURIComponent(authority)}`,
    );
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.tenant_discovery_endpoint).toBe(`${APEX}/${creds.tenantId}/v2.0/.well-known/openid-configuration`);
    expect(Array.isArray(body.metadata)).toBe(true);
    expect(body.metadata[0]).toMatchObject({ preferred_network: 'vault.localhost', preferred_cache: 'vault.localhost' });
    expect(body.metadata[0].aliases).toContain('vault.localhost');
    // The endpoint it names works.
    expect((await call('GET', body.tenant_discovery_endpoint)).status).toBe(200);
  });

  it('publishes the ES256 public key, and nothing private', async () => {
    const res = await call('GET', `${APEX}/${creds.tenantId}/discovery/v2.0/keys`);
    expect(res.status).toBe(200);
    const { keys } = await json<{ keys: JWK[] }>(res);
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) {
      expect(key).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
      expect(typeof key.kid).toBe('string');
      expect(typeof key.x).toBe('string');
      expect(typeof key.y).toBe('string');
      expect(key).not.toHaveProperty('d');
      for (const priv of ['p', 'q', 'dp', 'dq', 'qi', 'k']) expect(key).not.toHaveProperty(priv);
    }
  });

  it('refuses the JWKS of another tenant', async () => {
    const res = await call('GET', `${APEX}/${crypto.randomUUID()}/discovery/v2.0/keys`);
    expect(res.status).toBe(400);
  });
});

describe('token endpoint', () => {
  it('issues an ES256 JWT for client_secret_post with the Entra claims', async () => {
    const res = await tokenRequest(creds.tenantId, clientCredentials(creds));
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const text = await res.text();
    expect(text).not.toContain(creds.clientSecret);
    const body = JSON.parse(text);
    expect(body.token_type).toBe('Bearer');
    expect(body.expires_in).toBe(3600);
    const header = decodeProtectedHeader(body.access_token);
    expect(header.alg).toBe('ES256');
    expect(typeof header.kid).toBe('string');
    const claims = decodeJwt(body.access_token);
    expect(claims.aud).toBe('https://vault.localhost');
    expect(claims.iss).toBe(`https://vault.localhost/${creds.tenantId}/v2.0`);
    expect(claims.tid).toBe(creds.tenantId);
    expect(claims.oid).toBe(objectId);
    expect(claims.appid).toBe(creds.clientId);
    const now = Math.floor(Date.now() / 1000);
    expect(Math.abs(claims.iat! - now)).toBeLessThan(30);
    expect(claims.nbf).toBe(claims.iat);
    expect(claims.exp).toBe(claims.iat! + 3600);
    expect(JSON.stringify(claims)).not.toContain(creds.clientSecret);
  });

  it('issues tokens that verify against the published JWKS', async () => {
    const token = await tokenFor(creds);
    const jwksRes = await call('GET', `${APEX}/${creds.tenantId}/discovery/v2.0/keys`);
    const jwks = createLocalJWKSet(await json(jwksRes));
    const { payload, protectedHeader } = await jwtVerify(token, jwks, {
      issuer: `${APEX}/${creds.tenantId}/v2.0`,
      audience: APEX,
      algorithms: ['ES256'],
    });
    expect(payload.appid).toBe(creds.clientId);
    expect(protectedHeader.alg).toBe('ES256');
  });

  it('accepts client_secret_basic', async () => {
    const basic = btoa(`${encodeURIComponent(creds.clientId)}:${encodeURIComponent(creds.clientSecret)}`);
    const res = await tokenRequest(
      creds.tenantId,
      { grant_type: 'client_credentials', scope: `${APEX}/.default` },
      { authorization: `Basic ${basic}` },
    );
    expect(res.status).toBe(200);
    const token = (await json(res)).access_token;
    expect(decodeJwt(token).appid).toBe(creds.clientId);
    // ... and the token it gives is accepted by a vault.
    expect((await call('GET', `${vaultOrigin(vault)}/secrets?${API}`, { token })).status).toBe(200);
  });

  it('accepts the scope alongside the OIDC scopes MSAL adds', async () => {
    const res = await tokenRequest(
      creds.tenantId,
      clientCredentials(creds, { scope: `${APEX}/.default openid profile offline_access` }),
    );
    expect(res.status).toBe(200);
  });

  it('accepts the tenant in the path case-insensitively', async () => {
    const res = await tokenRequest(creds.tenantId.toUpperCase(), clientCredentials(creds));
    expect(res.status).toBe(200);
  });

  it('refuses a wrong client secret with invalid_client', async () => {
    const wrong = `${creds.clientSecret.slice(0, -2)}xx`;
    const res = await tokenRequest(creds.tenantId, clientCredentials({ ...creds, clientSecret: wrong }));
    expect(res.status).toBe(401);
    const text = await res.text();
    expect(JSON.parse(text).error).toBe('invalid_client');
    expect(text).not.toContain(wrong);
    expect(JSON.parse(text)).not.toHaveProperty('access_token');
  });

  it('refuses a wrong client secret sent with client_secret_basic', async () => {
    const basic = btoa(`${creds.clientId}:ekv~not-the-secret`);
    const res = await tokenRequest(
      creds.tenantId,
      { grant_type: 'client_credentials', scope: `${APEX}/.default` },
      { authorization: `Basic ${basic}` },
    );
    expect(res.status).toBe(401);
    expect((await json(res)).error).toBe('invalid_client');
  });

  it('refuses an unknown client id with invalid_client', async () => {
    const res = await tokenRequest(
      creds.tenantId,
      clientCredentials({ clientId: crypto.randomUUID(), clientSecret: creds.clientSecret }),
    );
    expect(res.status).toBe(401);
    expect((await json(res)).error).toBe('invalid_client');
  });

  it('refuses a request without a client secret', async () => {
    const { client_secret: _omit, ...params } = clientCredentials(creds);
    const res = await tokenRequest(creds.tenantId, params);
    expect(res.status).toBe(401);
    expect((await json(res)).error).toBe('invalid_client');
    const empty = await tokenRequest(creds.tenantId, clientCredentials(creds, { client_secret: '' }));
    expect(empty.status).toBe(401);
  });

  it('refuses a request without a client id', async () => {
    const { client_id: _omit, ...params } = clientCredentials(creds);
    const res = await tokenRequest(creds.tenantId, params);
    expect(res.status).toBe(401);
    expect((await json(res)).error).toBe('invalid_client');
  });

  it('refuses the password grant with unsupported_grant_type', async () => {
    const res = await tokenRequest(
      creds.tenantId,
      clientCredentials(creds, { grant_type: 'password', username: 'u', password: 'p' }),
    );
    expect(res.status).toBe(400);
    const body = await json(res);
    expect(body.error).toBe('unsupported_grant_type');
    expect(body).not.toHaveProperty('access_token');
  });

  it('refuses a missing grant type', async () => {
    const { grant_type: _omit, ...params } = clientCredentials(creds);
    const res = await tokenRequest(creds.tenantId, params);
    expect(res.status).toBe(400);
    expect((await json(res)).error).toBe('unsupported_grant_type');
  });

  it('refuses a scope other than {resource}/.default with invalid_scope', async () => {
    for (const scope of [
      'https://vault.azure.net/.default',
      `${APEX}/secrets.read`,
      `${APEX}/.default ${APEX}/.default`,
      `https://vault.localhost:8443/.default`,
      '',
    ]) {
      const res = await tokenRequest(creds.tenantId, clientCredentials(creds, { scope }));
      expect(res.status, scope).toBe(400);
      expect((await json(res)).error, scope).toBe('invalid_scope');
    }
  });

  it('refuses a tenant in the path that is not ours', async () => {
    const res = await tokenRequest(crypto.randomUUID(), clientCredentials(creds));
    expect(res.status).toBe(400);
    const body = await json(res);
    expect(body.error).toBe('invalid_request');
    expect(body).not.toHaveProperty('access_token');
    const common = await tokenRequest('common', clientCredentials(creds));
    expect(common.status).toBe(400);
  });

  it('carries the OAuth error shape MSAL parses', async () => {
    const res = await tokenRequest(creds.tenantId, clientCredentials(creds, { grant_type: 'password' }), {
      'x-ms-client-request-id': 'corr-0123',
    });
    const body = await json(res);
    expect(typeof body.error_description).toBe('string');
    expect(Array.isArray(body.error_codes)).toBe(true);
    expect(body.correlation_id).toBe('corr-0123');
    expect(typeof body.timestamp).toBe('string');
  });

  it('never echoes the client secret, whatever the outcome', async () => {
    const outcomes = [
      await tokenRequest(creds.tenantId, clientCredentials(creds)),
      await tokenRequest(creds.tenantId, clientCredentials(creds, { grant_type: 'password' })),
      await tokenRequest(creds.tenantId, clientCredentials(creds, { scope: 'nope' })),
      await tokenRequest(crypto.randomUUID(), clientCredentials(creds)),
    ];
    for (const res of outcomes) {
      const text = await res.text();
      expect(text).not.toContain(creds.clientSecret);
      for (const [, value] of res.headers) expect(value).not.toContain(creds.clientSecret);
    }
  });

  it('stops issuing tokens for a removed client secret, but keeps the others', async () => {
    const app = await newApp();
    const added = await json(
      await call('POST', `${APEX}/management/applications/${app.clientId}/secrets`, { token: adminToken, body: {} }),
    );
    expect((await tokenRequest(creds.tenantId, clientCredentials(app))).status).toBe(200);
    const del = await call('DELETE', `${APEX}/management/applications/${app.clientId}/secrets/${app.secretId}`, {
      token: adminToken,
    });
    expect(del.status).toBe(204);
    const refused = await tokenRequest(creds.tenantId, clientCredentials(app));
    expect(refused.status).toBe(401);
    expect((await json(refused)).error).toBe('invalid_client');
    // The other secret still works.
    expect((await tokenRequest(creds.tenantId, clientCredentials({ ...app, clientSecret: added.clientSecret }))).status).toBe(
      200,
    );
  });

  it('stops issuing tokens for a deleted application', async () => {
    const app = await newApp();
    expect((await tokenRequest(creds.tenantId, clientCredentials(app))).status).toBe(200);
    expect((await call('DELETE', `${APEX}/management/applications/${app.clientId}`, { token: adminToken })).status).toBe(204);
    const refused = await tokenRequest(creds.tenantId, clientCredentials(app));
    expect(refused.status).toBe(401);
    expect((await json(refused)).error).toBe('invalid_client');
  });

  it('answers an oversized token request in the OAuth error shape MSAL parses', async () => {
    const res = await call('POST', `${APEX}/${creds.tenantId}/oauth2/v2.0/token`, {
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `${new URLSearchParams(clientCredentials(creds)).toString()}&pad=${'x'.repeat(70 * 1024)}`,
    });
    expect(res.status).toBe(400);
    const body = await json(res);
    expect(body.error).toBe('invalid_request');
    expect(typeof body.error_description).toBe('string');
  });

  it('does not issue tokens for an expired client secret', async () => {
    const app = await newApp();
    await rows('update client_secrets set expires_at = ? where id = ?', Math.floor(Date.now() / 1000) - 1, app.secretId);
    const res = await tokenRequest(creds.tenantId, clientCredentials(app));
    expect(res.status).toBe(401);
    expect((await json(res)).error).toBe('invalid_client');
  });

  it("refuses one application's secret presented with another application's id", async () => {
    const a = await newApp();
    const b = await newApp();
    const res = await tokenRequest(creds.tenantId, clientCredentials({ clientId: a.clientId, clientSecret: b.clientSecret }));
    expect(res.status).toBe(401);
  });
});

describe('bearer validation on vault requests', () => {
  const secretsUrl = () => `${vaultOrigin(vault)}/secrets?${API}`;

  it('refuses the outstanding token of a deleted application (deleting an application revokes it)', async () => {
    const app = await newApp('revoked app');
    // Deny by default: the application reads the vault through a role (Key Vault Reader).
    const granted = await call(
      'PUT',
      `${APEX}/management/vaults/${vault}/providers/Microsoft.Authorization/roleAssignments/${crypto.randomUUID()}`,
      {
        token: adminToken,
        body: {
          properties: {
            roleDefinitionId: '/providers/Microsoft.Authorization/roleDefinitions/21090545-7ca7-4776-b22c-e363652d74d2',
            principalId: app.objectId,
          },
        },
      },
    );
    expect(granted.status).toBe(201);
    const appToken = await tokenFor(app);
    expect((await call('GET', secretsUrl(), { token: appToken })).status).toBe(200);
    expect((await call('DELETE', `${APEX}/management/applications/${app.clientId}`, { token: adminToken })).status).toBe(204);
    const res = await call('GET', secretsUrl(), { token: appToken });
    expect([401, 403]).toContain(res.status);
  });

  it('accepts a token from the token endpoint', async () => {
    expect((await call('GET', secretsUrl(), { token: adminToken })).status).toBe(200);
  });

  it('accepts a correctly signed token built by hand (the forging helper is sound)', async () => {
    const token = await signWithVaultKey(validClaims(creds, objectId));
    expect((await call('GET', secretsUrl(), { token })).status).toBe(200);
  });

  it('refuses an expired token', async () => {
    const t = Math.floor(Date.now() / 1000);
    const token = await signWithVaultKey({ ...validClaims(creds, objectId), iat: t - 7200, nbf: t - 7200, exp: t - 3600 });
    await expectChallenge(await call('GET', secretsUrl(), { token }), creds.tenantId);
  });

  it('refuses a token that is not valid yet', async () => {
    const t = Math.floor(Date.now() / 1000);
    const token = await signWithVaultKey({ ...validClaims(creds, objectId), nbf: t + 600, exp: t + 4200 });
    await expectChallenge(await call('GET', secretsUrl(), { token }), creds.tenantId);
  });

  it('refuses a token for another audience', async () => {
    const token = await signWithVaultKey({ ...validClaims(creds, objectId), aud: 'https://vault.azure.net' });
    await expectChallenge(await call('GET', secretsUrl(), { token }), creds.tenantId);
  });

  it('refuses a token from another issuer', async () => {
    const token = await signWithVaultKey({
      ...validClaims(creds, objectId),
      iss: `https://login.microsoftonline.com/${creds.tenantId}/v2.0`,
    });
    await expectChallenge(await call('GET', secretsUrl(), { token }), creds.tenantId);
  });

  it('refuses a token for another tenant', async () => {
    const other = crypto.randomUUID();
    const token = await signWithVaultKey({ ...validClaims(creds, objectId), tid: other });
    await expectChallenge(await call('GET', secretsUrl(), { token }), creds.tenantId);
  });

  it('refuses a token missing a required claim', async () => {
    for (const claim of ['exp', 'nbf', 'tid', 'oid', 'appid']) {
      const claims = validClaims(creds, objectId);
      delete claims[claim];
      const token = await signWithVaultKey(claims);
      const res = await call('GET', secretsUrl(), { token });
      expect(res.status, claim).toBe(401);
      await expectChallenge(res, creds.tenantId);
    }
  });

  it('refuses a token issued for the apex without a port on a host with a port', async () => {
    const res = await call('GET', `https://${vault}.vault.localhost:9999/secrets?${API}`, { token: adminToken });
    await expectChallenge(res, creds.tenantId, 'https://vault.localhost:9999');
  });

  it('refuses a token forged with another key under the real kid', async () => {
    const kid = decodeProtectedHeader(adminToken).kid!;
    const { privateKey } = await generateKeyPair('ES256');
    const forged = await new SignJWT(decodeJwt(adminToken))
      .setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' })
      .sign(privateKey);
    await expectChallenge(await call('GET', secretsUrl(), { token: forged }), creds.tenantId);
  });

  it('refuses a token from another deployment (its own key and kid)', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = await exportJWK(publicKey);
    expect(jwk).not.toHaveProperty('d');
    const forged = await new SignJWT(validClaims(creds, objectId))
      .setProtectedHeader({ alg: 'ES256', kid: 'another-deployment-key', typ: 'JWT' })
      .sign(privateKey);
    await expectChallenge(await call('GET', secretsUrl(), { token: forged }), creds.tenantId);
  });

  it('refuses an unsigned (alg=none) token', async () => {
    const kid = decodeProtectedHeader(adminToken).kid!;
    const b64 = (v: unknown) => btoa(JSON.stringify(v)).replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
    const claims = decodeJwt(adminToken);
    for (const token of [
      `${b64({ alg: 'none', kid, typ: 'JWT' })}.${b64(claims)}.`,
      `${b64({ alg: 'none', kid })}.${b64(claims)}`,
    ]) {
      await expectChallenge(await call('GET', secretsUrl(), { token }), creds.tenantId);
    }
  });

  it('refuses a token whose signature was moved onto other claims', async () => {
    const [header, , signature] = adminToken.split('.');
    const b64 = (v: unknown) => btoa(JSON.stringify(v)).replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
    const tampered = `${header}.${b64({ ...decodeJwt(adminToken), appid: crypto.randomUUID() })}.${signature}`;
    await expectChallenge(await call('GET', secretsUrl(), { token: tampered }), creds.tenantId);
  });

  it('refuses garbage', async () => {
    for (const token of ['garbage', 'a.b.c', 'eyJhbGciOiJFUzI1NiJ9.e30.AAAA', '....']) {
      await expectChallenge(await call('GET', secretsUrl(), { token }), creds.tenantId);
    }
  });

  it('refuses the client secret presented as a bearer token', async () => {
    await expectChallenge(await call('GET', secretsUrl(), { token: creds.clientSecret }), creds.tenantId);
  });

  it('does not put the presented token in the error answer', async () => {
    const { privateKey } = await generateKeyPair('ES256');
    const forged = await new SignJWT(validClaims(creds, objectId))
      .setProtectedHeader({ alg: 'ES256', kid: 'x' })
      .sign(privateKey);
    const res = await call('GET', secretsUrl(), { token: forged });
    expect(res.status).toBe(401);
    expect(await res.text()).not.toContain(forged.split('.')[2]);
  });
});
