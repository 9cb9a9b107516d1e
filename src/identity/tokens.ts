/**
 * Access tokens: issued by the token service, verified on every request, and the caller they
 * prove.
 */
import { decodeProtectedHeader, jwtVerify, SignJWT } from 'jose';
import type { DataKeyManager } from '../crypto/data-keys';
import type { Database } from '../storage/db';
import type { Application } from './applications';
import { activeSigningKey, MAX_TOKEN_LIFETIME_SECONDS, publicKeyFor, TOKEN_ALG } from './signing-keys';

export const TOKEN_LIFETIME_SECONDS = MAX_TOKEN_LIFETIME_SECONDS;
const CLOCK_SKEW_SECONDS = 60;

/** Who is calling, as proven by a verified access token. */
export interface Caller {
  tenantId: string;
  objectId: string;
  appId: string;
}

/** The issuer of this deployment's tokens: Entra's v2.0 shape on the apex. */
export const issuerFor = (origin: string, tenantId: string) => `${origin}/${tenantId}/v2.0`;

export async function issueAccessToken(
  db: Database,
  keys: DataKeyManager,
  opts: { issuer: string; audience: string; app: Application },
): Promise<string> {
  const { kid, key } = await activeSigningKey(db, keys);
  const t = Math.floor(Date.now() / 1000);
  return new SignJWT({
    tid: opts.app.tenantId,
    oid: opts.app.objectId,
    appid: opts.app.clientId,
    azp: opts.app.clientId,
    ver: '2.0',
  })
    .setProtectedHeader({ alg: TOKEN_ALG, kid, typ: 'JWT' })
    .setIssuer(opts.issuer)
    .setAudience(opts.audience)
    .setSubject(opts.app.objectId)
    .setIssuedAt(t)
    .setNotBefore(t)
    .setExpirationTime(t + TOKEN_LIFETIME_SECONDS)
    .setJti(crypto.randomUUID())
    .sign(key);
}

export class InvalidTokenError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'InvalidTokenError';
  }
}

/**
 * Verifies signature (against this deployment's keys), issuer, audience, expiry and not-before
 * (with a small clock skew) and tenant. Warm: no D1 query, since public keys are cached.
 */
export async function verifyAccessToken(
  db: Database,
  token: string,
  opts: { issuer: string; audience: string; tenantId: string },
): Promise<Caller> {
  let kid: string | undefined;
  try {
    kid = decodeProtectedHeader(token).kid;
  } catch {
    throw new InvalidTokenError('The access token is malformed.');
  }
  const key = kid ? await publicKeyFor(db, kid) : undefined;
  if (!key) throw new InvalidTokenError('The access token was not signed by this vault service.');
  try {
    const { payload } = await jwtVerify(token, key, {
      algorithms: [TOKEN_ALG],
      issuer: opts.issuer,
      audience: opts.audience,
      clockTolerance: CLOCK_SKEW_SECONDS,
      requiredClaims: ['exp', 'nbf', 'tid', 'oid', 'appid'],
    });
    if (payload.tid !== opts.tenantId) throw new InvalidTokenError('The access token is for another tenant.');
    return { tenantId: String(payload.tid), objectId: String(payload.oid), appId: String(payload.appid) };
  } catch (err) {
    if (err instanceof InvalidTokenError) throw err;
    const code = (err as { code?: string }).code;
    if (code === 'ERR_JWT_EXPIRED') throw new InvalidTokenError('The access token has expired.');
    if (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED') {
      throw new InvalidTokenError(
        `The access token is not valid here (${(err as { claim?: string }).claim ?? 'claim'} mismatch).`,
      );
    }
    throw new InvalidTokenError('The access token signature is invalid.');
  }
}
