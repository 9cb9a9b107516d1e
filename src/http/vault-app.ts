import { Hono } from 'hono';
import { services } from '../services';
import { auditMiddleware } from './audit';
import type { AppEnv } from './context';
import { renderError } from './errors';
import { classifyHost } from './hosts';
import { unknownRoute } from './operation';
import { secretRoutes } from './routes/secrets';

/** The data-plane API served on `{vault}.{zone}`. */
export function createVaultApp(): Hono<AppEnv> {
  const app = new Hono<AppEnv>({ strict: false });
  app.use(async (c, next) => {
    const target = classifyHost(new URL(c.req.url).host, c.env.VAULT_ZONE);
    if (target.kind !== 'vault') throw new Error('vault app reached for a non-vault host');
    c.set('apexOrigin', target.apexOrigin);
    c.set('origin', target.origin);
    c.set('services', services(c.env));
    return auditMiddleware(target.vaultName)(c, next);
  });
  secretRoutes(app);
  app.notFound(unknownRoute());
  app.onError(renderError);
  return app;
}
