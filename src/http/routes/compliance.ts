/**
 * The compliance report (src/compliance/), administrators only, on the apex:
 *   GET /management/compliance/report               the whole deployment
 *   GET /management/vaults/{name}/compliance/report one vault
 * JSON by default; HTML with `?format=html` or an Accept header naming text/html (a browser).
 * `?format=json` forces JSON whatever the Accept header says.
 */
import type { Hono } from 'hono';
import { renderReportHtml } from '../../compliance/html';
import { buildComplianceReport, VaultNotFoundForReport, type ComplianceReport, type ReportTarget } from '../../compliance/report';
import { badParameter, notFound } from '../../core/errors';
import type { AppContext, AppEnv } from '../context';
import { adminOperation } from '../operation';

function wantsHtml(c: AppContext): boolean {
  const format = c.req.query('format');
  if (format !== undefined) {
    const f = format.toLowerCase();
    if (f !== 'html' && f !== 'json') throw badParameter("format must be 'json' or 'html'.");
    return f === 'html';
  }
  return /\btext\/html\b/i.test(c.req.header('accept') ?? '');
}

async function answer(c: AppContext, target: ReportTarget): Promise<Response> {
  const html = wantsHtml(c);
  let report: ComplianceReport;
  try {
    report = await buildComplianceReport(c.get('services').db, target);
  } catch (err) {
    if (err instanceof VaultNotFoundForReport) throw notFound('VaultNotFound', err.message);
    throw err;
  }
  c.header('Cache-Control', 'no-store');
  if (!html) return c.json(report);
  // The page is self-contained: no script, no external resource, so the policy allows none.
  c.header(
    'Content-Security-Policy',
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  );
  c.header('X-Content-Type-Options', 'nosniff');
  return c.html(renderReportHtml(report));
}

export function complianceRoutes(app: Hono<AppEnv>): void {
  app.get(
    '/management/compliance/report',
    adminOperation('ComplianceReportGet', () => '/compliance/report'),
    (c) => answer(c, { kind: 'deployment' }),
  );
  app.get(
    '/management/vaults/:name/compliance/report',
    adminOperation('VaultComplianceReportGet', (c) => `/vaults/${c.req.param('name')}/compliance/report`),
    (c) => answer(c, { kind: 'vault', name: c.req.param('name')! }),
  );
}
