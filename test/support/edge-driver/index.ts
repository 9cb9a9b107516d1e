/**
 * A test-only edge app for test/e2e/edge-rpc.e2e.test.ts: it drives the vault's VaultRpc
 * entrypoint through packages/vault-client, as a real edge app would, and reports over fetch what
 * the client returned or threw (bytes as base64), so the Node test can assert on typed errors.
 * POST /{binding} {method, args}: args and results carry bytes as {b64: "..."}.
 */
import { VaultClient, VaultRpcError, type VaultBinding } from '../../../packages/vault-client/src/index';

type Env = Record<string, VaultBinding>;

const toB64 = (b: Uint8Array) => btoa(String.fromCharCode(...b));
const fromB64 = (s: string) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));

function decode(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(decode);
  if (v && typeof v === 'object') {
    if ('b64' in v && typeof (v as { b64: unknown }).b64 === 'string') return fromB64((v as { b64: string }).b64);
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, decode(x)]));
  }
  return v;
}

function encode(v: unknown): unknown {
  if (v instanceof Uint8Array) return { b64: toB64(v) };
  if (v instanceof VaultRpcError)
    return { typedError: { status: v.status, code: v.code, innerCode: v.innerCode ?? null, message: v.message } };
  if (Array.isArray(v)) return v.map(encode);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, encode(x)]));
  return v;
}

export default {
  async fetch(request, env) {
    const binding = env[new URL(request.url).pathname.slice(1)];
    if (!binding) return new Response('no such binding', { status: 404 });
    const { method, args } = (await request.json()) as { method: string; args: unknown[] };
    const client = new VaultClient(binding) as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
    try {
      return Response.json({ value: encode(await client[method]!(...(decode(args) as unknown[]))) });
    } catch (err) {
      if (err instanceof VaultRpcError) return Response.json(encode(err));
      return Response.json({ untypedError: { name: (err as Error).name, message: (err as Error).message } });
    }
  },
} satisfies ExportedHandler<Env>;
