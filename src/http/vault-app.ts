import { Hono, type MiddlewareHandler } from 'hono';
import { services } from '../services';
import { badParameter, notFound } from '../vault/errors';
import { findVault } from '../vault/vaults';
import { auditMiddleware } from './audit';
import { bearerAuth } from './authenticate';
import type { AppEnv } from './context';
import { errorResponse, renderError } from './errors';
import { classifyHost } from './hosts';
import { secretRoutes } from './routes/secrets';

/** Versions of the data-plane API this vault speaks (as the Azure SDKs send them). */
export const API_VERSIONS = new Set(['7.0', '7.1', '7.2', '7.3', '7.4', '7.5', '7.6', '2025-07-01', '2026-04-01']);

const apiVersion: MiddlewareHandler<AppEnv> = async (c, next) => {
  // URLSearchParams decodes `api%2Dversion`, which is how the SDK sends it.
  const version = new URL(c.req.url).searchParams.get('api-version');
  if (!version) throw badParameter('The api-version query parameter is required.');
  if (!API_VERSIONS.has(version)) {
    throw badParameter(`The specified version (${version.slice(0, 32)}) is not recognized. Supported: ${[...API_VERSIONS].join(', ')}.`);
  }
  c.set('apiVersion', version);
  await next();
};

const resolveVault: MiddlewareHandler<AppEnv> = async (c, next) => {
  const vaultName = c.get('audit').vault!;
  const vault = await findVault(c.get('services').db, vaultName);
  if (!vault) throw notFound('VaultNotFound', `The vault ${vaultName} does not exist.`);
  c.set('vault', vault);
  await next();
};

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
  app.use(bearerAuth(), apiVersion, resolveVault);
  secretRoutes(app);
  app.notFound((c) => errorResponse(c, 404, 'NotFound', `No operation ${c.req.method} ${new URL(c.req.url).pathname} exists.`));
  app.onError(renderError);
  return app;
}
