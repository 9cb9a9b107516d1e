/**
 * Bearer authentication. A request without a valid token gets 401 before anything else is looked
 * at, with the one challenge header every Azure SDK verifies: authorization = authority/tenant,
 * resource = the apex origin (each vault host ends with "." + the resource's host).
 * Returns the challenge response, or undefined once `caller` is set.
 */
import { applicationExists } from '../identity/applications';
import { findTenantId } from '../identity/tenant';
import { InvalidTokenError, issuerFor, verifyAccessToken } from '../identity/tokens';
import { VaultError } from '../core/errors';
import { readCacheMs, type VaultRecord } from '../core/vault';
import type { AppContext } from './context';
import { errorResponse } from './errors';

export async function authenticate(c: AppContext): Promise<Response | undefined> {
  const { db } = c.get('services');
  const apexOrigin = c.get('apexOrigin');
  const tenantId = await findTenantId(db);
  if (!tenantId) throw new VaultError(503, 'ServiceUnavailable', 'This vault service has not been bootstrapped yet.');
  c.set('tenantId', tenantId);
  const token = /^Bearer\s+([A-Za-z0-9._~+/=-]+)\s*$/i.exec(c.req.header('authorization') ?? '')?.[1];
  if (!token) return challenge(c, apexOrigin, tenantId, 'AKV10000: Request is missing a Bearer or PoP token.');
  try {
    const caller = await verifyAccessToken(db, token, {
      issuer: issuerFor(apexOrigin, tenantId),
      audience: apexOrigin,
      tenantId,
    });
    // A deleted application's outstanding tokens stop working too.
    if (!(await applicationExists(db, caller.appId)))
      throw new InvalidTokenError('The application of this token no longer exists.');
    c.set('caller', caller);
  } catch (err) {
    if (!(err instanceof InvalidTokenError)) throw err;
    return challenge(c, apexOrigin, tenantId, `AKV10032: ${err.message}`);
  }
  return undefined;
}

/**
 * Refuses, as authenticate does, a caller whose application was deleted, judged within the vault's
 * read-cache bound (authenticate's own check may rest on an answer up to a minute old): a revoked
 * application is refused by every isolate within the bound the vault promises.
 */
export async function refuseRevokedApplication(c: AppContext, vault: VaultRecord): Promise<Response | undefined> {
  const caller = c.get('caller')!;
  if (await applicationExists(c.get('services').db, caller.appId, readCacheMs(vault))) return undefined;
  return challenge(c, c.get('apexOrigin'), c.get('tenantId')!, 'AKV10032: The application of this token no longer exists.');
}

function challenge(c: AppContext, apexOrigin: string, tenantId: string, message: string): Response {
  // Azure audits every refused authentication under one name, whatever the caller attempted.
  c.get('audit').operation = 'Authentication';
  c.header('WWW-Authenticate', `Bearer authorization="${apexOrigin}/${tenantId}", resource="${apexOrigin}"`);
  return errorResponse(c, 401, 'Unauthorized', message);
}
