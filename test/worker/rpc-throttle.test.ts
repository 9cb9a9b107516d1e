/**
 * Service-binding RPC is held to the HTTP API's request limits (src/core/request-limits.ts): per
 * vault and per caller, on the same counters, so a caller cannot get past a limit by switching
 * transport. A refusal is a typed 429 Throttled result with the wait in it, the call runs nothing,
 * and it is still audited. VaultRpc is driven as a binding would, with `props` naming the caller.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { Env } from '../../src/core/env';
import type { RpcResult, RpcSecret } from '../../src/rpc/wire';
import { chainRows, vaultChainOf } from './audit-helpers';
import { API, admin, call, env, newVault, tokenFor, vaultOrigin, viaBinding } from './helpers';

const AZURE_MESSAGE = 'Request was not processed because too many requests were received. Reason: ';

type Creds = { tenantId: string; clientId: string; clientSecret: string };

/** One getSecret through VaultRpc as `creds`' application, with the limits in `limits`. */
async function rpcGet(creds: Creds, vault: string, name: string, limits: Partial<Env>): Promise<RpcResult<RpcSecret>> {
  return viaBinding(vault, creds.clientId, (rpc) => rpc.getSecret(name), { ...env, ...limits } as Env);
}

function expectThrottled(result: RpcResult<unknown>, reason: string): void {
  expect(result.ok).toBe(false);
  if (result.ok) return;
  expect(result.error).toEqual({
    status: 429,
    code: 'Throttled',
    message: `${AZURE_MESSAGE}${reason}`,
    retryAfterSeconds: expect.any(Number) as number,
  });
  expect(result.error.retryAfterSeconds).toBeGreaterThanOrEqual(1);
}

describe('RPC request limits', () => {
  let creds: Creds;
  let token: string;
  beforeAll(async () => {
    creds = await admin();
    token = await tokenFor(creds);
  });

  async function vaultWithSecret(t = token): Promise<string> {
    const vault = await newVault(t);
    const put = await call('PUT', `${vaultOrigin(vault)}/secrets/s?${API}`, { token: t, body: { value: 'v' } });
    expect(put.status).toBe(200);
    return vault;
  }

  it('refuse a vault past its limit with a typed 429, runs nothing, and other vaults go on', async () => {
    const [busy, quiet] = [await vaultWithSecret(), await vaultWithSecret()];
    const limits = { THROTTLE_VAULT_REQUESTS: '3', THROTTLE_CALLER_REQUESTS: '0' };
    for (let i = 0; i < 3; i++) expect(await rpcGet(creds, busy, 's', limits)).toMatchObject({ ok: true, value: { value: 'v' } });
    const refused = await rpcGet(creds, busy, 's', limits);
    expectThrottled(refused, 'VaultRequestTypeLimitReached');
    expect(JSON.stringify(refused)).not.toContain('"v"'); // no value rides along with a refusal
    // The same counters as HTTP: the vault's budget is spent for both transports.
    const http = await call('GET', `${vaultOrigin(busy)}/secrets/s?${API}`, { token, env: limits });
    expect(http.status).toBe(429);
    expect(await rpcGet(creds, quiet, 's', limits)).toMatchObject({ ok: true });

    // Refused calls are audited like answered ones, as 429 Throttled over the binding.
    const chain = await vaultChainOf(busy);
    const deadline = Date.now() + 8000;
    let throttled: Awaited<ReturnType<typeof chainRows>> = [];
    while (throttled.length === 0 && Date.now() < deadline) {
      throttled = (await chainRows(chain)).filter((r) => r.status === 429 && r.canonical.includes('/rpc/getSecret'));
      if (throttled.length === 0) await new Promise((r) => setTimeout(r, 100));
    }
    expect(throttled).toHaveLength(1);
    expect(throttled[0]).toMatchObject({ operation: 'SecretGet', error_code: 'Throttled', caller_appid: creds.clientId });
  });

  it('limit a caller across vaults and transports, and other callers go on', async () => {
    const mine = await admin();
    const myToken = await tokenFor(mine);
    const [a, b] = [await vaultWithSecret(myToken), await vaultWithSecret(myToken)];
    const limits = { THROTTLE_CALLER_REQUESTS: '2', THROTTLE_VAULT_REQUESTS: '0' };
    expect(await rpcGet(mine, a, 's', limits)).toMatchObject({ ok: true });
    expect((await call('GET', `${vaultOrigin(b)}/secrets/s?${API}`, { token: myToken, env: limits })).status).toBe(200);
    expectThrottled(await rpcGet(mine, b, 's', limits), 'CallerRequestLimitReached');
    // Another caller, same vault: answered as usual (whatever its authorization says), not throttled.
    const other = await rpcGet(creds, a, 's', limits);
    expect(other.ok ? 200 : other.error.status).not.toBe(429);
  });

  it('"0" turns the limits off for RPC too', async () => {
    const vault = await vaultWithSecret();
    const off = { THROTTLE_VAULT_REQUESTS: '0', THROTTLE_CALLER_REQUESTS: '0' };
    for (let i = 0; i < 5; i++) expect(await rpcGet(creds, vault, 's', off)).toMatchObject({ ok: true });
  });
});
