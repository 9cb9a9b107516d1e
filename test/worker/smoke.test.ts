import { describe, expect, it } from 'vitest';
import { API, call, json, setupVault } from './helpers';

describe('smoke', () => {
  it('sets and gets a secret', async () => {
    const { token, origin } = await setupVault();
    const set = await call('PUT', `${origin}/secrets/hello?${API}`, { token, body: { value: 'world' } });
    expect(set.status).toBe(200);
    const got = await call('GET', `${origin}/secrets/hello/?${API}`, { token });
    expect(got.status).toBe(200);
    expect((await json(got)).value).toBe('world');
  });
});
