/**
 * Bearer authentication. A request without a valid token gets 401 before anything else is looked
 * at, with the one challenge header every Azure SDK verifies: authorization = authority/tenant,
 * resource = the apex origin (each vault host ends with "." + the resource's host).
 * Returns the challenge response, or undefined once `caller` is set.
 */
import { decodeJwt } from 'jose';
import { IsolateCache } from '../core/cache';
import { applicationExists } from '../identity/applications';
import { findTenantId } from '../identity/tenant';
import { InvalidTokenError, issuerFor, verifyAccessToken, type Caller } from '../identity/tokens';
import { VaultError } from '../core/errors';
import { readCacheMs, type VaultRecord } from '../core/vault';
import type { AppContext } from './context';
import { errorResponse } from './errors';

/**
 * Tokens this isolate has verified, by their exact text (with the issuer and audience they were
 * checked for), until their own expiry and at most a minute: a client reuses one token for up to an
 * hour, and the ES256 verification was a large share of a warm read's CPU. Only what the signature
 * check proved is reused; the application's existence is still checked on every request, and a
 * token past its `exp` is verified afresh, hence refused.
 */
const verifiedTokens = new IsolateCache<{ caller: Caller; expMs: number }>({
  name: 'verified-tokens',
  ttlMs: 60_000,
  maxEntries: 2_000,
});

async function callerOf(
  db: Parameters<typeof verifyAccessToken>[0],
  token: string,
  opts: Parameters<typeof verifyAccessToken>[2],
) {
  const key = `${opts.issuer}|${opts.audience}|${token}`;
  const hit = verifiedTokens.get(key);
  if (hit && Date.now() < hit.expMs) return hit.caller;
  const caller = await verifyAccessToken(db, token, opts);
  const exp = decodeJwt(token).exp; // verified just above: the claims are the signer's
  if (typeof exp === 'number') verifiedTokens.set(key, { caller, expMs: exp * 1000 });
  return caller;
}

export async function authenticate(c: AppContext): Promise<Response | undefined> {
  const { db } = c.get('services');
  const apexOrigin = c.get('apexOrigin');
  const tenantId = await findTenantId(db);
  if (!tenantId) throw new VaultError(503, 'ServiceUnavailable', 'This vault service has not been bootstrapped yet.');
  c.set('tenantId', tenantId);
  const token = /^Bearer\s+([A-Za-z0-9._~+/=-]+)\s*$/i.exec(c.req.header('authorization') ?? '')?.[1];
  if (!token) return challenge(c, apexOrigin, tenantId, 'AKV10000: Request is missing a Bearer or PoP token.');
  try {
    const caller = await callerOf(db, token, {
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
