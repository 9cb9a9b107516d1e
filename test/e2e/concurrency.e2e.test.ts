/**
 * Many requests in flight at once on one isolate, over keep-alive connections as an SDK client
 * makes them. In workerd an I/O object belongs to the request that made it: a cache that lets one
 * request await another request's load in flight answers some of a cold burst with 500 ("Cannot
 * perform I/O on behalf of a different request"). This drives cold bursts (fresh vaults, and the
 * isolate's caches dropped) and warm runs of secret GETs and HSM signs, and checks that no answer
 * is a 5xx and that a cold burst still unwraps each data key a bounded number of times.
 */
import https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loopbackLookup } from '../../scripts/lib/https-client.js';
import {
  adminToken,
  b64url,
  createVault,
  managementRequest,
  stackInfo,
  uniqueName,
  vaultRequest,
  vaultUrl,
} from '../support/e2e.js';

const CONNECTIONS = 16;
const VAULTS = 6;
const SECRETS_PER_VAULT = 3;

interface Target {
  method: 'GET' | 'POST';
  url: URL;
  body?: string;
}

interface Tally {
  total: number;
  byStatus: Map<number, number>;
  /** A few 5xx answers, for the failure message. */
  failures: string[];
}

let token: string;
let agent: https.Agent;
const reads: Target[] = [];
const signs: Target[] = [];

/** Sends each target once, at most CONNECTIONS in flight, over the shared keep-alive agent. */
async function burst(targets: Target[]): Promise<Tally> {
  const tally: Tally = { total: 0, byStatus: new Map(), failures: [] };
  const { caPem } = stackInfo();
  let next = 0;
  const send = (t: Target) =>
    new Promise<void>((resolve, reject) => {
      const headers: Record<string, string> = { authorization: `Bearer ${token}` };
      if (t.body !== undefined) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = String(Buffer.byteLength(t.body));
      }
      const req = https.request(t.url, { agent, ca: caPem, lookup: loopbackLookup, method: t.method, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          tally.total++;
          tally.byStatus.set(status, (tally.byStatus.get(status) ?? 0) + 1);
          if (status >= 500 && tally.failures.length < 5) {
            tally.failures.push(
              `${t.method} ${t.url.pathname} ${status} ${Buffer.concat(chunks).toString('utf8').slice(0, 200)}`,
            );
          }
          resolve();
        });
      });
      req.setTimeout(30_000, () => req.destroy(new Error(`timeout: ${t.method} ${t.url.pathname}`)));
      req.on('error', reject);
      req.end(t.body);
    });
  const worker = async () => {
    while (next < targets.length) await send(targets[next++]!);
  };
  await Promise.all(Array.from({ length: CONNECTIONS }, worker));
  return tally;
}

const count = (tally: Tally, pred: (status: number) => boolean) =>
  [...tally.byStatus].filter(([s]) => pred(s)).reduce((n, [, c]) => n + c, 0);

function expectNoServerErrors(tally: Tally, what: string, expected: number[]) {
  const summary = JSON.stringify(Object.fromEntries(tally.byStatus));
  expect(
    count(tally, (s) => s >= 500),
    `${what}: ${summary}\n${tally.failures.join('\n')}`,
  ).toBe(0);
  expect(
    count(tally, (s) => !expected.includes(s)),
    `${what}: ${summary}`,
  ).toBe(0);
}

/** `n` targets drawn round-robin from `pool` (so concurrent requests ask for the same objects). */
const cycle = (pool: Target[], n: number) => Array.from({ length: n }, (_, i) => pool[i % pool.length]!);

async function stats(): Promise<{ bridgeCalls: number }> {
  const res = await managementRequest('/management/stats', { token });
  expect(res.status, res.text).toBe(200);
  return res.json<{ bridgeCalls: number }>();
}

/** Drops this (the only) isolate's caches: the next requests are all cold. */
async function dropCaches(): Promise<void> {
  const res = await managementRequest('/management/caches', { method: 'DELETE', token });
  expect(res.status, res.text).toBe(204);
}

/** A vault with a few secrets, whose caches (vault record, authorization data) are still cold. */
async function freshVault(): Promise<{ url: string; secrets: Target[] }> {
  const name = uniqueName('conc').toLowerCase().slice(0, 24);
  await createVault(name, {}, token);
  const url = vaultUrl(name);
  const secrets: Target[] = [];
  for (let i = 0; i < SECRETS_PER_VAULT; i++) {
    const res = await vaultRequest(`/secrets/s${i}`, { method: 'PUT', body: { value: `value-${i}` }, token, url });
    expect(res.status, res.text).toBe(200);
    secrets.push({ method: 'GET', url: new URL(`${url}/secrets/s${i}?api-version=7.6`) });
  }
  return { url, secrets };
}

describe('many requests in flight on one isolate', () => {
  beforeAll(async () => {
    token = await adminToken();
    agent = new https.Agent({ keepAlive: true, maxSockets: CONNECTIONS, ca: stackInfo().caPem, lookup: loopbackLookup });
    const hsm = uniqueName('conc-hsm');
    const created = await vaultRequest(`/keys/${hsm}/create`, { method: 'POST', body: { kty: 'EC-HSM', crv: 'P-256' }, token });
    expect(created.status, created.text).toBe(200);
    const kid = created.json<{ key: { kid: string } }>().key.kid;
    const digest = b64url(new Uint8Array(32).fill(7));
    signs.push({
      method: 'POST',
      url: new URL(`${kid}/sign?api-version=7.6`),
      body: JSON.stringify({ alg: 'ES256', value: digest }),
    });
    for (let v = 0; v < VAULTS; v++) reads.push(...(await freshVault()).secrets);
  }, 120_000);

  afterAll(() => agent?.destroy());

  it('answers a cold burst on fresh vaults without a 5xx', async () => {
    // Every vault's record and authorization data are loaded for the first time by this burst.
    const tally = await burst(cycle(reads, 150));
    expectNoServerErrors(tally, 'cold burst on fresh vaults', [200]);
    expect(tally.total).toBe(150);
  });

  it('answers cold bursts of mixed secret reads and HSM signs without a 5xx, unwrapping each data key a bounded number of times', async () => {
    const mixed = cycle(reads, 90).flatMap((t, i) => (i % 3 === 0 ? [t, signs[0]!] : [t]));
    for (let round = 0; round < 3; round++) {
      await dropCaches();
      const tally = await burst(mixed);
      expectNoServerErrors(tally, `cold round ${round}`, [200]);
    }
    // Reads only: the bridge calls are the unwraps. Each of the VAULTS data keys (and the token
    // signing key's) is unwrapped once, not once per request that wanted it.
    await dropCaches();
    const before = await stats();
    const tally = await burst(cycle(reads, 100));
    expectNoServerErrors(tally, 'cold reads', [200]);
    const unwraps = (await stats()).bridgeCalls - before.bridgeCalls;
    expect(unwraps).toBeGreaterThanOrEqual(VAULTS);
    expect(unwraps).toBeLessThanOrEqual(VAULTS + 1);
  });

  it('answers a warm run of mixed reads and signs without a 5xx and without unwrapping', async () => {
    await burst(cycle(reads, 20)); // warm
    const before = await stats();
    const tally = await burst(cycle(reads, 300));
    expectNoServerErrors(tally, 'warm reads', [200]);
    expect((await stats()).bridgeCalls - before.bridgeCalls).toBe(0);
    const withSigns = await burst(cycle(reads, 80).flatMap((t) => [t, signs[0]!]));
    expectNoServerErrors(withSigns, 'warm reads and signs', [200]);
  });
});
