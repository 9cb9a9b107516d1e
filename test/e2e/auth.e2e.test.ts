/**
 * Identity against the running stack: the challenge the SDKs rely on, the token service as
 * @azure/identity uses it, and refusal of bad credentials and of tokens meant for someone else.
 */
import { describe, expect, it } from 'vitest';
import { isRestError } from '@azure/keyvault-secrets';
import { credential, request, secretClient, stackInfo, tokenFor, uniqueName } from '../support/e2e.js';

describe('authentication', () => {
  it('answers an anonymous request with exactly one Bearer challenge naming the authority and resource', async () => {
    const { credentials: c } = stackInfo();
    const res = await request(`${c.vaultUrl}/secrets/anything?api-version=7.6`, {
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(401);
    const challenge = res.headers['www-authenticate'];
    expect(typeof challenge).toBe('string'); // a single header, not a list
    expect(challenge).toBe(`Bearer authorization="${c.authorityHost}/${c.tenantId}", resource="${c.resource}"`);
  });

  it('ClientSecretCredential gets a token for the vault resource', async () => {
    const { credentials: c } = stackInfo();
    const token = await credential().getToken(`${c.resource}/.default`);
    expect(token.token.split('.')).toHaveLength(3);
    expect(token.expiresOnTimestamp).toBeGreaterThan(Date.now());
    const claims = JSON.parse(Buffer.from(token.token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
    expect(claims.aud).toBe(c.resource);
    expect(claims.tid).toBe(c.tenantId);
    expect(claims.appid).toBe(c.clientId);
  });

  it('a wrong client secret makes the credential throw (invalid_client), before any data request', async () => {
    const { credentials: c } = stackInfo();
    const bad = credential({ clientSecret: `${c.clientSecret.slice(0, -4)}XXXX` });
    await expect(bad.getToken(`${c.resource}/.default`)).rejects.toThrow(/invalid_client/);
    const err = await secretClient(c.vaultUrl, bad)
      .getSecret('anything')
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    // The SDK surfaces the credential's failure (identity wraps MSAL's ServerError), not an HTTP error of the vault.
    expect(isRestError(err)).toBe(false);
    expect((err as Error).name).toMatch(/^Authentication(Required)?Error$/);
    expect((err as Error).message).toMatch(/invalid_client/);
  });

  it('an unknown client id makes the credential throw', async () => {
    const { credentials: c } = stackInfo();
    await expect(credential({ clientId: crypto.randomUUID() }).getToken(`${c.resource}/.default`)).rejects.toThrow();
  });

  it('the token service mints tokens only for its own resource', async () => {
    const { credentials: c } = stackInfo();
    const res = await tokenFor('https://management.example.com/.default');
    expect(res.status).toBe(400);
    expect(res.json<{ error: string }>().error).toBe('invalid_scope');
    expect(c.resource).toBe(stackInfo().apexUrl);
  });

  it('a validly signed token for another audience of the same deployment is refused with 401', async () => {
    const { credentials: c, zone, vaultPort } = stackInfo();
    // The deployment serves whatever origin the Host header names (that is how ports are kept), so
    // asking as `{zone}:{port+1}` yields a genuine token whose audience is that other origin.
    const otherOrigin = `https://${zone}:${vaultPort + 1}`;
    const issued = await tokenFor(`${otherOrigin}/.default`, { hostHeader: `${zone}:${vaultPort + 1}` });
    expect(issued.status, issued.text).toBe(200);
    const token = issued.json<{ access_token: string }>().access_token;
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as { aud: string; tid: string };
    expect(claims.aud).toBe(otherOrigin);
    expect(claims.tid).toBe(c.tenantId);

    const res = await request(`${c.vaultUrl}/secrets/${uniqueName('aud')}?api-version=7.6`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(401);
    // The same request with a token for this resource is authorized (404: no such secret).
    const good = (await credential().getToken(`${c.resource}/.default`)).token;
    const ok = await request(`${c.vaultUrl}/secrets/${uniqueName('aud')}?api-version=7.6`, {
      headers: { authorization: `Bearer ${good}` },
    });
    expect(ok.status).toBe(404);
  });

  it('a forged token (valid shape, wrong signature) is refused with 401', async () => {
    const { credentials: c } = stackInfo();
    const real = (await credential().getToken(`${c.resource}/.default`)).token;
    const [header, payload, signature] = real.split('.') as [string, string, string];
    const flipped = signature.slice(0, -2) + (signature.endsWith('AA') ? 'BB' : 'AA');
    const res = await request(`${c.vaultUrl}/secrets/anything?api-version=7.6`, {
      headers: { authorization: `Bearer ${header}.${payload}.${flipped}` },
    });
    expect(res.status).toBe(401);
  });
});
