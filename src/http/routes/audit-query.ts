/**
 * Reading the audit trail (src/audit/query.ts):
 *
 *   GET https://{vault}.{zone}/auditEvents?api-version=…   the vault's chain; data action
 *       Microsoft.KeyVault/vaults/auditEvents/read/action (Key Vault Administrator, Key Vault Auditor)
 *   GET https://{zone}/management/auditEvents               the deployment's chain; administrators
 *
 * Filters: from, to, operation, caller, objectId, result, status. A page is `{value, nextLink}`
 * (maxresults 1–25); `Accept: application/x-ndjson` or `format=ndjson` streams every matching
 * record instead, one canonical record a line, at most maxresults (default and most 100,000),
 * with the continuation in `x-ms-continuation` and `Link: <…>; rel="next"` when it stopped short.
 * A query is audited like any request: as AuditEventList, an export as AuditEventExport.
 */
import type { Hono } from 'hono';
import { chainOfVault } from '../../audit/chains';
import { DEPLOYMENT_CHAIN } from '../../audit/event';
import { exportAudit, parseAuditFilter, parseLimit, parseSkipToken, queryAuditPage } from '../../audit/query';
import { nextLinkFor } from '../../access/listing';
import { AuditActions } from '../../core/data-actions';
import { badParameter, notFound } from '../../core/errors';
import { findVault } from '../../storage/vaults';
import { currentVault, type AppContext, type AppEnv } from '../context';
import { API_VERSIONS, adminOperation, vaultOperation } from '../operation';

const NDJSON = 'application/x-ndjson';

/** Whether the request asks for the NDJSON export (`format` wins over `Accept`). */
export function wantsExport(c: AppContext): boolean {
  const format = new URL(c.req.url).searchParams.get('format');
  if (format !== null) {
    const f = format.trim().toLowerCase();
    if (f === 'ndjson' || f === 'jsonl') return true;
    if (f === 'json') return false;
    // Refused by the handler (after authorization): an unknown format is a bad parameter.
    return false;
  }
  const accept = (c.req.header('accept') ?? '').toLowerCase();
  return accept.includes(NDJSON) || accept.includes('application/jsonl');
}

function checkFormat(c: AppContext): void {
  const format = new URL(c.req.url).searchParams.get('format');
  if (format !== null && !['json', 'ndjson', 'jsonl'].includes(format.trim().toLowerCase())) {
    throw badParameter("The format parameter takes 'json' or 'ndjson'.");
  }
}

const operationName = (c: AppContext) => (wantsExport(c) ? 'AuditEventExport' : 'AuditEventList');

async function answer(c: AppContext, chain: string): Promise<Response> {
  checkFormat(c);
  const params = new URL(c.req.url).searchParams;
  const filter = parseAuditFilter(params);
  const exporting = wantsExport(c);
  const limit = parseLimit(params.get('maxresults'), exporting);
  const after = parseSkipToken(params.get('$skiptoken'));
  const db = c.get('services').db;
  if (!exporting) {
    const page = await queryAuditPage(db, chain, filter, limit, after);
    return c.json({ value: page.records, nextLink: nextLinkFor(c.req.url, page.next) });
  }
  const result = await exportAudit(db, chain, filter, limit, after);
  const headers: Record<string, string> = {
    'content-type': `${NDJSON}; charset=utf-8`,
    'cache-control': 'no-store',
    'x-ekv-audit-through-sequence': String(result.through),
  };
  if (result.next) {
    const next = nextLinkFor(c.req.url, result.next)!;
    headers['x-ms-continuation'] = result.next;
    headers.link = `<${next}>; rel="next"`;
  }
  return c.body(result.body, 200, headers);
}

export function auditQueryRoutes(app: Hono<AppEnv>): void {
  app.get(
    '/auditEvents',
    (c, next) => vaultOperation(operationName(c), AuditActions.read, '/auditEvents', false)(c, next),
    async (c) => answer(c, await chainOfVault(c.get('services').db, currentVault(c).vault)),
  );
}

/** The management API takes no api-version; one given must still be one this service speaks. */
function optionalApiVersion(c: AppContext): void {
  const version = new URL(c.req.url).searchParams.get('api-version');
  if (version === null) return;
  if (!API_VERSIONS.has(version)) throw badParameter(`The specified version (${version.slice(0, 32)}) is not recognized.`);
  c.set('apiVersion', version);
}

/**
 * For the deployment's administrators: the deployment's chain (apex and unknown hosts), and any
 * vault's chain (whatever its permission model: a vault under access policies has no permission
 * for its trail, as Azure's diagnostic logs are not a data-plane permission either).
 */
export function apexAuditQueryRoutes(app: Hono<AppEnv>): void {
  app.get(
    '/management/auditEvents',
    (c, next) => adminOperation(operationName(c))(c, next),
    async (c) => {
      optionalApiVersion(c);
      return answer(c, DEPLOYMENT_CHAIN);
    },
  );
  app.get(
    '/management/vaults/:name/auditEvents',
    (c, next) => adminOperation(operationName(c), (c) => `/vaults/${c.req.param('name')}`)(c, next),
    async (c) => {
      optionalApiVersion(c);
      const name = c.req.param('name');
      const vault = await findVault(c.get('services').db, name);
      if (!vault) throw notFound('VaultNotFound', `Vault ${name.slice(0, 64)} was not found.`);
      return answer(c, await chainOfVault(c.get('services').db, vault));
    },
  );
}
