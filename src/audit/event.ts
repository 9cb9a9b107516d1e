/**
 * The audit queue's message: one per request, allowed or refused, sent after the answer. It
 * carries what the audit record needs (src/audit/record.ts builds Azure's AuditEvent shape from
 * it in the consumer) and nothing secret: no values, key material, tokens, client secrets, request
 * bodies or headers other than the user agent. The request URI keeps only the query parameters
 * that can never carry a secret (ALLOWED_QUERY); the data plane has no secret in its paths, and
 * the token endpoint takes its credentials in the body, which is never looked at here.
 */

/** Version of the message shape; messages of version 1 (before the chain) are still accepted. */
export const AUDIT_EVENT_VERSION = 2;

/** Who called: the token's tenant, object id and application id. */
export interface AuditCaller {
  tid: string;
  oid: string;
  appid: string;
}

/** What granted the request (src/access/authorize.ts's decision, copied field by field). */
export type AuditAuthorization =
  { by: 'rbac'; assignmentId: string; roleDefinitionId: string } | { by: 'policy'; objectId: string };

export interface AuditEvent {
  v: 2;
  /** Unique per request; the consumer stores each id once (redelivery adds nothing). */
  id: string;
  /** When the request arrived, Unix milliseconds. */
  time: number;
  /** The vault the request was for (from its host); null on the apex and unknown hosts. */
  vault: string | null;
  /**
   * The id of that vault, when the request got as far as looking it up: the chain is chosen by it
   * (src/audit/chains.ts), never by the name alone. Absent in messages queued before it existed.
   */
  vaultId?: string | null;
  /** The deployment's tenant, when the request path learnt it (the consumer fills it in otherwise). */
  tenantId: string | null;
  /** Azure's operation name (SecretGet, KeySign, VaultGet, Authentication, …). */
  operation: string;
  /** The api-version the client asked for, if any. */
  apiVersion: string | null;
  caller: AuditCaller | null;
  /** The object the request named, as a path: `/secrets/x`, `/keys/k`, `/applications/{id}`. */
  objectId: string | null;
  /** Origin, path and the allowed query parameters of the request. */
  requestUri: string;
  status: number;
  /** The error code the request was answered with (e.g. `SecretNotFound`); null on success. */
  errorCode: string | null;
  durationMs: number;
  clientIp: string | null;
  correlationId: string;
  /** The user agent, truncated. */
  clientInfo: string | null;
  authorization: AuditAuthorization | null;
  /** How the vault decides access, when the request reached a vault: role assignments or policies. */
  authorizationModel: 'rbac' | 'policy' | null;
}

/** Query parameters kept in requestUri; every other one (and its value) is dropped. */
export const ALLOWED_QUERY = ['api-version', 'maxresults', '$skiptoken', '$filter'] as const;

const MAX_URI = 2048;
const MAX_QUERY_VALUE = 512;
const MAX_CLIENT_INFO = 256;

/** The request's URI as recorded: no fragment, no credentials, only ALLOWED_QUERY parameters. */
export function requestUriOf(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return '';
  }
  const kept = new URLSearchParams();
  for (const name of ALLOWED_QUERY) {
    for (const value of parsed.searchParams.getAll(name)) kept.append(name, value.slice(0, MAX_QUERY_VALUE));
  }
  const query = kept.toString();
  // URL never keeps userinfo in origin; pathname is percent-encoded as received.
  return `${parsed.origin}${parsed.pathname}${query ? `?${query}` : ''}`.slice(0, MAX_URI);
}

/** The api-version as the client sent it, if it looks like one. */
export function apiVersionOf(url: string): string | null {
  try {
    const v = new URL(url).searchParams.get('api-version');
    return v && /^[0-9A-Za-z.-]{1,32}$/.test(v) ? v : null;
  } catch {
    return null;
  }
}

export function clientInfoOf(userAgent: string | null | undefined): string | null {
  if (!userAgent) return null;
  // Control characters never belong in a log field.
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  return userAgent.replace(/[\u0000-\u001f\u007f]/g, ' ').slice(0, MAX_CLIENT_INFO);
}

/** The deployment's chain (apex, unknown hosts); each vault's is by its id (src/audit/chains.ts). */
export const DEPLOYMENT_CHAIN = 'deployment';
/**
 * The chain of a vault name with no vault id: how vault chains were named before migration 0012
 * (those chains keep their name), and where requests naming a host with no vault are recorded.
 */
export const chainOfVaultName = (vault: string | null): string => (vault ? `vault:${vault.toLowerCase()}` : DEPLOYMENT_CHAIN);

/** How a request refused by its Host alone was answered. */
export interface HostRefusal {
  operation: 'UnknownHost' | 'InvalidHost';
  status: 400 | 404;
  errorCode: string;
}

const UNKNOWN_HOST: HostRefusal = { operation: 'UnknownHost', status: 404, errorCode: 'NotFound' };

/**
 * The event of a request refused by its Host before any app runs: a host this service does not
 * serve, or one that is not a valid host at all (then the request URI cannot be read and is left
 * empty: its query could not be filtered).
 */
export function unknownHostEvent(request: Request, started = Date.now(), refusal: HostRefusal = UNKNOWN_HOST): AuditEvent {
  return {
    v: AUDIT_EVENT_VERSION,
    id: crypto.randomUUID(),
    time: started,
    vault: null,
    vaultId: null,
    tenantId: null,
    operation: refusal.operation,
    apiVersion: apiVersionOf(request.url),
    caller: null,
    objectId: null,
    requestUri: requestUriOf(request.url),
    status: refusal.status,
    errorCode: refusal.errorCode,
    durationMs: Date.now() - started,
    clientIp: request.headers.get('cf-connecting-ip'),
    correlationId: crypto.randomUUID(),
    clientInfo: clientInfoOf(request.headers.get('user-agent')),
    authorization: null,
    authorizationModel: null,
  };
}

// ---------------------------------------------------------------------------------------------
// Reading messages back: the consumer trusts nothing about a body's shape.

// Types are checked; lengths are not grounds for refusal (a caller must not be able to turn its
// own request's record into a MalformedAuditEvent with a long header or path): strings are cut.
const isStr = (v: unknown): v is string => typeof v === 'string';
const isOptStr = (v: unknown): v is string | null => v === null || typeof v === 'string';
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
const cut = <T extends string | null>(v: T, max: number): T => (typeof v === 'string' ? (v.slice(0, max) as T) : v);

function callerOf(v: unknown): AuditCaller | null | undefined {
  if (v === null) return null;
  const c = v as Record<string, unknown>;
  if (typeof c !== 'object' || !isStr(c.tid) || !isStr(c.oid) || !isStr(c.appid)) return undefined;
  return { tid: cut(c.tid, 128), oid: cut(c.oid, 128), appid: cut(c.appid, 128) };
}

function authorizationOf(v: unknown): AuditAuthorization | null | undefined {
  if (v === null || v === undefined) return null;
  const a = v as Record<string, unknown>;
  if (typeof a !== 'object') return undefined;
  if (a.by === 'rbac' && isStr(a.assignmentId) && isStr(a.roleDefinitionId)) {
    return { by: 'rbac', assignmentId: cut(a.assignmentId, 256), roleDefinitionId: cut(a.roleDefinitionId, 512) };
  }
  if (a.by === 'policy' && isStr(a.objectId)) return { by: 'policy', objectId: cut(a.objectId, 256) };
  return undefined;
}

/**
 * The event a queue message carries, or null when the body is not one (the consumer records such
 * bodies as MalformedAuditEvent). Messages of version 1 (queued before this shape existed) are
 * converted: their caller is an application id only and their request URI is unknown.
 */
export function parseAuditEvent(body: unknown): AuditEvent | null {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return null;
  const e = body as Record<string, unknown>;
  const common =
    isStr(e.id) &&
    e.id.length > 0 &&
    e.id.length <= 128 &&
    isInt(e.time) &&
    e.time >= 0 &&
    isOptStr(e.vault) &&
    (e.vaultId === undefined || isOptStr(e.vaultId)) &&
    isStr(e.operation) &&
    e.operation.length > 0 &&
    isOptStr(e.objectId) &&
    isInt(e.status) &&
    e.status >= 100 &&
    e.status <= 599 &&
    isInt(e.durationMs) &&
    isStr(e.correlationId) &&
    isOptStr(e.clientIp) &&
    (e.errorCode === undefined || isOptStr(e.errorCode));
  if (!common) return null;
  const base = {
    id: e.id as string,
    time: e.time as number,
    vault: cut(e.vault as string | null, 255),
    vaultId: cut((e.vaultId as string | null | undefined) ?? null, 64),
    operation: cut(e.operation as string, 128),
    objectId: cut(e.objectId as string | null, 1024),
    status: e.status as number,
    durationMs: Math.max(0, e.durationMs as number),
    correlationId: cut(e.correlationId as string, 128),
    clientIp: cut(e.clientIp as string | null, 64),
    errorCode: cut((e.errorCode as string | null | undefined) ?? null, 128),
  };
  if (e.v === undefined) {
    // Version 1: `caller` was the application id.
    if (!isOptStr(e.caller)) return null;
    return {
      v: AUDIT_EVENT_VERSION,
      ...base,
      tenantId: null,
      apiVersion: null,
      caller: e.caller ? { tid: '', oid: '', appid: cut(e.caller, 128) } : null,
      requestUri: '',
      clientInfo: null,
      authorization: null,
      authorizationModel: null,
    };
  }
  if (e.v !== AUDIT_EVENT_VERSION) return null;
  const caller = callerOf(e.caller);
  const authorization = authorizationOf(e.authorization);
  if (caller === undefined || authorization === undefined) return null;
  if (!isOptStr(e.tenantId) || !isOptStr(e.apiVersion) || !isStr(e.requestUri) || !isOptStr(e.clientInfo)) return null;
  if (e.authorizationModel !== null && e.authorizationModel !== 'rbac' && e.authorizationModel !== 'policy') return null;
  return {
    v: AUDIT_EVENT_VERSION,
    ...base,
    tenantId: cut(e.tenantId, 128),
    apiVersion: cut(e.apiVersion, 32),
    caller,
    requestUri: cut(e.requestUri, MAX_URI),
    clientInfo: cut(e.clientInfo, MAX_CLIENT_INFO),
    authorization,
    authorizationModel: e.authorizationModel,
  };
}
