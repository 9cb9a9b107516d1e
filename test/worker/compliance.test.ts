/**
 * The compliance report (src/compliance/) in workerd, against real D1: a fixture vault built to
 * trip every check, a clean vault that trips none, the deployment report, the HTML rendering
 * (escaped, agreeing with the JSON), the audit anchor, and administrators only.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { BuiltInRoleIds } from '../../src/access/roles';
import { buildComplianceReport, type ComplianceReport, type Finding } from '../../src/compliance/report';
import { database } from '../../src/storage/db';
import { vaultChainOf } from './audit-helpers';
import { APEX, API, admin, call, env, newVault, tokenFor, vaultOrigin } from './helpers';
import { rows } from './identity-helpers';

const DAY = 86_400;
const AUTH = 'providers/Microsoft.Authorization';
const defId = (guid: string) => `/providers/Microsoft.Authorization/roleDefinitions/${guid}`;
const nowSeconds = () => Math.floor(Date.now() / 1000);
const exec = (query: string, ...params: unknown[]) =>
  env.DB.prepare(query)
    .bind(...params)
    .run();

let adminToken: string;
let adminCreds: { tenantId: string; clientId: string; clientSecret: string };
let adminObjectId: string;

beforeAll(async () => {
  adminCreds = await admin();
  adminToken = await tokenFor(adminCreds);
  adminObjectId = (
    await rows<{ object_id: string }>('select object_id from applications where client_id = ?', adminCreds.clientId)
  )[0]!.object_id;
});

const onVault = (vault: string, method: string, path: string, body?: unknown) =>
  call(method, `${vaultOrigin(vault)}${path}${path.includes('?') ? '&' : '?'}${API}`, { token: adminToken, body });

async function ok(res: Promise<Response>, status = 200): Promise<any> {
  const r = await res;
  const text = await r.text();
  expect(r.status, text).toBe(status);
  return text ? JSON.parse(text) : undefined;
}

async function newApp(displayName: string, body: Record<string, unknown> = {}) {
  return ok(call('POST', `${APEX}/management/applications`, { token: adminToken, body: { displayName, ...body } }), 201);
}

const assign = (vault: string, principalId: string, role: string, extra: Record<string, unknown> = {}) => {
  const id = crypto.randomUUID();
  return ok(
    call('PUT', `${APEX}/management/vaults/${vault}/${AUTH}/roleAssignments/${id}`, {
      token: adminToken,
      body: { properties: { roleDefinitionId: defId(role), principalId, ...extra } },
    }),
    201,
  ).then(() => id);
};

const report = async (path: string, headers: Record<string, string> = {}) => {
  const res = await call('GET', `${APEX}${path}`, { token: adminToken, headers });
  return res;
};
const vaultReport = async (vault: string): Promise<ComplianceReport> =>
  ok(report(`/management/vaults/${vault}/compliance/report`));

const ids = (f: Finding) => f.controls.map((c) => `${c.framework} ${c.id}`);
function findingOf(r: ComplianceReport, check: string, resourceSuffix: string): Finding {
  const found = r.findings.filter((f) => f.check === check && f.resource.id.endsWith(resourceSuffix));
  expect(found, `${check} on ${resourceSuffix}: ${JSON.stringify(r.findings.map((f) => f.id))}`).toHaveLength(1);
  return found[0]!;
}

describe('a vault built to fail every check', () => {
  let vault: string;
  let r: ComplianceReport;
  let staleApp: { clientId: string; objectId: string; secret: { id: string } };
  let soonId: string;
  let expiredId: string;
  let federatedId: string;
  let unusedAssignment: string;
  let expiredAssignment: string;

  beforeAll(async () => {
    // No purge protection, retention 7 days; the creating administrator holds Key Vault Administrator.
    vault = await newVault(adminToken, { softDeleteRetentionInDays: 7, enablePurgeProtection: false });
    const now = nowSeconds();
    const exp = now + 365 * DAY;

    // A key without a rotation policy and without exp.
    await ok(onVault(vault, 'POST', '/keys/nopolicy/create', { kty: 'RSA', key_size: 2048 }));
    // A key whose Rotate action (30 days after creation) passed 10 days ago.
    await ok(onVault(vault, 'POST', '/keys/overdue/create', { kty: 'EC', crv: 'P-256', attributes: { exp } }));
    await ok(
      onVault(vault, 'PUT', '/keys/overdue/rotationpolicy', {
        lifetimeActions: [{ trigger: { timeAfterCreate: 'P30D' }, action: { type: 'Rotate' } }],
        attributes: { expiryTime: 'P90D' },
      }),
    );
    await exec(
      'update key_versions set created = created - ? where vault_id = (select id from vaults where name = ?) and name = ?',
      40 * DAY,
      vault,
      'overdue',
    );
    await exec(
      'update keys set rotation_due_at = ? where vault_id = (select id from vaults where name = ?) and name = ?',
      now - 10 * DAY,
      vault,
      'overdue',
    );
    // An RSA key stored as 1024 bits (imports cannot be that small today; older rows could be).
    await ok(onVault(vault, 'POST', '/keys/weak/create', { kty: 'RSA', key_size: 2048, attributes: { exp } }));
    await ok(
      onVault(vault, 'PUT', '/keys/weak/rotationpolicy', {
        lifetimeActions: [{ trigger: { timeAfterCreate: 'P90D' }, action: { type: 'Rotate' } }],
        attributes: { expiryTime: 'P180D' },
      }),
    );
    await exec(
      'update key_versions set key_size = 1024 where vault_id = (select id from vaults where name = ?) and name = ?',
      vault,
      'weak',
    );
    // A secret without exp.
    await ok(onVault(vault, 'PUT', '/secrets/noexp', { value: 'v' }));

    // An application (named to test escaping) with a 100-day-old secret, one expiring in 10 days,
    // an expired one, and a 100-day-old federated credential; it holds an assignment nobody used
    // for 100 days, which makes it a principal of the vault.
    staleApp = await newApp('<script>alert("x")</script> app');
    await exec('update client_secrets set created_at = ? where id = ?', now - 100 * DAY, staleApp.secret.id);
    soonId = (
      await ok(
        call('POST', `${APEX}/management/applications/${staleApp.clientId}/secrets`, {
          token: adminToken,
          body: { expiresInDays: 10 },
        }),
        201,
      )
    ).secret.id;
    expiredId = (
      await ok(
        call('POST', `${APEX}/management/applications/${staleApp.clientId}/secrets`, {
          token: adminToken,
          body: { expiresInDays: 5 },
        }),
        201,
      )
    ).secret.id;
    await exec('update client_secrets set expires_at = ? where id = ?', now - DAY, expiredId);
    federatedId = (
      await ok(
        call('POST', `${APEX}/management/applications/${staleApp.clientId}/federatedCredentials`, {
          token: adminToken,
          body: {
            name: 'deploy',
            issuer: 'https://token.actions.githubusercontent.com',
            subject: 'repo:contoso/app:ref:refs/heads/main',
          },
        }),
        201,
      )
    ).id;
    await exec('update federated_credentials set created_at = ? where id = ?', now - 100 * DAY, federatedId);
    unusedAssignment = await assign(vault, staleApp.objectId, BuiltInRoleIds.secretsUser);
    await exec('update role_assignments set created_at = ?, last_used_at = null where id = ?', now - 100 * DAY, unusedAssignment);
    // A time-bound assignment that has expired but is still stored.
    expiredAssignment = await assign(vault, (await newApp('expired assignee')).objectId, BuiltInRoleIds.reader, {
      expiresOn: new Date((now + 3600) * 1000).toISOString(),
    });
    await exec('update role_assignments set expires_at = ? where id = ?', now - 3600, expiredAssignment);

    r = await vaultReport(vault);
  });

  it('states its scope, generation time and thresholds', async () => {
    expect(r.format).toBe('ekv-compliance-report/1');
    expect(r.scope).toMatchObject({ kind: 'vault', vault });
    expect(Math.abs(Date.parse(r.generatedAt) / 1000 - nowSeconds())).toBeLessThan(60);
    expect(r.thresholds).toMatchObject({ staleDays: 90, expiringWithinDays: 30, minRetentionDays: 90, minRsaBits: 2048 });
    expect(r.auditCheckpoint.chains.map((c) => c.chain)).toEqual([await vaultChainOf(vault), 'deployment']);
  });

  it('flags the vault settings', () => {
    expect(ids(findingOf(r, 'vault-purge-protection-disabled', `/vaults/${vault}`))).toEqual(
      expect.arrayContaining(['PCI DSS 4.0 3.6.1', 'ISO/IEC 27001:2022 A.8.24', 'HIPAA §164.312(c)(1)']),
    );
    const retention = findingOf(r, 'vault-retention-short', `/vaults/${vault}`);
    expect(retention.detail).toContain('7 days');
    expect(retention.detail).toContain('90 days');
  });

  it('flags each key condition with its key-management controls', () => {
    const missing = findingOf(r, 'key-rotation-policy-missing', '/keys/nopolicy');
    expect(ids(missing)).toEqual(
      expect.arrayContaining(['PCI DSS 4.0 3.7.4', 'ISO/IEC 27001:2022 A.8.24', 'NIST SP 800-57 Pt 1 Rev. 5 §5.3']),
    );
    expect(findingOf(r, 'key-no-expiry', '/keys/nopolicy').severity).toBe('low');
    const overdue = findingOf(r, 'key-rotation-overdue', '/keys/overdue');
    expect(overdue.severity).toBe('high');
    expect(ids(overdue)).toContain('PCI DSS 4.0 3.7.4');
    const weak = findingOf(r, 'key-size-weak', '/keys/weak');
    expect(weak.title).toContain('1024');
    expect(ids(weak)).toEqual(
      expect.arrayContaining(['PCI DSS 4.0 3.7.1', 'NIST SP 800-57 Pt 1 Rev. 5 §5.6.1', 'ISO/IEC 27001:2022 A.8.24']),
    );
    // Keys with exp and a Rotate policy are not flagged for those.
    expect(r.findings.filter((f) => f.resource.id.endsWith('/keys/weak')).map((f) => f.check)).toEqual(['key-size-weak']);
    expect(r.findings.filter((f) => f.resource.id.endsWith('/keys/overdue')).map((f) => f.check)).toEqual([
      'key-rotation-overdue',
    ]);
  });

  it('flags the secret without expiry', () => {
    expect(ids(findingOf(r, 'secret-no-expiry', '/secrets/noexp'))).toContain('ISO/IEC 27001:2022 A.5.17');
  });

  it('lists the Key Vault Administrator', () => {
    const f = findingOf(r, 'privileged-principal', `/principals/${adminObjectId.toLowerCase()}`);
    expect(f.detail).toContain('Key Vault Administrator at /');
    expect(ids(f)).toEqual(expect.arrayContaining(['PCI DSS 4.0 7.2.2', 'ISO/IEC 27001:2022 A.8.2', 'HIPAA §164.312(a)(1)']));
  });

  it("flags the vault's principals' old, expiring and expired credentials", () => {
    const base = `/applications/${staleApp.clientId}`;
    expect(ids(findingOf(r, 'credential-old', `${base}/secrets/${staleApp.secret.id}`))).toEqual(
      expect.arrayContaining(['PCI DSS 4.0 8.6.3', 'HIPAA §164.312(d)', 'ISO/IEC 27001:2022 A.5.17']),
    );
    expect(findingOf(r, 'credential-expiring', `${base}/secrets/${soonId}`).title).toMatch(/expires in (9|10) days/);
    findingOf(r, 'credential-expired', `${base}/secrets/${expiredId}`);
    findingOf(r, 'credential-old', `${base}/federatedCredentials/${federatedId}`);
    // The expiring secret is new: not also old. The expired one is reported once.
    expect(r.findings.filter((f) => f.resource.id.endsWith(soonId)).map((f) => f.check)).toEqual(['credential-expiring']);
    expect(r.findings.filter((f) => f.resource.id.endsWith(expiredId)).map((f) => f.check)).toEqual(['credential-expired']);
  });

  it('flags the unused and the expired assignment', () => {
    const unused = findingOf(r, 'assignment-unused', `/roleAssignments/${unusedAssignment}`);
    expect(unused.detail).toContain('Never used');
    expect(ids(unused)).toEqual(expect.arrayContaining(['PCI DSS 4.0 8.2.6', 'ISO/IEC 27001:2022 A.5.18']));
    findingOf(r, 'assignment-expired', `/roleAssignments/${expiredAssignment}`);
    // An expired assignment grants nothing: not also counted as unused.
    expect(r.findings.filter((f) => f.resource.id.endsWith(expiredAssignment))).toHaveLength(1);
  });

  it('fails every check but the certificate checks, which are not applicable', () => {
    const status = Object.fromEntries(r.checks.map((c) => [c.id, c.status]));
    expect(status).toEqual({
      'key-rotation-policy-missing': 'fail',
      'key-rotation-overdue': 'fail',
      'key-size-weak': 'fail',
      'key-no-expiry': 'fail',
      'secret-no-expiry': 'fail',
      'certificate-expiring': 'not_applicable',
      'certificate-no-auto-renew': 'not_applicable',
      'certificate-key-weak': 'not_applicable',
      'certificate-self-signed': 'not_applicable',
      'vault-purge-protection-disabled': 'fail',
      'vault-retention-short': 'fail',
      'privileged-principal': 'fail',
      'credential-old': 'fail',
      'credential-expiring': 'fail',
      'credential-expired': 'fail',
      'assignment-unused': 'fail',
      'assignment-expired': 'fail',
    });
    expect(r.checks.find((c) => c.id === 'certificate-expiring')!.note).toMatch(/^Not applicable: no certificates/);
    expect(r.summary.total).toBe(r.findings.length);
    expect(r.summary.high + r.summary.medium + r.summary.low).toBe(r.findings.length);
    expect(r.summary.high).toBe(2);
  });

  it('renders the same report as an escaped, self-contained HTML page', async () => {
    for (const res of [
      await report(`/management/vaults/${vault}/compliance/report?format=html`),
      await report(`/management/vaults/${vault}/compliance/report`, { accept: 'text/html,application/xhtml+xml' }),
    ]) {
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
      const html = await res.text();
      expect(html).not.toContain('<script');
      expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; app');
      // The counts agree with the JSON.
      const again = await vaultReport(vault);
      expect(Number(/data-total="(\d+)"/.exec(html)![1])).toBe(again.summary.total);
      for (const s of ['high', 'medium', 'low'] as const) {
        expect(
          Number(new RegExp(`data-severity="${s}"><span class="sev ${s}">${s}</span> <strong>(\\d+)</strong>`).exec(html)![1]),
        ).toBe(again.summary[s]);
      }
      expect(html.match(/<tr id="/g)).toHaveLength(again.findings.length);
      expect(html).toContain(again.generatedAt.slice(0, 16));
    }
    // format=json wins over Accept.
    const forced = await report(`/management/vaults/${vault}/compliance/report?format=json`, { accept: 'text/html' });
    expect(forced.headers.get('content-type')).toMatch(/^application\/json/);
    expect((await report(`/management/vaults/${vault}/compliance/report?format=pdf`)).status).toBe(400);
  });

  it('is anchored in the latest signed checkpoint of the chain when there is one', async () => {
    const chain = await vaultChainOf(vault);
    const hash = 'ab'.repeat(32);
    await exec(
      'insert into audit_checkpoints (chain, seq, hash, time, alg, kid, signature) values (?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?)',
      chain,
      1,
      'cd'.repeat(32),
      '2026-01-01T00:00:00.000Z',
      'ES256',
      'kid-1',
      'sig-1',
      chain,
      2,
      hash,
      '2026-01-02T00:00:00.000Z',
      'ES256',
      'kid-1',
      'sig-2',
    );
    const anchored = await vaultReport(vault);
    expect(anchored.auditCheckpoint.chains[0]).toMatchObject({
      chain,
      kind: 'signed-checkpoint',
      seq: 2,
      hash,
      checkpoint: { time: '2026-01-02T00:00:00.000Z', alg: 'ES256', kid: 'kid-1', signature: 'sig-2' },
    });
    const html = await (await report(`/management/vaults/${vault}/compliance/report?format=html`)).text();
    expect(html).toContain(hash);
    await exec('delete from audit_checkpoints where chain = ?', chain);
  });

  it('appears in the deployment report, which also lists the deployment administrators', async () => {
    const d: ComplianceReport = await ok(report('/management/compliance/report'));
    expect(d.scope.kind).toBe('deployment');
    const mine = d.findings
      .filter((f) => f.resource.vault === vault)
      .map((f) => f.id)
      .sort();
    expect(mine).toEqual(
      r.findings
        .filter((f) => f.resource.vault === vault)
        .map((f) => f.id)
        .sort(),
    );
    const adminFinding = findingOf(d, 'privileged-principal', `/applications/${adminCreds.clientId}`);
    expect(adminFinding.title).toContain('deployment administrator');
    findingOf(d, 'credential-old', `/applications/${staleApp.clientId}/secrets/${staleApp.secret.id}`);
    expect(d.auditCheckpoint.chains.some((c) => c.chain === 'deployment')).toBe(true);
  });
});

describe('a vault under access policies', () => {
  it("lists principals with 'all' on everything or a purge permission, and no one else", async () => {
    const everything = crypto.randomUUID();
    const purger = crypto.randomUUID();
    const reader = crypto.randomUUID();
    const vault = await newVault(adminToken, {
      enableRbacAuthorization: false,
      enablePurgeProtection: true,
      softDeleteRetentionInDays: 90,
      accessPolicies: [
        {
          tenantId: adminCreds.tenantId,
          objectId: everything,
          permissions: { keys: ['all'], secrets: ['all'], certificates: ['all'] },
        },
        { tenantId: adminCreds.tenantId, objectId: purger, permissions: { secrets: ['get', 'purge'] } },
        { tenantId: adminCreds.tenantId, objectId: reader, permissions: { secrets: ['get', 'list'], keys: ['all'] } },
      ],
    });
    const r = await vaultReport(vault);
    const privileged = r.findings.filter((f) => f.check === 'privileged-principal');
    expect(privileged.map((f) => f.resource.name).sort()).toEqual(expect.arrayContaining([everything, purger]));
    expect(privileged.find((f) => f.resource.name === everything)!.detail).toContain("'all' on keys, secrets and certificates");
    expect(privileged.find((f) => f.resource.name === purger)!.detail).toContain('purge secrets');
    // keys: ['all'] includes purging keys: flagged too; a policy without purge and without 'all' is not.
    expect(privileged.find((f) => f.resource.name === reader)!.detail).toContain('purge keys');
    const listOnly = crypto.randomUUID();
    await ok(
      call('PUT', `${APEX}/management/vaults/${vault}/accessPolicies/${listOnly}`, {
        token: adminToken,
        body: { permissions: { secrets: ['get', 'list'], keys: ['get', 'sign'] } },
      }),
      201,
    );
    const again = await vaultReport(vault);
    expect(again.findings.some((f) => f.resource.name === listOnly)).toBe(false);
  });
});

describe('a clean vault', () => {
  let vault: string;
  let app: { clientId: string; objectId: string; secret: { id: string } };
  let assignment: string;

  beforeAll(async () => {
    vault = await newVault(adminToken, { softDeleteRetentionInDays: 90, enablePurgeProtection: true });
    const exp = nowSeconds() + 365 * DAY;
    await ok(onVault(vault, 'POST', '/keys/signing/create', { kty: 'RSA', key_size: 3072, attributes: { exp } }));
    await ok(
      onVault(vault, 'PUT', '/keys/signing/rotationpolicy', {
        lifetimeActions: [{ trigger: { timeAfterCreate: 'P90D' }, action: { type: 'Rotate' } }],
        attributes: { expiryTime: 'P180D' },
      }),
    );
    await ok(onVault(vault, 'POST', '/keys/wrapping/create', { kty: 'EC', crv: 'P-384', attributes: { exp } }));
    await ok(
      onVault(vault, 'PUT', '/keys/wrapping/rotationpolicy', {
        lifetimeActions: [{ trigger: { timeBeforeExpiry: 'P30D' }, action: { type: 'Rotate' } }],
        attributes: { expiryTime: 'P1Y' },
      }),
    );
    await ok(onVault(vault, 'PUT', '/secrets/db-password', { value: 's3cr3t', attributes: { exp } }));
    // Its only principal: an application with a fresh secret expiring in 60 days, holding Secrets
    // User. The creating administrator's standing Key Vault Administrator assignment is removed
    // (the deployment's administrators are a deployment-level finding, not this vault's).
    app = await newApp('clean app', { expiresInDays: 60 });
    assignment = await assign(vault, app.objectId, BuiltInRoleIds.secretsUser);
    const listed = await ok(call('GET', `${APEX}/management/vaults/${vault}/${AUTH}/roleAssignments`, { token: adminToken }));
    for (const a of listed.value as { name: string; properties: { principalId: string } }[]) {
      if (a.name !== assignment)
        await ok(call('DELETE', `${APEX}/management/vaults/${vault}/${AUTH}/roleAssignments/${a.name}`, { token: adminToken }));
    }
  });

  it('yields no findings, every check passing or not applicable', async () => {
    const r = await vaultReport(vault);
    expect(r.findings).toEqual([]);
    expect(r.summary).toEqual({ total: 0, high: 0, medium: 0, low: 0 });
    for (const c of r.checks) {
      expect(c.status, c.id).toBe(c.id.startsWith('certificate-') ? 'not_applicable' : 'pass');
    }
    // It did examine things.
    const examined = Object.fromEntries(r.checks.map((c) => [c.id, c.examined]));
    expect(examined).toMatchObject({
      'key-rotation-policy-missing': 2,
      'key-size-weak': 1,
      'secret-no-expiry': 1,
      'credential-old': 1,
      'assignment-unused': 1,
    });
    const html = await (await report(`/management/vaults/${vault}/compliance/report?format=html`)).text();
    expect(html).toContain('No findings.');
    expect(html).toContain('data-total="0"');
  });

  it('turns stale as the clock moves (now is a parameter)', async () => {
    const later = await buildComplianceReport(
      database(env.DB),
      { kind: 'vault', name: vault },
      { now: nowSeconds() + 100 * DAY },
    );
    const checks = new Set(later.findings.map((f) => f.check));
    // 100 days on: the Rotate P90D is 10 days overdue, the assignment unused, the app's secret expired.
    expect(checks).toEqual(new Set(['key-rotation-overdue', 'assignment-unused', 'credential-expired']));
    expect(later.findings.find((f) => f.check === 'key-rotation-overdue')!.resource.name).toBe('signing');
    expect(later.generatedAt).toBe(new Date(later.asOf * 1000).toISOString());
  });
});

describe('access', () => {
  it('is for administrators only', async () => {
    const vault = await newVault(adminToken);
    const user = await newApp('not an administrator');
    const token = await tokenFor({ tenantId: adminCreds.tenantId, clientId: user.clientId, clientSecret: user.clientSecret });
    // Even a Key Vault Administrator of the vault is not a deployment administrator.
    await assign(vault, user.objectId, BuiltInRoleIds.administrator);
    for (const path of ['/management/compliance/report', `/management/vaults/${vault}/compliance/report`]) {
      expect((await call('GET', `${APEX}${path}`, { token })).status).toBe(403);
      expect((await call('GET', `${APEX}${path}?format=html`, { token })).status).toBe(403);
      expect((await call('GET', `${APEX}${path}`)).status).toBe(401);
    }
    expect((await report('/management/vaults/nosuchvault99/compliance/report')).status).toBe(404);
  });
});
