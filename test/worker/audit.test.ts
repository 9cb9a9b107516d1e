import { createExecutionContext, createMessageBatch, getQueueResult } from 'cloudflare:test';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import type { AuditEvent } from '../../src/audit/event';
import type { Env } from '../../src/env';
import worker from '../../src/index';
import { API, APEX, admin, call, env, json, newVault, tokenFor, vaultOrigin, type CallOptions } from './helpers';
import { clientCredentials, count, requestId, rows, sleep, tokenRequest } from './identity-helpers';

type Creds = { tenantId: string; clientId: string; clientSecret: string };

let creds: Creds;
let token: string;
let vault: string;
let user: Creds;
let userToken: string;

beforeAll(async () => {
  creds = await admin();
  token = await tokenFor(creds);
  vault = await newVault(token);
  const res = await call('POST', `${APEX}/management/applications`, { token, body: { displayName: 'audit non-admin' } });
  const body = await json(res);
  user = { tenantId: creds.tenantId, clientId: body.clientId, clientSecret: body.clientSecret };
  userToken = await tokenFor(user);
});

/** Calls the Worker with a queue that records what is sent to it, and returns both. */
async function captured(method: string, url: string, opts: CallOptions = {}): Promise<{ res: Response; events: AuditEvent[] }> {
  const events: AuditEvent[] = [];
  const queue = {
    async send(body: AuditEvent) {
      events.push(structuredClone(body));
    },
    async sendBatch(messages: Iterable<{ body: AuditEvent }>) {
      for (const m of messages) events.push(structuredClone(m.body));
    },
  } as unknown as Queue<AuditEvent>;
  const res = await call(method, url, { ...opts, env: { ...opts.env, AUDIT_QUEUE: queue } });
  return { res, events };
}

/** The one event a request emitted (fails unless there is exactly one). */
async function oneEvent(method: string, url: string, opts: CallOptions = {}) {
  const { res, events } = await captured(method, url, opts);
  expect(events, `${method} ${url}`).toHaveLength(1);
  return { res, event: events[0]! };
}

function event(overrides: Partial<AuditEvent> = {}): AuditEvent {
  return {
    id: crypto.randomUUID(),
    time: Date.now(),
    vault: 'somevault',
    operation: 'SecretGet',
    caller: crypto.randomUUID(),
    objectId: '/secrets/x',
    result: 'success',
    status: 200,
    durationMs: 3,
    correlationId: requestId(),
    clientIp: '203.0.113.7',
    errorCode: null,
    ...overrides,
  };
}

function batchOf(events: unknown[]) {
  return createMessageBatch<AuditEvent>(
    'ekv-audit',
    events.map((body, i) => ({ id: `msg-${i}-${crypto.randomUUID()}`, timestamp: new Date(), attempts: 1, body: body as AuditEvent })),
  );
}

async function consume(batch: MessageBatch<AuditEvent>, e: Env = env) {
  const ctx = createExecutionContext();
  // The handler takes (batch, env, ctx) like any queue handler, whether or not it uses ctx.
  const queue = worker.queue as ExportedHandlerQueueHandler<Env, AuditEvent>;
  await queue(batch, e, ctx);
  return getQueueResult(batch, ctx);
}

/** Waits for the real queue to deliver the events of a request to the real consumer. */
async function persisted(correlationId: string, expected = 1, timeoutMs = 8000): Promise<Record<string, unknown>[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await rows('select * from audit_events where correlation_id = ?', correlationId);
    if (found.length >= expected || Date.now() > deadline) return found;
    await sleep(100);
  }
}

describe('audit consumer', () => {
  it('persists a batch of events as rows', async () => {
    const events = [event(), event({ vault: null, caller: null, objectId: null, clientIp: null, operation: 'Authentication', status: 401, result: 'denied' })];
    const result = await consume(batchOf(events));
    expect(result.ackAll).toBe(true);
    expect(result.retryBatch.retry).toBe(false);
    for (const e of events) {
      const [row] = await rows('select * from audit_events where id = ?', e.id);
      expect(row).toEqual({
        id: e.id,
        time: e.time,
        vault: e.vault,
        operation: e.operation,
        caller: e.caller,
        object_id: e.objectId,
        result: e.result,
        status: e.status,
        duration_ms: e.durationMs,
        correlation_id: e.correlationId,
        client_ip: e.clientIp,
        error_code: e.errorCode,
      });
    }
  });

  it('adds nothing when the same batch is delivered twice', async () => {
    const events = [event(), event(), event()];
    const correlation = events.map((e) => e.correlationId);
    const before = await count('audit_events');
    expect((await consume(batchOf(events))).ackAll).toBe(true);
    expect(await count('audit_events')).toBe(before + 3);
    // Redelivery (a retried batch), and a batch that mixes old and new events.
    expect((await consume(batchOf(events))).ackAll).toBe(true);
    expect(await count('audit_events')).toBe(before + 3);
    const fresh = event();
    expect((await consume(batchOf([events[0], fresh, events[2]]))).ackAll).toBe(true);
    expect(await count('audit_events')).toBe(before + 4);
    for (const id of correlation) expect(await count('audit_events', 'correlation_id = ?', id)).toBe(1);
  });

  it('persists a full batch of 100 (several multi-row inserts) exactly once', async () => {
    const events = Array.from({ length: 100 }, () => event());
    const before = await count('audit_events');
    expect((await consume(batchOf(events))).ackAll).toBe(true);
    expect(await count('audit_events')).toBe(before + 100);
    expect((await consume(batchOf(events))).ackAll).toBe(true);
    expect(await count('audit_events')).toBe(before + 100);
    const last = events[99]!;
    expect((await rows('select operation, status from audit_events where id = ?', last.id))[0]).toEqual({
      operation: last.operation,
      status: last.status,
    });
  });

  it('acknowledges an empty batch', async () => {
    const result = await consume(batchOf([]));
    expect(result.ackAll).toBe(true);
  });

  it('drops malformed messages but persists the valid ones beside them', async () => {
    const good = event();
    const before = await count('audit_events');
    const result = await consume(batchOf([good, null, 'text', { id: 42 }, { id: crypto.randomUUID(), operation: 'X' }]));
    expect(result.ackAll).toBe(true);
    expect(await count('audit_events')).toBe(before + 1);
    expect(await count('audit_events', 'id = ?', good.id)).toBe(1);
  });

  it('asks for the whole batch to be retried when D1 fails, having written nothing', async () => {
    const events = [event(), event()];
    const broken = {
      prepare() {
        throw new Error('D1 is down');
      },
      batch() {
        return Promise.reject(new Error('D1 is down'));
      },
      exec() {
        return Promise.reject(new Error('D1 is down'));
      },
    } as unknown as D1Database;
    const result = await consume(batchOf(events), { ...env, DB: broken });
    expect(result.ackAll).toBe(false);
    expect(result.retryBatch.retry).toBe(true);
    for (const e of events) expect(await count('audit_events', 'id = ?', e.id)).toBe(0);
    // The retry then persists them.
    expect((await consume(batchOf(events))).ackAll).toBe(true);
    for (const e of events) expect(await count('audit_events', 'id = ?', e.id)).toBe(1);
  });
});

describe('audit events emitted by requests', () => {
  it('emits exactly one event for a successful vault request, naming what and who', async () => {
    const id = requestId();
    const { res, event: e } = await oneEvent('PUT', `${vaultOrigin(vault)}/secrets/audited?${API}`, {
      token,
      body: { value: 'v' },
      headers: { 'x-ms-client-request-id': id, 'cf-connecting-ip': '198.51.100.23' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-ms-client-request-id')).toBe(id);
    expect(res.headers.get('x-ms-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.headers.get('x-ms-request-id')).not.toBe(id);
    expect(e).toMatchObject({
      vault,
      operation: 'SecretSet',
      caller: creds.clientId,
      objectId: '/secrets/audited',
      result: 'success',
      status: 200,
      correlationId: id,
      clientIp: '198.51.100.23',
    });
    expect(e.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(Math.abs(e.time - Date.now())).toBeLessThan(60_000);
    expect(e.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('emits an event for a request refused without a token (401)', async () => {
    const { res, event: e } = await oneEvent('GET', `${vaultOrigin(vault)}/secrets/x?${API}`);
    expect(res.status).toBe(401);
    expect(e).toMatchObject({ vault, operation: 'Authentication', caller: null, result: 'denied', status: 401 });
  });

  it('emits an event for a request refused with a bad token (401)', async () => {
    const { res, event: e } = await oneEvent('GET', `${vaultOrigin(vault)}/secrets?${API}`, { token: 'garbage.token.here' });
    expect(res.status).toBe(401);
    expect(e).toMatchObject({ vault, operation: 'Authentication', caller: null, result: 'denied', status: 401 });
  });

  it('emits an event for a management request refused to a non-administrator (403)', async () => {
    const { res, event: e } = await oneEvent('GET', `${APEX}/management/applications`, { token: userToken });
    expect(res.status).toBe(403);
    expect(e).toMatchObject({ vault: null, caller: user.clientId, result: 'denied', status: 403 });
  });

  it('emits an event for a vault that does not exist (404)', async () => {
    const missing = `nx${Date.now().toString(36)}`;
    const { res, event: e } = await oneEvent('GET', `${vaultOrigin(missing)}/secrets?${API}`, { token });
    expect(res.status).toBe(404);
    expect(e).toMatchObject({ vault: missing, caller: creds.clientId, result: 'failed', status: 404 });
  });

  it('emits an event for a secret that does not exist (404)', async () => {
    const { res, event: e } = await oneEvent('GET', `${vaultOrigin(vault)}/secrets/nope-${Date.now()}?${API}`, { token });
    expect(res.status).toBe(404);
    expect(e).toMatchObject({ vault, operation: 'SecretGet', caller: creds.clientId, result: 'failed', status: 404 });
  });

  it('emits an event for a bad request (400) and for a bridge outage (503)', async () => {
    const bad = await oneEvent('PUT', `${vaultOrigin(vault)}/secrets/x?${API}`, { token, body: '{nope' });
    expect(bad.res.status).toBe(400);
    expect(bad.event).toMatchObject({ result: 'failed', status: 400, caller: creds.clientId });
    const down = await oneEvent('PUT', `${APEX}/management/vaults/nb${Date.now().toString(36)}`, {
      token,
      body: {},
      env: { BRIDGE_URL: 'http://127.0.0.1:9' },
    });
    expect(down.res.status).toBe(503);
    expect(down.event).toMatchObject({ operation: 'VaultCreate', result: 'error', status: 503 });
  });

  it('emits events for the token service, with the caller only when authenticated', async () => {
    const ok = await captured('POST', `${APEX}/${creds.tenantId}/oauth2/v2.0/token`, {
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(clientCredentials(creds)).toString(),
    });
    expect(ok.res.status).toBe(200);
    expect(ok.events).toHaveLength(1);
    expect(ok.events[0]).toMatchObject({ operation: 'Authentication', caller: creds.clientId, result: 'success', status: 200, vault: null });
    const refused = await captured('POST', `${APEX}/${creds.tenantId}/oauth2/v2.0/token`, {
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(clientCredentials({ ...creds, clientSecret: 'ekv~wrong' })).toString(),
    });
    expect(refused.res.status).toBe(401);
    expect(refused.events).toHaveLength(1);
    expect(refused.events[0]).toMatchObject({ operation: 'Authentication', caller: null, result: 'denied', status: 401 });
    // Neither event carries the client secret, the token or the wrong secret.
    const serialized = JSON.stringify([...ok.events, ...refused.events]);
    const accessToken = (await json(ok.res)).access_token as string;
    expect(serialized).not.toContain(creds.clientSecret);
    expect(serialized).not.toContain('ekv~wrong');
    expect(serialized).not.toContain(accessToken.split('.')[2]);
  });

  it('emits events for health, bootstrap and unknown apex paths', async () => {
    expect((await oneEvent('GET', `${APEX}/healthz`)).event).toMatchObject({ operation: 'HealthCheck', status: 200 });
    const boot = await oneEvent('POST', `${APEX}/management/bootstrap`, { headers: { authorization: 'Bootstrap wrong' }, body: {} });
    expect(boot.event).toMatchObject({ operation: 'Bootstrap', status: 401, result: 'denied' });
    expect(JSON.stringify(boot.event)).not.toContain('wrong');
    expect((await oneEvent('GET', `${APEX}/no/such/path`)).event).toMatchObject({ status: 404, result: 'failed' });
  });

  it('uses a fresh correlation id when the client sends none or an unusable one', async () => {
    const none = await oneEvent('GET', `${APEX}/healthz`);
    expect(none.event.correlationId).toMatch(/^[0-9a-f-]{36}$/);
    expect(none.res.headers.get('x-ms-request-id')).toBe(none.event.correlationId);
    for (const bad of ['has spaces in it', 'x'.repeat(65), '<script>', 'a"b']) {
      const { res, event: e } = await oneEvent('GET', `${APEX}/healthz`, { headers: { 'x-ms-client-request-id': bad } });
      expect(e.correlationId).not.toBe(bad);
      expect(e.correlationId).toMatch(/^[0-9a-f-]{36}$/);
      expect(res.headers.get('x-ms-request-id')).toBe(e.correlationId);
    }
  });

  it('still answers the request when the audit queue refuses the event', async () => {
    const failing = {
      send: () => Promise.reject(new Error('queue down')),
      sendBatch: () => Promise.reject(new Error('queue down')),
    } as unknown as Queue<AuditEvent>;
    const res = await call('GET', `${APEX}/healthz`, { env: { AUDIT_QUEUE: failing } });
    expect(res.status).toBe(200);
  });
});

describe('audit trail through the real queue', () => {
  it('delivers each request to the consumer, which persists exactly one row', async () => {
    const id = requestId();
    const res = await call('GET', `${vaultOrigin(vault)}/secrets?${API}`, { token, headers: { 'x-ms-client-request-id': id } });
    expect(res.status).toBe(200);
    const found = await persisted(id);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ vault, operation: 'SecretList', caller: creds.clientId, status: 200, result: 'success' });
    // And no second row turns up later.
    await sleep(1500);
    expect(await count('audit_events', 'correlation_id = ?', id)).toBe(1);
  });

  it('persists refused requests with their status and result', async () => {
    const cases: [string, string, CallOptions, number, string][] = [
      ['GET', `${vaultOrigin(vault)}/secrets?${API}`, {}, 401, 'denied'],
      ['GET', `${APEX}/management/vaults`, { token: userToken }, 403, 'denied'],
      ['GET', `${vaultOrigin(`nx${Date.now().toString(36)}`)}/secrets?${API}`, { token }, 404, 'failed'],
    ];
    const ids: string[] = [];
    for (const [method, url, opts, status] of cases) {
      const id = requestId();
      ids.push(id);
      const res = await call(method, url, { ...opts, headers: { 'x-ms-client-request-id': id } });
      expect(res.status).toBe(status);
    }
    for (const [i, [, , , status, result]] of cases.entries()) {
      const found = await persisted(ids[i]!);
      expect(found, `${status}`).toHaveLength(1);
      expect(found[0]).toMatchObject({ status, result });
    }
  });

  it('never records a secret value, client secret or token', async () => {
    const canary = `canary-${crypto.randomUUID()}`;
    const ids = [requestId(), requestId(), requestId(), requestId()];
    const origin = vaultOrigin(vault);
    expect((await call('PUT', `${origin}/secrets/canary?${API}`, { token, body: { value: canary }, headers: { 'x-ms-client-request-id': ids[0]! } })).status).toBe(200);
    const got = await call('GET', `${origin}/secrets/canary/?${API}`, { token, headers: { 'x-ms-client-request-id': ids[1]! } });
    expect((await json(got)).value).toBe(canary);
    const backup = await call('POST', `${origin}/secrets/canary/backup?${API}`, { token, headers: { 'x-ms-client-request-id': ids[2]! } });
    expect(backup.status).toBe(200);
    const backupBlob = (await json(backup)).value as string;
    const tok = await tokenRequest(creds.tenantId, clientCredentials(creds), { 'x-ms-client-request-id': ids[3]! });
    const issued = (await json(tok)).access_token as string;
    for (const id of ids) expect(await persisted(id), id).toHaveLength(1);
    const all = JSON.stringify(await rows('select * from audit_events'));
    expect(all).not.toContain(canary);
    expect(all).not.toContain(creds.clientSecret);
    expect(all).not.toContain(token);
    expect(all).not.toContain(issued.split('.')[2]);
    expect(all).not.toContain(backupBlob.slice(0, 64));
  });
});

describe('logs', () => {
  it('never contain a secret value, client secret, bootstrap secret or token, even on failures', async () => {
    const lines: string[] = [];
    const spies = (['log', 'info', 'warn', 'error', 'debug'] as const).map((level) =>
      vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
        lines.push(args.map((a) => (a instanceof Error ? `${a.name}: ${a.message} ${a.stack}` : String(a))).join(' '));
      }),
    );
    const canary = `canary-${crypto.randomUUID()}`;
    const down = { BRIDGE_URL: 'http://127.0.0.1:9' };
    const failingQueue = { send: () => Promise.reject(new Error('queue down')) } as unknown as Queue<AuditEvent>;
    try {
      const origin = vaultOrigin(vault);
      await call('PUT', `${origin}/secrets/logged?${API}`, { token, body: { value: canary } });
      await call('PUT', `${origin}/secrets/logged?${API}`, { token, body: { value: canary, tags: { t: 'x'.repeat(300) } } });
      await call('PUT', `${origin}/secrets/logged?${API}`, { token, body: `{"value":"${canary}"` });
      await call('PUT', `${origin}/secrets/logged2?${API}`, { token, body: { value: canary }, env: down });
      await call('PUT', `${origin}/secrets/logged3?${API}`, { token, body: { value: canary }, env: { AUDIT_QUEUE: failingQueue } });
      await tokenRequest(creds.tenantId, clientCredentials(creds, { client_secret: `${creds.clientSecret}x` }));
      await tokenRequest(creds.tenantId, clientCredentials(creds));
      await call('POST', `${APEX}/management/bootstrap`, { headers: { authorization: 'Bootstrap test-bootstrap-secret-0123456789abcdef0123' }, body: {} });
      await call('GET', `${origin}/secrets?${API}`, { token: `${token}x` });
    } finally {
      for (const spy of spies) spy.mockRestore();
    }
    // The spies saw the Worker's logs (the refused audit send is logged).
    expect(lines.some((l) => l.includes('audit event not queued'))).toBe(true);
    const all = lines.join('\n');
    expect(all).not.toContain(canary);
    expect(all).not.toContain(creds.clientSecret);
    expect(all).not.toContain('test-bootstrap-secret-0123456789abcdef0123');
    expect(all).not.toContain(token.split('.')[2]);
  });
});

describe('audit coverage of every request', () => {
  it('emits an event even for a host this service does not serve', async () => {
    const { res, events } = await captured('GET', 'https://example.com/');
    expect(res.status).toBe(404);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ status: 404, result: 'failed', vault: null });
  });

  it('names the attempted operation of a management request refused by authorization', async () => {
    const { event: e } = await oneEvent('GET', `${APEX}/management/applications`, { token: userToken });
    expect(e.status).toBe(403);
    expect(e.operation).toBe('ApplicationList');
  });

  it('names the attempted operation of a vault request to a vault that does not exist', async () => {
    const missing = `nx${Date.now().toString(36)}`;
    const { event: e } = await oneEvent('GET', `${vaultOrigin(missing)}/secrets/x?${API}`, { token });
    expect(e.status).toBe(404);
    expect(e.operation).toBe('SecretGet');
    expect(e.objectId).toBe('/secrets/x');
  });
});
