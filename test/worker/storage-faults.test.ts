/**
 * What the vault answers when D1 fails: 503 ServiceUnavailable with Retry-After (the caller may
 * retry; Azure SDKs do), never a 500, and nothing is written. Failures are injected at the storage
 * boundary by the development-only hook in src/storage/db.ts that the soak run uses; it must do
 * nothing unless ALLOW_FAULT_INJECTION is set too.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { API, call, json, setupVault } from './helpers';
import { count } from './identity-helpers';
import { storageUnavailable } from '../../src/storage/errors';
import { INJECTED_D1_FAULT } from '../../src/storage/db';

const FAILING = { D1_FAULT_RATE: '1', ALLOW_FAULT_INJECTION: 'true' };

let token: string;
let origin: string;

beforeAll(async () => {
  ({ token, origin } = await setupVault());
  expect((await call('PUT', `${origin}/secrets/kept?${API}`, { token, body: { value: 'v1' } })).status).toBe(200);
});

describe('D1 unavailable', () => {
  it('a read is answered 503 ServiceUnavailable with Retry-After, Azure-shaped', async () => {
    const res = await call('GET', `${origin}/secrets/kept?${API}`, { token, env: FAILING });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    const body = await json(res);
    expect(body.error.code).toBe('ServiceUnavailable');
    expect(body.error.message).not.toMatch(/D1_ERROR|injected|select/i);
  });

  it('a write is answered 503 and writes nothing', async () => {
    const before = await count('secret_versions');
    const res = await call('PUT', `${origin}/secrets/kept?${API}`, { token, body: { value: 'v2' }, env: FAILING });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect(await count('secret_versions')).toBe(before);
    expect((await json(await call('GET', `${origin}/secrets/kept?${API}`, { token }))).value).toBe('v1');
  });

  it('the rate is ignored without the development flag', async () => {
    const res = await call('GET', `${origin}/secrets/kept?${API}`, { token, env: { D1_FAULT_RATE: '1' } });
    expect(res.status).toBe(200);
  });

  it('only transient D1 errors count as unavailable; constraint and SQL errors stay 500s', () => {
    expect(storageUnavailable(new Error(INJECTED_D1_FAULT))).toBe(true);
    expect(storageUnavailable(new Error('Failed query', { cause: new Error('D1_ERROR: Network connection lost.') }))).toBe(true);
    expect(storageUnavailable(new Error('D1 DB is overloaded. Too many requests queued.'))).toBe(true);
    expect(storageUnavailable(new Error('D1_ERROR: UNIQUE constraint failed: secrets.name: SQLITE_CONSTRAINT'))).toBe(false);
    expect(storageUnavailable(new Error('D1_ERROR: no such table: nope: SQLITE_ERROR'))).toBe(false);
    expect(storageUnavailable(new Error('something else'))).toBe(false);
  });
});
