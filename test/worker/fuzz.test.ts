/**
 * Property-based fuzzing of every route both hosts serve (appRoutes(), so a new route is fuzzed
 * without a line here), in workerd with real local D1 and the real bridge. Generators are in
 * fuzz-arbitraries.ts. For every generated request:
 *  - the answer comes within a time limit and is never a 5xx;
 *  - an error is Azure-shaped ({"error":{"code","message"}}, code a non-empty string), or
 *    OAuth2-shaped from the token service (`/{tenant}/…`);
 *  - a refused request that could write (anything but GET) changed no row of the object tables
 *    (audit and event-delivery tables excepted: every request is audited).
 *
 * Each run uses a fixed seed and one random seed; FUZZ_SEED=<n> replays one seed and FUZZ_RUNS=<n>
 * sets the runs per seed (`npm run fuzz` runs longer).
 */
import fc from 'fast-check';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createExecutionContext, waitOnExecutionContext } from 'cloudflare:test';
import worker from '../../src/index';
import type { Env } from '../../src/core/env';
import { appRoutes } from '../../src/http/routes-list';
import { FIXTURE, fuzzRequest, type AuthKind, type FuzzContext, type FuzzRequest } from './fuzz-arbitraries';
import { API, APEX, BOOTSTRAP_SECRET, admin, call, env, json, newVault, tokenFor, vaultOrigin } from './helpers';
import { signWithVaultKey, validClaims } from './identity-helpers';

const DEFAULT_SEED = 20261203;
// 15–25 ms a request with its snapshots (more as the tables grow): two seeds × 600 take about
// 30 s on a busy 2-core machine, plus the suite's start.
const RUNS = Number(env.FUZZ_RUNS) || 600;
const REQUEST_TIMEOUT_MS = 15_000;

/** Tables a request may legitimately write whatever its answer: the audit trail and event delivery. */
const UNWATCHED = /^(audit_|events$|d1_|_cf_|sqlite_)/;

let ctx: FuzzContext;
let tokens: Record<AuthKind, string | undefined>;
let watched: string[];
/** Answers by host and status: printed at the end, to see what the generators reach. */
const tally = new Map<string, number>();
/** The last requests sent: a failure can depend on what came before (state, connections). */
const recent: string[] = [];

beforeAll(async () => {
  const creds = await admin();
  const adminToken = await tokenFor(creds);
  const vault = await newVault(adminToken);
  const origin = vaultOrigin(vault);
  const setup = async (method: string, url: string, body: unknown) => {
    const res = await call(method, url, { token: adminToken, body });
    if (res.status >= 300) throw new Error(`fuzz setup ${method} ${url}: ${res.status} ${await res.text()}`);
    return json(res);
  };
  await setup('PUT', `${origin}/secrets/${FIXTURE.secret}?${API}`, { value: 'fuzz fixture' });
  await setup('POST', `${origin}/keys/${FIXTURE.key}/create?${API}`, { kty: 'EC', crv: 'P-256' });
  await setup('POST', `${origin}/keys/${FIXTURE.rsa}/create?${API}`, { kty: 'RSA', key_size: 2048 });
  await setup('POST', `${origin}/keys/${FIXTURE.hsm}/create?${API}`, { kty: 'EC-HSM', crv: 'P-256' });
  const app = await setup('POST', `${APEX}/management/applications`, { displayName: 'fuzz: no rights' });
  const powerless = { tenantId: creds.tenantId, clientId: app.clientId, clientSecret: app.clientSecret };
  ctx = { vault, tenantId: creds.tenantId, client: powerless };

  const adminOid = String(decodeJwt(adminToken).oid);
  const claims = validClaims(creds, adminOid);
  tokens = {
    none: undefined,
    malformed: 'Bearer',
    basic: `Basic ${btoa(`${powerless.clientId}:${powerless.clientSecret}`)}`,
    bootstrap: `Bootstrap ${BOOTSTRAP_SECRET}`,
    garbageJwt: 'Bearer eyJhbGciOiJub25lIn0.eyJhdWQiOiJ4In0.',
    expired: `Bearer ${await signWithVaultKey({ ...claims, iat: 1_000_000, nbf: 1_000_000, exp: 1_000_100 })}`,
    wrongAudience: `Bearer ${await signWithVaultKey({ ...claims, aud: 'https://elsewhere.example' })}`,
    powerless: `Bearer ${await tokenFor(powerless)}`,
    admin: `Bearer ${adminToken}`,
  };
  const tables = await env.DB.prepare(`select name from sqlite_master where type = 'table' order by name`).all<{
    name: string;
  }>();
  watched = tables.results.map((t) => t.name).filter((t) => !UNWATCHED.test(t));
}, 60_000);

/**
 * The audit consumer moves role_assignments.last_used_at forward whenever a queued batch of
 * earlier requests lands, which can be during any later request: not a write of that request.
 */
function withoutBookkeeping(row: unknown): unknown {
  const { last_used_at: _, ...rest } = row as Record<string, unknown>;
  return rest;
}

/** Every row of every watched table, one string per table: equal before and after means nothing was written. */
async function snapshot(): Promise<Record<string, string>> {
  const results = await env.DB.batch(watched.map((t) => env.DB.prepare(`select * from "${t}" order by rowid`)));
  return Object.fromEntries(results.map((r, i) => [watched[i]!, JSON.stringify(r.results.map(withoutBookkeeping))]));
}

/** The tables whose rows changed, each with its rows that appeared (+) or went (-). */
function changes(before: Record<string, string>, after: Record<string, string>): string[] {
  const out: string[] = [];
  for (const table of watched) {
    if (before[table] === after[table]) continue;
    const was = new Set((JSON.parse(before[table]!) as unknown[]).map((row) => JSON.stringify(row)));
    const now = new Set((JSON.parse(after[table]!) as unknown[]).map((row) => JSON.stringify(row)));
    const diff = [
      ...[...now].filter((r) => !was.has(r)).map((r) => `+ ${r}`),
      ...[...was].filter((r) => !now.has(r)).map((r) => `- ${r}`),
    ];
    out.push(`${table}: ${diff.join(' ').slice(0, 600)}`);
  }
  return out;
}

function describeRequest(r: FuzzRequest): string {
  return `${r.method} ${r.route.host === 'apex' ? APEX : vaultOrigin(ctx.vault)}${r.target} (route ${r.route.method} ${r.route.path}; auth ${r.auth}; content-type ${r.contentType}; body ${r.bodyKind}${r.body && r.body.length < 300 ? ` ${JSON.stringify(new TextDecoder().decode(r.body))}` : ''})`;
}

async function send(r: FuzzRequest): Promise<{ status: number; contentType: string; text: string }> {
  const origin = r.route.host === 'apex' ? APEX : vaultOrigin(ctx.vault);
  const headers = new Headers();
  const authorization = tokens[r.auth];
  if (authorization) headers.set('authorization', authorization);
  if (r.contentType !== undefined) headers.set('content-type', r.contentType);
  const exec = createExecutionContext();
  const run = (async () => {
    const res = await worker.fetch(
      new Request(`${origin}${r.target}`, { method: r.method, headers, body: r.body }) as never,
      env as Env,
      exec,
    );
    const text = await res.text();
    await waitOnExecutionContext(exec);
    return { status: res.status, contentType: res.headers.get('content-type') ?? '', text };
  })();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)), REQUEST_TIMEOUT_MS);
  });
  try {
    return await Promise.race([run, timeout]);
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}

function parse(text: string): any {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The properties every answer must have. Throws (with the request described) when one fails. */
async function check(r: FuzzRequest): Promise<void> {
  const writes = r.method !== 'GET';
  const before = writes ? await snapshot() : {};
  const res = await send(r);
  recent.push(`${describeRequest(r)} → ${res.status}`);
  if (recent.length > 4) recent.shift();
  const key = `${r.route.host === 'apex' ? 'apex' : 'vault'} ${res.status}`;
  tally.set(key, (tally.get(key) ?? 0) + 1);
  const where = `${describeRequest(r)} → ${res.status} ${res.text.slice(0, 300)}`;
  expect(res.status, `no 5xx: ${where}`).toBeLessThan(500);
  if (res.status >= 400) {
    expect(res.contentType, `JSON error: ${where}`).toMatch(/^application\/json/);
    const body = parse(res.text);
    // The token service (discovery, JWKS, token) answers as Entra does: OAuth2-shaped errors.
    const oauth = r.route.path.startsWith('/:tenant/') && typeof body?.error === 'string';
    if (oauth) {
      expect(body.error.length, `OAuth2 error: ${where}`).toBeGreaterThan(0);
      expect(typeof body.error_description, `OAuth2 error_description: ${where}`).toBe('string');
    } else {
      expect(typeof body?.error?.code, `Azure error code: ${where}`).toBe('string');
      expect(body.error.code.length, `Azure error code: ${where}`).toBeGreaterThan(0);
      expect(typeof body.error.message, `Azure error message: ${where}`).toBe('string');
    }
    if (writes) expect(changes(before, await snapshot()), `a refused request wrote: ${where}`).toEqual([]);
  } else if (/^application\/json/.test(res.contentType)) {
    expect(parse(res.text), `valid JSON: ${where}`).not.toBe(undefined);
  }
}

afterAll(() => {
  console.log(
    `fuzz answers: ${[...tally]
      .sort()
      .map(([k, n]) => `${k}: ${n}`)
      .join(', ')}`,
  );
});

function seeds(): number[] {
  if (env.FUZZ_SEED) return [Number(env.FUZZ_SEED)];
  return [DEFAULT_SEED, (Math.random() * 2 ** 31) | 0];
}

describe('fuzz: every route of both hosts', () => {
  it('lists routes of both hosts', () => {
    const routes = appRoutes();
    expect(routes.some((r) => r.host === 'apex')).toBe(true);
    expect(routes.some((r) => r.host === 'vault')).toBe(true);
  });

  for (const seed of seeds()) {
    it(`holds its properties for ${RUNS} generated requests (seed ${seed})`, async () => {
      try {
        await fc.assert(
          fc.asyncProperty(fuzzRequest(appRoutes(), ctx), (r) => check(r)),
          { seed, numRuns: RUNS, endOnFailure: true },
        );
      } catch (err) {
        // Shrinking is off (endOnFailure): it would replay writes against a changed database.
        throw new Error(
          `fuzz failure with seed ${seed}; replay: FUZZ_SEED=${seed} npx vitest run --project worker test/worker/fuzz.test.ts\n${err instanceof Error ? err.message : String(err)}${err instanceof Error && err.cause instanceof Error ? `\nCause: ${err.cause.message}` : ''}\nLast requests:\n${recent.join('\n')}`,
        );
      }
    }, 600_000);
  }
});
