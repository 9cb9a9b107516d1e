/** The scheduled jobs: purge past retention, in the right order, and nothing before its time. */
import { createExecutionContext, createScheduledController, waitOnExecutionContext } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { and, eq } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import worker from '../../src/index';
import type { Env } from '../../src/core/env';
import { database } from '../../src/storage/db';
import { keys, keyVersions, secrets, secretVersions } from '../../src/storage/schema';
import { BridgeClient } from '../../src/crypto/bridge-client';
import { findVault } from '../../src/storage/vaults';
import { API, call, setupVault } from './helpers';

const db = database(env.DB);

describe('scheduled purge', () => {
  it('purges deleted secrets past their retention, and only those', async () => {
    const { token, origin, vault } = await setupVault({ enablePurgeProtection: true });
    const vaultId = (await findVault(db, vault))!.id;
    for (const name of ['expired-one', 'still-retained', 'live-one']) {
      await call('PUT', `${origin}/secrets/${name}?${API}`, { token, body: { value: 'x' } });
    }
    await call('DELETE', `${origin}/secrets/expired-one?${API}`, { token });
    await call('DELETE', `${origin}/secrets/still-retained?${API}`, { token });
    // Retention of expired-one ended a second ago.
    await db
      .update(secrets)
      .set({ scheduledPurgeAt: Math.floor(Date.now() / 1000) - 1 })
      .where(and(eq(secrets.vaultId, vaultId), eq(secrets.name, 'expired-one')));

    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ cron: '*/5 * * * *' }), env as Env, ctx);
    await waitOnExecutionContext(ctx);

    expect((await call('GET', `${origin}/deletedsecrets/expired-one?${API}`, { token })).status).toBe(404);
    const versions = await db
      .select()
      .from(secretVersions)
      .where(and(eq(secretVersions.vaultId, vaultId), eq(secretVersions.name, 'expired-one')))
      .all();
    expect(versions).toHaveLength(0);
    expect((await call('GET', `${origin}/deletedsecrets/still-retained?${API}`, { token })).status).toBe(200);
    expect((await call('GET', `${origin}/secrets/live-one?${API}`, { token })).status).toBe(200);
  });
});

describe('scheduled purge of keys', () => {
  const runCron = async (overrides: Partial<Env> = {}) => {
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ cron: '*/5 * * * *' }), { ...env, ...overrides } as Env, ctx);
    await waitOnExecutionContext(ctx);
  };

  it('purges deleted keys past their retention with their token objects; waits while the bridge is down', async () => {
    const { token, origin, vault } = await setupVault({ enablePurgeProtection: true });
    const vaultId = (await findVault(db, vault))!.id;
    for (const name of ['old-hsm', 'kept']) {
      await call('POST', `${origin}/keys/${name}/create?${API}`, { token, body: { kty: 'EC-HSM' } });
      await call('DELETE', `${origin}/keys/${name}?${API}`, { token });
    }
    const [row] = await db
      .select()
      .from(keyVersions)
      .where(and(eq(keyVersions.vaultId, vaultId), eq(keyVersions.name, 'old-hsm')))
      .all();
    await db
      .update(keys)
      .set({ scheduledPurgeAt: Math.floor(Date.now() / 1000) - 1 })
      .where(and(eq(keys.vaultId, vaultId), eq(keys.name, 'old-hsm')));

    // Bridge down: the token object cannot be destroyed, so nothing is deleted yet.
    await runCron({ BRIDGE_URL: 'http://127.0.0.1:9' });
    expect((await call('GET', `${origin}/deletedkeys/old-hsm?${API}`, { token })).status).toBe(200);

    await runCron();
    expect((await call('GET', `${origin}/deletedkeys/old-hsm?${API}`, { token })).status).toBe(404);
    expect(
      await db
        .select()
        .from(keyVersions)
        .where(and(eq(keyVersions.vaultId, vaultId), eq(keyVersions.name, 'old-hsm')))
        .all(),
    ).toHaveLength(0);
    const bridge = new BridgeClient(env.BRIDGE_URL, env.BRIDGE_HMAC_SECRET);
    await expect(bridge.sign(row!.hsmHandle!, 'ES256', new Uint8Array(32))).rejects.toMatchObject({ code: 'DataIntegrityError' });
    expect((await call('GET', `${origin}/deletedkeys/kept?${API}`, { token })).status).toBe(200);
  });
});
