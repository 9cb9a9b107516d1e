/**
 * The HSM bridge goes away and comes back while the Worker keeps running.
 *
 * Warm reads need no bridge (unwrapped data keys are cached in the isolate); anything that needs
 * a new data key (a new vault) answers 503 with Retry-After and leaves nothing half-created; a
 * restarted bridge heals the Worker without restarting it.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { adminToken, bridge, request, secretClient, stackInfo, uniqueName, vaultUrl } from '../support/e2e.js';

function createVault(name: string, token: string) {
  return request(`${stackInfo().apexUrl}/management/vaults/${name}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: '{}',
  });
}

describe('HSM bridge outage', () => {
  afterAll(async () => {
    await bridge.start(); // never leave the stack without its bridge, whatever failed
  });

  it('serves warm reads, refuses new data keys with 503 + Retry-After, and heals when the bridge returns', async () => {
    const client = secretClient();
    const name = uniqueName('warm');
    await client.setSecret(name, 'still readable');
    expect((await client.getSecret(name)).value).toBe('still readable'); // warms the data-key cache
    const token = await adminToken(); // taken before the outage: tokens are the token service's business

    await bridge.stop();

    expect((await client.getSecret(name)).value).toBe('still readable');

    const vault = uniqueName('outage');
    const refused = await createVault(vault, token);
    expect(refused.status, refused.text).toBe(503);
    const retryAfter = refused.headers['retry-after'];
    expect(retryAfter).toMatch(/^\d+$/);
    expect(Number(retryAfter)).toBeGreaterThan(0);
    expect(refused.json<{ error: { code: string; message: string } }>().error.code).toBeTruthy();
    // Nothing was created: management does not know it, and its hostname does not answer as a vault.
    const lookup = await request(`${stackInfo().apexUrl}/management/vaults/${vault}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(lookup.status, lookup.text).toBe(404);
    const missing = await secretClient(vaultUrl(vault))
      .getSecret('anything')
      .then(
        () => 200,
        (e: { statusCode?: number }) => e.statusCode,
      );
    expect(missing).toBe(404);

    await bridge.start();

    const created = await createVault(vault, token);
    expect(created.status, created.text).toBe(201); // 201, not 409: the refused attempt left nothing behind
    const fresh = secretClient(vaultUrl(vault));
    await fresh.setSecret('after-outage', 'healed');
    expect((await fresh.getSecret('after-outage')).value).toBe('healed');
  });
});
