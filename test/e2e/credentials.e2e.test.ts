/**
 * Certificate and federated credentials through the unmodified @azure/identity against the
 * running stack: ClientCertificateCredential (MSAL signs a PS256 client assertion naming the
 * certificate by x5t#S256) and ClientAssertionCredential with tokens of an OIDC issuer this test
 * process runs on 127.0.0.1 (test/support/oidc-issuer.ts), which the Worker fetches discovery and
 * JWKS from. Wrong issuer, subject, audience, signature or expiry make the credential throw with
 * Entra's OAuth2 error.
 */
import { webcrypto } from 'node:crypto';
import 'reflect-metadata'; // tsyringe, under @peculiar/x509, needs the Reflect metadata API loaded first
import * as x509 from '@peculiar/x509';
import { ClientAssertionCredential, ClientCertificateCredential, type TokenCredential } from '@azure/identity';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOidcIssuerHost, LocalOidcIssuer, type OidcIssuerHost } from '../support/oidc-issuer.js';
import { KeyClient } from '@azure/keyvault-keys';
import { SecretClient } from '@azure/keyvault-secrets';
import { adminToken, request, stackInfo, uniqueName } from '../support/e2e.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const AUDIENCE = 'api://AzureADTokenExchange';
const KEY_VAULT_ADMINISTRATOR = '/providers/Microsoft.Authorization/roleDefinitions/00482a5a-887f-4fb3-b363-3b7fe8e74483';
const DAY_MS = 86_400_000;
/** The vault refetches an issuer's keys for an unknown kid at most this often (src/identity/federation.ts). */
const ISSUER_REFETCH_INTERVAL_MS = 5_000;

interface App {
  clientId: string;
  objectId: string;
}

/** Raw HTTPS to the management API, as the stack's administrator. */
async function manage(method: string, path: string, body?: unknown) {
  const { apexUrl } = stackInfo();
  return request(`${apexUrl}/management${path}`, {
    method,
    headers: {
      authorization: `Bearer ${await adminToken()}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

/** An application that may use the stack's default vault (Key Vault Administrator at its root). */
async function newApp(displayName: string): Promise<App> {
  const created = await manage('POST', '/applications', { displayName });
  expect(created.status, created.text).toBe(201);
  const { clientId, objectId } = created.json<App>();
  const vault = new URL(stackInfo().credentials.vaultUrl).hostname.split('.')[0]!;
  const assigned = await manage(
    'PUT',
    `/vaults/${vault}/providers/Microsoft.Authorization/roleAssignments/${crypto.randomUUID()}`,
    {
      properties: { roleDefinitionId: KEY_VAULT_ADMINISTRATOR, principalId: objectId },
    },
  );
  expect(assigned.status, assigned.text).toBe(201);
  return { clientId, objectId };
}

const options = () => ({ authorityHost: stackInfo().credentials.authorityHost, disableInstanceDiscovery: true });
const scope = () => `${stackInfo().credentials.resource}/.default`;

/** A self-signed RSA certificate and its private key, as one PEM (what ClientCertificateCredential reads). */
async function certificateWithKey(): Promise<{ certificatePem: string; combinedPem: string }> {
  const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=edge-key-vault e2e client',
    notBefore: new Date(Date.now() - DAY_MS),
    notAfter: new Date(Date.now() + 30 * DAY_MS),
    signingAlgorithm: alg,
    keys,
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey as webcrypto.CryptoKey);
  const certificatePem = cert.toString('pem');
  return { certificatePem, combinedPem: `${certificatePem}\n${x509.PemConverter.encode(pkcs8, 'PRIVATE KEY')}` };
}

/** The credential's failure: identity wraps MSAL's ServerError, whose message carries Entra's description. */
async function failure(credential: TokenCredential): Promise<Error> {
  const err = await credential.getToken(scope()).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'the credential should have thrown').toBeInstanceOf(Error);
  return err as Error;
}

describe('ClientCertificateCredential', () => {
  let app: App;
  let pems: { certificatePem: string; combinedPem: string };
  let certificateId: string;

  beforeAll(async () => {
    app = await newApp(uniqueName('cert-app'));
    pems = await certificateWithKey();
    const added = await manage('POST', `/applications/${app.clientId}/certificates`, { certificate: pems.certificatePem });
    expect(added.status, added.text).toBe(201);
    certificateId = added.json<{ id: string }>().id;
  });

  it('gets a token and uses the vault with it (SecretClient and KeyClient)', async () => {
    const { credentials: c } = stackInfo();
    const credential = new ClientCertificateCredential(c.tenantId, app.clientId, { certificate: pems.combinedPem }, options());
    const token = await credential.getToken(scope());
    const claims = JSON.parse(Buffer.from(token.token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
    expect(claims).toMatchObject({ appid: app.clientId, oid: app.objectId, tid: c.tenantId, aud: c.resource });

    const secrets = new SecretClient(c.vaultUrl, credential);
    const name = uniqueName('cert-cred');
    await secrets.setSecret(name, 'signed in with a certificate');
    expect((await secrets.getSecret(name)).value).toBe('signed in with a certificate');
    const key = await new KeyClient(c.vaultUrl, credential).createEcKey(uniqueName('cert-cred-key'), { curve: 'P-256' });
    expect(key.keyType).toBe('EC');
  });

  it('also works when the credential sends its certificate chain (x5c)', async () => {
    const { credentials: c } = stackInfo();
    const credential = new ClientCertificateCredential(
      c.tenantId,
      app.clientId,
      { certificate: pems.combinedPem },
      { ...options(), sendCertificateChain: true },
    );
    expect((await credential.getToken(scope())).token.split('.')).toHaveLength(3);
  });

  it("refuses a certificate the application doesn't hold (AADSTS700027), and one removed a moment ago", async () => {
    const { credentials: c } = stackInfo();
    const stranger = await certificateWithKey();
    const err = await failure(
      new ClientCertificateCredential(c.tenantId, app.clientId, { certificate: stranger.combinedPem }, options()),
    );
    expect(err.message).toMatch(/invalid_client/);
    expect(err.message).toMatch(/AADSTS700027/);
    expect(err.message).not.toContain('PRIVATE KEY');

    const removed = await manage('DELETE', `/applications/${app.clientId}/certificates/${certificateId}`);
    expect(removed.status).toBe(204);
    const revoked = await failure(
      new ClientCertificateCredential(c.tenantId, app.clientId, { certificate: pems.combinedPem }, options()),
    );
    expect(revoked.message).toMatch(/AADSTS700027/);
  });

  it('refuses an unknown application (AADSTS700016)', async () => {
    const { credentials: c } = stackInfo();
    const err = await failure(
      new ClientCertificateCredential(c.tenantId, crypto.randomUUID(), { certificate: pems.combinedPem }, options()),
    );
    expect(err.message).toMatch(/unauthorized_client|AADSTS700016/);
  });
});

describe('ClientAssertionCredential with a federated identity credential', () => {
  let host: OidcIssuerHost;
  let issuer: LocalOidcIssuer;
  let app: App;
  const subject = 'system:serviceaccount:payments:api';

  beforeAll(async () => {
    host = await startOidcIssuerHost();
    issuer = await host.issuer(uniqueName('k8s'));
    app = await newApp(uniqueName('federated-app'));
    const created = await manage('POST', `/applications/${app.clientId}/federatedCredentials`, {
      name: 'payments-api',
      issuer: issuer.url,
      subject,
      description: 'the payments service account',
    });
    expect(created.status, created.text).toBe(201);
  });

  afterAll(async () => {
    await host?.close();
  });

  const credentialFor = (getAssertion: () => Promise<string>, clientId = app.clientId) =>
    new ClientAssertionCredential(stackInfo().credentials.tenantId, clientId, getAssertion, options());

  it("exchanges the issuer's token for a vault token that works with SecretClient", async () => {
    const { credentials: c } = stackInfo();
    const credential = credentialFor(() => issuer.sign({ sub: subject, aud: AUDIENCE }));
    const secrets = new SecretClient(c.vaultUrl, credential);
    const name = uniqueName('federated');
    await secrets.setSecret(name, 'no long-lived secret involved');
    expect((await secrets.getSecret(name)).value).toBe('no long-lived secret involved');
    expect(issuer.fetches.discovery).toBeGreaterThanOrEqual(1);
  });

  it('keeps working across a key rotation of the issuer', async () => {
    // The vault refetches an issuer's keys for an unknown kid at most once per interval.
    await new Promise((resolve) => setTimeout(resolve, ISSUER_REFETCH_INTERVAL_MS + 500));
    await issuer.rotate();
    const token = await credentialFor(() => issuer.sign({ sub: subject, aud: AUDIENCE })).getToken(scope());
    expect(token.token.split('.')).toHaveLength(3);
  });

  it('refuses another subject (AADSTS700213)', async () => {
    const err = await failure(credentialFor(() => issuer.sign({ sub: 'system:serviceaccount:payments:other', aud: AUDIENCE })));
    expect(err.message).toMatch(/invalid_client/);
    expect(err.message).toMatch(/AADSTS700213/);
  });

  it('refuses another audience (AADSTS700212)', async () => {
    const err = await failure(credentialFor(() => issuer.sign({ sub: subject, aud: 'api://SomethingElse' })));
    expect(err.message).toMatch(/AADSTS700212/);
  });

  it('refuses an issuer the application does not trust (AADSTS700211)', async () => {
    const stranger = await host.issuer(uniqueName('stranger'));
    const err = await failure(credentialFor(() => stranger.sign({ sub: subject, aud: AUDIENCE })));
    expect(err.message).toMatch(/AADSTS700211/);
    expect(stranger.fetches).toEqual({ discovery: 0, jwks: 0 });
  });

  it('refuses an expired token (AADSTS700024)', async () => {
    const err = await failure(
      credentialFor(() => issuer.sign({ sub: subject, aud: AUDIENCE }, { expiresIn: -600, notBefore: -1200 })),
    );
    expect(err.message).toMatch(/AADSTS700024/);
  });

  it('refuses a token signed with a key the issuer does not publish, or a forged signature', async () => {
    const rogue = await LocalOidcIssuer.newKey();
    const unknown = await failure(credentialFor(() => issuer.sign({ sub: subject, aud: AUDIENCE }, { key: rogue })));
    expect(unknown.message).toMatch(/AADSTS7000272/);
    const sameKid = { ...rogue, kid: issuer.currentKey.kid };
    const forged = await failure(credentialFor(() => issuer.sign({ sub: subject, aud: AUDIENCE }, { key: sameKid })));
    expect(forged.message).toMatch(/AADSTS700027/);
  });
});
