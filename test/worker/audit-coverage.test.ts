/**
 * "Every endpoint and every refusal path produces exactly one well-formed record", checked against
 * the list of routes the apps serve (src/audit/routes.ts appRoutes), not a sample: each route is
 * called unauthenticated (401 challenge), refused (a principal without rights: 403; a bad
 * api-version: 400), and allowed where that is cheap (an administrator, usually on an object that
 * does not exist: 404 or 400); then each request's record is found by its correlation id
 * (`x-ms-client-request-id`), exactly once, and checked field by field. A route that appRoutes()
 * lists and this file does not know fails the test: a new route needs its line here.
 *
 * Then the canaries: a secret value, a private key's `d`, client secrets and bearer tokens never
 * appear in any record (any column) nor in what the Worker logs while handling them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEPLOYMENT_CHAIN } from '../../src/audit/event';
import { CLAIM_APP_ID, CLAIM_OBJECT_ID, CLAIM_TENANT_ID, reasonPhrase, type AuditRecord } from '../../src/audit/record';
import { appRoutes, type AppRoute } from '../../src/http/routes-list';
import { toBase64Url } from '../../src/core/encoding';
import { recordOf, vaultChainOf, type StoredRecord } from './audit-helpers';
import { API, APEX, BOOTSTRAP_SECRET, admin, call, json, newVault, tokenFor, vaultOrigin, type CallOptions } from './helpers';
import { rows, sleep } from './identity-helpers';

type Creds = { tenantId: string; clientId: string; clientSecret: string };

let adminCreds: Creds;
let adminToken: string;
let nobodyToken: string;
let vault: string;

beforeAll(async () => {
  adminCreds = await admin();
  adminToken = await tokenFor(adminCreds);
  vault = await newVault(adminToken);
  const res = await call('POST', `${APEX}/management/applications`, {
    token: adminToken,
    body: { displayName: 'coverage: no rights' },
  });
  const body = await json(res);
  nobodyToken = await tokenFor({ tenantId: adminCreds.tenantId, clientId: body.clientId, clientSecret: body.clientSecret });
});

// ---------------------------------------------------------------------------------------------
// What each route is declared as (its audit operation name), and how it may be called.

const RBAC =
  /^(?:\/(?:secrets|keys|certificates)(?:\/:name)?)?\/providers\/Microsoft\.Authorization\/(roleAssignments|roleDefinitions)(\/:(?:assignment|definition))?$/;

const VAULT_OPERATIONS: Record<string, string> = {
  'GET /audit/verify': 'AuditVerify',
  'GET /audit/checkpoints': 'AuditCheckpointList',
  'GET /audit/chain': 'AuditChainExport',
  'GET /auditEvents': 'AuditEventList',
  'PUT /secrets/:name': 'SecretSet',
  'GET /secrets': 'SecretList',
  'GET /secrets/:name/versions': 'SecretListVersions',
  'POST /secrets/restore': 'SecretRestore',
  'POST /secrets/:name/backup': 'SecretBackup',
  'GET /secrets/:name/:version?': 'SecretGet',
  'PATCH /secrets/:name/:version?': 'SecretUpdate',
  'DELETE /secrets/:name': 'SecretDelete',
  'GET /deletedsecrets': 'SecretListDeleted',
  'GET /deletedsecrets/:name': 'SecretGetDeleted',
  'DELETE /deletedsecrets/:name': 'SecretPurge',
  'POST /deletedsecrets/:name/recover': 'SecretRecover',
  'GET /keys/:name/rotationpolicy': 'KeyGetRotationPolicy',
  'PUT /keys/:name/rotationpolicy': 'KeyUpdateRotationPolicy',
  'POST /keys/:name/rotate': 'KeyRotate',
  'POST /keys/restore': 'KeyRestore',
  'POST /keys/:name/create': 'KeyCreate',
  'PUT /keys/:name': 'KeyImport',
  'GET /keys': 'KeyList',
  'GET /keys/:name/versions': 'KeyListVersions',
  'POST /keys/:name/backup': 'KeyBackup',
  'POST /keys/:name/:version/sign': 'KeySign',
  'POST /keys/:name/sign': 'KeySign',
  'POST /keys/:name/:version/verify': 'KeyVerify',
  'POST /keys/:name/verify': 'KeyVerify',
  'POST /keys/:name/:version/encrypt': 'KeyEncrypt',
  'POST /keys/:name/encrypt': 'KeyEncrypt',
  'POST /keys/:name/:version/decrypt': 'KeyDecrypt',
  'POST /keys/:name/decrypt': 'KeyDecrypt',
  'POST /keys/:name/:version/wrapkey': 'KeyWrap',
  'POST /keys/:name/wrapkey': 'KeyWrap',
  'POST /keys/:name/:version/unwrapkey': 'KeyUnwrap',
  'POST /keys/:name/unwrapkey': 'KeyUnwrap',
  'GET /keys/:name/:version?': 'KeyGet',
  'PATCH /keys/:name/:version?': 'KeyUpdate',
  'DELETE /keys/:name': 'KeyDelete',
  'GET /deletedkeys': 'KeyListDeleted',
  'GET /deletedkeys/:name': 'KeyGetDeleted',
  'DELETE /deletedkeys/:name': 'KeyPurge',
  'POST /deletedkeys/:name/recover': 'KeyRecover',
  'POST /rng': 'GetRandomBytes',
  'GET /eventSubscriptions': 'EventSubscriptionList',
  'GET /eventSubscriptions/:name': 'EventSubscriptionGet',
  'PUT /eventSubscriptions/:name': 'EventSubscriptionCreate',
  'DELETE /eventSubscriptions/:name': 'EventSubscriptionDelete',
  'POST /eventSubscriptions/:name/rotateSecret': 'EventSubscriptionSecretRotate',
  'GET /eventSubscriptions/:name/deadLetters': 'EventSubscriptionDeadLetterList',
  'POST /eventSubscriptions/:name/deadLetters/:eventId/redeliver': 'EventSubscriptionRedeliver',
  'GET /certificates/contacts': 'CertificateContactsGet',
  'PUT /certificates/contacts': 'CertificateContactsSet',
  'DELETE /certificates/contacts': 'CertificateContactsDelete',
  'GET /certificates/issuers': 'CertificateIssuersList',
  'GET /certificates/issuers/:name': 'CertificateIssuerGet',
  'PUT /certificates/issuers/:name': 'CertificateIssuerSet',
  'PATCH /certificates/issuers/:name': 'CertificateIssuerUpdate',
  'DELETE /certificates/issuers/:name': 'CertificateIssuerDelete',
  'POST /certificates/restore': 'CertificateRestore',
  'GET /certificates': 'CertificateList',
  'POST /certificates/:name/create': 'CertificateCreate',
  'POST /certificates/:name/import': 'CertificateImport',
  'GET /certificates/:name/pending': 'CertificatePendingGet',
  'PATCH /certificates/:name/pending': 'CertificatePendingUpdate',
  'DELETE /certificates/:name/pending': 'CertificatePendingDelete',
  'POST /certificates/:name/pending/merge': 'CertificatePendingMerge',
  'GET /certificates/:name/policy': 'CertificatePolicyGet',
  'PATCH /certificates/:name/policy': 'CertificatePolicyUpdate',
  'GET /certificates/:name/versions': 'CertificateListVersions',
  'POST /certificates/:name/backup': 'CertificateBackup',
  'GET /certificates/:name/:version?': 'CertificateGet',
  'PATCH /certificates/:name/:version?': 'CertificateUpdate',
  'DELETE /certificates/:name': 'CertificateDelete',
  'GET /deletedcertificates': 'CertificateListDeleted',
  'GET /deletedcertificates/:name': 'CertificateGetDeleted',
  'DELETE /deletedcertificates/:name': 'CertificatePurge',
  'POST /deletedcertificates/:name/recover': 'CertificateRecover',
  'GET /certificateWebhooks': 'CertificateWebhookList',
  'GET /certificateWebhooks/:name': 'CertificateWebhookGet',
  'PUT /certificateWebhooks/:name': 'CertificateWebhookCreate',
  'DELETE /certificateWebhooks/:name': 'CertificateWebhookDelete',
  'POST /certificateWebhooks/:name/rotateSecret': 'CertificateWebhookSecretRotate',
};

const MGMT_RBAC = '/management/vaults/:vault/providers/Microsoft.Authorization';
const APP = '/management/applications/:clientId';

/** Apex routes behind adminOperation (challenged, then administrators only). */
const APEX_ADMIN_OPERATIONS: Record<string, string> = {
  'GET /management/audit/verify': 'AuditVerify',
  'GET /management/audit/checkpoints': 'AuditCheckpointList',
  'GET /management/audit/chain': 'AuditChainExport',
  'GET /management/audit/chains': 'AuditChainList',
  'POST /management/applications': 'ApplicationCreate',
  'GET /management/applications': 'ApplicationList',
  [`GET ${APP}`]: 'ApplicationGet',
  [`DELETE ${APP}`]: 'ApplicationDelete',
  [`POST ${APP}/secrets`]: 'ApplicationSecretAdd',
  [`DELETE ${APP}/secrets/:secretId`]: 'ApplicationSecretRemove',
  [`GET ${APP}/secrets`]: 'ApplicationSecretList',
  [`POST ${APP}/certificates`]: 'ApplicationCertificateAdd',
  [`GET ${APP}/certificates`]: 'ApplicationCertificateList',
  [`GET ${APP}/certificates/:id`]: 'ApplicationCertificateGet',
  [`DELETE ${APP}/certificates/:id`]: 'ApplicationCertificateRemove',
  [`POST ${APP}/federatedCredentials`]: 'ApplicationFederatedCredentialAdd',
  [`GET ${APP}/federatedCredentials`]: 'ApplicationFederatedCredentialList',
  [`GET ${APP}/federatedCredentials/:id`]: 'ApplicationFederatedCredentialGet',
  [`DELETE ${APP}/federatedCredentials/:id`]: 'ApplicationFederatedCredentialRemove',
  'PUT /management/vaults/:name': 'VaultCreate',
  'GET /management/vaults': 'VaultList',
  'GET /management/vaults/:name': 'VaultGet',
  'DELETE /management/vaults/:name': 'VaultDelete',
  'PATCH /management/vaults/:name': 'VaultPatch',
  'GET /management/stats': 'StatsGet',
  'DELETE /management/caches': 'IsolateCachesClear',
  'GET /management/kek': 'KekGet',
  'POST /management/kek/rotate': 'KekRotate',
  'DELETE /management/kek/:label': 'KekDelete',
  'GET /management/signing-keys': 'SigningKeyList',
  'POST /management/signing-keys/rotate': 'SigningKeyRotate',
  'POST /management/audit/checkpoint-keys/rotate': 'AuditCheckpointKeyRotate',
  [`PUT ${MGMT_RBAC}/roleAssignments/:assignment`]: 'RoleAssignmentCreate',
  [`GET ${MGMT_RBAC}/roleAssignments/:assignment`]: 'RoleAssignmentGet',
  [`DELETE ${MGMT_RBAC}/roleAssignments/:assignment`]: 'RoleAssignmentDelete',
  [`GET ${MGMT_RBAC}/roleAssignments`]: 'RoleAssignmentList',
  [`PUT ${MGMT_RBAC}/roleDefinitions/:definition`]: 'RoleDefinitionCreate',
  [`GET ${MGMT_RBAC}/roleDefinitions/:definition`]: 'RoleDefinitionGet',
  [`DELETE ${MGMT_RBAC}/roleDefinitions/:definition`]: 'RoleDefinitionDelete',
  [`GET ${MGMT_RBAC}/roleDefinitions`]: 'RoleDefinitionList',
  'GET /management/vaults/:name/accessPolicies': 'VaultAccessPolicyList',
  'PUT /management/vaults/:name/accessPolicies/:kind{add|replace|remove}': 'VaultAccessPolicyUpdate',
  'GET /management/vaults/:name/accessPolicies/:objectId': 'VaultAccessPolicyGet',
  'PUT /management/vaults/:name/accessPolicies/:objectId': 'VaultAccessPolicyUpdate',
  'DELETE /management/vaults/:name/accessPolicies/:objectId': 'VaultAccessPolicyDelete',
  'GET /management/auditEvents': 'AuditEventList',
  'GET /management/vaults/:name/auditEvents': 'AuditEventList',
  'GET /management/compliance/report': 'ComplianceReportGet',
  'GET /management/vaults/:name/compliance/report': 'VaultComplianceReportGet',
  'GET /management/vaults/:vault/eventSubscriptions': 'EventSubscriptionList',
  'GET /management/vaults/:vault/eventSubscriptions/:name': 'EventSubscriptionGet',
  'PUT /management/vaults/:vault/eventSubscriptions/:name': 'EventSubscriptionCreate',
  'DELETE /management/vaults/:vault/eventSubscriptions/:name': 'EventSubscriptionDelete',
  'POST /management/vaults/:vault/eventSubscriptions/:name/rotateSecret': 'EventSubscriptionSecretRotate',
  'GET /management/vaults/:vault/eventSubscriptions/:name/deadLetters': 'EventSubscriptionDeadLetterList',
  'POST /management/vaults/:vault/eventSubscriptions/:name/deadLetters/:eventId/redeliver': 'EventSubscriptionRedeliver',
};

/** Public apex routes: no challenge; called as a client would, and refused where they can refuse. */
const APEX_PUBLIC_OPERATIONS: Record<string, string> = {
  'GET /healthz': 'HealthCheck',
  'GET /audit/checkpoint-keys': 'AuditCheckpointKeys',
  'POST /management/bootstrap': 'Bootstrap',
  'GET /common/discovery/instance': 'InstanceDiscovery',
  'GET /:tenant/v2.0/.well-known/openid-configuration': 'OpenIdConfiguration',
  'GET /:tenant/.well-known/openid-configuration': 'OpenIdConfiguration',
  'GET /:tenant/discovery/v2.0/keys': 'JwksGet',
  'POST /:tenant/oauth2/v2.0/token': 'Authentication',
  'GET /pki/:vault/:file{ca\\.(crt|pem)}': 'CertificateAuthorityGet',
  'GET /.well-known/acme-challenge/:token': 'AcmeChallengeGet',
};

/**
 * Public vault-host routes: no challenge (the ACME CA fetches http-01 answers anonymously; a
 * certificate webhook is authenticated by its signature, after its receiver is found).
 */
const VAULT_PUBLIC_OPERATIONS: Record<string, string> = {
  'GET /.well-known/acme-challenge/:token': 'AcmeChallengeGet',
  'POST /certificateWebhooks/:name/renew': 'CertificateWebhookReceive',
};

/** The declared audit name of a route, or undefined for a route this file does not know. */
function declaredOperation(route: AppRoute): string | undefined {
  const key = `${route.method} ${route.path}`;
  if (route.host === 'apex') return APEX_ADMIN_OPERATIONS[key] ?? APEX_PUBLIC_OPERATIONS[key];
  const rbac = RBAC.exec(route.path);
  if (rbac) {
    const kind = rbac[1] === 'roleAssignments' ? 'RoleAssignment' : 'RoleDefinition';
    const one = rbac[2] !== undefined;
    const verb =
      route.method === 'PUT' && one
        ? 'Create'
        : route.method === 'DELETE' && one
          ? 'Delete'
          : route.method === 'GET'
            ? one
              ? 'Get'
              : 'List'
            : undefined;
    return verb && `${kind}${verb}`;
  }
  return VAULT_OPERATIONS[key] ?? VAULT_PUBLIC_OPERATIONS[key];
}

const MISSING = 'cov-missing';

/** A concrete path for a route: objects that do not exist (so nothing is changed), ids that match nothing. */
function concretePath(route: AppRoute, vaultName: string, opts: { existingVault?: boolean } = {}): string {
  return route.path
    .replace(':kind{add|replace|remove}', 'add')
    .replace(':version?', '0123456789abcdef0123456789abcdef')
    .replace(':version', '0123456789abcdef0123456789abcdef')
    .replace(':vault', opts.existingVault ? vaultName : `${MISSING}-vault`)
    .replace(':name', route.host === 'apex' ? (opts.existingVault ? vaultName : `${MISSING}-vault`) : MISSING)
    .replace(':clientId', '00000000-0000-4000-8000-00000000c0de')
    .replace(':secretId', '00000000-0000-4000-8000-00000000c0de')
    .replace(':objectId', '00000000-0000-4000-8000-00000000c0de')
    .replace(':id', '00000000-0000-4000-8000-00000000c0de')
    .replace(':assignment', crypto.randomUUID())
    .replace(':definition', crypto.randomUUID())
    .replace(':label', `${MISSING}-kek`)
    .replace(':tenant', adminCreds.tenantId)
    .replace(':file{ca\\.(crt|pem)}', 'ca.crt')
    .replace(':token', 'cov0missing0acme0challenge0token');
}

interface Sent {
  label: string;
  id: string;
  status: number;
  operation: string | null;
  chain: string;
  /** A token was presented and accepted: the record names the caller. */
  authenticated: boolean;
  /** Allowed by a role assignment on the vault: isRbacAuthorized true. */
  rbacAllowed?: boolean;
  /** Refused by the vault's authorization: isRbacAuthorized false. */
  rbacRefused?: boolean;
  /** Reached the vault's authorization decision, either way: true, or false when answered 403. */
  rbacDecided?: boolean;
}

const sent: Sent[] = [];

async function send(
  label: string,
  method: string,
  url: string,
  expect_: Omit<Sent, 'label' | 'id' | 'status'> & { status?: number | ((s: number) => boolean) },
  opts: CallOptions = {},
): Promise<Response> {
  const id = crypto.randomUUID();
  const res = await call(method, url, { ...opts, headers: { ...opts.headers, 'x-ms-client-request-id': id } });
  await res.arrayBuffer();
  if (typeof expect_.status === 'number') expect(res.status, `${label}: ${method} ${url}`).toBe(expect_.status);
  if (typeof expect_.status === 'function')
    expect(expect_.status(res.status), `${label}: ${method} ${url} answered ${res.status}`).toBe(true);
  sent.push({ ...expect_, label: `${label}: ${method} ${url} → ${res.status}`, id, status: res.status });
  return res;
}

// ---------------------------------------------------------------------------------------------
// Checking the records.

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

function checkRecord(r: AuditRecord, row: StoredRecord, s: Sent): void {
  const where = s.label;
  expect(Object.keys(r).sort(), where).toEqual(
    expect.arrayContaining([
      'time',
      'resourceId',
      'operationName',
      'operationVersion',
      'category',
      'resultType',
      'resultSignature',
      'resultDescription',
      'durationMs',
      'callerIpAddress',
      'correlationId',
      'properties',
      'eventId',
      'chain',
      'sequence',
    ]),
  );
  expect(r.time, where).toMatch(ISO);
  expect(r.resourceId, where).toMatch(/^(\/TENANTS\/[0-9A-F-]{36})?\/PROVIDERS\/MICROSOFT\.KEYVAULT(\/VAULTS\/[A-Z0-9-]+)?$/);
  if (s.chain !== DEPLOYMENT_CHAIN) expect(r.resourceId.endsWith(`/VAULTS/${vault.toUpperCase()}`), where).toBe(true);
  expect(typeof r.operationName, where).toBe('string');
  expect(r.operationName.length, where).toBeGreaterThan(0);
  if (s.operation) expect(r.operationName, where).toBe(s.operation);
  expect(typeof r.operationVersion, where).toBe('string');
  expect(r.category, where).toBe('AuditEvent');
  expect(r.resultType, where).toBe(s.status >= 500 ? 'Failure' : 'Success');
  expect(r.resultSignature, where).toBe(reasonPhrase(s.status));
  expect(r.resultSignature, where).not.toMatch(/^\d+$/);
  expect(typeof r.resultDescription, where).toBe('string');
  if (s.status >= 400) expect(r.resultDescription.length, `${where}: an error code`).toBeGreaterThan(0);
  else expect(r.resultDescription, where).toBe('');
  expect(r.durationMs, where).toMatch(/^\d+$/);
  expect(typeof r.callerIpAddress, where).toBe('string');
  expect(r.correlationId, where).toBe(s.id);
  expect(r.chain, where).toBe(s.chain);
  expect(Number.isSafeInteger(r.sequence) && r.sequence > 0, where).toBe(true);
  expect(r.eventId, where).toBe(row.event_id);
  expect(typeof r.properties.requestUri, where).toBe('string');
  expect(r.properties.requestUri.startsWith('https://'), where).toBe(true);
  expect(r.properties.httpStatusCode, where).toBe(s.status);
  expect(typeof r.properties.clientInfo, where).toBe('string');
  if (s.authenticated) {
    const claim = r.identity?.claim ?? {};
    for (const name of [CLAIM_OBJECT_ID, CLAIM_APP_ID, CLAIM_TENANT_ID])
      expect(claim[name], `${where}: ${name}`).toMatch(/^[0-9a-f-]{36}$/);
  }
  if (s.status === 401) expect(r.identity, where).toBeUndefined();
  if (s.rbacAllowed) {
    expect(r.properties.isRbacAuthorized, where).toBe(true);
    expect(r.properties.appliedAssignmentId, where).toMatch(/^[0-9a-f-]{36}$/);
  }
  if (s.rbacRefused) expect(r.properties.isRbacAuthorized, where).toBe(false);
  if (s.rbacDecided) expect(r.properties.isRbacAuthorized, where).toBe(s.status !== 403);
  // The query columns agree with the record.
  expect(row.status, where).toBe(s.status);
  expect(row.operation, where).toBe(r.operationName);
  expect(row.seq, where).toBe(r.sequence);
}

/** Waits for every request's record, then a little longer, and insists on exactly one each. */
async function checkAllRecorded(): Promise<void> {
  const ids = sent.map((s) => s.id);
  const fetchAll = async () => {
    const found: StoredRecord[] = [];
    for (let i = 0; i < ids.length; i += 90) {
      const chunk = ids.slice(i, i + 90);
      found.push(
        ...(await rows<StoredRecord>(
          `select * from audit_records where correlation_id in (${chunk.map(() => '?').join(',')})`,
          ...chunk,
        )),
      );
    }
    return found;
  };
  const deadline = Date.now() + 20_000;
  let found = await fetchAll();
  while (new Set(found.map((r) => r.correlation_id)).size < ids.length && Date.now() < deadline) {
    await sleep(250);
    found = await fetchAll();
  }
  // A duplicate would arrive late: give the queue another moment.
  await sleep(1500);
  found = await fetchAll();
  const byId = new Map<string, StoredRecord[]>();
  for (const r of found) byId.set(r.correlation_id!, [...(byId.get(r.correlation_id!) ?? []), r]);
  const problems = sent
    .filter((s) => (byId.get(s.id)?.length ?? 0) !== 1)
    .map((s) => `${s.label}: ${byId.get(s.id)?.length ?? 0} records`);
  expect(problems).toEqual([]);
  for (const s of sent) {
    const row = byId.get(s.id)![0]!;
    checkRecord(recordOf(row), row, s);
  }
}

// ---------------------------------------------------------------------------------------------

describe('every route, every refusal path: exactly one well-formed record', () => {
  it('knows every route the apps serve', () => {
    const unknown = appRoutes()
      .filter((r) => declaredOperation(r) === undefined)
      .map((r) => `${r.host} ${r.method} ${r.path}`);
    expect(unknown, 'routes without a line in audit-coverage.test.ts').toEqual([]);
  });

  it("records each route unauthenticated (as Authentication), refused and allowed (as the route's own operation), once each, in Azure's shape", async () => {
    const routes = appRoutes();
    const exercised = new Set<string>();
    const vaultChain = await vaultChainOf(vault);
    for (const route of routes) {
      const op = declaredOperation(route)!;
      const key = `${route.host} ${route.method} ${route.path}`;
      if (route.host === 'vault' && VAULT_PUBLIC_OPERATIONS[`${route.method} ${route.path}`]) {
        await send(key, route.method, `${vaultOrigin(vault)}${concretePath(route, vault)}`, {
          status: 404,
          operation: op,
          chain: vaultChain,
          authenticated: false,
        });
        exercised.add(key);
        continue;
      }
      if (route.host === 'vault') {
        const url = (query = API) => `${vaultOrigin(vault)}${concretePath(route, vault)}?${query}`;
        // (a) no token: the challenge. Azure records every refused authentication as
        // Authentication, whatever the caller attempted (src/http/authenticate.ts).
        await send(key, route.method, url(), {
          status: 401,
          operation: 'Authentication',
          chain: vaultChain,
          authenticated: false,
        });
        // (b) refused: a principal without any role, and a bad api-version.
        await send(
          key,
          route.method,
          url(),
          { status: 403, operation: op, chain: vaultChain, authenticated: true, rbacRefused: true },
          { token: nobodyToken },
        );
        await send(
          key,
          route.method,
          url('api-version=1999-01-01'),
          { status: 400, operation: op, chain: vaultChain, authenticated: true },
          { token: adminToken },
        );
        // (c) allowed (the vault's creator is its Key Vault Administrator), on objects that do not
        // exist. Key Vault Administrator cannot write role assignments or definitions (as on
        // Azure): those answer 403, recorded as a decision that went the other way.
        const writesRoles = RBAC.test(route.path) && route.method !== 'GET';
        await send(
          key,
          route.method,
          url(),
          {
            status: (s) => s < 500 && s !== 401 && (writesRoles || s !== 403),
            operation: op,
            chain: vaultChain,
            authenticated: true,
            rbacDecided: true,
          },
          { token: adminToken },
        );
        exercised.add(key);
        continue;
      }
      if (APEX_ADMIN_OPERATIONS[`${route.method} ${route.path}`]) {
        const url = `${APEX}${concretePath(route, vault)}`;
        await send(key, route.method, url, {
          status: 401,
          operation: 'Authentication',
          chain: DEPLOYMENT_CHAIN,
          authenticated: false,
        });
        await send(
          key,
          route.method,
          url,
          { status: 403, operation: op, chain: DEPLOYMENT_CHAIN, authenticated: true },
          { token: nobodyToken },
        );
        // Allowed: an administrator, on things that do not exist (nothing is created or deleted)
        // except reads; PUT of the existing vault is the 409.
        const allowedUrl =
          route.method === 'PUT' && route.path === '/management/vaults/:name'
            ? `${APEX}${concretePath(route, vault, { existingVault: true })}`
            : route.method === 'GET'
              ? `${APEX}${concretePath(route, vault, { existingVault: true })}`
              : url;
        const body = route.method === 'POST' && route.path === '/management/applications' ? { displayName: 42 } : undefined;
        await send(
          key,
          route.method,
          allowedUrl,
          { status: (s) => s < 500 && s !== 401 && s !== 403, operation: op, chain: DEPLOYMENT_CHAIN, authenticated: true },
          { token: adminToken, body },
        );
        exercised.add(key);
        continue;
      }
      // Public apex routes.
      const url = `${APEX}${concretePath(route, vault)}`;
      const base = { operation: op, chain: DEPLOYMENT_CHAIN, authenticated: false };
      switch (`${route.method} ${route.path}`) {
        case 'POST /management/bootstrap':
          await send(key, 'POST', url, { ...base, status: (s) => s === 401 || s === 403 }, { body: {} });
          await send(
            key,
            'POST',
            url,
            { ...base, status: (s) => s === 401 || s === 403 },
            { body: {}, headers: { authorization: 'Bootstrap not-the-secret' } },
          );
          // The 409: the deployment is bootstrapped already.
          await send(
            key,
            'POST',
            url,
            { ...base, status: 409 },
            { body: {}, headers: { authorization: `Bootstrap ${BOOTSTRAP_SECRET}` } },
          );
          break;
        case 'POST /:tenant/oauth2/v2.0/token': {
          const form = (p: Record<string, string>) => ({
            body: new URLSearchParams(p).toString(),
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
          });
          const good = {
            grant_type: 'client_credentials',
            client_id: adminCreds.clientId,
            client_secret: adminCreds.clientSecret,
            scope: `${APEX}/.default`,
          };
          await send(key, 'POST', url, { ...base, status: 200 }, form(good));
          await send(key, 'POST', url, { ...base, status: 401 }, form({ ...good, client_secret: 'wrong' }));
          await send(key, 'POST', url, { ...base, status: 400 }, form({ ...good, grant_type: 'password' }));
          await send(
            key,
            'POST',
            url.replace(adminCreds.tenantId, '00000000-0000-4000-8000-000000000000'),
            { ...base, status: (s) => s >= 400 && s < 500 },
            form(good),
          );
          break;
        }
        case 'GET /:tenant/v2.0/.well-known/openid-configuration':
        case 'GET /:tenant/.well-known/openid-configuration':
        case 'GET /:tenant/discovery/v2.0/keys':
          await send(key, 'GET', url, { ...base, status: 200 });
          await send(key, 'GET', url.replace(adminCreds.tenantId, '00000000-0000-4000-8000-000000000000'), {
            ...base,
            status: (s) => s >= 400 && s < 500,
          });
          break;
        default:
          await send(key, route.method, url, { ...base, status: (s) => s < 500 || route.path === '/healthz' });
      }
      exercised.add(key);
    }

    // Beyond the routes: unknown routes on both hosts, an unknown host.
    await send('unknown vault route', 'GET', `${vaultOrigin(vault)}/nosuchthing?${API}`, {
      status: 401,
      operation: 'Authentication',
      chain: vaultChain,
      authenticated: false,
    });
    await send(
      'unknown vault route',
      'GET',
      `${vaultOrigin(vault)}/nosuchthing?${API}`,
      { status: 404, operation: null, chain: vaultChain, authenticated: true },
      { token: adminToken },
    );
    await send('unknown management route', 'GET', `${APEX}/management/nosuchthing`, {
      status: 401,
      operation: 'Authentication',
      chain: DEPLOYMENT_CHAIN,
      authenticated: false,
    });
    await send('unknown apex route', 'GET', `${APEX}/nosuchthing`, {
      status: 404,
      operation: null,
      chain: DEPLOYMENT_CHAIN,
      authenticated: false,
    });
    // An unknown host is answered before any app runs, and its record gets a correlation id of
    // its own (the client's request id is not read there): found by its unique path instead.
    const marker = `cov-${crypto.randomUUID()}`;
    const unknownHost = await call('GET', `https://unknown-host.example.org/${marker}?${API}`, {
      headers: { 'x-ms-client-request-id': crypto.randomUUID() },
    });
    expect(unknownHost.status).toBe(404);

    // A 429: the vault's request limit reached (src/http/throttle.ts, configured down to one
    // request), then the token endpoint's limit on failed attempts. Recorded like any answer.
    const tight = { THROTTLE_VAULT_REQUESTS: '1' };
    await call('GET', `${vaultOrigin(vault)}/secrets?${API}`, { token: adminToken, env: tight });
    await send(
      'throttled',
      'GET',
      `${vaultOrigin(vault)}/secrets?${API}`,
      { status: 429, operation: 'SecretList', chain: vaultChain, authenticated: true },
      { token: adminToken, env: tight },
    );
    const tokenUrl = `${APEX}/${adminCreds.tenantId}/oauth2/v2.0/token`;
    const failing = (secret: string) => ({
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: adminCreds.clientId,
        client_secret: secret,
        scope: `${APEX}/.default`,
      }).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      env: { THROTTLE_TOKEN_FAILURES_PER_CLIENT: '1' },
    });
    await call('POST', tokenUrl, failing('wrong'));
    await send(
      'token throttled',
      'POST',
      tokenUrl,
      { status: 429, operation: 'Authentication', chain: DEPLOYMENT_CHAIN, authenticated: false },
      failing(adminCreds.clientSecret),
    );

    // A 5xx: an HSM key's signature while the bridge is down (503, resultType Failure).
    const created = await call('POST', `${vaultOrigin(vault)}/keys/cov-hsm/create?${API}`, {
      token: adminToken,
      body: { kty: 'EC-HSM', crv: 'P-256' },
    });
    expect(created.status, await created.clone().text()).toBe(200);
    await send(
      'bridge down',
      'POST',
      `${vaultOrigin(vault)}/keys/cov-hsm/sign?${API}`,
      { status: 503, operation: 'KeySign', chain: vaultChain, authenticated: true, rbacAllowed: true },
      {
        token: adminToken,
        body: { alg: 'ES256', value: toBase64Url(new Uint8Array(32).fill(7)) },
        env: { BRIDGE_URL: 'http://127.0.0.1:9' },
      },
    );
    // A 409 on the vault: the name of a deleted, recoverable secret.
    await call('PUT', `${vaultOrigin(vault)}/secrets/cov-deleted?${API}`, { token: adminToken, body: { value: 'v' } });
    await call('DELETE', `${vaultOrigin(vault)}/secrets/cov-deleted?${API}`, { token: adminToken });
    await send(
      'conflict',
      'PUT',
      `${vaultOrigin(vault)}/secrets/cov-deleted?${API}`,
      { status: 409, operation: 'SecretSet', chain: vaultChain, authenticated: true, rbacAllowed: true },
      { token: adminToken, body: { value: 'w' } },
    );

    expect(routes.map((r) => `${r.host} ${r.method} ${r.path}`).filter((k) => !exercised.has(k))).toEqual([]);
    expect(sent.some((s) => s.status === 409)).toBe(true);
    expect(sent.some((s) => s.status >= 500)).toBe(true);
    expect(sent.filter((s) => s.status === 429)).toHaveLength(2);
    await checkAllRecorded();

    const hostRecords = await rows<StoredRecord>(
      'select * from audit_records where chain = ? and instr(canonical, ?) > 0',
      DEPLOYMENT_CHAIN,
      marker,
    );
    expect(hostRecords).toHaveLength(1);
    const hostRecord = recordOf(hostRecords[0]!);
    checkRecord(hostRecord, hostRecords[0]!, {
      label: 'unknown host',
      id: hostRecord.correlationId,
      status: 404,
      operation: 'UnknownHost',
      chain: DEPLOYMENT_CHAIN,
      authenticated: false,
    });
    expect(hostRecord.properties.requestUri).toBe(`https://unknown-host.example.org/${marker}?api-version=7.6`);
  }, 240_000);
});

// ---------------------------------------------------------------------------------------------

describe('canaries: secrets never reach a record or a log', () => {
  const logged: string[] = [];
  const originals: Partial<Record<'log' | 'info' | 'warn' | 'error' | 'debug', (...args: unknown[]) => void>> = {};

  beforeAll(() => {
    for (const level of ['log', 'info', 'warn', 'error', 'debug'] as const) {
      originals[level] = console[level];
      console[level] = (...args: unknown[]) => {
        logged.push(
          args
            .map((a) =>
              typeof a === 'string'
                ? a
                : (() => {
                    try {
                      return JSON.stringify(a);
                    } catch {
                      return String(a);
                    }
                  })(),
            )
            .join(' '),
        );
        originals[level]!.apply(console, args);
      };
    }
  });
  afterAll(() => {
    for (const [level, fn] of Object.entries(originals)) (console as unknown as Record<string, unknown>)[level] = fn;
  });

  it('a secret value, a private key, client secrets and bearer tokens appear in no audit record (any column) and no log line', async () => {
    const started = Date.now() - 1000;
    const ids: string[] = [];
    const track = async (method: string, url: string, opts: CallOptions = {}) => {
      const id = crypto.randomUUID();
      ids.push(id);
      const res = await call(method, url, { ...opts, headers: { ...opts.headers, 'x-ms-client-request-id': id } });
      const text = new TextDecoder().decode(await res.arrayBuffer());
      return { status: res.status, body: () => JSON.parse(text) };
    };
    const canaries: Record<string, string> = {};

    // A secret value: set, read, versioned, backed up, updated, listed.
    canaries.secretValue = `canary-secret-value-${crypto.randomUUID()}`;
    const origin = vaultOrigin(vault);
    expect(
      (await track('PUT', `${origin}/secrets/canary?${API}`, { token: adminToken, body: { value: canaries.secretValue } }))
        .status,
    ).toBe(200);
    expect((await track('GET', `${origin}/secrets/canary?${API}`, { token: adminToken })).status).toBe(200);
    expect((await track('GET', `${origin}/secrets/canary/versions?${API}`, { token: adminToken })).status).toBe(200);
    expect((await track('POST', `${origin}/secrets/canary/backup?${API}`, { token: adminToken })).status).toBe(200);
    // Refused writes carrying a value, and a value in a query parameter nobody should send.
    expect(
      (await track('PUT', `${origin}/secrets/canary?${API}`, { token: nobodyToken, body: { value: canaries.secretValue } }))
        .status,
    ).toBe(403);
    expect(
      (await track('GET', `${origin}/secrets/canary?${API}&value=${canaries.secretValue}`, { token: adminToken })).status,
    ).toBe(200);

    // A private key with a known d: imported, used, read back (public half only).
    const pair = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'sign',
      'verify',
    ])) as CryptoKeyPair;
    const jwk = (await crypto.subtle.exportKey('jwk', pair.privateKey)) as JsonWebKey;
    canaries.privateD = jwk.d!;
    const imported = await track('PUT', `${origin}/keys/canary-key?${API}`, {
      token: adminToken,
      body: { key: { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y, d: jwk.d, key_ops: ['sign', 'verify'] } },
    });
    expect(imported.status).toBe(200);
    expect(
      (
        await track('POST', `${origin}/keys/canary-key/sign?${API}`, {
          token: adminToken,
          body: { alg: 'ES256', value: toBase64Url(new Uint8Array(32).fill(1)) },
        })
      ).status,
    ).toBe(200);
    expect((await track('GET', `${origin}/keys/canary-key?${API}`, { token: adminToken })).status).toBe(200);
    expect(
      (
        await track('PUT', `${origin}/keys/canary-key2?${API}`, {
          token: nobodyToken,
          body: { key: { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y, d: jwk.d } },
        })
      ).status,
    ).toBe(403);

    // A client secret: an application's, shown once, used at the token endpoint; a wrong one too.
    const created = await track('POST', `${APEX}/management/applications`, {
      token: adminToken,
      body: { displayName: 'canary app' },
    });
    const app = created.body();
    canaries.clientSecret = app.clientSecret;
    const form = (secret: string) => ({
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: app.clientId,
        client_secret: secret,
        scope: `${APEX}/.default`,
      }).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    const tokenRes = await track('POST', `${APEX}/${adminCreds.tenantId}/oauth2/v2.0/token`, form(app.clientSecret));
    expect(tokenRes.status).toBe(200);
    canaries.bearer = tokenRes.body().access_token;
    canaries.wrongClientSecret = `canary-wrong-client-secret-${crypto.randomUUID()}`;
    expect(
      (await track('POST', `${APEX}/${adminCreds.tenantId}/oauth2/v2.0/token`, form(canaries.wrongClientSecret))).status,
    ).toBe(401);
    const more = await track('POST', `${APEX}/management/applications/${app.clientId}/secrets`, { token: adminToken, body: {} });
    expect(more.status).toBe(201);
    canaries.secondClientSecret = more.body().clientSecret;

    // Bearer tokens: the new application's (refused by the vault), an administrator's, and a forged one.
    expect((await track('GET', `${origin}/secrets/canary?${API}`, { token: canaries.bearer })).status).toBe(403);
    canaries.adminBearer = adminToken;
    canaries.forgedBearer = `eyJhbGciOiJSUzI1NiJ9.eyJjYW5hcnkiOnRydWV9.canary-${crypto.randomUUID()}`;
    expect((await track('GET', `${origin}/secrets/canary?${API}`, { token: canaries.forgedBearer })).status).toBe(401);
    expect((await track('GET', `${APEX}/management/vaults`, { token: canaries.forgedBearer })).status).toBe(401);

    // Wait for every record of these requests.
    const deadline = Date.now() + 15_000;
    const idList = () => ids.map(() => '?').join(',');
    for (;;) {
      const [n] = await rows<{ n: number }>(
        `select count(distinct correlation_id) as n from audit_records where correlation_id in (${idList()})`,
        ...ids,
      );
      if (n!.n >= ids.length || Date.now() > deadline) break;
      await sleep(200);
    }
    const ours = await rows<StoredRecord>(`select * from audit_records where correlation_id in (${idList()})`, ...ids);
    expect(new Set(ours.map((r) => r.correlation_id)).size).toBe(ids.length);

    const values = Object.entries(canaries).filter(([, v]) => typeof v === 'string' && v.length >= 16);
    expect(values.map(([k]) => k).sort()).toEqual(
      [
        'adminBearer',
        'bearer',
        'clientSecret',
        'forgedBearer',
        'privateD',
        'secondClientSecret',
        'secretValue',
        'wrongClientSecret',
      ].sort(),
    );
    // Every column of every record written since the test began (this file's and any other's).
    const recent = await rows<Record<string, unknown>>('select * from audit_records where time >= ?', started);
    expect(recent.length).toBeGreaterThanOrEqual(ids.length);
    const everything = JSON.stringify(recent);
    for (const [name, value] of values) {
      expect(everything.includes(value), `${name} in audit_records`).toBe(false);
      // Tokens: not their signature either (the part that makes them usable).
      if (name.toLowerCase().includes('bearer'))
        expect(everything.includes(value.split('.')[2]!), `${name} signature`).toBe(false);
      // And across the whole table, every column, whenever written.
      const [hit] = await rows<{ n: number }>(
        `select count(*) as n from audit_records where instr(canonical, ?1) > 0 or instr(coalesce(object_id, ''), ?1) > 0 or instr(coalesce(error_code, ''), ?1) > 0
           or instr(coalesce(caller_appid, ''), ?1) > 0 or instr(coalesce(caller_oid, ''), ?1) > 0 or instr(coalesce(correlation_id, ''), ?1) > 0
           or instr(coalesce(client_ip, ''), ?1) > 0 or instr(operation, ?1) > 0 or instr(event_id, ?1) > 0`,
        value,
      );
      expect(hit!.n, `${name} anywhere in audit_records`).toBe(0);
    }
    // The log lines written while the Worker handled these requests (console is this isolate's:
    // the Worker runs in the test's isolate, the audit consumer too when the queue delivers).
    console.log('canary capture probe');
    expect(logged.some((l) => l.includes('canary capture probe'))).toBe(true);
    const logText = logged.join('\n');
    for (const [name, value] of values) expect(logText.includes(value), `${name} in the log`).toBe(false);
  }, 60_000);
});
