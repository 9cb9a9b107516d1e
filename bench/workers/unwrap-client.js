// The unwrap probe's Worker side (bench/unwrap-probe.ts): the vault's own BridgeClient, bundled
// with esbuild, sending from workerd with its native fetch as the vault Worker does. One request
// makes `count` unwraps, `concurrency` in flight, so the probe times the client in workerd rather
// than its own HTTP hop into it. Bench only.
import { BridgeClient } from '../../src/crypto/bridge-client';

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const count = Number(url.searchParams.get('count'));
    const concurrency = Number(url.searchParams.get('concurrency'));
    const { wrapped, context } = await request.json();
    const client = new BridgeClient(env.BRIDGE_URL, env.BRIDGE_HMAC_SECRET);
    let started = 0;
    const caller = async () => {
      while (started < count) {
        started++;
        await client.unwrap(wrapped, context);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, caller));
    return new Response('ok');
  },
};
