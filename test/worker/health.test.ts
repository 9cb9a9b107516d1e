/**
 * The health endpoint: anonymous callers learn up or down only; an administrator's token gets the
 * operator's report (D1, bridge, audit, cron, event dead letters); other tokens get nothing more.
 */
import { createExecutionContext, createScheduledController, waitOnExecutionContext } from 'cloudflare:test';
import { beforeAll, describe, expect, it } from 'vitest';
import worker from '../../src/index';
import type { Env } from '../../src/core/env';
import { createApplication } from '../../src/identity/applications';
import { observeJob } from '../../src/jobs/outcomes';
import { database } from '../../src/storage/db';
import { APEX, admin, call, env, json, tokenFor } from './helpers';

const BRIDGE_DOWN = { BRIDGE_URL: 'http://127.0.0.1:9' };

function brokenD1(): D1Database {
  const fail = () => Promise.reject(new Error('D1_ERROR: network connection lost'));
  const statement = { bind: () => statement, first: fail, all: fail, run: fail, raw: fail };
  return { prepare: () => statement, batch: fail, exec: fail, dump: fail } as unknown as D1Database;
}

describe('health, anonymous', () => {
  it('is 200 {status: ok} and nothing else when D1 and the bridge are up', async () => {
    const res = await call('GET', `${APEX}/healthz`);
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ status: 'ok' });
    expect(res.headers.get('retry-after')).toBeNull();
  });

  it('needs no token and answers with the trailing slash too', async () => {
    expect((await call('GET', `${APEX}/healthz/`)).status).toBe(200);
  });

  it('is 503 {status: unavailable} with Retry-After and no reason when the bridge is down', async () => {
    const res = await call('GET', `${APEX}/healthz`, { env: BRIDGE_DOWN });
    expect(res.status).toBe(503);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    // Which dependency failed, and why, is for operators only.
    expect(await json(res)).toEqual({ status: 'unavailable' });
  });

  it('is 503 {status: unavailable} when D1 is unreachable', async () => {
    const res = await call('GET', `${APEX}/healthz`, { env: { DB: brokenD1() } });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).not.toBeNull();
    expect(await json(res)).toEqual({ status: 'unavailable' });
  });

  it('leaks neither the bridge URL, its credentials nor the secrets', async () => {
    const res = await call('GET', `${APEX}/healthz`, { env: { BRIDGE_URL: 'http://user:pa55word@127.0.0.1:9' } });
    expect(res.status).toBe(503);
    const text = await res.text();
    for (const leak of ['pa55word', '127.0.0.1', 'bridge', 'D1', 'KEK', env.BRIDGE_HMAC_SECRET]) expect(text).not.toContain(leak);
  });

  it('is not served on vault hosts without a token', async () => {
    const res = await call('GET', 'https://somevault.vault.localhost/healthz');
    expect(res.status).not.toBe(200);
    expect(await json(res)).not.toHaveProperty('checks');
  });
});

describe('health, operator view', () => {
  let token: string;
  beforeAll(async () => {
    token = await tokenFor(await admin());
  });

  it('gives an administrator D1 and the bridge with their latency, the audit trail, cron runs and dead letters', async () => {
    // A cron run first, so its outcomes are there to report.
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ cron: '*/5 * * * *', scheduledTime: Date.now() }), env as Env, ctx);
    await waitOnExecutionContext(ctx);

    const res = await call('GET', `${APEX}/healthz`, { token });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.status).toBe('ok');
    expect(body.d1).toMatchObject({ status: 'ok' });
    expect(body.d1.latencyMs).toBeGreaterThanOrEqual(0);
    expect(body.bridge).toMatchObject({ status: 'ok', kek: true });
    expect(body.bridge.latencyMs).toBeGreaterThanOrEqual(0);
    expect(body.audit).toMatchObject({ deadLetters: { unappendable: expect.any(Number), malformed: expect.any(Number) } });
    expect(typeof body.audit.chainsAwaitingCheckpoint).toBe('number');
    expect(body.events).toEqual({ deadLetters: expect.any(Number), moreThanCounted: false });
    const jobs = (body.cron as { job: string; outcome: string; at: number; lastOkAt: number | null }[]).map((r) => r.job);
    expect(jobs).toEqual(
      expect.arrayContaining([
        'audit',
        'expiry-notices',
        'kek-rewrap',
        'key-rotation',
        'purge-certificates',
        'purge-keys',
        'purge-secrets',
        'signing-keys',
      ]),
    );
    for (const run of body.cron) {
      expect(['ok', 'deferred', 'failed']).toContain(run.outcome);
      expect(run.at).toBeGreaterThan(Date.now() - 60_000);
      if (run.outcome === 'ok') expect(run.lastOkAt).toBe(run.at);
    }
    expect(Array.isArray(body.warnings)).toBe(true);
    expect(JSON.stringify(body)).not.toContain(env.BRIDGE_HMAC_SECRET);
  });

  it('says what is wrong, with a reason and a warning, when the bridge is down', async () => {
    const res = await call('GET', `${APEX}/healthz`, { token, env: BRIDGE_DOWN });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).not.toBeNull();
    const body = await json(res);
    expect(body.status).toBe('unavailable');
    expect(body.d1.status).toBe('ok');
    expect(body.bridge).toMatchObject({ status: 'unavailable', kek: false, reason: expect.any(String) });
    expect(body.warnings.join(' ')).toMatch(/bridge/i);
  });

  it('reports a cron job that failed, with its error class and when it last succeeded', async () => {
    const job = `probe-${crypto.randomUUID().slice(0, 8)}`;
    await observeJob(
      env as Env,
      job,
      async () => 3,
      (n) => ({ counts: { done: n } }),
    );
    await observeJob(
      env as Env,
      job,
      () => Promise.reject(new TypeError('detail that must stay out')),
      () => ({ counts: {} }),
    );
    const body = await json(await call('GET', `${APEX}/healthz`, { token }));
    const run = (body.cron as { job: string; outcome: string; error?: string; at: number; lastOkAt: number | null }[]).find(
      (r) => r.job === job,
    )!;
    expect(run).toMatchObject({ outcome: 'failed', error: 'TypeError' });
    expect(run.lastOkAt).not.toBeNull();
    expect(run.lastOkAt!).toBeLessThanOrEqual(run.at);
    expect(body.warnings).toContain(`Cron job ${job} last ended failed (TypeError).`);
    expect(JSON.stringify(body)).not.toContain('detail that must stay out');
  });

  it('refuses a token of a non-administrator (403) and challenges a bad token (401), telling neither anything', async () => {
    const creds = await admin();
    const db = database(env.DB);
    const plain = await createApplication(db, creds.tenantId, { displayName: 'health reader', isAdmin: false });
    const userToken = await tokenFor({
      tenantId: creds.tenantId,
      clientId: plain.app.clientId,
      clientSecret: plain.clientSecret,
    });
    const forbidden = await call('GET', `${APEX}/healthz`, { token: userToken });
    expect(forbidden.status).toBe(403);
    const bad = await call('GET', `${APEX}/healthz`, { token: 'not-a-token' });
    expect(bad.status).toBe(401);
    expect(bad.headers.get('www-authenticate')).toMatch(/^Bearer /);
    for (const res of [forbidden, bad]) {
      const body = await json(res);
      for (const field of ['d1', 'bridge', 'audit', 'cron', 'events', 'warnings']) expect(body).not.toHaveProperty(field);
    }
  });

  it('is 503 for the administrator too when D1 is down, naming D1', async () => {
    // Authentication itself needs D1, so a broken D1 answers the token with 503 before any report.
    const res = await call('GET', `${APEX}/healthz`, { token, env: { DB: brokenD1() } });
    expect(res.status).toBe(503);
  });
});
