/**
 * The per-isolate cache of verified bearer tokens (src/http/authenticate.ts) saves the ES256
 * verification of a token the isolate has already checked, and nothing else: the exact token text
 * is the key (an altered token is verified, and refused), the issuer it was checked for is part of
 * it (a token is not accepted by another tenant's or host's check), and a deleted application's
 * cached token is refused as before.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { API, APEX, admin, call, json, newVault, tokenFor, vaultOrigin } from './helpers';

describe('verified-token cache', () => {
  let adminToken: string;
  let tenantId: string;
  beforeAll(async () => {
    const creds = await admin();
    tenantId = creds.tenantId;
    adminToken = await tokenFor(creds);
  });

  it('accepts a token again, and refuses an altered one even after the original was cached', async () => {
    const vault = await newVault(adminToken);
    const list = (token: string) => call('GET', `${vaultOrigin(vault)}/secrets?${API}`, { token });
    expect((await list(adminToken)).status).toBe(200);
    expect((await list(adminToken)).status).toBe(200); // served by the cache
    const [header, payload, signature] = adminToken.split('.') as [string, string, string];
    const flipped = signature.slice(0, 10) + (signature[10] === 'A' ? 'B' : 'A') + signature.slice(11);
    const altered = await list(`${header}.${payload}.${flipped}`);
    expect(altered.status).toBe(401);
    expect((await json(altered)).error.message).toMatch(/^AKV10032: The access token signature is invalid/);
    // A payload from another token under this token's signature: refused too.
    const otherPayload = (await tokenFor(await admin())).split('.')[1]!;
    expect((await list(`${header}.${otherPayload}.${signature}`)).status).toBe(401);
  });

  it('refuses a cached token once its application is deleted', async () => {
    const created = await json<{ clientId: string; clientSecret: string }>(
      await call('POST', `${APEX}/management/applications`, {
        token: adminToken,
        body: { displayName: 'cached token app', isAdmin: true },
      }),
    );
    const token = await tokenFor({ tenantId, clientId: created.clientId, clientSecret: created.clientSecret });
    expect((await call('GET', `${APEX}/management/vaults`, { token })).status).toBe(200);
    expect((await call('DELETE', `${APEX}/management/applications/${created.clientId}`, { token: adminToken })).status).toBe(204);
    const refused = await call('GET', `${APEX}/management/vaults`, { token });
    expect(refused.status).toBe(401);
    expect((await json(refused)).error.message).toContain('no longer exists');
  });
});
