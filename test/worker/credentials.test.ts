/**
 * Credentials besides client secrets, in workerd: certificate credentials (client assertions the
 * app signs with its certificate's key) and federated identity credentials (tokens of an external
 * OIDC issuer: the suite's own issuer on 127.0.0.1, see test/support/oidc-issuer.ts), their
 * management API, client-secret expiry and listing, and revocation that takes effect at once.
 */
import 'reflect-metadata'; // tsyringe, under @peculiar/x509, needs the Reflect metadata API first
import * as x509 from '@peculiar/x509';
import { decodeJwt, exportJWK, generateKeyPair, SignJWT, type CryptoKey as JoseKey, type JWK, type JWTPayload } from 'jose';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ISSUER_REFETCH_INTERVAL_MS } from '../../src/identity/federation';
import { APEX, admin, call, env, json, tokenFor } from './helpers';
import { expectChallenge, rows } from './identity-helpers';

x509.cryptoProvider.set(crypto);

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const DAY_MS = 86_400_000;

let tenantId: string;
let adminToken: string;
let tokenEndpoint: string;

interface App {
  clientId: string;
  objectId: string;
  clientSecret: string;
  secretId: string;
}

async function newApp(displayName = 'credentials test app'): Promise<App> {
  const res = await call('POST', `${APEX}/management/applications`, { token: adminToken, body: { displayName } });
  expect(res.status).toBe(201);
  const body = await json(res);
  return { clientId: body.clientId, objectId: body.objectId, clientSecret: body.clientSecret, secretId: body.secret.id };
}

const manage = (method: string, path: string, body?: unknown, token = adminToken) =>
  call(method, `${APEX}/management/applications${path}`, { token, body });

/** POSTs a token request form, optionally against a modified environment. */
function tokenRequest(
  params: Record<string, string>,
  opts: { env?: Record<string, string>; headers?: Record<string, string> } = {},
) {
  return call('POST', tokenEndpoint, {
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...opts.headers },
    body: new URLSearchParams(params).toString(),
    env: opts.env,
  });
}

const assertionForm = (clientId: string | undefined, assertion: string, extra: Record<string, string> = {}) => ({
  grant_type: 'client_credentials',
  scope: `${APEX}/.default`,
  client_assertion_type: JWT_BEARER,
  client_assertion: assertion,
  ...(clientId === undefined ? {} : { client_id: clientId }),
  ...extra,
});

/** A refusal in Entra's shape: the OAuth error, its AADSTS code, and nothing of the assertion. */
async function expectRefused(res: Response, status: number, error: string, code?: number, assertion?: string) {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  const body = JSON.parse(text);
  expect(body.error, text).toBe(error);
  if (code !== undefined) {
    expect(body.error_codes).toEqual([code]);
    expect(body.error_description).toMatch(new RegExp(`^AADSTS${code}: `));
  }
  expect(body).not.toHaveProperty('access_token');
  if (assertion) {
    expect(text).not.toContain(assertion);
    expect(text).not.toContain(assertion.split('.')[2]!);
  }
  return body;
}

async function expectToken(res: Response, app: App) {
  const text = await res.text();
  expect(res.status, text).toBe(200);
  const claims = decodeJwt(JSON.parse(text).access_token);
  expect(claims.appid).toBe(app.clientId);
  expect(claims.oid).toBe(app.objectId);
  expect(claims.tid).toBe(tenantId);
  expect(claims.aud).toBe(APEX);
}

beforeAll(async () => {
  const creds = await admin();
  tenantId = creds.tenantId;
  adminToken = await tokenFor(creds);
  tokenEndpoint = `${APEX}/${tenantId}/oauth2/v2.0/token`;
});

afterEach(() => {
  vi.useRealTimers();
});

// ------------------------------------------------------------------------------ certificates

type KeyKind = 'RSA' | 'EC';

interface TestCertificate {
  kind: KeyKind;
  pem: string;
  der: Uint8Array;
  x5t: string;
  x5tS256: string;
  /** The private key, imported for each algorithm the tests sign with. */
  pkcs8: ArrayBuffer;
}

const b64url = (bytes: ArrayBuffer | Uint8Array) => {
  let binary = '';
  for (const b of new Uint8Array(bytes)) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
};
const b64 = (bytes: ArrayBuffer | Uint8Array) => {
  let binary = '';
  for (const b of new Uint8Array(bytes)) binary += String.fromCharCode(b);
  return btoa(binary);
};

const RSA_GEN = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]) };

async function selfSigned(
  kind: KeyKind = 'RSA',
  opts: { notBefore?: Date; notAfter?: Date; modulusLength?: number } = {},
): Promise<TestCertificate> {
  const alg = kind === 'RSA' ? { ...RSA_GEN, modulusLength: opts.modulusLength ?? 2048 } : { name: 'ECDSA', namedCurve: 'P-256' };
  const keys = (await crypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: `CN=credentials test ${kind}`,
    notBefore: opts.notBefore ?? new Date(Date.now() - DAY_MS),
    notAfter: opts.notAfter ?? new Date(Date.now() + 30 * DAY_MS),
    signingAlgorithm: kind === 'RSA' ? RSA_GEN : { name: 'ECDSA', hash: 'SHA-256' },
    keys,
  });
  const der = new Uint8Array(cert.rawData);
  return {
    kind,
    pem: cert.toString('pem'),
    der,
    x5t: b64url(await crypto.subtle.digest('SHA-1', der)),
    x5tS256: b64url(await crypto.subtle.digest('SHA-256', der)),
    pkcs8: (await crypto.subtle.exportKey('pkcs8', keys.privateKey)) as ArrayBuffer,
  };
}

async function signingKey(cert: TestCertificate, alg: string): Promise<CryptoKey> {
  const params =
    alg === 'PS256'
      ? { name: 'RSA-PSS', hash: 'SHA-256' }
      : alg === 'RS256'
        ? { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }
        : { name: 'ECDSA', namedCurve: 'P-256' };
  return crypto.subtle.importKey('pkcs8', cert.pkcs8, params, false, ['sign']);
}

interface AssertionOptions {
  alg?: string;
  /** Which thumbprint header to send (MSAL with @azure/identity 4.x: x5t#S256 with PS256). */
  thumbprint?: 'x5t#S256' | 'x5t' | 'none';
  claims?: JWTPayload;
  /** Sign with this certificate's key while the header names `cert`. */
  signWith?: TestCertificate;
}

/** A client assertion as MSAL makes one: aud = token endpoint, iss = sub = client id, 10 minutes. */
async function certAssertion(cert: TestCertificate, clientId: string, opts: AssertionOptions = {}): Promise<string> {
  const alg = opts.alg ?? (cert.kind === 'RSA' ? 'PS256' : 'ES256');
  const thumbprint = opts.thumbprint ?? (alg === 'RS256' ? 'x5t' : 'x5t#S256');
  const header: Record<string, unknown> = { alg, typ: 'JWT' };
  if (thumbprint === 'x5t#S256') header['x5t#S256'] = cert.x5tS256;
  if (thumbprint === 'x5t') header.x5t = cert.x5t;
  const t = Math.floor(Date.now() / 1000);
  return new SignJWT({
    aud: tokenEndpoint,
    iss: clientId,
    sub: clientId,
    jti: crypto.randomUUID(),
    nbf: t,
    exp: t + 600,
    ...opts.claims,
  })
    .setProtectedHeader(header as { alg: string })
    .sign((await signingKey(opts.signWith ?? cert, alg)) as JoseKey);
}

async function addCertificate(clientId: string, certificate: string) {
  return manage('POST', `/${clientId}/certificates`, { certificate });
}

describe('certificate credentials', () => {
  let app: App;
  let rsa: TestCertificate;
  let ec: TestCertificate;
  let other: TestCertificate;

  beforeAll(async () => {
    app = await newApp('certificate app');
    [rsa, ec, other] = await Promise.all([selfSigned('RSA'), selfSigned('EC'), selfSigned('RSA')]);
    expect((await addCertificate(app.clientId, rsa.pem)).status).toBe(201);
    // The same certificate as base64 DER (Entra's keyCredentials shape) works too.
    expect((await addCertificate(app.clientId, b64(ec.der))).status).toBe(201);
  });

  describe('management', () => {
    it('stores the public certificate and lists it by thumbprints and validity, without the certificate or any key', async () => {
      const fresh = await newApp();
      const res = await addCertificate(fresh.clientId, rsa.pem);
      expect(res.status).toBe(201);
      const added = await json(res);
      const hex = async (algorithm: string) =>
        Array.from(new Uint8Array(await crypto.subtle.digest(algorithm, rsa.der)), (b) => b.toString(16).padStart(2, '0'))
          .join('')
          .toUpperCase();
      expect(added).toEqual({
        id: expect.any(String),
        thumbprint: await hex('SHA-1'),
        thumbprintSha256: await hex('SHA-256'),
        x5t: rsa.x5t,
        'x5t#S256': rsa.x5tS256,
        keyType: 'RSA',
        keySize: 2048,
        notBefore: expect.any(Number),
        notAfter: expect.any(Number),
        createdAt: expect.any(Number),
      });
      const listed = await json(await manage('GET', `/${fresh.clientId}/certificates`));
      expect(listed).toEqual({ value: [added], nextLink: null });
      expect(await json(await manage('GET', `/${fresh.clientId}/certificates/${added.id}`))).toEqual(added);
      const ecAdded = await json(await addCertificate(fresh.clientId, ec.pem));
      expect(ecAdded).toMatchObject({ keyType: 'EC', curve: 'P-256' });
      expect(ecAdded).not.toHaveProperty('keySize');
    });

    it('refuses private key material, garbage, expired certificates, small RSA keys, and duplicates', async () => {
      const fresh = await newApp();
      const pkcs8Pem = `-----BEGIN PRIVATE KEY-----\n${b64(rsa.pkcs8)}\n-----END PRIVATE KEY-----\n`;
      for (const [input, message] of [
        [`${rsa.pem}\n${pkcs8Pem}`, /private key/],
        [pkcs8Pem, /private key/],
        [b64(rsa.pkcs8), /private key/],
        ['not a certificate', /not a base64 DER or PEM/],
        [b64(new Uint8Array([0x30, 0x03, 0x02, 0x01])), /not a base64 DER or PEM/],
        [`${rsa.pem}\n${ec.pem}`, /exactly one CERTIFICATE/],
      ] as const) {
        const res = await addCertificate(fresh.clientId, input);
        expect(res.status, input.slice(0, 40)).toBe(400);
        const body = await json(res);
        expect(body.error.code).toBe('BadParameter');
        expect(body.error.message).toMatch(message);
      }
      const expired = await selfSigned('RSA', {
        notBefore: new Date(Date.now() - 10 * DAY_MS),
        notAfter: new Date(Date.now() - DAY_MS),
      });
      expect((await json(await addCertificate(fresh.clientId, expired.pem))).error.message).toMatch(/expired/);
      const small = await selfSigned('RSA', { modulusLength: 1024 });
      const smallRes = await addCertificate(fresh.clientId, small.pem);
      expect(smallRes.status).toBe(400);
      expect((await json(smallRes)).error.message).toMatch(/2048/);
      expect(await rows('select id from application_certificates where client_id = ?', fresh.clientId)).toEqual([]);

      expect((await addCertificate(fresh.clientId, rsa.pem)).status).toBe(201);
      expect((await addCertificate(fresh.clientId, b64(rsa.der))).status).toBe(409);
    });

    it('answers 404 for unknown applications and certificates, and only administrators may manage them', async () => {
      const unknown = crypto.randomUUID();
      expect((await addCertificate(unknown, rsa.pem)).status).toBe(404);
      expect((await manage('GET', `/${unknown}/certificates`)).status).toBe(404);
      expect((await manage('GET', `/${app.clientId}/certificates/${crypto.randomUUID()}`)).status).toBe(404);
      expect((await manage('DELETE', `/${app.clientId}/certificates/${crypto.randomUUID()}`)).status).toBe(404);
      await expectChallenge(await call('GET', `${APEX}/management/applications/${app.clientId}/certificates`), tenantId);
      const user = await newApp();
      const userToken = await tokenFor({ tenantId, ...user });
      expect((await manage('GET', `/${app.clientId}/certificates`, undefined, userToken)).status).toBe(403);
      expect((await manage('POST', `/${user.clientId}/certificates`, { certificate: other.pem }, userToken)).status).toBe(403);
    });
  });

  describe('token endpoint', () => {
    it('issues a token for a PS256 assertion naming the certificate by x5t#S256 (what @azure/identity sends)', async () => {
      const assertion = await certAssertion(rsa, app.clientId);
      await expectToken(await tokenRequest(assertionForm(app.clientId, assertion)), app);
    });

    it('also accepts RS256 with x5t (SHA-1), ES256 with an EC certificate, client_id omitted, and aud = the issuer', async () => {
      await expectToken(
        await tokenRequest(assertionForm(app.clientId, await certAssertion(rsa, app.clientId, { alg: 'RS256' }))),
        app,
      );
      await expectToken(await tokenRequest(assertionForm(app.clientId, await certAssertion(ec, app.clientId))), app);
      await expectToken(await tokenRequest(assertionForm(undefined, await certAssertion(rsa, app.clientId))), app);
      const toIssuer = await certAssertion(rsa, app.clientId, { claims: { aud: `${APEX}/${tenantId}/v2.0` } });
      await expectToken(await tokenRequest(assertionForm(app.clientId, toIssuer)), app);
    });

    it('refuses a wrong signature (AADSTS700027) and never echoes the assertion', async () => {
      const forged = await certAssertion(rsa, app.clientId, { signWith: other });
      const body = await expectRefused(
        await tokenRequest(assertionForm(app.clientId, forged)),
        401,
        'invalid_client',
        700027,
        forged,
      );
      expect(body.error_description).toMatch(/invalid signature/);
      // A tampered payload under a genuine signature.
      const [h, , s] = (await certAssertion(rsa, app.clientId)).split('.');
      const otherPayload = (await certAssertion(rsa, app.clientId, { claims: { jti: 'x' } })).split('.')[1];
      await expectRefused(
        await tokenRequest(assertionForm(app.clientId, `${h}.${otherPayload}.${s}`)),
        401,
        'invalid_client',
        700027,
      );
      // An algorithm the key cannot make (ES256 under an RSA certificate's thumbprint).
      const mismatched = await certAssertion(rsa, app.clientId, { alg: 'ES256', signWith: ec });
      await expectRefused(await tokenRequest(assertionForm(app.clientId, mismatched)), 401, 'invalid_client', 700027);
    });

    it('refuses an assertion for another audience (AADSTS700023)', async () => {
      for (const aud of [
        'https://login.microsoftonline.com/x/oauth2/v2.0/token',
        `${APEX}/${crypto.randomUUID()}/oauth2/v2.0/token`,
        APEX,
      ]) {
        const assertion = await certAssertion(rsa, app.clientId, { claims: { aud } });
        await expectRefused(await tokenRequest(assertionForm(app.clientId, assertion)), 401, 'invalid_client', 700023);
      }
    });

    it("refuses iss or sub other than the client id, or a client_id that isn't the assertion's (AADSTS700021)", async () => {
      const other = await newApp();
      for (const claims of [{ iss: other.clientId }, { sub: other.clientId }, { iss: other.clientId, sub: other.clientId }]) {
        const assertion = await certAssertion(rsa, app.clientId, { claims });
        await expectRefused(await tokenRequest(assertionForm(app.clientId, assertion)), 401, 'invalid_client', 700021);
      }
    });

    it('refuses expired, not yet valid and overly long-lived assertions (AADSTS700024)', async () => {
      const t = Math.floor(Date.now() / 1000);
      const cases: JWTPayload[] = [
        { nbf: t - 3600, exp: t - 600 },
        { nbf: t + 900, exp: t + 1500 },
        { nbf: t, exp: t + 24 * 3600 },
      ];
      for (const claims of cases) {
        const assertion = await certAssertion(rsa, app.clientId, { claims });
        const body = await expectRefused(
          await tokenRequest(assertionForm(app.clientId, assertion)),
          401,
          'invalid_client',
          700024,
        );
        expect(body.error_description).toMatch(/not within its valid time range/);
      }
      const { exp: _omit, ...noExp } = decodeJwt(await certAssertion(rsa, app.clientId));
      const withoutExp = await new SignJWT(noExp)
        .setProtectedHeader({ alg: 'PS256', 'x5t#S256': rsa.x5tS256 } as { alg: string })
        .sign((await signingKey(rsa, 'PS256')) as JoseKey);
      await expectRefused(await tokenRequest(assertionForm(app.clientId, withoutExp)), 400, 'invalid_request', 50027);
    });

    it('refuses a certificate the application does not hold (AADSTS700027)', async () => {
      const body = await expectRefused(
        await tokenRequest(assertionForm(app.clientId, await certAssertion(other, app.clientId))),
        401,
        'invalid_client',
        700027,
      );
      expect(body.error_description).toMatch(/not registered on application/);
      // Another application's certificate does not sign in this one.
      const holder = await newApp();
      expect((await addCertificate(holder.clientId, other.pem)).status).toBe(201);
      await expectRefused(
        await tokenRequest(assertionForm(app.clientId, await certAssertion(other, app.clientId))),
        401,
        'invalid_client',
        700027,
      );
      await expectToken(await tokenRequest(assertionForm(holder.clientId, await certAssertion(other, holder.clientId))), holder);
    });

    it('stops accepting a removed certificate with the very next request', async () => {
      const owner = await newApp();
      const cert = await selfSigned('EC');
      const added = await json(await addCertificate(owner.clientId, cert.pem));
      await expectToken(await tokenRequest(assertionForm(owner.clientId, await certAssertion(cert, owner.clientId))), owner);
      expect((await manage('DELETE', `/${owner.clientId}/certificates/${added.id}`)).status).toBe(204);
      await expectRefused(
        await tokenRequest(assertionForm(owner.clientId, await certAssertion(cert, owner.clientId))),
        401,
        'invalid_client',
        700027,
      );
      expect((await json(await manage('GET', `/${owner.clientId}/certificates`))).value).toEqual([]);
    });

    it('refuses a certificate outside its validity period', async () => {
      const owner = await newApp();
      const cert = await selfSigned('EC', {
        notBefore: new Date(Date.now() - 2 * DAY_MS),
        notAfter: new Date(Date.now() + DAY_MS),
      });
      expect((await addCertificate(owner.clientId, cert.pem)).status).toBe(201);
      await rows(
        'update application_certificates set not_after = ? where client_id = ?',
        Math.floor(Date.now() / 1000) - 3600,
        owner.clientId,
      );
      const body = await expectRefused(
        await tokenRequest(assertionForm(owner.clientId, await certAssertion(cert, owner.clientId))),
        401,
        'invalid_client',
        700027,
      );
      expect(body.error_description).toMatch(/expired/);
    });

    it('answers an unknown application with AADSTS700016 and a malformed request with invalid_request', async () => {
      const stranger = crypto.randomUUID();
      await expectRefused(
        await tokenRequest(assertionForm(stranger, await certAssertion(rsa, stranger))),
        400,
        'unauthorized_client',
        700016,
      );
      await expectRefused(await tokenRequest(assertionForm(app.clientId, 'not.a.jwt')), 400, 'invalid_request', 50027);
      await expectRefused(await tokenRequest(assertionForm(app.clientId, 'garbage')), 400, 'invalid_request', 50027);
      const good = await certAssertion(rsa, app.clientId);
      await expectRefused(
        await tokenRequest(assertionForm(app.clientId, good, { client_assertion_type: 'urn:x' })),
        400,
        'invalid_request',
      );
      await expectRefused(
        await tokenRequest(assertionForm(app.clientId, good, { client_secret: app.clientSecret })),
        400,
        'invalid_request',
      );
      await expectRefused(await tokenRequest(assertionForm(app.clientId, '')), 401, 'invalid_client', 7000218);
      // An unsigned assertion (alg none) never authenticates.
      const unsigned = `${b64url(new TextEncoder().encode(JSON.stringify({ alg: 'none', 'x5t#S256': rsa.x5tS256 })))}.${good.split('.')[1]}.`;
      await expectRefused(await tokenRequest(assertionForm(app.clientId, unsigned)), 400, 'invalid_request', 50027);
    });

    it('advertises private_key_jwt in the discovery document', async () => {
      const doc = await json(await call('GET', `${APEX}/${tenantId}/v2.0/.well-known/openid-configuration`));
      expect(doc.token_endpoint_auth_methods_supported).toContain('private_key_jwt');
      expect(doc.token_endpoint_auth_signing_alg_values_supported).toEqual(expect.arrayContaining(['PS256', 'RS256', 'ES256']));
    });
  });
});

// ------------------------------------------------------------------------ federated credentials

interface IssuerKey {
  kid: string;
  alg: 'RS256' | 'ES256';
  privateKey: JoseKey;
  publicJwk: JWK;
}

async function newIssuerKey(alg: 'RS256' | 'ES256' = 'RS256', kid: string = crypto.randomUUID()): Promise<IssuerKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

const control = (path: string, init: RequestInit = {}) =>
  fetch(`${env.OIDC_ISSUER_HOST}/control/${path}`, {
    ...init,
    headers: { authorization: `Bearer ${env.OIDC_ISSUER_CONTROL_TOKEN}`, 'content-type': 'application/json', ...init.headers },
  });

/** An issuer served by the suite's local issuer host; its keys live here, the host publishes them. */
class TestIssuer {
  key!: IssuerKey;
  readonly url: string;

  private constructor(readonly name: string) {
    this.url = `${env.OIDC_ISSUER_HOST}/${name}`;
  }

  static async create(alg: 'RS256' | 'ES256' = 'RS256'): Promise<TestIssuer> {
    const issuer = new TestIssuer(`iss-${crypto.randomUUID().slice(0, 8)}`);
    issuer.key = await newIssuerKey(alg);
    await issuer.publish([issuer.key]);
    return issuer;
  }

  async publish(keys: IssuerKey[]): Promise<void> {
    const res = await control(`${this.name}/jwks`, {
      method: 'PUT',
      body: JSON.stringify({ keys: keys.map((k) => k.publicJwk) }),
    });
    expect(res.status).toBe(204);
  }

  async fetches(): Promise<{ discovery: number; jwks: number }> {
    return (await control(`${this.name}/stats`)).json();
  }

  async sign(claims: JWTPayload, opts: { key?: IssuerKey; header?: Record<string, unknown> } = {}): Promise<string> {
    const key = opts.key ?? this.key;
    const t = Math.floor(Date.now() / 1000);
    return new SignJWT({ iss: this.url, iat: t, nbf: t, exp: t + 300, jti: crypto.randomUUID(), ...claims })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...opts.header } as { alg: string })
      .sign(key.privateKey);
  }
}

const AUDIENCE = 'api://AzureADTokenExchange';

async function addFederated(clientId: string, body: Record<string, unknown>, opts: { env?: Record<string, string> } = {}) {
  return call('POST', `${APEX}/management/applications/${clientId}/federatedCredentials`, {
    token: adminToken,
    body,
    env: opts.env,
  });
}

describe('federated identity credentials', () => {
  let app: App;
  let issuer: TestIssuer;
  const subject = 'repo:contoso/app:environment:production';

  beforeAll(async () => {
    app = await newApp('federated app');
    issuer = await TestIssuer.create();
    const res = await addFederated(app.clientId, { name: 'github-prod', issuer: issuer.url, subject, description: 'deploys' });
    expect(res.status).toBe(201);
  });

  describe('management', () => {
    it("creates with Entra's default audience and lists them", async () => {
      const fresh = await newApp();
      const res = await addFederated(fresh.clientId, {
        name: 'k8s-sa',
        issuer: issuer.url,
        subject: 'system:serviceaccount:ns:sa',
      });
      expect(res.status).toBe(201);
      const created = await json(res);
      expect(created).toEqual({
        id: expect.any(String),
        name: 'k8s-sa',
        issuer: issuer.url,
        subject: 'system:serviceaccount:ns:sa',
        audiences: [AUDIENCE],
        description: null,
        createdAt: expect.any(Number),
      });
      expect(await json(await manage('GET', `/${fresh.clientId}/federatedCredentials`))).toEqual({
        value: [created],
        nextLink: null,
      });
      expect(await json(await manage('GET', `/${fresh.clientId}/federatedCredentials/${created.id}`))).toEqual(created);
      expect((await manage('DELETE', `/${fresh.clientId}/federatedCredentials/${created.id}`)).status).toBe(204);
      expect((await manage('DELETE', `/${fresh.clientId}/federatedCredentials/${created.id}`)).status).toBe(404);
      expect((await manage('GET', `/${fresh.clientId}/federatedCredentials/${created.id}`)).status).toBe(404);
    });

    it('validates name, issuer, subject and audiences as Entra does', async () => {
      const fresh = await newApp();
      const valid = { name: 'ok-name', issuer: issuer.url, subject: 's' };
      for (const body of [
        { ...valid, name: 'ab' },
        { ...valid, name: '-starts-with-dash' },
        { ...valid, name: 'has space' },
        { ...valid, name: 'x'.repeat(121) },
        { ...valid, issuer: 'not a url' },
        { ...valid, issuer: 'http://issuer.example.com' },
        { ...valid, issuer: 'https://issuer.example.com/?q=1' },
        { ...valid, issuer: `https://${'x'.repeat(600)}.example.com` },
        { ...valid, subject: '' },
        { ...valid, subject: 's'.repeat(601) },
        { ...valid, audiences: [] },
        { ...valid, audiences: ['a', 'b'] },
        { ...valid, audiences: [''] },
        { ...valid, description: 'd'.repeat(601) },
        { name: 'no-issuer', subject: 's' },
      ]) {
        const res = await addFederated(fresh.clientId, body);
        expect(res.status, JSON.stringify(body).slice(0, 80)).toBe(400);
      }
      expect(await rows('select id from federated_credentials where client_id = ?', fresh.clientId)).toEqual([]);
    });

    it('allows a plain-http issuer only on loopback, and only where ALLOW_LOOPBACK_HTTP_ISSUERS is true', async () => {
      const fresh = await newApp();
      const body = { name: 'local', issuer: issuer.url, subject: 's' };
      expect((await addFederated(fresh.clientId, body, { env: { ALLOW_LOOPBACK_HTTP_ISSUERS: 'false' } })).status).toBe(400);
      expect((await addFederated(fresh.clientId, { ...body, issuer: 'http://10.0.0.1/issuer' })).status).toBe(400);
      expect((await addFederated(fresh.clientId, body)).status).toBe(201);
      expect(
        (await addFederated(fresh.clientId, { ...body, name: 'cloud', issuer: 'https://token.actions.githubusercontent.com' }))
          .status,
      ).toBe(201);
    });

    it('keeps names and issuer/subject pairs unique per application, and at most 20 credentials', async () => {
      const fresh = await newApp();
      expect((await addFederated(fresh.clientId, { name: 'first', issuer: issuer.url, subject: 's0' })).status).toBe(201);
      expect((await addFederated(fresh.clientId, { name: 'FIRST', issuer: issuer.url, subject: 'other' })).status).toBe(409);
      expect((await addFederated(fresh.clientId, { name: 'second', issuer: issuer.url, subject: 's0' })).status).toBe(409);
      // Another application may reuse both.
      expect((await addFederated(app.clientId, { name: 'first', issuer: issuer.url, subject: 's0' })).status).toBe(201);
      const results = await Promise.all(
        Array.from({ length: 22 }, (_, i) =>
          addFederated(fresh.clientId, { name: `n${i}-x`, issuer: issuer.url, subject: `s${i + 1}` }),
        ),
      );
      expect(results.filter((r) => r.status === 201)).toHaveLength(19);
      expect(results.filter((r) => r.status === 400)).toHaveLength(3);
      expect((await json(await manage('GET', `/${fresh.clientId}/federatedCredentials`))).value).toHaveLength(20);
    });

    it('answers 404 for an unknown application, and only administrators may manage them', async () => {
      expect((await addFederated(crypto.randomUUID(), { name: 'x-1', issuer: issuer.url, subject: 's' })).status).toBe(404);
      await expectChallenge(await call('GET', `${APEX}/management/applications/${app.clientId}/federatedCredentials`), tenantId);
      const user = await newApp();
      const userToken = await tokenFor({ tenantId, ...user });
      expect((await manage('GET', `/${app.clientId}/federatedCredentials`, undefined, userToken)).status).toBe(403);
    });
  });

  describe('token exchange', () => {
    it("exchanges the issuer's token for a vault token, fetching discovery and JWKS once", async () => {
      const assertion = await issuer.sign({ sub: subject, aud: AUDIENCE });
      await expectToken(await tokenRequest(assertionForm(app.clientId, assertion)), app);
      const after = await issuer.fetches();
      expect(after).toEqual({ discovery: 1, jwks: 1 });
      // Cached: a second exchange fetches nothing.
      await expectToken(
        await tokenRequest(assertionForm(app.clientId, await issuer.sign({ sub: subject, aud: [AUDIENCE, 'other'] }))),
        app,
      );
      expect(await issuer.fetches()).toEqual(after);
    });

    it('refuses an issuer the application does not trust (AADSTS700211), without fetching anything from it', async () => {
      const stranger = await TestIssuer.create();
      const assertion = await stranger.sign({ sub: subject, aud: AUDIENCE });
      const body = await expectRefused(
        await tokenRequest(assertionForm(app.clientId, assertion)),
        401,
        'invalid_client',
        700211,
        assertion,
      );
      expect(body.error_description).toContain(stranger.url);
      expect(await stranger.fetches()).toEqual({ discovery: 0, jwks: 0 });
      // Signed by the trusted issuer's key but claiming to be the other issuer: still its issuer that counts.
      const spoof = await issuer.sign({ sub: subject, aud: AUDIENCE, iss: stranger.url });
      await expectRefused(await tokenRequest(assertionForm(app.clientId, spoof)), 401, 'invalid_client', 700211);
    });

    it('refuses another subject (AADSTS700213), and says so when only its case differs (AADSTS7002138)', async () => {
      await expectRefused(
        await tokenRequest(
          assertionForm(app.clientId, await issuer.sign({ sub: 'repo:contoso/app:ref:refs/heads/main', aud: AUDIENCE })),
        ),
        401,
        'invalid_client',
        700213,
      );
      await expectRefused(
        await tokenRequest(assertionForm(app.clientId, await issuer.sign({ sub: subject.toUpperCase(), aud: AUDIENCE }))),
        401,
        'invalid_client',
        7002138,
      );
    });

    it('refuses another audience (AADSTS700212)', async () => {
      for (const aud of ['api://other', [APEX], 'api://azureadtokenexchange']) {
        await expectRefused(
          await tokenRequest(assertionForm(app.clientId, await issuer.sign({ sub: subject, aud }))),
          401,
          'invalid_client',
          700212,
        );
      }
    });

    it('refuses a bad signature (AADSTS700027) and a key the issuer does not publish (AADSTS7000272)', async () => {
      const impostor = await newIssuerKey('RS256', issuer.key.kid); // same kid, other key
      const forged = await issuer.sign({ sub: subject, aud: AUDIENCE }, { key: impostor });
      await expectRefused(await tokenRequest(assertionForm(app.clientId, forged)), 401, 'invalid_client', 700027, forged);
      const unpublished = await newIssuerKey();
      const body = await expectRefused(
        await tokenRequest(assertionForm(app.clientId, await issuer.sign({ sub: subject, aud: AUDIENCE }, { key: unpublished }))),
        401,
        'invalid_client',
        7000272,
      );
      expect(body.error_description).toContain(unpublished.kid);
      const hmac = await new SignJWT({ iss: issuer.url, sub: subject, aud: AUDIENCE, exp: Math.floor(Date.now() / 1000) + 300 })
        .setProtectedHeader({ alg: 'HS256', kid: issuer.key.kid })
        .sign(new TextEncoder().encode('x'.repeat(32)));
      await expectRefused(await tokenRequest(assertionForm(app.clientId, hmac)), 400, 'invalid_request', 50027);
    });

    it('refuses expired and not yet valid tokens (AADSTS700024)', async () => {
      const t = Math.floor(Date.now() / 1000);
      for (const claims of [
        { iat: t - 3600, nbf: t - 3600, exp: t - 600 },
        { iat: t, nbf: t + 900, exp: t + 1800 },
      ]) {
        const body = await expectRefused(
          await tokenRequest(assertionForm(app.clientId, await issuer.sign({ sub: subject, aud: AUDIENCE, ...claims }))),
          401,
          'invalid_client',
          700024,
        );
        expect(body.error_description).toContain('expiry time of assertion');
      }
    });

    it("follows the issuer's key rotation: an unknown kid refetches its JWKS, at most once per interval", async () => {
      const rotating = await TestIssuer.create('ES256');
      const owner = await newApp();
      expect((await addFederated(owner.clientId, { name: 'rotating', issuer: rotating.url, subject: 'workload' })).status).toBe(
        201,
      );
      await expectToken(
        await tokenRequest(assertionForm(owner.clientId, await rotating.sign({ sub: 'workload', aud: AUDIENCE }))),
        owner,
      );
      expect(await rotating.fetches()).toEqual({ discovery: 1, jwks: 1 });

      // The issuer rotates: only the new key is published now.
      const next = await newIssuerKey('ES256');
      await rotating.publish([next]);
      rotating.key = next;
      vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
      // Within the interval since the last fetch, an unknown kid is refused without a fetch.
      const early = await tokenRequest(assertionForm(owner.clientId, await rotating.sign({ sub: 'workload', aud: AUDIENCE })));
      await expectRefused(early, 401, 'invalid_client', 7000272);
      expect(await rotating.fetches()).toEqual({ discovery: 1, jwks: 1 });
      // After it, the unknown kid makes the vault fetch the keys again, and the new key works.
      vi.setSystemTime(Date.now() + ISSUER_REFETCH_INTERVAL_MS + 1000);
      await expectToken(
        await tokenRequest(assertionForm(owner.clientId, await rotating.sign({ sub: 'workload', aud: AUDIENCE }))),
        owner,
      );
      expect(await rotating.fetches()).toEqual({ discovery: 2, jwks: 2 });
      // Forged kids do not turn into a fetch each.
      for (let i = 0; i < 3; i++) {
        const bogus = await newIssuerKey('ES256');
        await expectRefused(
          await tokenRequest(
            assertionForm(owner.clientId, await rotating.sign({ sub: 'workload', aud: AUDIENCE }, { key: bogus })),
          ),
          401,
          'invalid_client',
          7000272,
        );
      }
      expect(await rotating.fetches()).toEqual({ discovery: 2, jwks: 2 });
    });

    it('refuses an issuer whose metadata cannot be fetched, and http issuers where they are not allowed', async () => {
      const owner = await newApp();
      // An issuer that publishes nothing (its discovery document is a 404).
      const silent = `${env.OIDC_ISSUER_HOST}/never-published`;
      expect((await addFederated(owner.clientId, { name: 'silent', issuer: silent, subject: 'w' })).status).toBe(201);
      const unanswered = await issuer.sign({ sub: 'w', aud: AUDIENCE, iss: silent });
      const body = await expectRefused(await tokenRequest(assertionForm(owner.clientId, unanswered)), 401, 'invalid_client');
      expect(body.error_description).toMatch(/metadata of identity provider .* could not be retrieved: .* answered HTTP 404/);
      // A discovery document must name exactly the issuer it was asked for (OIDC Discovery 4.3):
      // the issuer's own document says `…/name`, not `…/name/`.
      const slashed = `${issuer.url}/`;
      expect((await addFederated(owner.clientId, { name: 'slashed', issuer: slashed, subject: 'w' })).status).toBe(201);
      const mismatched = await issuer.sign({ sub: 'w', aud: AUDIENCE, iss: slashed });
      const mismatch = await expectRefused(await tokenRequest(assertionForm(owner.clientId, mismatched)), 401, 'invalid_client');
      expect(mismatch.error_description).toMatch(/names another issuer/);

      expect((await addFederated(owner.clientId, { name: 'local', issuer: issuer.url, subject: 'w' })).status).toBe(201);
      const assertion = await issuer.sign({ sub: 'w', aud: AUDIENCE });
      await expectToken(await tokenRequest(assertionForm(owner.clientId, assertion)), owner);
      // The same credential is unusable where loopback http issuers are not allowed (production).
      await expectRefused(
        await tokenRequest(assertionForm(owner.clientId, assertion), { env: { ALLOW_LOOPBACK_HTTP_ISSUERS: 'false' } }),
        401,
        'invalid_client',
      );
    });

    it('refuses an application without federated credentials (AADSTS70021) and needs client_id', async () => {
      const bare = await newApp();
      const assertion = await issuer.sign({ sub: subject, aud: AUDIENCE });
      await expectRefused(await tokenRequest(assertionForm(bare.clientId, assertion)), 401, 'invalid_client', 70021);
      await expectRefused(await tokenRequest(assertionForm(undefined, assertion)), 400, 'invalid_request', 900144);
    });

    it('stops exchanging with the very next request once the credential is removed', async () => {
      const owner = await newApp();
      const created = await json(await addFederated(owner.clientId, { name: 'temp', issuer: issuer.url, subject: 'temp' }));
      await expectToken(
        await tokenRequest(assertionForm(owner.clientId, await issuer.sign({ sub: 'temp', aud: AUDIENCE }))),
        owner,
      );
      expect((await manage('DELETE', `/${owner.clientId}/federatedCredentials/${created.id}`)).status).toBe(204);
      await expectRefused(
        await tokenRequest(assertionForm(owner.clientId, await issuer.sign({ sub: 'temp', aud: AUDIENCE }))),
        401,
        'invalid_client',
        70021,
      );
    });
  });
});

// ---------------------------------------------------------------------------- client secrets

describe('client secrets: expiry and listing', () => {
  it('takes an expiry as expiresInDays or endDateTime, and refuses bad ones', async () => {
    const app = await newApp();
    const end = new Date(Date.now() + 10 * DAY_MS);
    end.setUTCMilliseconds(0);
    const res = await manage('POST', `/${app.clientId}/secrets`, { endDateTime: end.toISOString() });
    expect(res.status).toBe(201);
    expect((await json(res)).secret.expiresAt).toBe(end.getTime() / 1000);
    for (const body of [
      { endDateTime: 'tomorrow' },
      { endDateTime: '2020-01-01T00:00:00Z' },
      { endDateTime: new Date(Date.now() + 800 * DAY_MS).toISOString() },
      { endDateTime: '2027-01-01' },
      { endDateTime: end.toISOString(), expiresInDays: 3 },
      { expiresInDays: 0 },
      { expiresInDays: 731 },
    ]) {
      expect((await manage('POST', `/${app.clientId}/secrets`, body)).status, JSON.stringify(body)).toBe(400);
    }
  });

  it('refuses an expired secret with AADSTS7000222 and a wrong one with AADSTS7000215', async () => {
    const app = await newApp();
    const form = {
      grant_type: 'client_credentials',
      scope: `${APEX}/.default`,
      client_id: app.clientId,
      client_secret: app.clientSecret,
    };
    await expectToken(await tokenRequest(form), app);
    await rows('update client_secrets set expires_at = ? where id = ?', Math.floor(Date.now() / 1000) - 1, app.secretId);
    const body = await expectRefused(await tokenRequest(form), 401, 'invalid_client', 7000222, app.clientSecret);
    expect(body.error_description).toContain(app.clientId);
    await expectRefused(
      await tokenRequest({ ...form, client_secret: `${app.clientSecret.slice(0, -2)}xx` }),
      401,
      'invalid_client',
      7000215,
    );
    // A new secret works at once; the expired one stays refused.
    const added = await json(await manage('POST', `/${app.clientId}/secrets`, { expiresInDays: 1 }));
    await expectToken(await tokenRequest({ ...form, client_secret: added.clientSecret }), app);
    await expectRefused(await tokenRequest(form), 401, 'invalid_client', 7000222);
  });

  it('lists secrets with hints and dates, never their values or digests', async () => {
    const app = await newApp();
    const added = await json(await manage('POST', `/${app.clientId}/secrets`, { expiresInDays: 30 }));
    const res = await manage('GET', `/${app.clientId}/secrets`);
    expect(res.status).toBe(200);
    const text = await res.text();
    const body = JSON.parse(text);
    expect(body.nextLink).toBeNull();
    expect(body.value).toHaveLength(2);
    for (const item of body.value) expect(Object.keys(item).sort()).toEqual(['createdAt', 'expiresAt', 'hint', 'id']);
    expect(body.value.find((s: { id: string }) => s.id === added.secret.id)).toEqual(added.secret);
    for (const secret of [app.clientSecret, added.clientSecret]) {
      expect(text).not.toContain(secret);
      expect(text).not.toContain(secret.slice(4));
    }
    const digests = await rows<{ digest: string }>('select digest from client_secrets where client_id = ?', app.clientId);
    for (const { digest } of digests) expect(text).not.toContain(digest);
    expect((await manage('GET', `/${crypto.randomUUID()}/secrets`)).status).toBe(404);
  });
});
