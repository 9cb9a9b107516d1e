/** The health endpoint: ready, and not ready with the bridge down. */
import { describe, expect, it } from 'vitest';
import { APEX, call, json } from './helpers';

describe('health', () => {
  it('is 200 with every check ok when D1 and the bridge are up', async () => {
    const res = await call('GET', `${APEX}/healthz`);
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.status).toBe('ok');
    expect(body.checks).toEqual({ worker: 'ok', d1: 'ok', bridge: 'ok' });
    expect(res.headers.get('retry-after')).toBeNull();
  });

  it('needs no token and answers with the trailing slash too', async () => {
    expect((await call('GET', `${APEX}/healthz/`)).status).toBe(200);
  });

  it('is 503 with a reason naming the bridge and Retry-After when the bridge is down', async () => {
    const res = await call('GET', `${APEX}/healthz`, { env: { BRIDGE_URL: 'http://127.0.0.1:9' } });
    expect(res.status).toBe(503);
    const retryAfter = res.headers.get('retry-after');
    expect(retryAfter).not.toBeNull();
    expect(Number(retryAfter)).toBeGreaterThan(0);
    const body = await json(res);
    expect(body.status).toBe('unavailable');
    expect(body.reason).toMatch(/bridge/i);
    expect(body.checks).toEqual({ worker: 'ok', d1: 'ok', bridge: 'unavailable' });
  });

  it('is 503 with a reason naming D1 when D1 is unreachable', async () => {
    const fail = () => Promise.reject(new Error('D1_ERROR: network connection lost'));
    const statement = { bind: () => statement, first: fail, all: fail, run: fail, raw: fail };
    const brokenDb = { prepare: () => statement, batch: fail, exec: fail, dump: fail } as unknown as D1Database;
    const res = await call('GET', `${APEX}/healthz`, { env: { DB: brokenDb } });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).not.toBeNull();
    const body = await json(res);
    expect(body.status).toBe('unavailable');
    expect(body.reason).toMatch(/D1/);
    expect(body.checks).toMatchObject({ worker: 'ok', d1: 'unavailable' });
  });

  it('does not leak the bridge secret or URL credentials in its answer', async () => {
    const res = await call('GET', `${APEX}/healthz`, { env: { BRIDGE_URL: 'http://user:pa55word@127.0.0.1:9' } });
    expect(res.status).toBe(503);
    const text = await res.text();
    expect(text).not.toContain('pa55word');
  });

  it('is not served on vault hosts without a token', async () => {
    const res = await call('GET', 'https://somevault.vault.localhost/healthz');
    expect(res.status).not.toBe(200);
    expect(await json(res)).not.toHaveProperty('checks');
  });
});
