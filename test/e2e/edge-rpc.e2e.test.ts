/**
 * Service-binding RPC and the read-cache contract, with Workers running together in workerd
 * (test/support/edge-workers.ts): the vault twice (vault-a, vault-b: two isolates over one D1
 * database), a test edge app and the example edge app bound to vault-a's VaultRpc entrypoint, the
 * e2e stack's real HSM bridge. README "Service bindings" and "Read caching" state what is checked.
 */
import { createHash, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as Client from '../../packages/vault-client/src/index';
import type * as Wire from '../../src/rpc/wire';
import { stackInfo } from '../support/e2e';
import { BOOTSTRAP_SECRET, startEdgeWorkers, ZONE, type EdgeWorkers } from '../support/edge-workers';

// The client package keeps its own copy of the wire types: they must stay assignable both ways.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const wireAgrees: [
  Same<Client.RpcResult<Client.Secret>, Wire.RpcResult<Wire.RpcSecret>>,
  Same<Client.KeyOperationResult, Wire.RpcKeyOperationResult>,
  Same<Client.KeyOperationInput, Wire.RpcKeyOperationInput>,
] = [true, true, true];
void wireAgrees;

const APEX = `https://${ZONE}`;
const vaultUrl = (vault: string) => `https://${vault}.${ZONE}`;
const API = 'api-version=7.6';
const ROLE = {
  secretsUser: '4633458b-17de-408a-b874-0445c86b69e6',
  cryptoUser: '12338af0-0e69-4776-bea7-57ae8d297424',
};
const STALE_BOUND_S = 3;

let w: EdgeWorkers;
let tenantId: string;
let adminToken: string;
const apps: Record<'reader' | 'norole', { clientId: string; objectId: string }> = {} as never;
const assignments: Record<string, string> = {};

type Worker = 'vault-a' | 'vault-b';

async function http(worker: Worker, method: string, url: string, body?: unknown, token = adminToken): Promise<Response> {
  return w.fetch(worker, url, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
}

/** The fields of the management answers these tests read. */
type Answer = Record<'tenantId' | 'clientId' | 'clientSecret' | 'objectId' | 'access_token', string>;

async function ok<T = Answer>(res: Promise<Response>, status = 200): Promise<T> {
  const r = await res;
  const text = await r.text();
  expect(r.status, text).toBe(status);
  return (text ? JSON.parse(text) : undefined) as T;
}

type Bytes = { b64: string };
interface SecretReply {
  id: string;
  name: string;
  version: string;
  value: string;
  enabled: boolean;
}
interface TypedError {
  status: number;
  code: string;
  innerCode: string | null;
  message: string;
}
/** What the test edge app reports: the client's result, or the VaultRpcError it threw. */
interface Reply<T> {
  value?: T;
  typedError?: TypedError;
  untypedError?: { name: string; message: string };
}

async function tokenOf(clientId: string, clientSecret: string): Promise<string> {
  const res = await w.fetch('vault-a', `${APEX}/${tenantId}/oauth2/v2.0/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: clientId,
      client_secret: clientSecret,
      scope: `${APEX}/.default`,
    }).toString(),
  });
  return (await ok(Promise.resolve(res))).access_token;
}

async function grant(worker: Worker, vault: string, principalId: string, role: string): Promise<string> {
  const id = randomUUID();
  await ok(
    http(worker, 'PUT', `${APEX}/management/vaults/${vault}/providers/Microsoft.Authorization/roleAssignments/${id}?scope=%2F`, {
      properties: { roleDefinitionId: `/providers/Microsoft.Authorization/roleDefinitions/${role}`, principalId },
    }),
    201,
  );
  return id;
}

const b64 = (b: Uint8Array) => ({ b64: Buffer.from(b).toString('base64') });
const bytesOf = (v: Bytes) => new Uint8Array(Buffer.from(v.b64, 'base64'));

/** One client call through the test edge app; `as` names the binding (its props name the app). */
async function rpc<T = SecretReply>(binding: string, method: string, ...args: unknown[]): Promise<Reply<T>> {
  const res = await w.fetch('edge-driver' as never, `https://edge.test/${binding}`, {
    method: 'POST',
    body: JSON.stringify({ method, args }),
  });
  expect(res.status).toBe(200);
  const body = (await res.json()) as Reply<T>;
  expect(body.untypedError, JSON.stringify(body.untypedError)).toBeUndefined();
  return body;
}

const stats = () => ok<{ d1Statements: number; bridgeCalls: number }>(http('vault-a', 'GET', `${APEX}/management/stats`));

/** Audit records of RPC calls (request URI under /rpc/) for one object, once the consumer has written `count`. */
interface AuditRow {
  operation: string;
  status: number;
  error_code: string | null;
  canonical: string;
}

async function rpcAudit(object: string, count: number, timeoutMs = 15_000): Promise<AuditRow[]> {
  const db = await w.d1();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { results } = await db
      .prepare(`SELECT operation, status, error_code, canonical FROM audit_records WHERE canonical LIKE ? AND canonical LIKE ?`)
      .bind('%/rpc/%', `%${object}%`)
      .all<AuditRow>();
    if (results.length >= count || Date.now() > deadline) return results;
    await new Promise((r) => setTimeout(r, 250));
  }
}

beforeAll(async () => {
  w = await startEdgeWorkers(stackInfo());
  const boot = await ok(
    w.fetch('vault-a', `${APEX}/management/bootstrap`, {
      method: 'POST',
      headers: { authorization: `Bootstrap ${BOOTSTRAP_SECRET}`, 'content-type': 'application/json' },
      body: '{}',
    }),
    201,
  );
  tenantId = boot.tenantId;
  adminToken = await tokenOf(boot.clientId, boot.clientSecret);
  await ok(http('vault-a', 'PUT', `${APEX}/management/vaults/edge`, { readCacheSeconds: 60 }), 201);
  await ok(http('vault-a', 'PUT', `${APEX}/management/vaults/stale`, { readCacheSeconds: STALE_BOUND_S }), 201);
  for (const name of ['reader', 'norole'] as const) {
    const created = await ok(http('vault-a', 'POST', `${APEX}/management/applications`, { displayName: `edge ${name}` }), 201);
    apps[name] = { clientId: created.clientId, objectId: created.objectId };
  }
  for (const vault of ['edge', 'stale']) {
    assignments[`${vault}:secrets`] = await grant('vault-a', vault, apps.reader.objectId, ROLE.secretsUser);
    assignments[`${vault}:crypto`] = await grant('vault-a', vault, apps.reader.objectId, ROLE.cryptoUser);
  }
  await ok(http('vault-a', 'PUT', `${vaultUrl('edge')}/secrets/greeting?${API}`, { value: 'hello from the edge' }));
  await ok(http('vault-a', 'POST', `${vaultUrl('edge')}/keys/soft/create?${API}`, { kty: 'RSA', key_size: 2048 }));
  await ok(http('vault-a', 'POST', `${vaultUrl('edge')}/keys/hsm/create?${API}`, { kty: 'EC-HSM', crv: 'P-256' }));
  await w.bind(
    {
      READER: { vault: 'edge', clientId: apps.reader.clientId },
      NOROLE: { vault: 'edge', clientId: apps.norole.clientId },
      STALE: { vault: 'stale', clientId: apps.reader.clientId },
      NOBODY: { vault: 'edge', clientId: randomUUID() },
    },
    { vault: 'edge', clientId: apps.reader.clientId, secretName: 'greeting' },
  );
}, 300_000);

afterAll(async () => {
  await w?.dispose();
});

describe('service-binding RPC', () => {
  it('the example edge app reads its secret through the binding', async () => {
    const res = await w.fetch('edge-app' as never, 'https://app.test/');
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ name: 'greeting', length: 'hello from the edge'.length });
  });

  it('reads the latest version and a named version', async () => {
    const first = (await rpc('READER', 'getSecret', 'greeting')).value!;
    expect(first).toMatchObject({ name: 'greeting', value: 'hello from the edge', enabled: true });
    expect(first.id).toBe(`${vaultUrl('edge')}/secrets/greeting/${first.version}`);
    await ok(http('vault-a', 'PUT', `${vaultUrl('edge')}/secrets/greeting?${API}`, { value: 'second' }));
    // Written through this isolate: read at once (the writer forgot the cached row).
    expect((await rpc('READER', 'getSecret', 'greeting')).value!.value).toBe('second');
    expect((await rpc('READER', 'getSecret', 'greeting', first.version)).value!.value).toBe('hello from the edge');
  });

  it('reads a batch; a missing entry is a typed 404 that does not fail the others', async () => {
    await ok(http('vault-a', 'PUT', `${vaultUrl('edge')}/secrets/other?${API}`, { value: 'other-value' }));
    const value = (
      await rpc<(SecretReply & { typedError?: TypedError })[]>('READER', 'getSecrets', [
        'greeting',
        { name: 'other' },
        'no-such-secret',
      ])
    ).value!;
    expect(value[0]!.value).toBe('second');
    expect(value[1]!.value).toBe('other-value');
    expect(value[2]!.typedError).toMatchObject({ status: 404, code: 'SecretNotFound' });
    const tooMany = await rpc(
      'READER',
      'getSecrets',
      Array.from({ length: 26 }, () => 'greeting'),
    );
    expect(tooMany.typedError).toMatchObject({ status: 400, code: 'BadParameter' });
  });

  it('signs and verifies with a software key and with an HSM key', async () => {
    const digest = new Uint8Array(createHash('sha256').update('message').digest());
    for (const [key, alg] of [
      ['soft', 'RS256'],
      ['hsm', 'ES256'],
    ] as const) {
      const signed = (await rpc<{ kid: string; value: Bytes }>('READER', 'sign', key, alg, b64(digest))).value!;
      expect(signed.kid).toMatch(new RegExp(`^${vaultUrl('edge')}/keys/${key}/[0-9a-f]{32}$`));
      expect((await rpc<boolean>('READER', 'verify', key, alg, b64(digest), signed.value)).value).toBe(true);
      const tampered = bytesOf(signed.value);
      tampered[5] = tampered[5]! ^ 1;
      expect((await rpc<boolean>('READER', 'verify', key, alg, b64(digest), b64(tampered))).value).toBe(false);
    }
  });

  it('encrypts and decrypts, wraps and unwraps with an RSA key', async () => {
    const plain = new TextEncoder().encode('a data key, say');
    type Op = { kid: string; value: Bytes };
    const enc = (await rpc<Op>('READER', 'encrypt', 'soft', { alg: 'RSA-OAEP-256', value: b64(plain) })).value!;
    const dec = (await rpc<Op>('READER', 'decrypt', 'soft', { alg: 'RSA-OAEP-256', value: enc.value })).value!;
    expect(Buffer.from(bytesOf(dec.value)).toString()).toBe('a data key, say');
    const wrapped = (await rpc<Op>('READER', 'wrapKey', 'soft', { alg: 'RSA-OAEP', value: b64(plain) })).value!;
    const unwrapped = (await rpc<Op>('READER', 'unwrapKey', 'soft', { alg: 'RSA-OAEP', value: wrapped.value })).value!;
    expect(bytesOf(unwrapped.value)).toEqual(plain);
  });

  it('refuses a caller without a role with a typed 403, and an unknown application with a typed 401', async () => {
    const refused = await rpc('NOROLE', 'getSecret', 'greeting');
    expect(refused.typedError).toMatchObject({ status: 403, code: 'Forbidden', innerCode: 'ForbiddenByRbac' });
    expect(refused.typedError!.message).not.toContain('second');
    const signRefused = await rpc('NOROLE', 'sign', 'soft', 'RS256', b64(new Uint8Array(32)));
    expect(signRefused.typedError).toMatchObject({ status: 403, innerCode: 'ForbiddenByRbac' });
    expect((await rpc('NOBODY', 'getSecret', 'greeting')).typedError).toMatchObject({ status: 401, code: 'Unauthorized' });
  });

  it('answers an unknown secret with a typed 404 SecretNotFound', async () => {
    expect((await rpc('READER', 'getSecret', 'missing-secret')).typedError).toMatchObject({
      status: 404,
      code: 'SecretNotFound',
    });
  });

  it('leaves one audit record per call, marked as RPC, with the refusal code', async () => {
    const name = `audited-${Date.now().toString(36)}`;
    await ok(http('vault-a', 'PUT', `${vaultUrl('edge')}/secrets/${name}?${API}`, { value: 'x' }));
    await rpc('READER', 'getSecret', name);
    await rpc('READER', 'getSecret', name);
    await rpc('NOROLE', 'getSecret', name);
    const records = await rpcAudit(`/secrets/${name}`, 3);
    await new Promise((r) => setTimeout(r, 1500)); // nothing more arrives
    const all = await rpcAudit(`/secrets/${name}`, 3, 0);
    expect(all).toHaveLength(3);
    expect(records.map((r) => [r.operation, r.status, r.error_code]).sort()).toEqual(
      [
        ['SecretGet', 200, null],
        ['SecretGet', 200, null],
        ['SecretGet', 403, 'ForbiddenByRbac'],
      ].sort(),
    );
    for (const r of records) expect(r.canonical).toContain('EdgeKeyVault-RPC');
  });
});

describe('warm reads touch nothing remote', () => {
  it('makes 0 D1 statements and 0 bridge calls per warm read, over RPC and over HTTP', async () => {
    const added = await ok(http('vault-a', 'POST', `${APEX}/management/applications/${apps.reader.clientId}/secrets`, {}), 201);
    const readerToken = await tokenOf(apps.reader.clientId, added.clientSecret);
    await rpc('READER', 'getSecret', 'greeting');
    await ok(http('vault-a', 'GET', `${vaultUrl('edge')}/secrets/greeting?${API}`, undefined, readerToken));
    // A stats request costs its own statement (the management API reads the administrator's
    // application uncached): measured, then taken out.
    const first = await stats();
    const before = await stats();
    const own = before.d1Statements - first.d1Statements;
    for (let i = 0; i < 20; i++) expect((await rpc('READER', 'getSecret', 'greeting')).value!.value).toBe('second');
    for (let i = 0; i < 20; i++)
      await ok(http('vault-a', 'GET', `${vaultUrl('edge')}/secrets/greeting?${API}`, undefined, readerToken));
    const after = await stats();
    expect(after.d1Statements - before.d1Statements - own).toBe(0);
    expect(after.bridgeCalls - before.bridgeCalls).toBe(0);
  });
});

describe('the read-cache bound across two isolates (vault readCacheSeconds = 3)', () => {
  const url = (name: string) => `${vaultUrl('stale')}/secrets/${name}?${API}`;
  const read = (name: string) => rpc('STALE', 'getSecret', name);

  /** Polls vault-a over RPC until `done`; returns the seconds it took from `since`. */
  async function until(since: number, name: string, done: (r: Reply<SecretReply>) => boolean): Promise<number> {
    for (;;) {
      const r = await read(name);
      if (done(r)) return (Date.now() - since) / 1000;
      expect(Date.now() - since).toBeLessThan((STALE_BOUND_S + 2) * 1000);
      await new Promise((res) => setTimeout(res, 100));
    }
  }

  it('a value change, a disable and a delete made in vault-b reach vault-a within the bound, never later', async () => {
    await ok(http('vault-a', 'PUT', url('c1'), { value: 'v1' }));
    expect((await read('c1')).value!.value).toBe('v1'); // cached in vault-a now
    const changed = Date.now();
    await ok(http('vault-b', 'PUT', url('c1'), { value: 'v2' }));
    expect((await read('c1')).value!.value).toBe('v1'); // the other isolate's write is not seen yet…
    expect(await until(changed, 'c1', (r) => r.value?.value === 'v2')).toBeLessThanOrEqual(STALE_BOUND_S + 1); // …within the bound

    const disabled = Date.now();
    await ok(http('vault-b', 'PATCH', url('c1'), { attributes: { enabled: false } }));
    expect(await until(disabled, 'c1', (r) => r.typedError?.innerCode === 'SecretDisabled')).toBeLessThanOrEqual(
      STALE_BOUND_S + 1,
    );

    await ok(http('vault-a', 'PUT', url('c2'), { value: 'doomed' }));
    expect((await read('c2')).value!.value).toBe('doomed');
    const deleted = Date.now();
    await ok(http('vault-b', 'DELETE', url('c2')));
    expect(await until(deleted, 'c2', (r) => r.typedError?.code === 'SecretNotFound')).toBeLessThanOrEqual(STALE_BOUND_S + 1);
  });

  it('an expiry takes effect at once: exp is checked at every read against the clock', async () => {
    const exp = Math.floor(Date.now() / 1000) + 2;
    await ok(http('vault-a', 'PUT', url('c3'), { value: 'short-lived', attributes: { exp } }));
    expect((await read('c3')).value!.value).toBe('short-lived');
    while (Date.now() / 1000 < exp) await new Promise((r) => setTimeout(r, 100));
    expect((await read('c3')).typedError).toMatchObject({ status: 403, innerCode: 'SecretExpired' });
  });

  it('removing a role assignment in vault-b refuses the caller in vault-a within the bound', async () => {
    await ok(http('vault-a', 'PUT', url('c4'), { value: 'guarded' }));
    expect((await read('c4')).value!.value).toBe('guarded');
    const removed = Date.now();
    await ok(
      http(
        'vault-b',
        'DELETE',
        `${APEX}/management/vaults/stale/providers/Microsoft.Authorization/roleAssignments/${assignments['stale:secrets']}`,
      ),
    );
    expect(await until(removed, 'c4', (r) => r.typedError?.innerCode === 'ForbiddenByRbac')).toBeLessThanOrEqual(
      STALE_BOUND_S + 1,
    );
  });

  it('a row tampered with in D1 is never served: the warm copy is the authentic one, and once reloaded the read is refused', async () => {
    await grant('vault-a', 'stale', apps.reader.objectId, ROLE.secretsUser);
    await ok(http('vault-a', 'PUT', url('c5'), { value: 'authentic' }));
    expect((await read('c5')).value!.value).toBe('authentic');
    const db = await w.d1();
    const row = (await db
      .prepare(`SELECT version, ciphertext FROM secret_versions WHERE name = 'c5'`)
      .first<{ version: string; ciphertext: string }>())!;
    const flipped = row.ciphertext.slice(0, 20) + (row.ciphertext[20] === 'A' ? 'B' : 'A') + row.ciphertext.slice(21);
    const tampered = Date.now();
    await db.prepare(`UPDATE secret_versions SET ciphertext = ? WHERE version = ?`).bind(flipped, row.version).run();
    // Whatever is read meanwhile is the authentic value or a refusal, never something else.
    const seconds = await until(tampered, 'c5', (r) => {
      if (r.value) expect(r.value!.value).toBe('authentic');
      return r.typedError !== undefined;
    });
    expect(seconds).toBeLessThanOrEqual(STALE_BOUND_S + 1);
    expect((await read('c5')).typedError).toMatchObject({ status: 500, code: 'DataIntegrityError' });
  });
});
