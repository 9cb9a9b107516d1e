/**
 * The bridge client's one resend when a pooled keep-alive connection turns out to be closed
 * ("Network connection lost" before any answer): found by the fuzz suite (seed 20261203, 1500
 * runs) as a spurious 503 after the bridge had been idle for a few seconds. The lost connection is
 * injected once in front of the real bridge; everything after it is real.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { services } from '../../src/crypto/services';
import { env } from './helpers';

afterEach(() => vi.restoreAllMocks());

describe('bridge client: a connection lost before any answer', () => {
  it('is sent again on a new connection, once', async () => {
    const spy = vi.spyOn(globalThis, 'fetch').mockRejectedValueOnce(new Error('Network connection lost.'));
    const bytes = await services(env).bridge.random(16);
    expect(bytes.length).toBe(16);
    expect(spy).toHaveBeenCalledTimes(2);
  });

  it('the health check too', async () => {
    const spy = vi.spyOn(globalThis, 'fetch').mockRejectedValueOnce(new Error('Network connection lost.'));
    expect((await services(env).bridge.health()).status).toBe('ok');
    expect(spy).toHaveBeenCalledTimes(2);
  });

  it('is not resent twice, nor after a timeout: the bridge is then reported unavailable (503)', async () => {
    const lost = vi.spyOn(globalThis, 'fetch').mockRejectedValue(new Error('Network connection lost.'));
    await expect(services(env).bridge.random(16)).rejects.toMatchObject({ status: 503, code: 'ServiceUnavailable' });
    expect(lost).toHaveBeenCalledTimes(2);
    lost.mockReset();
    const timeout = Object.assign(new Error('The operation was aborted due to timeout'), { name: 'TimeoutError' });
    const timedOut = vi.spyOn(globalThis, 'fetch').mockRejectedValue(timeout);
    await expect(services(env).bridge.random(16)).rejects.toMatchObject({ status: 503 });
    expect(timedOut).toHaveBeenCalledTimes(1);
  });

  it('key creation is never sent twice: its first attempt may have made the key', async () => {
    const lost = vi.spyOn(globalThis, 'fetch').mockRejectedValue(new Error('Network connection lost.'));
    const id = crypto.randomUUID().replace(/-/g, '');
    await expect(services(env).bridge.generateKey(id, { kty: 'EC', crv: 'P-256' })).rejects.toMatchObject({ status: 503 });
    expect(lost).toHaveBeenCalledTimes(1);
  });
});
