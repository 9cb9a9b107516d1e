import { createExecutionContext, createScheduledController, waitOnExecutionContext } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { and, eq } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import worker from '../../src/index';
import type { Env } from '../../src/env';
import { database } from '../../src/storage/db';
import { secrets, secretVersions } from '../../src/storage/schema';
import { findVault } from '../../src/vault/vaults';
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
