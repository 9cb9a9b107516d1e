/**
 * What the Worker tells its operators (README "Watching it"): the one JSON log line per request,
 * queue batch and cron job, with no secret in any of them, and the Analytics Engine data points.
 *
 * Metrics: miniflare binds `analytics_engine_datasets` locally but drops every writeDataPoint and
 * offers no way to read them back, so the points are observed through a recording dataset passed
 * as METRICS (the only test double here); D1, the queue handler and the bridge are the real ones.
 */
import { createExecutionContext, createScheduledController, waitOnExecutionContext } from 'cloudflare:test';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import worker from '../../src/index';
import type { Env } from '../../src/core/env';
import { batchOf, consume } from './audit-helpers';
import { API, APEX, BOOTSTRAP_SECRET, call, env, setupVault, tokenFor } from './helpers';

type Point = { indexes?: string[]; blobs?: string[]; doubles?: number[] };

function recordingDataset() {
  const points: Point[] = [];
  return { points, dataset: { writeDataPoint: (p: Point) => void points.push(p) } as unknown as AnalyticsEngineDataset };
}

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

/** The structured lines logged so far, parsed; lines that are not JSON objects are left out. */
function structured(type: string): Record<string, any>[] {
  return lines.flatMap((l) => {
    try {
      const v = JSON.parse(l) as Record<string, unknown>;
      return v && v.type === type ? [v] : [];
    } catch {
      return [];
    }
  });
}

const withId = (id: string, extra: Record<string, string> = {}) => ({ headers: { 'x-ms-client-request-id': id, ...extra } });

describe('request log lines', () => {
  let v: Awaited<ReturnType<typeof setupVault>>;
  let callerId: string;
  beforeAll(async () => {
    v = await setupVault();
    callerId = JSON.parse(atob(v.token.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/'))).oid;
  });

  it('logs one JSON line per request with its correlation id, operation, vault, status, duration, caller and read-cache outcome', async () => {
    const ids = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()];
    expect(
      (await call('PUT', `${v.origin}/secrets/logged?${API}`, { token: v.token, body: { value: 'v' }, ...withId(ids[0]!) }))
        .status,
    ).toBe(200);
    expect((await call('GET', `${v.origin}/secrets/logged?${API}`, { token: v.token, ...withId(ids[1]!) })).status).toBe(200);
    const second = await call('GET', `${v.origin}/secrets/logged?${API}`, { token: v.token, ...withId(ids[2]!) });
    expect(second.status).toBe(200);
    const requests = structured('request');
    for (const id of ids) expect(requests.filter((l) => l.correlationId === id)).toHaveLength(1);
    const [set, firstRead, secondRead] = ids.map((id) => requests.find((l) => l.correlationId === id)!);
    expect(set).toMatchObject({ operation: 'SecretSet', vault: v.vault, status: 200, callerId });
    expect(typeof set!.durationMs).toBe('number');
    // The first read after a write goes to D1; the next is served by this isolate's sealed copy.
    expect(firstRead).toMatchObject({ operation: 'SecretGet', status: 200, cache: 'miss', callerId });
    expect(secondRead).toMatchObject({ operation: 'SecretGet', status: 200, cache: 'hit' });
    // Our own request id, as sent back in x-ms-request-id.
    expect(secondRead!.requestId).toBe(second.headers.get('x-ms-request-id'));
  });

  it('counts bridge calls and errors, and logs refusals with their error code and no caller', async () => {
    const failed = crypto.randomUUID();
    const down = { BRIDGE_URL: 'http://127.0.0.1:9' };
    const res = await call('POST', `${v.origin}/keys/hsm-${failed.slice(0, 8)}/create?${API}`, {
      token: v.token,
      body: { kty: 'EC-HSM', crv: 'P-256' },
      env: down,
      ...withId(failed),
    });
    expect(res.status).toBe(503);
    const line = structured('request').find((l) => l.correlationId === failed)!;
    expect(line).toMatchObject({ operation: 'KeyCreate', status: 503, errorCode: 'ServiceUnavailable' });
    expect(line.bridgeCalls).toBeGreaterThanOrEqual(1);
    expect(line.bridgeErrors).toBe(line.bridgeCalls);

    const anonymous = crypto.randomUUID();
    expect((await call('GET', `${v.origin}/secrets/logged?${API}`, withId(anonymous))).status).toBe(401);
    expect(structured('request').find((l) => l.correlationId === anonymous)).toMatchObject({
      operation: 'Authentication',
      status: 401,
      callerId: null,
      vault: v.vault,
    });
  });

  it('logs requests no app serves too: an unknown host', async () => {
    const { points, dataset } = recordingDataset();
    expect((await call('GET', 'https://unknown-host.example.org/x', { env: { METRICS: dataset } })).status).toBe(404);
    expect(structured('request')).toEqual([
      expect.objectContaining({ operation: 'UnknownHost', status: 404, vault: null, callerId: null }),
    ]);
    expect(points).toEqual([expect.objectContaining({ blobs: ['request', 'UnknownHost', '', '', 'NotFound'] })]);
  });

  it('never logs a secret value, token, client secret, Authorization header, query secret or the Worker secrets', async () => {
    const canary = (name: string) => `canary-${name}-${crypto.randomUUID()}`;
    const secretValue = canary('value');
    const querySecret = canary('query');
    const wrongClientSecret = canary('client-secret');
    const forged = `eyJhbGciOiJSUzI1NiJ9.${btoa(canary('claims')).replace(/=/g, '')}.${canary('sig')}`;
    const { origin, token, creds, vault } = v;
    const fresh = await tokenFor(creds);

    await call('PUT', `${origin}/secrets/canary?${API}&sig=${querySecret}&client_secret=${querySecret}`, {
      token,
      body: { value: secretValue },
    });
    await call('GET', `${origin}/secrets/canary?${API}&code=${querySecret}`, { token: fresh });
    await call('GET', `${origin}/secrets/canary?${API}`, { token: forged });
    await call('GET', `${origin}/secrets/canary?${API}`, { headers: { authorization: `Basic ${btoa(`user:${querySecret}`)}` } });
    await call('POST', `${APEX}/${creds.tenantId}/oauth2/v2.0/token?client_secret=${querySecret}`, {
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: creds.clientId,
        client_secret: wrongClientSecret,
        scope: `${APEX}/.default`,
      }).toString(),
    });
    await call('POST', `${APEX}/management/bootstrap`, { headers: { authorization: `Bootstrap ${BOOTSTRAP_SECRET}` }, body: {} });
    // A software key's private part, imported and exported through backup.
    const d = canary('d').replace(/-/g, '');
    await call('PUT', `${origin}/keys/canary?${API}`, { token, body: { key: { kty: 'oct', k: btoa(d).replace(/=/g, '') } } });
    await call('POST', `${origin}/secrets/canary/backup?${API}`, { token });
    await call('GET', `${APEX}/healthz`, { token });

    const logged = lines.join('\n');
    expect(structured('request').length).toBeGreaterThanOrEqual(9);
    expect(logged).toContain(vault); // the capture works, and vault names are logged
    for (const [name, value] of Object.entries({
      secretValue,
      querySecret,
      wrongClientSecret,
      forged,
      forgedSignature: forged.split('.')[2]!,
      token,
      tokenSignature: token.split('.')[2]!,
      fresh,
      adminClientSecret: creds.clientSecret,
      bootstrapSecret: BOOTSTRAP_SECRET,
      bridgeSecret: env.BRIDGE_HMAC_SECRET,
      keyMaterial: d,
    })) {
      expect(logged.includes(value), `${name} in the log`).toBe(false);
    }
    expect(logged).not.toMatch(/authorization|bearer /i);
  });
});

describe('metrics (Analytics Engine data points)', () => {
  it('writes one request point: operation, vault, cache, error code; status, latency, bridge and cache counts', async () => {
    const { token, origin, vault } = await setupVault();
    expect((await call('PUT', `${origin}/secrets/m?${API}`, { token, body: { value: 'v' } })).status).toBe(200);
    const { points, dataset } = recordingDataset();
    expect((await call('GET', `${origin}/secrets/m?${API}`, { token, env: { METRICS: dataset } })).status).toBe(200);
    expect((await call('GET', `${origin}/secrets/m?${API}`, { token, env: { METRICS: dataset } })).status).toBe(200);
    expect((await call('GET', `${origin}/secrets/absent?${API}`, { token, env: { METRICS: dataset } })).status).toBe(404);
    expect(points).toHaveLength(3);
    const [miss, hit, notFound] = points;
    expect(miss).toMatchObject({ indexes: ['SecretGet'], blobs: ['request', 'SecretGet', vault, 'miss', ''] });
    expect(miss!.doubles!.slice(0, 1)).toEqual([200]);
    expect(miss!.doubles![1]).toBeGreaterThanOrEqual(0); // latency ms
    expect(miss!.doubles!.slice(2)).toEqual([expect.any(Number), 0, 0, 1]); // bridge calls, errors, cache hits, misses
    expect(hit).toMatchObject({ blobs: ['request', 'SecretGet', vault, 'hit', ''] });
    expect(hit!.doubles!.slice(4)).toEqual([1, 0]);
    expect(notFound).toMatchObject({ blobs: ['request', 'SecretGet', vault, 'miss', 'SecretNotFound'] });
    expect(notFound!.doubles![0]).toBe(404);
  });

  it('skips metrics without the binding, and a dataset that throws fails no request', async () => {
    expect((await call('GET', `${APEX}/healthz`, { env: { METRICS: undefined } })).status).toBe(200);
    const throwing = {
      writeDataPoint: () => {
        throw new Error('dataset unavailable');
      },
    } as unknown as AnalyticsEngineDataset;
    expect((await call('GET', `${APEX}/healthz`, { env: { METRICS: throwing } })).status).toBe(200);
  });

  it('writes a point and a log line per queue batch: messages, acked, retried, lag', async () => {
    const { points, dataset } = recordingDataset();
    // Bodies that are not vault events: the events consumer stores nothing and acknowledges all.
    const batch = batchOf([{ not: 'an event' }, { neither: true }], 'ekv-events');
    await consume(batch, { ...env, METRICS: dataset } as Env);
    expect(points).toHaveLength(1);
    expect(points[0]).toMatchObject({ indexes: ['queue:ekv-events'], blobs: ['queue', 'ekv-events', 'ok'] });
    expect(points[0]!.doubles!.slice(0, 3)).toEqual([2, 2, 0]);
    expect(points[0]!.doubles![3]).toBeGreaterThanOrEqual(0);
    expect(structured('queue')).toEqual([
      expect.objectContaining({
        queue: 'ekv-events',
        messages: 2,
        acked: 2,
        retried: 0,
        failed: false,
        maxLagMs: expect.any(Number),
      }),
    ]);
  });

  it('writes a point and a log line per cron job and run', async () => {
    const { points, dataset } = recordingDataset();
    const ctx = createExecutionContext();
    await worker.scheduled(
      createScheduledController({ cron: '*/5 * * * *', scheduledTime: Date.now() }),
      { ...env, METRICS: dataset } as Env,
      ctx,
    );
    await waitOnExecutionContext(ctx);
    const jobs = [
      'audit',
      'certificate-issuance',
      'certificate-renewal-scan',
      'expiry-notices',
      'kek-rewrap',
      'key-rotation',
      'purge-certificates',
      'purge-keys',
      'purge-secrets',
      'signing-keys',
    ];
    expect(points.map((p) => p.blobs![1]).sort()).toEqual(jobs);
    for (const p of points) {
      expect(p.blobs![0]).toBe('cron');
      expect(['ok', 'deferred']).toContain(p.blobs![2]);
      expect(p.doubles).toHaveLength(3);
    }
    expect(
      structured('cron')
        .map((l) => l.job)
        .sort(),
    ).toEqual(jobs);
    const rotation = structured('cron').find((l) => l.job === 'key-rotation')!;
    expect(rotation.counts).toEqual({ rotated: expect.any(Number), notified: expect.any(Number), failed: expect.any(Number) });
  });
});
