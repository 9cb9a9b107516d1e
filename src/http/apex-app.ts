/** The Hono app of the zone apex: health, the token service, the management API. */
import { Hono } from 'hono';
import type { AppEnv } from './context';
import { errorResponse, renderError } from './errors';
import { unknownRoute } from './operation';
import { requestContext } from './request-context';
import { auditVerifyApexRoutes } from './routes/audit-verify';
import { complianceRoutes } from './routes/compliance';
import { adminGuard, eventSubscriptionApp } from './routes/event-subscriptions';
import { apexAuditQueryRoutes } from './routes/audit-query';
import { healthRoutes } from './routes/health';
import { managementRoutes } from './routes/management';
import { acmeChallengeRoutes } from './routes/acme-challenge';
import { pkiRoutes } from './routes/pki';
import { managementRbacRoutes } from './routes/management-rbac';
import { credentialManagementRoutes } from './routes/management-credentials';
import { vaultSettingsRoutes } from './routes/management-vault-settings';
import { rotationRoutes } from './routes/management-rotation';
import { tokenRoutes } from './routes/token';

/** The apex host: health, management and the token service. */
export function createApexApp(): Hono<AppEnv> {
  const app = new Hono<AppEnv>({ strict: false });
  app.use(requestContext('apex'));
  healthRoutes(app);
  auditVerifyApexRoutes(app);
  managementRoutes(app);
  managementRbacRoutes(app);
  credentialManagementRoutes(app);
  vaultSettingsRoutes(app);
  app.route('/management/vaults/:vault', eventSubscriptionApp(adminGuard));
  rotationRoutes(app);
  apexAuditQueryRoutes(app);
  complianceRoutes(app);
  tokenRoutes(app);
  pkiRoutes(app);
  acmeChallengeRoutes(app);
  const challengedNotFound = unknownRoute();
  // Unknown management paths are challenged like known ones; the rest of the apex is public.
  app.notFound((c) =>
    c.req.path.startsWith('/management')
      ? challengedNotFound(c)
      : errorResponse(c, 404, 'NotFound', `No operation ${c.req.method} ${c.req.path} exists.`),
  );
  app.onError(renderError);
  return app;
}
