/**
 * The audit query API: GET /auditEvents on each vault (data action auditEvents/read/action, held
 * by Key Vault Administrator and Key Vault Auditor), GET /management/auditEvents and
 * /management/vaults/{name}/auditEvents for the deployment's administrators; filters, paging,
 * NDJSON export.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { ChainListing } from '../../src/audit/chains';
import { DEPLOYMENT_CHAIN } from '../../src/audit/event';
import { EXPORT_MAX } from '../../src/audit/query';
import type { AuditRecord } from '../../src/audit/record';
import { BuiltInRoleIds } from '../../src/access/roles';
import { auditEvent, batchOf, consume, persisted, recordOf, rowOfEvent, type StoredRecord } from './audit-helpers';
import { API, APEX, admin, call, json, newVault, tokenFor, vaultOrigin } from './helpers';
import { rows } from './identity-helpers';

type Creds = { tenantId: string; clientId: string; clientSecret: string };
type App = Creds & { objectId: string; token: string };
const AUTH = 'providers/Microsoft.Authorization';
const defId = (guid: string) => `/providers/Microsoft.Authorization/roleDefinitions/${guid}`;

let adminCreds: Creds;
let adminToken: string;

beforeAll(async () => {
  adminCreds = await admin();
  adminToken = await tokenFor(adminCreds);
});

async function newApp(displayName = 'audit query app'): Promise<App> {
  const res = await call('POST', `${APEX}/management/applications`, { token: adminToken, body: { displayName } });
  expect(res.status).toBe(201);
  const body = await json(res);
  const creds = { tenantId: adminCreds.tenantId, clientId: body.clientId, clientSecret: body.clientSecret };
  return { ...creds, objectId: body.objectId, token: await tokenFor(creds) };
}

async function grant(vault: string, principalId: string, roleId: string, scope = '/') {
  const res = await call(
    'PUT',
    `${APEX}/management/vaults/${vault}/${AUTH}/roleAssignments/${crypto.randomUUID()}?scope=${encodeURIComponent(scope)}`,
    {
      token: adminToken,
      body: { properties: { roleDefinitionId: defId(roleId), principalId } },
    },
  );
  expect(res.status, await res.clone().text()).toBe(201);
}

const eventsUrl = (vault: string, query = '') => `${vaultOrigin(vault)}/auditEvents?${API}${query ? `&${query}` : ''}`;

/** The body as text (workerd warns on .text() for a content type it does not know as text). */
const ndjson = async (res: Response) => new TextDecoder().decode(await res.arrayBuffer());

async function expectRbacRefusal(res: Response) {
  const text = await res.text();
  expect(res.status, text).toBe(403);
  expect(JSON.parse(text).error).toMatchObject({ code: 'Forbidden', innererror: { code: 'ForbiddenByRbac' } });
}

async function expectBadParameter(res: Response) {
  const text = await res.text();
  expect(res.status, text).toBe(400);
  expect(JSON.parse(text).error.code).toBe('BadParameter');
}

// Synthetic history, far in the past so that live requests (and the queries' own records, which
// join the same chain) never fall inside the windows the filter tests read.
const T0 = Date.parse('2021-03-01T00:00:00Z');
const WINDOW = 'to=2022-01-01T00:00:00Z';

describe('GET /auditEvents on a vault', () => {
  let vault: string;
  let other: string;
  let auditor: App;
  const alice = { tid: '', oid: crypto.randomUUID(), appid: crypto.randomUUID() };
  const bob = { tid: '', oid: crypto.randomUUID(), appid: crypto.randomUUID() };
  const vaultIds = new Map<string, string>();

  beforeAll(async () => {
    vault = await newVault(adminToken);
    other = await newVault(adminToken);
    auditor = await newApp('auditor');
    await grant(vault, auditor.objectId, BuiltInRoleIds.auditor);
    await grant(other, auditor.objectId, BuiltInRoleIds.auditor);
    alice.tid = bob.tid = adminCreds.tenantId;
    // The middleware queues the vault's id with each event: the chain is the vault's by id.
    for (const name of [vault, other])
      vaultIds.set(name, (await rows<{ id: string }>('select id from vaults where name = ?', name))[0]!.id);
    // 30 records an hour apart: SecretGet by alice (x, X), SecretSet by bob, a 403 and a 404.
    const events = Array.from({ length: 30 }, (_, i) => {
      const kind = i % 5;
      return auditEvent({
        vault,
        vaultId: vaultIds.get(vault),
        tenantId: adminCreds.tenantId,
        time: T0 + i * 3_600_000,
        operation: kind === 1 ? 'SecretSet' : kind === 4 ? 'KeySign' : 'SecretGet',
        caller: kind === 1 ? bob : alice,
        objectId: kind === 0 ? '/secrets/x' : kind === 2 ? '/secrets/X' : kind === 4 ? '/keys/k' : '/secrets/y',
        status: kind === 3 ? 403 : kind === 4 ? 404 : 200,
        errorCode: kind === 3 ? 'ForbiddenByRbac' : kind === 4 ? 'KeyNotFound' : null,
        authorization: null,
      });
    });
    // The other vault's chain: records that must never show up in this vault's answers.
    const foreign = Array.from({ length: 3 }, (_, i) =>
      auditEvent({ vault: other, vaultId: vaultIds.get(other), time: T0 + i * 1000, caller: alice }),
    );
    expect((await consume(batchOf([...events, ...foreign]))).ackedIds.size).toBe(33);
  });

  async function all(token: string, query: string): Promise<AuditRecord[]> {
    const out: AuditRecord[] = [];
    let url: string | null = eventsUrl(vault, query);
    for (let pages = 0; url; pages++) {
      expect(pages).toBeLessThan(50);
      const res = await call('GET', url, { token });
      expect(res.status, await res.clone().text()).toBe(200);
      const body = await json(res);
      out.push(...body.value);
      url = body.nextLink;
    }
    return out;
  }

  it('lets Key Vault Auditor read the trail, in chain order, paged by 25 with an opaque $skiptoken', async () => {
    const res = await call('GET', eventsUrl(vault, WINDOW), { token: auditor.token });
    expect(res.status).toBe(200);
    const page = await json(res);
    expect(page.value).toHaveLength(25);
    expect(page.nextLink).toMatch(new RegExp(`^${vaultOrigin(vault)}/auditEvents\\?`));
    const next = new URL(page.nextLink);
    expect(next.searchParams.get('api-version')).toBe('7.6');
    expect(next.searchParams.get('to')).toBe('2022-01-01T00:00:00Z');
    expect(next.searchParams.get('$skiptoken')).toBeTruthy();
    const rest = await json(await call('GET', page.nextLink, { token: auditor.token }));
    expect(rest.value).toHaveLength(5);
    expect(rest.nextLink).toBeNull();

    const records: AuditRecord[] = [...page.value, ...rest.value];
    const seqs = records.map((r) => r.sequence);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(records.map((r) => r.eventId)).size).toBe(30);
    for (const r of records) {
      expect(r.chain).toBe(`vault:${vaultIds.get(vault)}`);
      expect(r.category).toBe('AuditEvent');
    }
    // The records served are the stored ones, verbatim.
    const stored = await rows<StoredRecord>(
      'select * from audit_records where chain = ? and time < ? order by seq',
      `vault:${vaultIds.get(vault)}`,
      Date.parse('2022-01-01'),
    );
    expect(records).toEqual(stored.map(recordOf));
  });

  it('pages by maxresults (1-25) without skipping or repeating a record', async () => {
    const bySeven: AuditRecord[] = [];
    let url: string | null = eventsUrl(vault, `${WINDOW}&maxresults=7`);
    while (url) {
      const body: { value: AuditRecord[]; nextLink: string | null } = await json(
        await call('GET', url, { token: auditor.token }),
      );
      expect(body.value.length).toBeLessThanOrEqual(7);
      bySeven.push(...body.value);
      url = body.nextLink;
    }
    expect(bySeven).toEqual(await all(auditor.token, WINDOW));
    for (const bad of ['0', '26', 'x', '1.5', '-1'])
      await expectBadParameter(await call('GET', eventsUrl(vault, `maxresults=${bad}`), { token: auditor.token }));
    await expectBadParameter(await call('GET', eventsUrl(vault, '$skiptoken=not-a-token'), { token: auditor.token }));
  });

  it('filters by time range (ISO 8601 or Unix seconds; from inclusive, to exclusive)', async () => {
    const from = T0 + 10 * 3_600_000;
    const to = T0 + 20 * 3_600_000;
    const iso = await all(auditor.token, `from=${new Date(from).toISOString()}&to=${new Date(to).toISOString()}`);
    expect(iso).toHaveLength(10);
    for (const r of iso) expect(Date.parse(r.time) >= from && Date.parse(r.time) < to).toBe(true);
    const unix = await all(auditor.token, `from=${from / 1000}&to=${to / 1000}`);
    expect(unix).toEqual(iso);
    expect(await all(auditor.token, `from=2021-03-01&${WINDOW}`)).toHaveLength(30);
    expect(await all(auditor.token, `from=2031-01-01T00:00:00Z`)).toHaveLength(0);
  });

  it('filters by operation (exact, or a comma list), caller (appid or oid), objectId (without case), result and status', async () => {
    const gets = await all(auditor.token, `${WINDOW}&operation=SecretGet`);
    expect(gets).toHaveLength(18);
    for (const r of gets) expect(r.operationName).toBe('SecretGet');
    expect(await all(auditor.token, `${WINDOW}&operation=secretget`)).toHaveLength(0);
    expect(await all(auditor.token, `${WINDOW}&operation=SecretSet,KeySign`)).toHaveLength(12);
    expect(await all(auditor.token, `${WINDOW}&operation=SecretSet&operation=KeySign`)).toHaveLength(12);

    const byBobApp = await all(auditor.token, `${WINDOW}&caller=${bob.appid}`);
    expect(byBobApp).toHaveLength(6);
    for (const r of byBobApp) expect(r.identity?.claim.appid).toBe(bob.appid);
    expect(await all(auditor.token, `${WINDOW}&caller=${bob.oid}`)).toEqual(byBobApp);
    expect(await all(auditor.token, `${WINDOW}&caller=${alice.oid}`)).toHaveLength(24);

    const x = await all(auditor.token, `${WINDOW}&objectId=/secrets/x`);
    expect(x).toHaveLength(12);
    expect(await all(auditor.token, `${WINDOW}&objectId=${encodeURIComponent('/SECRETS/X/')}`)).toEqual(x);
    expect(await all(auditor.token, `${WINDOW}&objectId=${encodeURIComponent(`${vaultOrigin(vault)}/secrets/x`)}`)).toEqual(x);

    const denied = await all(auditor.token, `${WINDOW}&result=denied`);
    expect(denied).toHaveLength(6);
    for (const r of denied) expect(r.properties.httpStatusCode).toBe(403);
    expect(await all(auditor.token, `${WINDOW}&result=failed`)).toHaveLength(6);
    expect(await all(auditor.token, `${WINDOW}&result=denied,failed`)).toHaveLength(12);
    expect(await all(auditor.token, `${WINDOW}&result=success`)).toHaveLength(18);
    expect(await all(auditor.token, `${WINDOW}&status=404`)).toHaveLength(6);
    expect(await all(auditor.token, `${WINDOW}&status=403,404`)).toHaveLength(12);

    // Together: every filter narrows.
    const both = await all(
      auditor.token,
      `${WINDOW}&operation=SecretGet&caller=${alice.appid}&objectId=/secrets/y&result=denied`,
    );
    expect(both).toHaveLength(6);
  });

  it('refuses filters it does not understand (400 BadParameter) instead of ignoring them', async () => {
    for (const q of [
      'from=yesterday',
      'to=2021-13-45T00:00:00Z',
      'from=2022-01-01&to=2021-01-01',
      'operation=Secret%20Get',
      'operation=',
      'caller=a%20b',
      'objectId=secrets/x',
      'result=ok',
      'status=99',
      'status=abc',
      'format=xml',
      'operationName=SecretGet',
      'from=1&from=2',
    ]) {
      await expectBadParameter(await call('GET', eventsUrl(vault, q), { token: auditor.token }));
    }
  });

  it("answers only from the vault's own chain", async () => {
    const mine = await all(auditor.token, WINDOW);
    expect(mine.every((r) => r.chain === `vault:${vaultIds.get(vault)}`)).toBe(true);
    const theirs = await json(await call('GET', `${vaultOrigin(other)}/auditEvents?${API}&${WINDOW}`, { token: auditor.token }));
    expect(theirs.value).toHaveLength(3);
    expect(theirs.value.every((r: AuditRecord) => r.chain === `vault:${vaultIds.get(other)}`)).toBe(true);
  });

  it('exports every matching record as NDJSON, one canonical record a line, beyond 25', async () => {
    const stored = await rows<StoredRecord>(
      'select * from audit_records where chain = ? and time < ? order by seq',
      `vault:${vaultIds.get(vault)}`,
      Date.parse('2022-01-01'),
    );
    for (const opts of [
      { url: eventsUrl(vault, `${WINDOW}&format=ndjson`), headers: {} as Record<string, string> },
      { url: eventsUrl(vault, WINDOW), headers: { accept: 'application/x-ndjson' } },
    ]) {
      const res = await call('GET', opts.url, { token: auditor.token, headers: opts.headers });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^application\/x-ndjson/);
      expect(res.headers.get('x-ms-continuation')).toBeNull();
      expect(Number(res.headers.get('x-ekv-audit-through-sequence'))).toBeGreaterThanOrEqual(30);
      const text = await ndjson(res);
      expect(text.endsWith('\n')).toBe(true);
      const lines = text.slice(0, -1).split('\n');
      expect(lines).toHaveLength(30);
      // Byte for byte what the chain hashed.
      expect(lines).toEqual(stored.map((r) => r.canonical));
    }
    const filtered = await ndjson(
      await call('GET', eventsUrl(vault, `${WINDOW}&format=ndjson&operation=KeySign`), { token: auditor.token }),
    );
    expect(filtered.trim().split('\n')).toHaveLength(6);
    const none = await call('GET', eventsUrl(vault, `from=2031-01-01&format=ndjson`), { token: auditor.token });
    expect(await ndjson(none)).toBe('');
  });

  it('stops an export at maxresults (at most 100,000) and says how to continue', async () => {
    expect(EXPORT_MAX).toBe(100_000);
    await expectBadParameter(
      await call('GET', eventsUrl(vault, `format=ndjson&maxresults=${EXPORT_MAX + 1}`), { token: auditor.token }),
    );
    const lines: string[] = [];
    let url: string | null = eventsUrl(vault, `${WINDOW}&format=ndjson&maxresults=12`);
    let requests = 0;
    while (url) {
      const res = await call('GET', url, { token: auditor.token });
      expect(res.status).toBe(200);
      const text = await ndjson(res);
      const got = text === '' ? [] : text.slice(0, -1).split('\n');
      expect(got.length).toBeLessThanOrEqual(12);
      lines.push(...got);
      const link = res.headers.get('link');
      const token = res.headers.get('x-ms-continuation');
      if (requests < 2) {
        expect(token).toBeTruthy();
        expect(link).toMatch(/^<https:\/\/.+>; rel="next"$/);
      }
      url = link ? /^<([^>]+)>/.exec(link)![1]! : null;
      if (url) expect(new URL(url).searchParams.get('$skiptoken')).toBe(token);
      requests++;
    }
    expect(requests).toBe(3);
    expect(lines).toHaveLength(30);
    expect(lines.map((l) => JSON.parse(l).sequence)).toEqual((await all(auditor.token, WINDOW)).map((r) => r.sequence));
  });

  it('records the queries themselves: AuditEventList, AuditEventExport', async () => {
    const id1 = crypto.randomUUID();
    const id2 = crypto.randomUUID();
    expect(
      (
        await call('GET', eventsUrl(vault, 'operation=SecretGet'), {
          token: auditor.token,
          headers: { 'x-ms-client-request-id': id1 },
        })
      ).status,
    ).toBe(200);
    const exp = await call('GET', eventsUrl(vault, 'format=ndjson&maxresults=1'), {
      token: auditor.token,
      headers: { 'x-ms-client-request-id': id2 },
    });
    await ndjson(exp);
    const [list] = await persisted(id1);
    const [exported] = await persisted(id2);
    expect(list).toMatchObject({
      chain: `vault:${vaultIds.get(vault)}`,
      operation: 'AuditEventList',
      status: 200,
      caller_appid: auditor.clientId,
    });
    expect(exported).toMatchObject({
      chain: `vault:${vaultIds.get(vault)}`,
      operation: 'AuditEventExport',
      status: 200,
      caller_appid: auditor.clientId,
    });
    expect(recordOf(list!).properties.isRbacAuthorized).toBe(true);
  });
});

describe('who may read the trail', () => {
  let vault: string;

  beforeAll(async () => {
    vault = await newVault(adminToken);
    const res = await call('PUT', `${vaultOrigin(vault)}/secrets/s?${API}`, {
      token: adminToken,
      body: { value: 'auditor-must-not-read-this' },
    });
    expect(res.status).toBe(200);
  });

  it('Key Vault Auditor: the trail and its export, and 403 on secrets and keys', async () => {
    const auditor = await newApp('only an auditor');
    await grant(vault, auditor.objectId, BuiltInRoleIds.auditor);
    expect((await call('GET', eventsUrl(vault), { token: auditor.token })).status).toBe(200);
    expect((await call('GET', eventsUrl(vault, 'format=ndjson'), { token: auditor.token })).status).toBe(200);
    await expectRbacRefusal(await call('GET', `${vaultOrigin(vault)}/secrets/s?${API}`, { token: auditor.token }));
    await expectRbacRefusal(await call('GET', `${vaultOrigin(vault)}/secrets?${API}`, { token: auditor.token }));
    await expectRbacRefusal(
      await call('PUT', `${vaultOrigin(vault)}/secrets/s?${API}`, { token: auditor.token, body: { value: 'x' } }),
    );
    await expectRbacRefusal(await call('GET', `${vaultOrigin(vault)}/keys?${API}`, { token: auditor.token }));
    await expectRbacRefusal(
      await call('POST', `${vaultOrigin(vault)}/keys/k/create?${API}`, { token: auditor.token, body: { kty: 'EC' } }),
    );
    // Who holds which role: part of an access review.
    expect(
      (await call('GET', `${vaultOrigin(vault)}//${AUTH}/roleAssignments?api-version=7.4`, { token: auditor.token })).status,
    ).toBe(200);
  });

  it("Key Vault Administrator (the vault's creator) may read the trail", async () => {
    expect((await call('GET', eventsUrl(vault), { token: adminToken })).status).toBe(200);
    const admin2 = await newApp('a vault administrator');
    await grant(vault, admin2.objectId, BuiltInRoleIds.administrator);
    expect((await call('GET', eventsUrl(vault, 'format=ndjson'), { token: admin2.token })).status).toBe(200);
  });

  it('Key Vault Reader, Secrets Officer, and a collection-scoped Auditor may not (403 ForbiddenByRbac)', async () => {
    for (const role of [
      BuiltInRoleIds.reader,
      BuiltInRoleIds.secretsOfficer,
      BuiltInRoleIds.cryptoOfficer,
      BuiltInRoleIds.dataAccessAdministrator,
    ]) {
      const app = await newApp();
      await grant(vault, app.objectId, role);
      await expectRbacRefusal(await call('GET', eventsUrl(vault), { token: app.token }));
      await expectRbacRefusal(await call('GET', eventsUrl(vault, 'format=ndjson'), { token: app.token }));
    }
    const scoped = await newApp();
    await grant(vault, scoped.objectId, BuiltInRoleIds.auditor, '/secrets');
    await expectRbacRefusal(await call('GET', eventsUrl(vault), { token: scoped.token }));
  });

  it("an auditor of one vault reads no other vault's trail", async () => {
    const auditor = await newApp();
    await grant(vault, auditor.objectId, BuiltInRoleIds.auditor);
    const elsewhere = await newVault(adminToken);
    await expectRbacRefusal(await call('GET', eventsUrl(elsewhere), { token: auditor.token }));
  });

  it('challenges an anonymous caller before looking at any filter', async () => {
    const res = await call('GET', eventsUrl(vault, 'from=nonsense'));
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer /);
  });
});

describe("the deployment's chain and any vault's, for administrators", () => {
  it('GET /management/auditEvents reads the deployment chain only; non-administrators get 403', async () => {
    const id = crypto.randomUUID();
    // A request to the apex: recorded in the deployment chain.
    await call('GET', `${APEX}/management/vaults/does-not-exist-${Date.now()}`, {
      token: adminToken,
      headers: { 'x-ms-client-request-id': id },
    });
    const [row] = await persisted(id);
    expect(row!.chain).toBe(DEPLOYMENT_CHAIN);
    const res = await call(
      'GET',
      `${APEX}/management/auditEvents?caller=${adminCreds.clientId}&operation=VaultGet&from=${Math.floor(row!.time / 1000)}`,
      {
        token: adminToken,
      },
    );
    expect(res.status, await res.clone().text()).toBe(200);
    const body = await json(res);
    expect(body.value.some((r: AuditRecord) => r.correlationId === id)).toBe(true);
    expect(body.value.every((r: AuditRecord) => r.chain === DEPLOYMENT_CHAIN)).toBe(true);

    const exported = await call(
      'GET',
      `${APEX}/management/auditEvents?format=ndjson&operation=VaultGet&from=${Math.floor(row!.time / 1000)}`,
      { token: adminToken },
    );
    expect(exported.status).toBe(200);
    expect(
      (await ndjson(exported))
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l).correlationId),
    ).toContain(id);

    const user = await newApp('not an administrator');
    const refused = await call('GET', `${APEX}/management/auditEvents`, { token: user.token });
    expect(refused.status).toBe(403);
    expect((await call('GET', `${APEX}/management/auditEvents`)).status).toBe(401);
    await expectBadParameter(await call('GET', `${APEX}/management/auditEvents?result=nope`, { token: adminToken }));
    await expectBadParameter(await call('GET', `${APEX}/management/auditEvents?api-version=1999-01-01`, { token: adminToken }));
  });

  it("GET /management/vaults/{name}/auditEvents reads a vault's chain, access-policy vaults included", async () => {
    const vault = await newVault(adminToken, { enableRbacAuthorization: false });
    const vaultId = (await rows<{ id: string }>('select id from vaults where name = ?', vault))[0]!.id;
    expect((await consume(batchOf([auditEvent({ vault, vaultId, time: T0 })]))).ackedIds.size).toBe(1);
    const res = await call('GET', `${APEX}/management/vaults/${vault}/auditEvents?${WINDOW}`, { token: adminToken });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.value).toHaveLength(1);
    expect(body.value[0].chain).toBe(`vault:${vaultId}`);
    expect(
      (await call('GET', `${APEX}/management/vaults/nosuchvault${Date.now()}/auditEvents`, { token: adminToken })).status,
    ).toBe(404);
  });
});

describe("a vault re-created under a deleted vault's name", () => {
  /** Runs a request through the real middleware, then the real consumer; answers its event ids. */
  async function audited(method: string, url: string, opts: { token?: string; body?: unknown } = {}): Promise<string[]> {
    const events: unknown[] = [];
    const queue = { send: async (body: unknown) => void events.push(structuredClone(body)) } as unknown as Queue;
    const res = await call(method, url, { ...opts, env: { AUDIT_QUEUE: queue } as never });
    expect(res.status, await res.clone().text()).toBeLessThan(300);
    expect((await consume(batchOf(events))).ackedIds.size).toBe(events.length);
    return events.map((e) => (e as { id: string }).id);
  }
  const idOf = async (name: string) => (await rows<{ id: string }>('select id from vaults where name = ?', name))[0]!.id;

  it('starts a trail of its own: its Auditor sees only its records, and the old trail stays verifiable by administrators', async () => {
    const name = await newVault(adminToken);
    const oldId = await idOf(name);
    const oldEvents = await audited('PUT', `${vaultOrigin(name)}/secrets/before-deletion?${API}`, {
      token: adminToken,
      body: { value: 'v' },
    });
    expect((await call('DELETE', `${APEX}/management/vaults/${name}`, { token: adminToken })).status).toBe(204);
    expect((await call('PUT', `${APEX}/management/vaults/${name}`, { token: adminToken, body: {} })).status).toBe(201);
    const newId = await idOf(name);
    expect(newId).not.toBe(oldId);
    const auditor = await newApp('auditor of the new vault');
    await grant(name, auditor.objectId, BuiltInRoleIds.auditor);
    const newEvents = await audited('PUT', `${vaultOrigin(name)}/secrets/after-recreation?${API}`, {
      token: adminToken,
      body: { value: 'v' },
    });

    const listed = await call('GET', `${vaultOrigin(name)}/auditEvents?${API}&format=ndjson`, { token: auditor.token });
    expect(listed.status).toBe(200);
    const seen = (await ndjson(listed))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as AuditRecord);
    expect(seen.map((r) => r.eventId)).toEqual(expect.arrayContaining(newEvents));
    expect(seen.some((r) => oldEvents.includes(r.eventId))).toBe(false);
    expect(seen.every((r) => r.chain === `vault:${newId}`)).toBe(true);
    const verified = await json(await call('GET', `${vaultOrigin(name)}/audit/verify?${API}`, { token: adminToken }));
    expect(verified).toMatchObject({ chain: `vault:${newId}`, ok: true });

    // The deleted vault's chain: listed with its last known name, verifiable and exportable by id.
    const chains = (await json(await call('GET', `${APEX}/management/audit/chains`, { token: adminToken })))
      .value as ChainListing[];
    expect(chains.find((c) => c.vaultId === oldId)).toMatchObject({ chain: `vault:${oldId}`, vaultName: name, live: false });
    expect(chains.find((c) => c.vaultId === newId)).toMatchObject({ chain: `vault:${newId}`, vaultName: name, live: true });
    const old = await json(await call('GET', `${APEX}/management/audit/verify?chain=vault:${oldId}`, { token: adminToken }));
    expect(old).toMatchObject({ chain: `vault:${oldId}`, ok: true });
    expect(old.through).toBeGreaterThanOrEqual(oldEvents.length);
    const exported = await ndjson(
      await call('GET', `${APEX}/management/audit/chain?chain=vault:${oldId}`, { token: adminToken }),
    );
    expect(
      exported
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l).eventId),
    ).toEqual(expect.arrayContaining(oldEvents));
    // Not for anyone else, and not a chain that does not exist.
    expect((await call('GET', `${APEX}/management/audit/chains`, { token: auditor.token })).status).toBe(403);
    expect(
      (await call('GET', `${APEX}/management/audit/verify?chain=vault:${crypto.randomUUID()}`, { token: adminToken })).status,
    ).toBe(404);
  });

  it("keeps apex requests that looked a vault up in the deployment's chain, not the vault's", async () => {
    const name = await newVault(adminToken);
    const apex = auditEvent({ vault: null, vaultId: await idOf(name), operation: 'EventSubscriptionList' });
    expect((await consume(batchOf([apex]))).ackedIds.size).toBe(1);
    expect(await rowOfEvent(apex.id)).toMatchObject({ chain: DEPLOYMENT_CHAIN });
  });
});
