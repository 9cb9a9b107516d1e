/**
 * The smallest edge app of the README's "Service bindings": it reads one secret from the vault on
 * each request through the typed client, and answers a refusal with its status and Azure code.
 */
import { VaultClient, VaultRpcError, type VaultBinding } from '../../../packages/vault-client/src/index';

interface Env {
  VAULT: VaultBinding;
  SECRET_NAME: string;
}

export default {
  async fetch(_request, env) {
    const vault = new VaultClient(env.VAULT);
    try {
      const secret = await vault.getSecret(env.SECRET_NAME);
      // An app would use the value; this one shows only that it has it, never the value itself.
      return Response.json({ name: secret.name, version: secret.version, length: secret.value.length });
    } catch (err) {
      if (err instanceof VaultRpcError)
        return Response.json({ error: { code: err.code, innerCode: err.innerCode ?? null } }, { status: err.status });
      throw err;
    }
  },
} satisfies ExportedHandler<Env>;
