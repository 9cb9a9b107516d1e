/**
 * One audit record per request, with the caller, the decision and the request as Azure records
 * them, and nothing secret.
 */
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { DEPLOYMENT_CHAIN, type AuditEvent } from '../../src/audit/event';
import { CLAIM_APP_ID, CLAIM_OBJECT_ID, CLAIM_TENANT_ID } from '../../src/audit/record';
import { auditEvent, batchOf, consume, persisted, recordOf, rowOfEvent, vaultChainOf, type StoredRecord } from './audit-helpers';
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

const callerOf = (c: Creds) => ({ tid: c.tenantId, appid: c.clientId });

describe('audit consumer', () => {
  it('stores each event as an Azure AuditEvent record in its vault chain, with derived query columns', async () => {
    const e = auditEvent({ vault: `cons${Date.now().toString(36)}` });
    const refused = auditEvent({
      vault: null,
      caller: null,
      objectId: null,
      clientIp: null,
      operation: 'Authentication',
      status: 401,
      errorCode: 'Unauthorized',
      requestUri: 'https://vault.localhost/management/vaults',
      apiVersion: null,
      clientInfo: null,
      authorization: null,
      authorizationModel: null,
    });
    const result = await consume(batchOf([e, refused]));
    expect(result.ackedIds.size).toBe(2);
    expect(result.retryMessages).toEqual([]);

    const row = (await rowOfEvent(e.id))!;
    expect(row).toMatchObject({
      chain: `vault:${e.vault}`,
      seq: 1,
      time: e.time,
      operation: 'SecretGet',
      caller_appid: e.caller!.appid,
      caller_oid: e.caller!.oid,
      object_id: '/secrets/x',
      status: 200,
      result: 'success',
      error_code: null,
      correlation_id: e.correlationId,
      client_ip: '203.0.113.7',
    });
    expect(row.prev_hash).toBe('0'.repeat(64));
    expect(recordOf(row)).toEqual({
      time: new Date(e.time).toISOString(),
      resourceId: `/TENANTS/${e.tenantId}/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/${e.vault!.toUpperCase()}`.toUpperCase(),
      operationName: 'SecretGet',
      operationVersion: '7.6',
      category: 'AuditEvent',
      resultType: 'Success',
      resultSignature: 'OK',
      resultDescription: '',
      durationMs: '3',
      callerIpAddress: '203.0.113.7',
      correlationId: e.correlationId,
      identity: {
        claim: { [CLAIM_OBJECT_ID]: e.caller!.oid, [CLAIM_APP_ID]: e.caller!.appid, [CLAIM_TENANT_ID]: e.caller!.tid },
      },
      properties: {
        id: `https://${e.vault}.vault.localhost/secrets/x`,
        requestUri: e.requestUri,
        httpStatusCode: 200,
        clientInfo: 'azsdk-js-keyvault-secrets/4.12.0',
        isRbacAuthorized: true,
        appliedAssignmentId: (e.authorization as { assignmentId: string }).assignmentId,
      },
      eventId: e.id,
      chain: `vault:${e.vault}`,
      sequence: 1,
    });

    const refusedRow = (await rowOfEvent(refused.id))!;
    expect(refusedRow).toMatchObject({
      chain: DEPLOYMENT_CHAIN,
      operation: 'Authentication',
      status: 401,
      result: 'denied',
      caller_appid: null,
    });
    const r = recordOf(refusedRow);
    expect(r).toMatchObject({
      resultType: 'Success',
      resultSignature: 'Unauthorized',
      resultDescription: 'Unauthorized',
      operationVersion: '',
      callerIpAddress: '',
    });
    expect(r).not.toHaveProperty('identity');
    expect(r.properties).toEqual({ requestUri: refused.requestUri, httpStatusCode: 401, clientInfo: '' });
    expect(r.resourceId).toMatch(/^(\/TENANTS\/[0-9A-F-]+)?\/PROVIDERS\/MICROSOFT\.KEYVAULT$/);
  });

  it('adds nothing when the same messages are delivered again', async () => {
    const v = `redo${Date.now().toString(36)}`;
    const events = [auditEvent({ vault: v }), auditEvent({ vault: v }), auditEvent({ vault: v })];
    const chainCount = () => count('audit_records', 'chain = ?', `vault:${v}`);
    expect((await consume(batchOf(events))).ackedIds.size).toBe(3);
    expect(await chainCount()).toBe(3);
    expect((await consume(batchOf(events))).ackedIds.size).toBe(3);
    expect(await chainCount()).toBe(3);
    const fresh = auditEvent({ vault: v });
    expect((await consume(batchOf([events[0], fresh, events[2], fresh]))).ackedIds.size).toBe(4);
    expect(await chainCount()).toBe(4);
    for (const e of events) expect(await count('audit_records', 'event_id = ?', e.id)).toBe(1);
  });

  it('stores a full batch of 100 (several multi-row inserts) exactly once', async () => {
    const v = `full${Date.now().toString(36)}`;
    const events = Array.from({ length: 100 }, () => auditEvent({ vault: v }));
    expect((await consume(batchOf(events))).ackedIds.size).toBe(100);
    expect(await count('audit_records', 'chain = ?', `vault:${v}`)).toBe(100);
    expect((await consume(batchOf(events))).ackedIds.size).toBe(100);
    expect(await count('audit_records', 'chain = ?', `vault:${v}`)).toBe(100);
    const [max] = await rows<{ m: number }>('select max(seq) as m from audit_records where chain = ?', `vault:${v}`);
    expect(max!.m).toBe(100);
  });

  it('acknowledges an empty batch', async () => {
    const result = await consume(batchOf([]));
    expect(result.retryMessages).toEqual([]);
    expect(result.retryBatch.retry).toBe(false);
  });

  it('records bodies that are not audit events as MalformedAuditEvent, by digest, beside the valid ones', async () => {
    const good = auditEvent({ vault: `mal${Date.now().toString(36)}` });
    const marker = `do-not-store-${crypto.randomUUID()}`;
    const bad: unknown[] = [
      null,
      marker,
      { id: 42 },
      { id: crypto.randomUUID(), operation: 'X', note: marker },
      { ...auditEvent(), v: 99, note: marker },
    ];
    const batch = batchOf([good, ...bad]);
    const result = await consume(batch);
    expect(result.ackedIds.size).toBe(bad.length + 1);
    expect(await count('audit_records', 'event_id = ?', good.id)).toBe(1);
    for (const m of batch.messages.slice(1)) {
      const row = (await rowOfEvent(`malformed:ekv-audit:${m.id}`))!;
      expect(row, m.id).toBeDefined();
      expect(row).toMatchObject({ chain: DEPLOYMENT_CHAIN, operation: 'MalformedAuditEvent', result: 'error', status: 0 });
      expect(recordOf(row).properties).toMatchObject({
        bodyDigest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
        messageId: m.id,
        queue: 'ekv-audit',
      });
    }
    expect(JSON.stringify(await rows('select * from audit_records where operation = ?', 'MalformedAuditEvent'))).not.toContain(
      marker,
    );
  });

  it('accepts events queued in the shape before the chain (version 1)', async () => {
    const v1 = {
      id: crypto.randomUUID(),
      time: Date.now(),
      vault: `old${Date.now().toString(36)}`,
      operation: 'SecretSet',
      caller: crypto.randomUUID(),
      objectId: '/secrets/old',
      result: 'success',
      status: 200,
      durationMs: 4,
      correlationId: requestId(),
      clientIp: null,
      errorCode: null,
    };
    expect((await consume(batchOf([v1]))).ackedIds.size).toBe(1);
    const row = (await rowOfEvent(v1.id))!;
    expect(row).toMatchObject({
      chain: `vault:${v1.vault}`,
      operation: 'SecretSet',
      caller_appid: v1.caller,
      object_id: '/secrets/old',
    });
    expect(recordOf(row).identity).toEqual({ claim: { [CLAIM_APP_ID]: v1.caller } });
  });

  it('retries every message when D1 fails, having written nothing; the retry stores them', async () => {
    const v = `down${Date.now().toString(36)}`;
    const events = [auditEvent({ vault: v, tenantId: null }), auditEvent({ vault: v })];
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
    const batch = batchOf(events);
    const result = await consume(batch, { ...env, DB: broken });
    expect(result.ackedIds.size).toBe(0);
    expect(result.retriedIds).toEqual(new Set(batch.messages.map((m) => m.id)));
    for (const e of events) expect(await count('audit_records', 'event_id = ?', e.id)).toBe(0);
    expect((await consume(batchOf(events))).ackedIds.size).toBe(2);
    for (const e of events) expect(await count('audit_records', 'event_id = ?', e.id)).toBe(1);
  });
});

describe('audit events emitted by requests', () => {
  it('emits exactly one event for a successful vault request, naming what and who', async () => {
    const id = requestId();
    const { res, event: e } = await oneEvent('PUT', `${vaultOrigin(vault)}/secrets/audited?${API}`, {
      token,
      body: { value: 'v' },
      headers: {
        'x-ms-client-request-id': id,
        'cf-connecting-ip': '198.51.100.23',
        'user-agent': 'azsdk-js-keyvault-secrets/4.12.0',
      },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-ms-client-request-id')).toBe(id);
    expect(res.headers.get('x-ms-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.headers.get('x-ms-request-id')).not.toBe(id);
    expect(e).toMatchObject({
      v: 2,
      vault,
      tenantId: creds.tenantId,
      operation: 'SecretSet',
      apiVersion: '7.6',
      caller: callerOf(creds),
      objectId: '/secrets/audited',
      requestUri: `${vaultOrigin(vault)}/secrets/audited?${API}`,
      status: 200,
      errorCode: null,
      correlationId: id,
      clientIp: '198.51.100.23',
      clientInfo: 'azsdk-js-keyvault-secrets/4.12.0',
      authorizationModel: 'rbac',
    });
    expect(e.caller!.oid).toMatch(/^[0-9a-f-]{36}$/);
    expect(e.authorization).toMatchObject({ by: 'rbac', assignmentId: expect.any(String) });
    expect(e.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(Math.abs(e.time - Date.now())).toBeLessThan(60_000);
    expect(e.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('keeps only api-version, maxresults, $skiptoken and $filter of the query', async () => {
    const { event: e } = await oneEvent(
      'GET',
      `${vaultOrigin(vault)}/secrets?${API}&maxresults=5&password=hunter2&x=${'y'.repeat(10)}#frag`,
      { token },
    );
    expect(e.requestUri).toBe(`${vaultOrigin(vault)}/secrets?api-version=7.6&maxresults=5`);
    const discovery = await oneEvent(
      'GET',
      `${APEX}/common/discovery/instance?api-version=1.1&authorization_endpoint=${encodeURIComponent(`${APEX}/t/oauth2/v2.0/authorize?secret=1`)}`,
    );
    expect(discovery.event.requestUri).toBe(`${APEX}/common/discovery/instance?api-version=1.1`);
  });

  it('emits an event for a request refused without a token (401)', async () => {
    const { res, event: e } = await oneEvent('GET', `${vaultOrigin(vault)}/secrets/x?${API}`);
    expect(res.status).toBe(401);
    expect(e).toMatchObject({
      vault,
      operation: 'Authentication',
      caller: null,
      status: 401,
      authorization: null,
      tenantId: creds.tenantId,
    });
  });

  it('emits an event for a request refused with a bad token (401)', async () => {
    const { res, event: e } = await oneEvent('GET', `${vaultOrigin(vault)}/secrets?${API}`, { token: 'garbage.token.here' });
    expect(res.status).toBe(401);
    expect(e).toMatchObject({ vault, operation: 'Authentication', caller: null, status: 401 });
  });

  it('emits an event for a management request refused to a non-administrator (403)', async () => {
    const { res, event: e } = await oneEvent('GET', `${APEX}/management/applications`, { token: userToken });
    expect(res.status).toBe(403);
    expect(e).toMatchObject({ vault: null, caller: callerOf(user), status: 403, operation: 'ApplicationList' });
  });

  it('emits an event for a vault that does not exist (404) and a secret that does not exist (404)', async () => {
    const missing = `nx${Date.now().toString(36)}`;
    const nv = await oneEvent('GET', `${vaultOrigin(missing)}/secrets/x?${API}`, { token });
    expect(nv.res.status).toBe(404);
    expect(nv.event).toMatchObject({
      vault: missing,
      caller: callerOf(creds),
      status: 404,
      operation: 'SecretGet',
      objectId: '/secrets/x',
      authorizationModel: null,
    });
    const ns = await oneEvent('GET', `${vaultOrigin(vault)}/secrets/nope-${Date.now()}?${API}`, { token });
    expect(ns.res.status).toBe(404);
    expect(ns.event).toMatchObject({
      vault,
      operation: 'SecretGet',
      caller: callerOf(creds),
      status: 404,
      errorCode: 'SecretNotFound',
    });
  });

  it('emits an event for a bad request (400) and for a bridge outage (503)', async () => {
    const bad = await oneEvent('PUT', `${vaultOrigin(vault)}/secrets/x?${API}`, { token, body: '{nope' });
    expect(bad.res.status).toBe(400);
    expect(bad.event).toMatchObject({ status: 400, caller: callerOf(creds) });
    const down = await oneEvent('PUT', `${APEX}/management/vaults/nb${Date.now().toString(36)}`, {
      token,
      body: {},
      env: { BRIDGE_URL: 'http://127.0.0.1:9' },
    });
    expect(down.res.status).toBe(503);
    expect(down.event).toMatchObject({ operation: 'VaultCreate', status: 503 });
  });

  it('emits events for the token service, with the caller only when authenticated, and never the body', async () => {
    const ok = await captured('POST', `${APEX}/${creds.tenantId}/oauth2/v2.0/token`, {
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(clientCredentials(creds)).toString(),
    });
    expect(ok.res.status).toBe(200);
    expect(ok.events).toHaveLength(1);
    expect(ok.events[0]).toMatchObject({ operation: 'Authentication', caller: callerOf(creds), status: 200, vault: null });
    const refused = await captured('POST', `${APEX}/${creds.tenantId}/oauth2/v2.0/token`, {
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(clientCredentials({ ...creds, clientSecret: 'ekv~wrong' })).toString(),
    });
    expect(refused.res.status).toBe(401);
    expect(refused.events).toHaveLength(1);
    expect(refused.events[0]).toMatchObject({
      operation: 'Authentication',
      caller: null,
      status: 401,
      errorCode: expect.stringMatching(/./),
    });
    const serialized = JSON.stringify([...ok.events, ...refused.events]);
    const accessToken = (await json(ok.res)).access_token as string;
    expect(serialized).not.toContain(creds.clientSecret);
    expect(serialized).not.toContain('ekv~wrong');
    expect(serialized).not.toContain(accessToken.split('.')[2]);
  });

  it('emits events for health, bootstrap and unknown apex paths', async () => {
    expect((await oneEvent('GET', `${APEX}/healthz`)).event).toMatchObject({ operation: 'HealthCheck', status: 200 });
    const boot = await oneEvent('POST', `${APEX}/management/bootstrap`, {
      headers: { authorization: 'Bootstrap wrong' },
      body: {},
    });
    expect(boot.event).toMatchObject({ operation: 'Bootstrap', status: 401 });
    expect(JSON.stringify(boot.event)).not.toContain('wrong');
    expect((await oneEvent('GET', `${APEX}/no/such/path`)).event).toMatchObject({ status: 404 });
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

  it('cuts what a caller controls to size, and such a request is still recorded as itself', async () => {
    const long = 'n'.repeat(3000);
    const { event: e } = await oneEvent('GET', `${vaultOrigin(vault)}/secrets/${long}?${API}`, {
      token,
      headers: { 'cf-connecting-ip': '1'.repeat(200), 'x-ms-client-request-id': requestId() },
    });
    expect(e.objectId!.length).toBeLessThanOrEqual(1024);
    expect(e.clientIp).toHaveLength(64);
    const result = await consume(batchOf([e]));
    expect(result.ackedIds.size).toBe(1);
    expect(await rowOfEvent(e.id)).toMatchObject({ operation: 'SecretGet', chain: await vaultChainOf(vault) });
  });

  it('truncates the user agent and strips control characters from it', async () => {
    const { event: e } = await oneEvent('GET', `${APEX}/healthz`, { headers: { 'user-agent': `a\tb${'z'.repeat(400)}` } });
    expect(e.clientInfo).toHaveLength(256);
    expect(e.clientInfo!.startsWith('a b')).toBe(true);
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
  it('stores each request exactly once, as an Azure AuditEvent record', async () => {
    const id = requestId();
    const res = await call('GET', `${vaultOrigin(vault)}/secrets?${API}&maxresults=3`, {
      token,
      headers: { 'x-ms-client-request-id': id, 'cf-connecting-ip': '192.0.2.44', 'user-agent': 'audit-test/1.0' },
    });
    expect(res.status).toBe(200);
    const found = await persisted(id);
    expect(found).toHaveLength(1);
    const row = found[0]!;
    expect(row).toMatchObject({
      chain: await vaultChainOf(vault),
      operation: 'SecretList',
      caller_appid: creds.clientId,
      status: 200,
      result: 'success',
    });
    const record = recordOf(row);
    expect(record).toMatchObject({
      resourceId: `/TENANTS/${creds.tenantId}/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/${vault}`.toUpperCase(),
      operationName: 'SecretList',
      operationVersion: '7.6',
      category: 'AuditEvent',
      resultType: 'Success',
      resultSignature: 'OK',
      resultDescription: '',
      callerIpAddress: '192.0.2.44',
      correlationId: id,
      identity: {
        claim: { [CLAIM_APP_ID]: creds.clientId, [CLAIM_TENANT_ID]: creds.tenantId, [CLAIM_OBJECT_ID]: expect.any(String) },
      },
      properties: {
        requestUri: `${vaultOrigin(vault)}/secrets?api-version=7.6&maxresults=3`,
        httpStatusCode: 200,
        clientInfo: 'audit-test/1.0',
        isRbacAuthorized: true,
        appliedAssignmentId: expect.any(String),
      },
      chain: row.chain,
      sequence: row.seq,
    });
    expect(record.durationMs).toMatch(/^\d+$/);
    expect(Date.parse(record.time)).toBe(row.time);
    // And no second row turns up later.
    await sleep(1500);
    expect(await count('audit_records', 'correlation_id = ?', id)).toBe(1);
  });

  it('stores refused requests with their status, reason and error code', async () => {
    const cases: [string, string, CallOptions, number, string, string][] = [
      ['GET', `${vaultOrigin(vault)}/secrets?${API}`, {}, 401, 'Unauthorized', 'Authentication'],
      ['GET', `${APEX}/management/vaults`, { token: userToken }, 403, 'Forbidden', 'VaultList'],
      ['GET', `${vaultOrigin(`nx${Date.now().toString(36)}`)}/secrets?${API}`, { token }, 404, 'Not Found', 'SecretList'],
      ['PUT', `${vaultOrigin(vault)}/secrets/bad?${API}`, { token, body: '{nope' }, 400, 'Bad Request', 'SecretSet'],
    ];
    const ids: string[] = [];
    for (const [method, url, opts, status] of cases) {
      const id = requestId();
      ids.push(id);
      const res = await call(method, url, { ...opts, headers: { 'x-ms-client-request-id': id } });
      expect(res.status).toBe(status);
    }
    for (const [i, [, , , status, reason, operation]] of cases.entries()) {
      const found = await persisted(ids[i]!);
      expect(found, `${status}`).toHaveLength(1);
      expect(found[0]).toMatchObject({ status, operation });
      const record = recordOf(found[0]!);
      expect(record).toMatchObject({ resultSignature: reason, resultType: 'Success', properties: { httpStatusCode: status } });
      expect(record.resultDescription).not.toBe('');
    }
  });

  it('never records a secret value, key material, client secret or token', async () => {
    const canary = `canary-${crypto.randomUUID()}`;
    const origin = vaultOrigin(vault);
    const ids = Array.from({ length: 7 }, () => requestId());
    const h = (i: number) => ({ 'x-ms-client-request-id': ids[i]! });
    expect((await call('PUT', `${origin}/secrets/canary?${API}`, { token, body: { value: canary }, headers: h(0) })).status).toBe(
      200,
    );
    const got = await call('GET', `${origin}/secrets/canary/?${API}`, { token, headers: h(1) });
    expect((await json(got)).value).toBe(canary);
    const backup = await call('POST', `${origin}/secrets/canary/backup?${API}`, { token, headers: h(2) });
    expect(backup.status).toBe(200);
    const backupBlob = (await json(backup)).value as string;
    const tok = await tokenRequest(creds.tenantId, clientCredentials(creds), h(3));
    const issued = (await json(tok)).access_token as string;
    // A key imported with known private parts, then used.
    const pair = (await crypto.subtle.generateKey(
      { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
      true,
      ['sign', 'verify'],
    )) as CryptoKeyPair;
    const { alg: _a, ext: _e, key_ops: _k, ...jwk } = (await crypto.subtle.exportKey('jwk', pair.privateKey)) as JsonWebKey;
    expect((await call('PUT', `${origin}/keys/audited-key?${API}`, { token, body: { key: jwk }, headers: h(4) })).status).toBe(
      200,
    );
    const digest = btoa(String.fromCharCode(...new Uint8Array(32).fill(7)))
      .replace(/\+/g, '-')
      .replace(/\//g, '_')
      .replace(/=+$/, '');
    const signed = await call('POST', `${origin}/keys/audited-key/sign?${API}`, {
      token,
      body: { alg: 'RS256', value: digest },
      headers: h(5),
    });
    expect(signed.status).toBe(200);
    const signature = (await json(signed)).value as string;
    // A client secret handed out by the management API.
    const created = await call('POST', `${APEX}/management/applications`, {
      token,
      body: { displayName: 'audited app' },
      headers: h(6),
    });
    const newSecret = (await json(created)).clientSecret as string;

    for (const id of ids) expect(await persisted(id), id).toHaveLength(1);
    const all = JSON.stringify(await rows<StoredRecord>('select * from audit_records'));
    for (const [what, value] of [
      ['secret value', canary],
      ['client secret', creds.clientSecret],
      ['issued client secret', newSecret],
      ['bearer token', token],
      ['token signature', token.split('.')[2]!],
      ['issued token signature', issued.split('.')[2]!],
      ['backup', backupBlob.slice(0, 64)],
      ['private exponent', jwk.d!],
      ['prime p', jwk.p!],
      ['prime q', jwk.q!],
      ['signature', signature],
    ] as const) {
      expect(all.includes(value), what).toBe(false);
    }
  });
});

describe('queueing', () => {
  it("tries a failed send again instead of losing the request's record", async () => {
    const events: AuditEvent[] = [];
    let failures = 0;
    const flaky = {
      async send(body: AuditEvent) {
        if (failures++ < 2) throw new Error('transient queue failure');
        events.push(structuredClone(body));
      },
    } as unknown as Queue<AuditEvent>;
    const res = await call('GET', `${vaultOrigin(vault)}/secrets?${API}`, { token, env: { AUDIT_QUEUE: flaky } });
    expect(res.status).toBe(200);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ operation: 'SecretList', status: 200 });
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
      await call('PUT', `${origin}/secrets/logged3?${API}`, {
        token,
        body: { value: canary },
        env: { AUDIT_QUEUE: failingQueue },
      });
      await tokenRequest(creds.tenantId, clientCredentials(creds, { client_secret: `${creds.clientSecret}x` }));
      await tokenRequest(creds.tenantId, clientCredentials(creds));
      await call('POST', `${APEX}/management/bootstrap`, {
        headers: { authorization: 'Bootstrap test-bootstrap-secret-0123456789abcdef0123' },
        body: {},
      });
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
    expect(events[0]).toMatchObject({ status: 404, operation: 'UnknownHost', vault: null, requestUri: 'https://example.com/' });
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
