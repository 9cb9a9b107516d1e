/** Routing by host and the 401 challenge every Azure SDK expects. */
import { createExecutionContext, waitOnExecutionContext } from 'cloudflare:test';
import { beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/audit/event';
import type { Env } from '../../src/core/env';
import { classifyHost } from '../../src/http/hosts';
import worker from '../../src/index';
import { API, APEX, admin, call, env, json, newVault, tokenFor, vaultOrigin } from './helpers';
import { batchOf, consume } from './audit-helpers';
import { challengeFor, expectChallenge } from './identity-helpers';

let tenantId: string;
let creds: { tenantId: string; clientId: string; clientSecret: string };
let token: string;
let vault: string;

beforeAll(async () => {
  creds = await admin();
  tenantId = creds.tenantId;
  token = await tokenFor(creds);
  vault = await newVault(token);
});

describe('challenge on vault hosts', () => {
  it('answers a request without Authorization with 401 and exactly one challenge header', async () => {
    const res = await call('GET', `${vaultOrigin(vault)}/secrets/x/?${API}`);
    await expectChallenge(res, tenantId);
    expect(res.headers.get('www-authenticate')).toBe(
      `Bearer authorization="https://vault.localhost/${tenantId}", resource="https://vault.localhost"`,
    );
  });

  it('challenges the SDK first request: no body, JSON content type', async () => {
    const res = await call('PUT', `${vaultOrigin(vault)}/secrets/x?${API}`, { headers: { 'content-type': 'application/json' } });
    await expectChallenge(res, tenantId);
  });

  it('challenges before checking the api-version', async () => {
    await expectChallenge(await call('GET', `${vaultOrigin(vault)}/secrets/x`), tenantId);
    await expectChallenge(await call('GET', `${vaultOrigin(vault)}/secrets/x?api-version=1999-01-01`), tenantId);
  });

  it('challenges before resolving the vault name', async () => {
    const res = await call('GET', `${vaultOrigin('no-such-vault-here')}/secrets?${API}`);
    await expectChallenge(res, tenantId);
  });

  it('challenges before reading a malformed body', async () => {
    const res = await call('PUT', `${vaultOrigin(vault)}/secrets/x?${API}`, { body: '{not json' });
    await expectChallenge(res, tenantId);
  });

  it('challenges on paths that do not exist and on invalid object names', async () => {
    await expectChallenge(await call('GET', `${vaultOrigin(vault)}/no/such/route?${API}`), tenantId);
    await expectChallenge(await call('GET', `${vaultOrigin(vault)}/secrets/bad_name!?${API}`), tenantId);
  });

  it('challenges an Authorization header that is not a Bearer token', async () => {
    await expectChallenge(
      await call('GET', `${vaultOrigin(vault)}/secrets?${API}`, { headers: { authorization: 'Basic Zm9vOmJhcg==' } }),
      tenantId,
    );
    await expectChallenge(
      await call('GET', `${vaultOrigin(vault)}/secrets?${API}`, { headers: { authorization: 'Bearer' } }),
      tenantId,
    );
  });

  it('keeps the port of the request in the resource', async () => {
    const res = await call('GET', `https://dev.vault.localhost:8443/secrets/x/?${API}`);
    await expectChallenge(res, tenantId, 'https://vault.localhost:8443');
    expect(res.headers.get('www-authenticate')).toBe(
      `Bearer authorization="https://vault.localhost:8443/${tenantId}", resource="https://vault.localhost:8443"`,
    );
  });

  it('accepts a token issued on a port only on vault hosts with that port', async () => {
    const res = await call('POST', `https://vault.localhost:8443/${tenantId}/oauth2/v2.0/token`, {
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: creds.clientId,
        client_secret: creds.clientSecret,
        scope: 'https://vault.localhost:8443/.default',
      }).toString(),
    });
    expect(res.status).toBe(200);
    const portToken = (await json(res)).access_token as string;
    expect((await call('GET', `https://${vault}.vault.localhost:8443/secrets?${API}`, { token: portToken })).status).toBe(200);
    await expectChallenge(await call('GET', `${vaultOrigin(vault)}/secrets?${API}`, { token: portToken }), tenantId);
    await expectChallenge(
      await call('GET', `https://${vault}.vault.localhost:9999/secrets?${API}`, { token: portToken }),
      tenantId,
      'https://vault.localhost:9999',
    );
    // The id a vault returns carries the port the client used.
    const set = await call('PUT', `https://${vault}.vault.localhost:8443/secrets/ported?${API}`, {
      token: portToken,
      body: { value: 'v' },
    });
    expect((await json(set)).id).toMatch(new RegExp(`^https://${vault}\\.vault\\.localhost:8443/secrets/ported/[0-9a-f]{32}$`));
  });

  it('treats the vault label case-insensitively', async () => {
    const res = await call('GET', `https://${vault.toUpperCase()}.VAULT.LOCALHOST/secrets?${API}`, { token });
    expect(res.status).toBe(200);
  });

  it('serves the vault once authenticated (the challenge is not answered to valid callers)', async () => {
    const res = await call('GET', `${vaultOrigin(vault)}/secrets?${API}`, { token });
    expect(res.status).toBe(200);
    expect(res.headers.get('www-authenticate')).toBeNull();
  });
});

describe('routing by host', () => {
  it('answers an unknown host with an Azure-shaped 404', async () => {
    const res = await call('GET', 'https://example.com/');
    expect(res.status).toBe(404);
    const body = await json(res);
    expect(body.error.code).toBe('NotFound');
    expect(typeof body.error.message).toBe('string');
    expect(res.headers.get('www-authenticate')).toBeNull();
  });

  it('answers a Host with an invalid port with an Azure-shaped 400, audited', async () => {
    // workerd builds request.url from the Host header, so `Host: dev.vault.localhost:99999` arrives
    // as a URL that does not parse (a Request cannot be made with one here, hence the plain object).
    for (const url of [`https://dev.vault.localhost:99999/secrets?${API}`, `https://dev.vault.localhost:abc/secrets?${API}`]) {
      const events: AuditEvent[] = [];
      const queue = { send: async (body: AuditEvent) => void events.push(structuredClone(body)) } as unknown as Queue<AuditEvent>;
      const request = { url, method: 'GET', headers: new Headers({ 'user-agent': 'host-test' }) } as unknown as Request;
      const ctx = createExecutionContext();
      const res = await (worker.fetch as ExportedHandlerFetchHandler<Env>)(
        request as never,
        { ...env, AUDIT_QUEUE: queue } as Env,
        ctx,
      );
      await waitOnExecutionContext(ctx);
      expect(res.status, url).toBe(400);
      expect((await json(res)).error.code).toBe('BadParameter');
      expect(events, url).toHaveLength(1);
      expect(events[0]).toMatchObject({
        operation: 'InvalidHost',
        status: 400,
        errorCode: 'BadParameter',
        vault: null,
        requestUri: '',
        clientInfo: 'host-test',
      });
      const stored = await consume(batchOf(events));
      expect(stored.ackedIds.size).toBe(1);
    }
  });

  it('does not serve hosts that merely contain the zone', async () => {
    for (const url of [
      'https://vault.localhost.example.com/',
      'https://evilvault.localhost/',
      'https://a.b.vault.localhost/secrets?' + API,
    ]) {
      const res = await call('GET', url, { token });
      expect(res.status, url).toBe(404);
      expect((await json(res)).error.code, url).toBe('NotFound');
    }
  });

  it('serves health, token service and management on the apex only', async () => {
    expect((await call('GET', `${APEX}/healthz`)).status).toBe(200);
    // On a vault host the same path is a vault request: it needs a token.
    await expectChallenge(await call('GET', `${vaultOrigin(vault)}/healthz`), tenantId);
    await expectChallenge(await call('GET', `${vaultOrigin(vault)}/${tenantId}/v2.0/.well-known/openid-configuration`), tenantId);
  });

  it('answers unknown apex paths with an Azure-shaped 404', async () => {
    const res = await call('GET', `${APEX}/nothing/here`);
    expect(res.status).toBe(404);
    expect((await json(res)).error.code).toBe('NotFound');
  });

  it('classifies hosts, keeping the port', () => {
    const zone = 'vault.localhost';
    expect(classifyHost('vault.localhost', zone)).toEqual({ kind: 'apex', apexOrigin: 'https://vault.localhost' });
    expect(classifyHost('vault.localhost:8443', zone)).toEqual({ kind: 'apex', apexOrigin: 'https://vault.localhost:8443' });
    expect(classifyHost('Dev.Vault.Localhost:8443', zone)).toEqual({
      kind: 'vault',
      vaultName: 'dev',
      origin: 'https://dev.vault.localhost:8443',
      apexOrigin: 'https://vault.localhost:8443',
    });
    expect(classifyHost('dev.vault.localhost.', zone)).toMatchObject({ kind: 'vault', vaultName: 'dev' });
    expect(classifyHost('example.com', zone)).toEqual({ kind: 'unknown' });
    expect(classifyHost('a.b.vault.localhost', zone)).toEqual({ kind: 'unknown' });
    expect(classifyHost('xvault.localhost', zone)).toEqual({ kind: 'unknown' });
    expect(classifyHost(undefined, zone)).toEqual({ kind: 'unknown' });
    expect(classifyHost('dev.vault.localhost:notaport', zone)).toEqual({ kind: 'unknown' });
  });

  it('the challenge resource is a suffix of every vault host (what the JS SDK checks)', async () => {
    const res = await call('GET', `https://dev.vault.localhost:8443/secrets?${API}`);
    const header = res.headers.get('www-authenticate')!;
    expect(header).toBe(challengeFor(tenantId, 'https://vault.localhost:8443'));
    const resource = /resource="([^"]+)"/.exec(header)![1]!;
    expect('dev.vault.localhost'.endsWith('.' + new URL(resource).hostname)).toBe(true);
  });
});
