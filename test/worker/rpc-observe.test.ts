/**
 * What an RPC call leaves behind besides its answer: the same JSON log line and Analytics Engine
 * point as an HTTP request (src/audit/observe.ts), with no secret in them, and one audit event.
 *
 * METRICS is a recording dataset (miniflare drops every writeDataPoint and cannot read them back)
 * and AUDIT_QUEUE the real queue with its sends counted; D1, the bridge and the consumer are real.
 */
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Env } from '../../src/core/env';
import type { RpcResult, RpcSecret } from '../../src/rpc/wire';
import { API, admin, call, env, newVault, tokenFor, vaultOrigin, viaBinding } from './helpers';

type Point = { indexes?: string[]; blobs?: string[]; doubles?: number[] };
type Creds = { tenantId: string; clientId: string; clientSecret: string };

let lines: string[] = [];
beforeEach(() => {
  lines = [];
  for (const level of ['log', 'info', 'warn', 'error', 'debug'] as const) {
    vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
      lines.push(args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' '));
    });
  }
});
afterEach(() => vi.restoreAllMocks());

const requestLines = () =>
  lines.flatMap((l) => {
    try {
      const v = JSON.parse(l) as Record<string, unknown>;
      return v?.type === 'request' ? [v] : [];
    } catch {
      return [];
    }
  });

/** One getSecret through VaultRpc as a binding with `clientId` would call it, and what it sent. */
async function rpcGet(vault: string, clientId: string, name: string) {
  const points: Point[] = [];
  const sends: unknown[] = [];
  const queue = env.AUDIT_QUEUE as Queue<unknown>;
  const counted = {
    send: (body: unknown, options?: QueueSendOptions) => {
      sends.push(body);
      return queue.send(body, options);
    },
    sendBatch: (batch: Iterable<MessageSendRequest<unknown>>, options?: QueueSendBatchOptions) => queue.sendBatch(batch, options),
  };
  const rpcEnv = {
    ...env,
    METRICS: { writeDataPoint: (p: Point) => void points.push(p) },
    AUDIT_QUEUE: counted,
  } as unknown as Env;
  const result: RpcResult<RpcSecret> = await viaBinding(vault, clientId, (rpc) => rpc.getSecret(name), rpcEnv);
  return { result, points, sends };
}

describe('RPC calls are observed like HTTP requests', () => {
  let creds: Creds;
  let vault: string;
  let objectId: string;
  const value = `rpc-observed-${crypto.randomUUID()}`;
  beforeAll(async () => {
    creds = await admin();
    const token = await tokenFor(creds);
    objectId = JSON.parse(atob(token.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/'))).oid;
    vault = await newVault(token);
    expect((await call('PUT', `${vaultOrigin(vault)}/secrets/s?${API}`, { token, body: { value } })).status).toBe(200);
  });

  it('logs one request line and writes one point per call, the warm one a cache hit, with no secret in either', async () => {
    await rpcGet(vault, creds.clientId, 's'); // the isolate's copy
    lines = [];
    const { result, points } = await rpcGet(vault, creds.clientId, 's');
    expect(result).toMatchObject({ ok: true, value: { value } });
    const logged = requestLines();
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ operation: 'SecretGet', vault, status: 200, callerId: objectId, cache: 'hit' });
    expect(logged[0]!.correlationId).toMatch(/^[0-9a-f-]{36}$/);
    expect(points).toHaveLength(1);
    expect(points[0]!.blobs).toEqual(['request', 'SecretGet', vault, 'hit', '']);
    expect(points[0]!.doubles!.slice(0, 1)).toEqual([200]);
    expect(points[0]!.doubles!.slice(2)).toEqual([0, 0, 1, 0]); // no bridge call, one read-cache hit
    expect(lines.join('\n')).not.toContain(value);
    expect(lines.join('\n')).not.toContain(creds.clientSecret);
  });

  it('logs a refused call with its status and error code, and no caller it could not establish', async () => {
    const { result, points } = await rpcGet(vault, crypto.randomUUID(), 's');
    expect(result).toMatchObject({ ok: false, error: { status: 401, code: 'Unauthorized' } });
    const logged = requestLines();
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ operation: 'SecretGet', vault, status: 401, errorCode: 'Unauthorized', callerId: null });
    expect(points.map((p) => p.blobs![4])).toEqual(['Unauthorized']);
  });

  it('sends one audit event per call, naming the RPC method, beside its log line', async () => {
    const { result, sends } = await rpcGet(vault, creds.clientId, 's');
    expect(result.ok).toBe(true);
    expect(requestLines()).toHaveLength(1);
    expect(sends).toHaveLength(1);
    expect(sends[0]).toMatchObject({
      operation: 'SecretGet',
      vault,
      status: 200,
      requestUri: expect.stringContaining('/rpc/getSecret'),
    });
  });
});
