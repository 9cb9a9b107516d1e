/**
 * The Worker side of mutual TLS to the bridge: with an mTLS certificate binding (BRIDGE_MTLS) the
 * bridge client sends every call through the binding's fetch, which presents the certificate;
 * without one it uses the global fetch. (The bridge side: hsm-bridge/test/mtls.test.ts.)
 */
import { env } from 'cloudflare:workers';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { services } from '../../src/crypto/services';

afterEach(() => {
  vi.restoreAllMocks();
});

describe('services() and the BRIDGE_MTLS binding', () => {
  it('calls the bridge through the binding when there is one', async () => {
    const seen: string[] = [];
    const BRIDGE_MTLS = {
      fetch: (input: RequestInfo | URL, init?: RequestInit) => {
        seen.push(`${init?.method ?? 'GET'} ${new URL(String(input)).pathname}`);
        return fetch(input, init);
      },
    } as unknown as Fetcher;
    const globalFetch = vi.spyOn(globalThis, 'fetch');
    const { bridge } = services({ ...env, BRIDGE_MTLS });
    expect((await bridge.health()).status).toBe('ok');
    const dataKey = crypto.getRandomValues(new Uint8Array(32));
    const { wrapped } = await bridge.wrap(dataKey, 'vault/mtls');
    expect(await bridge.unwrap(wrapped, 'vault/mtls')).toEqual(dataKey);
    expect(seen).toEqual(['GET /healthz', 'POST /v1/wrap', 'POST /v1/unwrap']);
    // Only the binding's own forwarding used the global fetch: one call each, nothing around it.
    expect(globalFetch).toHaveBeenCalledTimes(3);
  });

  it('uses the global fetch without the binding', async () => {
    const globalFetch = vi.spyOn(globalThis, 'fetch');
    const { bridge } = services({ ...env, BRIDGE_MTLS: undefined });
    expect((await bridge.health()).status).toBe('ok');
    expect(globalFetch).toHaveBeenCalledTimes(1);
  });
});
