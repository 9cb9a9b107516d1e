/**
 * Client authentication by signed assertion (RFC 7521/7523 `client_assertion`), the two ways
 * Entra accepts it:
 *  - certificate credentials (private_key_jwt): the app signs a JWT with the key of a certificate
 *    it holds; the header names the certificate by x5t#S256 (what @azure/identity sends, with
 *    PS256) or x5t (RS256); iss = sub = client_id, aud = this token endpoint;
 *  - federated identity credentials: a JWT of an external OIDC issuer the app trusts for exactly
 *    that issuer, subject and audience, verified against the issuer's published keys.
 * A header thumbprint that names one of the app's certificates makes it a certificate assertion;
 * so does iss = client_id; anything else is treated as federated. Refusals carry Entra's codes.
 */
import {
  decodeJwt,
  decodeProtectedHeader,
  jwtVerify,
  type CryptoKey as JoseKey,
  type JWTPayload,
  type ProtectedHeaderParameters,
} from 'jose';
import { fromBase64Url, toHex } from '../core/encoding';
import type { Database } from '../storage/db';
import { getApplication, type Application } from './applications';
import { certificateVerificationKey, findCertificate, type CertificateRow } from './certificates';
import {
  federatedCredentialsOf,
  IssuerMetadataError,
  issuerKeyResolver,
  issuerUrlProblem,
  type IssuerPolicy,
} from './federation';
import { invalidClient, invalidRequest, isoTime, OAuthRefusal, quote } from './oauth-refusal';

export const JWT_BEARER_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** Signature algorithms accepted in assertions: asymmetric only (never `none` or HMAC). */
export const ASSERTION_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512'];
/** Clock skew tolerated on exp and nbf, as Entra tolerates it (five minutes). */
export const ASSERTION_CLOCK_SKEW_SECONDS = 300;
/**
 * Longest lifetime of a certificate assertion (exp after nbf/iat). Entra sets none; MSAL makes
 * them for 10 minutes. Without a bound, an assertion someone copies is a bearer credential for
 * as long as its author chose.
 */
export const MAX_CERTIFICATE_ASSERTION_LIFETIME_SECONDS = 3600;
const MAX_ASSERTION_CHARS = 16 * 1024;

export interface AssertionContext {
  tenantId: string;
  /** This deployment's token endpoint and token issuer for the tenant: the audiences a certificate assertion may name. */
  tokenEndpoint: string;
  issuer: string;
  policy: IssuerPolicy;
}

export type AssertionKind = 'certificate' | 'federated';

const malformed = (reason?: string) =>
  invalidRequest(50027, `JWT token is invalid or malformed.${reason ? ` [Reason - ${reason}]` : ''}`);

const audiences = (claims: JWTPayload): string[] =>
  typeof claims.aud === 'string'
    ? [claims.aud]
    : Array.isArray(claims.aud)
      ? claims.aud.filter((a): a is string => typeof a === 'string')
      : [];

const hexThumbprint = (b64url: string): string => {
  try {
    return toHex(fromBase64Url(b64url)).toUpperCase();
  } catch {
    return quote(b64url);
  }
};

function notInTimeRange(claims: JWTPayload, extra = ''): OAuthRefusal {
  const from = typeof claims.nbf === 'number' ? claims.nbf : typeof claims.iat === 'number' ? claims.iat : undefined;
  const parts = [`Current time: ${isoTime(Math.floor(Date.now() / 1000))}`];
  if (from !== undefined) parts.push(`assertion valid from ${isoTime(from)}`);
  if (typeof claims.exp === 'number') parts.push(`expiry time of assertion ${isoTime(claims.exp)}`);
  return invalidClient(700024, `Client assertion is not within its valid time range. ${parts.join(', ')}.${extra}`);
}

const invalidSignature = (detail: string) =>
  invalidClient(700027, `Client assertion contains an invalid signature. [Reason - ${detail}]`);

/** Maps what jose throws while verifying to Entra's answers. */
function refusalFor(err: unknown, claims: JWTPayload, signatureDetail: string): OAuthRefusal {
  if (err instanceof OAuthRefusal) return err;
  const code = (err as { code?: string }).code;
  const claim = (err as { claim?: string }).claim;
  if (code === 'ERR_JWT_EXPIRED' || (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' && (claim === 'nbf' || claim === 'iat'))) {
    return notInTimeRange(claims);
  }
  if (code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') return invalidSignature(signatureDetail);
  if (code === 'ERR_JOSE_ALG_NOT_ALLOWED' || code === 'ERR_JOSE_NOT_SUPPORTED') {
    return malformed(`The signature algorithm is not supported; use one of ${ASSERTION_ALGORITHMS.join(', ')}.`);
  }
  if (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED') return malformed(`The '${claim ?? 'exp'}' claim is missing or invalid.`);
  if (typeof code === 'string' && code.startsWith('ERR_J')) return malformed();
  throw err;
}

/**
 * Authenticates the client of a token request by its assertion: the application it proves to be,
 * and how. Reads the app's credentials from D1 each time (no cache), so revocation is immediate.
 */
export async function authenticateClientAssertion(
  db: Database,
  clientIdParam: string | undefined,
  assertion: string,
  ctx: AssertionContext,
): Promise<{ app: Application; kind: AssertionKind }> {
  if (assertion.length > MAX_ASSERTION_CHARS) throw malformed('The assertion is too large.');
  let header: ProtectedHeaderParameters;
  let claims: JWTPayload;
  try {
    header = decodeProtectedHeader(assertion);
    claims = decodeJwt(assertion);
  } catch {
    throw malformed();
  }
  // RFC 7523 lets a client omit client_id when the assertion's subject names it (self-signed only).
  const clientId = clientIdParam || (typeof claims.sub === 'string' && claims.iss === claims.sub ? claims.sub : undefined);
  if (!clientId) throw invalidRequest(900144, "The request body must contain the following parameter: 'client_id'.");
  const app = await getApplication(db, clientId);
  if (!app || app.tenantId !== ctx.tenantId) {
    throw new OAuthRefusal(
      400,
      'unauthorized_client',
      700016,
      `Application with identifier '${quote(clientId)}' was not found in the directory '${ctx.tenantId}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`,
    );
  }

  const sha256 = typeof header['x5t#S256'] === 'string' ? header['x5t#S256'] : undefined;
  const sha1 = typeof header.x5t === 'string' ? header.x5t : undefined;
  const certificate = sha256 || sha1 ? await findCertificate(db, app.clientId, { sha256, sha1 }) : undefined;
  if (certificate) {
    await verifyCertificateAssertion(assertion, header, claims, certificate, app.clientId, ctx);
    return { app, kind: 'certificate' };
  }
  if (claims.iss === app.clientId) {
    const used = sha256 ?? sha1;
    throw invalidClient(
      700027,
      used
        ? `The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '${hexThumbprint(used)}']`
        : 'Client assertion contains an invalid signature. [Reason - The key was not found: the header names no certificate (x5t#S256 or x5t).]',
    );
  }
  await verifyFederatedAssertion(db, assertion, header, claims, app.clientId, ctx);
  return { app, kind: 'federated' };
}

async function verifyCertificateAssertion(
  assertion: string,
  header: ProtectedHeaderParameters,
  claims: JWTPayload,
  certificate: CertificateRow,
  clientId: string,
  ctx: AssertionContext,
): Promise<void> {
  if (claims.iss !== clientId || claims.sub !== clientId) {
    throw invalidClient(
      700021,
      "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
    );
  }
  const thumbprint = hexThumbprint(typeof header['x5t#S256'] === 'string' ? header['x5t#S256'] : certificate.thumbprintSha1);
  const found = `Thumbprint of key used by client: '${thumbprint}', Found key 'Start=${isoTime(certificate.notBefore)}, End=${isoTime(certificate.notAfter)}'`;
  const alg = typeof header.alg === 'string' ? header.alg : '';
  if (!ASSERTION_ALGORITHMS.includes(alg))
    throw malformed(`The signature algorithm is not supported; use one of ${ASSERTION_ALGORITHMS.join(', ')}.`);
  const key = await certificateVerificationKey(certificate, alg);
  if (!key) throw invalidSignature(`The algorithm '${alg}' cannot be used with the key of this certificate., ${found}`);
  try {
    await jwtVerify(assertion, key as JoseKey, {
      algorithms: [alg],
      clockTolerance: ASSERTION_CLOCK_SKEW_SECONDS,
      requiredClaims: ['exp'],
    });
  } catch (err) {
    throw refusalFor(err, claims, `The provided signature value did not match the expected signature value., ${found}`);
  }
  if (!audiences(claims).some((a) => a === ctx.tokenEndpoint || a === ctx.issuer)) {
    throw invalidClient(
      700023,
      'Client assertion audience claim does not match Realm issuer. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .',
    );
  }
  const now = Math.floor(Date.now() / 1000);
  const from = typeof claims.nbf === 'number' ? claims.nbf : typeof claims.iat === 'number' ? claims.iat : now;
  if ((claims.exp as number) - from > MAX_CERTIFICATE_ASSERTION_LIFETIME_SECONDS) {
    throw notInTimeRange(
      claims,
      ` Certificate assertions may be valid for at most ${MAX_CERTIFICATE_ASSERTION_LIFETIME_SECONDS} seconds.`,
    );
  }
  if (now > certificate.notAfter + ASSERTION_CLOCK_SKEW_SECONDS) throw invalidSignature(`The key used is expired., ${found}`);
  if (now < certificate.notBefore - ASSERTION_CLOCK_SKEW_SECONDS)
    throw invalidSignature(`The key used is not yet valid., ${found}`);
}

const CHECK_FIC = 'Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.';

async function verifyFederatedAssertion(
  db: Database,
  assertion: string,
  header: ProtectedHeaderParameters,
  claims: JWTPayload,
  clientId: string,
  ctx: AssertionContext,
): Promise<void> {
  if (typeof claims.iss !== 'string' || typeof claims.sub !== 'string')
    throw malformed("The 'iss' and 'sub' claims are required.");
  const { iss, sub } = claims;
  const aud = audiences(claims);
  const records = await federatedCredentialsOf(db, clientId);
  if (records.length === 0) {
    throw invalidClient(
      70021,
      `No matching federated identity record found for presented assertion. Assertion Issuer: '${quote(iss)}'. Assertion Subject: '${quote(sub)}'. Assertion Audience: '${quote(aud.join(','))}'.`,
    );
  }
  const byIssuer = records.filter((r) => r.issuer === iss);
  if (byIssuer.length === 0) {
    throw invalidClient(
      700211,
      `No matching federated identity record found for presented assertion issuer '${quote(iss)}'. ${CHECK_FIC}`,
    );
  }
  const bySubject = byIssuer.filter((r) => r.subject === sub);
  if (bySubject.length === 0) {
    // Entra compares subjects case-sensitively and says so when only the case differs.
    if (byIssuer.some((r) => r.subject.toLowerCase() === sub.toLowerCase())) {
      throw invalidClient(
        7002138,
        `No matching federated identity record found for presented assertion subject '${quote(sub)}'. The subject matches with case-insensitive comparison, but not with case-sensitive comparison. ${CHECK_FIC}`,
      );
    }
    throw invalidClient(
      700213,
      `No matching federated identity record found for presented assertion subject '${quote(sub)}'. ${CHECK_FIC}`,
    );
  }
  if (!bySubject.some((r) => r.audiences.some((a) => aud.includes(a)))) {
    throw invalidClient(
      700212,
      `No matching federated identity record found for presented assertion audience '${quote(aud.join(','))}'. ${CHECK_FIC}`,
    );
  }
  // Only an issuer an administrator configured is ever fetched, and only under the URL policy.
  const problem = issuerUrlProblem(iss, ctx.policy);
  if (problem)
    throw invalidClient(undefined, `The federated identity credential's issuer '${quote(iss)}' ${problem}; it cannot be used.`);

  const kid = typeof header.kid === 'string' ? header.kid : undefined;
  const options = { algorithms: ASSERTION_ALGORITHMS, clockTolerance: ASSERTION_CLOCK_SKEW_SECONDS, requiredClaims: ['exp'] };
  try {
    await jwtVerify(assertion, issuerKeyResolver(iss, ctx.policy), options);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (err instanceof IssuerMetadataError) {
      throw invalidClient(undefined, `The metadata of identity provider '${quote(iss)}' could not be retrieved: ${err.message}.`);
    }
    if (code === 'ERR_JWKS_NO_MATCHING_KEY') {
      throw invalidClient(
        7000272,
        `The certificate with identifier ${quote(kid ?? '(no kid)')} used to sign the federated credential could not be found in the metadata of identity provider ${quote(iss)}. Please validate that your Identity Provider's metadata exposes the key used to sign the incoming token.`,
      );
    }
    if (code === 'ERR_JWKS_MULTIPLE_MATCHING_KEYS') {
      // No kid, several candidate keys: the signature must verify under one of them.
      let last: unknown = err;
      for await (const key of err as AsyncIterable<JoseKey>) {
        try {
          await jwtVerify(assertion, key, options);
          return;
        } catch (e) {
          last = e;
          if ((e as { code?: string }).code !== 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') break;
        }
      }
      throw refusalFor(last, claims, 'The provided signature value did not match the expected signature value.');
    }
    throw refusalFor(err, claims, 'The provided signature value did not match the expected signature value.');
  }
}
