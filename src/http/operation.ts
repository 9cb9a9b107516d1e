/**
 * The per-route middleware that names an operation for the audit trail, checks the api-version,
 * authenticates, finds the vault, applies its firewall and authorizes: once per request.
 */
import type { MiddlewareHandler } from 'hono';
import { getApplication } from '../identity/applications';
import { authorize } from '../access/authorize';
import { assertNetworkAllowed } from '../access/network';
import type { DataAction } from '../core/data-actions';
import { badParameter, forbidden, notFound } from '../core/errors';
import { findVault } from '../storage/vaults';
import { authenticate, refuseRevokedApplication } from './authenticate';
import { auditAs, type AppContext, type AppEnv } from './context';
import { errorResponse } from './errors';
import { throttleCaller, throttleVaultRequest } from './throttle';

/**
 * Versions of the data-plane API this vault speaks (as the Azure SDKs send them): every version
 * Key Vault has published, previews included. Widely installed SDK builds default to a preview
 * (Debian's azure-keyvault-keys sends 7.4-preview.1), and refusing it would refuse every call.
 */
export const API_VERSIONS: ReadonlySet<string> = new Set([
  '7.0-preview',
  '7.0',
  '7.1-preview',
  '7.1',
  '7.2-preview',
  '7.2',
  '7.3-preview',
  '7.3',
  '7.4-preview.1',
  '7.4',
  '7.5-preview.1',
  '7.5',
  '7.6-preview.1',
  '7.6-preview.2',
  '7.6',
  '2025-07-01',
  '2026-04-01',
]);

function requireApiVersion(c: AppContext): void {
  // URLSearchParams decodes `api%2Dversion`, which is how the SDK sends it.
  const version = new URL(c.req.url).searchParams.get('api-version');
  if (!version) throw badParameter('The api-version query parameter is required.');
  if (!API_VERSIONS.has(version)) {
    throw badParameter(
      `The specified version (${version.slice(0, 32)}) is not recognized. Supported: ${[...API_VERSIONS].join(', ')}.`,
    );
  }
  c.set('apiVersion', version);
}

/**
 * What a data-plane route is: its audit name, its data action, and whether it names one object
 * of `collection` (from the `:name` parameter). Runs, in this order: naming (so refused requests
 * are audited under what they attempted), authentication (the challenge comes before any
 * validation), the request limits (src/http/throttle.ts), api-version, the vault, and the one
 * authorization decision.
 */
export function vaultOperation(
  operation: string,
  action: DataAction,
  collection: string,
  named: boolean,
): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const object = named ? `${collection}/${c.req.param('name')}` : null;
    auditAs(c, operation, object);
    const challenged = await authenticate(c);
    if (challenged) return challenged;
    const vaultName = c.get('audit').vault!;
    // Counted once the caller is known, refused before anything is read or written.
    const limited = throttleVaultRequest(c, vaultName, operation);
    if (limited) return limited;
    requireApiVersion(c);
    const vault = await findVault(c.get('services').db, vaultName);
    if (!vault) throw notFound('VaultNotFound', `The vault ${vaultName} does not exist.`);
    c.set('vault', vault);
    const revoked = await refuseRevokedApplication(c, vault);
    if (revoked) return revoked;
    // The vault's firewall first: a refused address learns nothing more and touches no data.
    assertNetworkAllowed(vault, c.req.header('cf-connecting-ip') ?? null, c.get('caller'));
    c.get('audit').authorization = await authorize(c.get('services').db, c.get('caller')!, action, {
      vault,
      tenantId: c.get('tenantId')!,
      path: object ?? collection,
      operation,
    });
    await next();
  };
}

/** A management route on the apex: audit name first, then authentication, then administrators only. */
export function adminOperation(operation: string, object?: (c: AppContext) => string): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    auditAs(c, operation, object ? object(c) : null);
    const challenged = await authenticate(c);
    if (challenged) return challenged;
    const limited = throttleCaller(c);
    if (limited) return limited;
    const app = await getApplication(c.get('services').db, c.get('caller')!.appId);
    if (!app?.isAdmin) throw forbidden('Only administrator applications may use the management API.');
    await next();
  };
}

/** Unknown routes: still challenged first, so an anonymous caller learns nothing about routing. */
export function unknownRoute(): (c: AppContext) => Promise<Response> {
  return async (c) => {
    const challenged = await authenticate(c);
    if (challenged) return challenged;
    return errorResponse(c, 404, 'NotFound', `No operation ${c.req.method} ${c.req.path} exists.`);
  };
}
