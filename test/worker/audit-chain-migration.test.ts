/**
 * Migration 0012 (audit chains bound to vault ids) on chains made before it, named
 * 'vault:{name}': the statement that binds them is run here, as wrangler runs it, over chains
 * written by the real append code. A live vault keeps its old chain as its history; a chain that
 * also holds an earlier vault of the same name is not given to the live vault; a deleted vault's
 * chain stays with administrators. Its own file: the statement binds every chain in the database.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { BuiltInRoleIds } from '../../src/access/roles';
import { appendToChain } from '../../src/audit/chain';
import { buildRecord, type AuditRecord } from '../../src/audit/record';
import { database } from '../../src/storage/db';
import { auditEvent, freshVault } from './audit-helpers';
import { API, APEX, admin, call, env, json, newVault, tokenFor, vaultOrigin } from './helpers';
import { rows } from './identity-helpers';

type Creds = { tenantId: string; clientId: string; clientSecret: string };

let adminCreds: Creds;
let adminToken: string;

const vaultRow = async (name: string) =>
  (await rows<{ id: string; created_at: number }>('select id, created_at from vaults where name = ?', name))[0]!;

/** Records appended to a chain by the real append code, as the consumer wrote them before 0012. */
async function oldRecords(chain: string, vault: string, times: number[], status = 200): Promise<string[]> {
  const events = times.map((time) => auditEvent({ vault, time, status, tenantId: adminCreds.tenantId }));
  await appendToChain(
    database(env.DB),
    chain,
    events.map((e) => ({ eventId: e.id, time: e.time, build: (place) => buildRecord(e, place, null) })),
  );
  return events.map((e) => e.id);
}

/** The data statements of migration 0012, run the way wrangler applies it. */
async function runMigration0012(): Promise<void> {
  const migration = env.TEST_MIGRATIONS.find((m) => m.name.startsWith('0012_audit_chain_vaults'));
  expect(migration, 'migration 0012 is among the migrations').toBeDefined();
  for (const query of migration!.queries.filter((q) => /^\s*(--[^\n]*\n\s*)*INSERT/i.test(q))) await env.DB.prepare(query).run();
}

async function auditorOf(vault: string): Promise<string> {
  const res = await call('POST', `${APEX}/management/applications`, {
    token: adminToken,
    body: { displayName: 'migration auditor' },
  });
  expect(res.status).toBe(201);
  const app = await json(res);
  const granted = await call(
    'PUT',
    `${APEX}/management/vaults/${vault}/providers/Microsoft.Authorization/roleAssignments/${crypto.randomUUID()}?scope=%2F`,
    {
      token: adminToken,
      body: {
        properties: {
          roleDefinitionId: `/providers/Microsoft.Authorization/roleDefinitions/${BuiltInRoleIds.auditor}`,
          principalId: app.objectId,
        },
      },
    },
  );
  expect(granted.status, await granted.clone().text()).toBe(201);
  return tokenFor({ tenantId: adminCreds.tenantId, clientId: app.clientId, clientSecret: app.clientSecret });
}

const ndjsonIds = async (res: Response) =>
  new TextDecoder()
    .decode(await res.arrayBuffer())
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as AuditRecord).eventId);

describe('migration 0012 on chains named by vault name', () => {
  let kept: string;
  let keptEvents: string[];
  let recreated: string;
  let earlierEvents: string[];
  let deleted: string;
  let deletedEvents: string[];

  beforeAll(async () => {
    adminCreds = await admin();
    adminToken = await tokenFor(adminCreds);
    // A vault with its pre-0012 history; a vault re-created before 0012 whose name chain also holds
    // an earlier vault's successful requests; the chain of a vault deleted before 0012.
    kept = await newVault(adminToken);
    const keptCreated = (await vaultRow(kept)).created_at * 1000;
    keptEvents = await oldRecords(`vault:${kept}`, kept, [keptCreated + 1000, keptCreated + 2000]);
    recreated = await newVault(adminToken);
    const recreatedAt = (await vaultRow(recreated)).created_at * 1000;
    earlierEvents = await oldRecords(`vault:${recreated}`, recreated, [recreatedAt - 86_400_000, recreatedAt + 1000]);
    deleted = freshVault('gone');
    deletedEvents = await oldRecords(`vault:${deleted}`, deleted, [Date.now() - 86_400_000]);
    await runMigration0012();
  });

  it("binds a live vault's name chain to its id: its Auditor reads and verifies it as its trail", async () => {
    const { id } = await vaultRow(kept);
    expect(await rows('select vault_id, chain, vault_name from audit_chain_vaults where vault_id = ?', id)).toEqual([
      { vault_id: id, chain: `vault:${kept}`, vault_name: kept },
    ]);
    const token = await auditorOf(kept);
    const listed = await call('GET', `${vaultOrigin(kept)}/auditEvents?${API}&format=ndjson`, { token });
    expect(listed.status).toBe(200);
    expect(await ndjsonIds(listed)).toEqual(expect.arrayContaining(keptEvents));
    const verified = await call('GET', `${vaultOrigin(kept)}/audit/verify?${API}`, { token });
    expect(await json(verified)).toMatchObject({ chain: `vault:${kept}`, ok: true });
  });

  it('leaves a chain that holds an earlier vault of the same name to administrators: the live vault starts its own', async () => {
    const { id } = await vaultRow(recreated);
    expect(await rows('select chain from audit_chain_vaults where vault_id = ?', id)).toEqual([]);
    const token = await auditorOf(recreated);
    const listed = await call('GET', `${vaultOrigin(recreated)}/auditEvents?${API}&format=ndjson`, { token });
    expect(listed.status).toBe(200);
    expect((await ndjsonIds(listed)).some((e) => earlierEvents.includes(e))).toBe(false);
    expect(await json(await call('GET', `${vaultOrigin(recreated)}/audit/verify?${API}`, { token }))).toMatchObject({
      chain: `vault:${id}`,
      ok: true,
    });

    const joined = await json(
      await call('GET', `${APEX}/management/audit/verify?chain=vault:${recreated}`, { token: adminToken }),
    );
    expect(joined).toMatchObject({ chain: `vault:${recreated}`, ok: true, through: 2 });
    expect(
      await ndjsonIds(await call('GET', `${APEX}/management/audit/chain?chain=vault:${recreated}`, { token: adminToken })),
    ).toEqual(earlierEvents);
  });

  it("keeps a deleted vault's chain under its name, listed, verifiable and exportable by administrators only", async () => {
    const chains = (await json(await call('GET', `${APEX}/management/audit/chains`, { token: adminToken }))).value as unknown[];
    expect(chains).toContainEqual(
      expect.objectContaining({ chain: `vault:${deleted}`, vaultId: null, vaultName: deleted, live: false }),
    );
    expect(chains).toContainEqual(
      expect.objectContaining({ chain: `vault:${recreated}`, vaultId: null, vaultName: recreated, live: false }),
    );
    expect(chains).toContainEqual(
      expect.objectContaining({ chain: `vault:${kept}`, vaultId: (await vaultRow(kept)).id, vaultName: kept, live: true }),
    );
    expect(
      await json(await call('GET', `${APEX}/management/audit/verify?chain=vault:${deleted}`, { token: adminToken })),
    ).toMatchObject({ ok: true, through: 1 });
    expect(
      await ndjsonIds(await call('GET', `${APEX}/management/audit/chain?chain=vault:${deleted}`, { token: adminToken })),
    ).toEqual(deletedEvents);
    const auditor = await auditorOf(kept);
    expect((await call('GET', `${APEX}/management/audit/chain?chain=vault:${deleted}`, { token: auditor })).status).toBe(403);
    expect(
      (await call('GET', `${APEX}/management/audit/verify?chain=vault:${deleted}&vault=${kept}`, { token: adminToken })).status,
    ).toBe(400);
  });
});
