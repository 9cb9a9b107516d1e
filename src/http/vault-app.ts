/**
 * The Hono app of the data plane served on `{vault}.{zone}`: secrets, keys, RBAC, audit and event
 * subscriptions.
 */
import { Hono } from 'hono';
import { getPathNoStrict } from 'hono/utils/url';
import type { AppEnv } from './context';
import { renderError } from './errors';
import { unknownRoute } from './operation';
import { requestContext } from './request-context';
import { acmeChallengeRoutes } from './routes/acme-challenge';
import { auditVerifyRoutes } from './routes/audit-verify';
import { auditQueryRoutes } from './routes/audit-query';
import { eventSubscriptionApp, vaultGuard } from './routes/event-subscriptions';
import { certificateSettingsRoutes } from './routes/certificate-settings';
import { certificateRoutes } from './routes/certificates';
import { certificateWebhookRoutes } from './routes/certificate-webhooks';
import { keyRotationRoutes } from './routes/key-rotation';
import { keyRoutes } from './routes/keys';
import { rbacRoutes } from './routes/rbac';
import { secretRoutes } from './routes/secrets';

/** The data-plane API served on `{vault}.{zone}`. */
export function createVaultApp(): Hono<AppEnv> {
  // Non-strict paths (the SDK sends `/secrets/x/` for the latest version), and the SDK addresses
  // "the latest version" of a key operation with an empty segment: `/keys/k//sign` routes as
  // `/keys/k/sign`.
  const app = new Hono<AppEnv>({ getPath: (req) => getPathNoStrict(req).replace(/\/{2,}/g, '/') });
  app.use(requestContext('vault'));
  rbacRoutes(app);
  acmeChallengeRoutes(app);
  auditVerifyRoutes(app);
  auditQueryRoutes(app);
  app.route('/', eventSubscriptionApp(vaultGuard));
  secretRoutes(app);
  keyRotationRoutes(app);
  keyRoutes(app);
  // Contacts and issuers before certificates: their paths would match `/certificates/:name`.
  certificateSettingsRoutes(app);
  certificateRoutes(app);
  certificateWebhookRoutes(app);
  app.notFound(unknownRoute());
  app.onError(renderError);
  return app;
}
