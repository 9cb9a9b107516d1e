import { Hono } from 'hono';
import type { AppEnv } from './context';
import { renderError } from './errors';
import { unknownRoute } from './operation';
import { requestContext } from './request-context';
import { keyRotationRoutes } from './routes/key-rotation';
import { secretRoutes } from './routes/secrets';

/** The data-plane API served on `{vault}.{zone}`. */
export function createVaultApp(): Hono<AppEnv> {
  const app = new Hono<AppEnv>({ strict: false });
  app.use(requestContext('vault'));
  secretRoutes(app);
  keyRotationRoutes(app);
  app.notFound(unknownRoute());
  app.onError(renderError);
  return app;
}
