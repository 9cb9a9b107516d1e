// The floor of the RPC figure: an entrypoint whose getSecret answers at once with a result of the
// same shape and size as the vault's (so both pay the same serialization), bound by the driver
// exactly as the vault's VaultRpc is. Bench only.
import { WorkerEntrypoint } from 'cloudflare:workers';

export class Noop extends WorkerEntrypoint {
  getSecret(name) {
    return {
      ok: true,
      value: {
        id: `https://bench.vault.localhost/secrets/${name}/${'0'.repeat(32)}`,
        name,
        version: '0'.repeat(32),
        value: this.env.VALUE,
        contentType: null,
        tags: null,
        enabled: true,
        nbf: null,
        exp: null,
        created: 1_700_000_000,
        updated: 1_700_000_000,
      },
    };
  }
}

export default {
  fetch() {
    return new Response('noop');
  },
};
