/**
 * The audit record: Azure Key Vault's `AuditEvent` diagnostic log shape (what Azure writes to the
 * `insights-logs-auditevent` container), built in the consumer from a queue message. Checked
 * against Azure's documented sample and real exported records:
 *
 *  - `time` ISO 8601 UTC; `operationName` Azure's names; `operationVersion` the api-version asked for;
 *  - `category` always "AuditEvent";
 *  - `resultType` "Success" whenever the service answered the request, whatever the status (Azure
 *    writes "Success" for 400, 403 and 404 answers too: the outcome is in `resultSignature` and
 *    `properties.httpStatusCode`); "Failure" for 5xx answers, where the service itself failed;
 *  - `resultSignature` the HTTP reason phrase as Azure writes it: "OK", "Bad Request",
 *    "Unauthorized", "Forbidden", "Not Found", "Conflict", "Too Many Requests", …;
 *  - `resultDescription` the error code of a refused or failed request ("" on success). Only the
 *    code: messages may echo request input, codes never do;
 *  - `durationMs` a string, as Azure writes it; `callerIpAddress`, `correlationId`;
 *  - `identity.claim` the token's object id, application id and tenant under the claim names of
 *    Azure's documented sample (absent when the request was not authenticated);
 *  - `properties`: `id` (the object's URL, when the request named one), `requestUri`,
 *    `httpStatusCode`, `clientInfo`, and `isRbacAuthorized` + `appliedAssignmentId` (vaults that
 *    authorize with role assignments) or `isAccessPolicyMatch` (vaults with access policies) when
 *    the request reached the authorization decision.
 *
 * `resourceId`: there are no subscriptions or resource groups here, so a vault's records carry
 * `/TENANTS/{TENANT}/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/{NAME}` and the deployment's (apex and
 * unknown hosts) `/TENANTS/{TENANT}/PROVIDERS/MICROSOFT.KEYVAULT`, upper-cased as Azure writes
 * resource ids; `/TENANTS/{TENANT}` is left out before the deployment is bootstrapped.
 *
 * Three fields are this service's own, beyond Azure's shape, and bind the record to its place in
 * the hash chain: `eventId` (the queue message's event id), `chain` and `sequence`.
 */
import { canonicalJson, sha256Hex } from './canonical';
import { DEPLOYMENT_CHAIN, type AuditEvent } from './event';

export const CLAIM_OBJECT_ID = 'http://schemas.microsoft.com/identity/claims/objectidentifier';
export const CLAIM_APP_ID = 'appid';
export const CLAIM_TENANT_ID = 'http://schemas.microsoft.com/identity/claims/tenantid';

export interface AuditRecordProperties {
  id?: string;
  requestUri: string;
  httpStatusCode: number;
  clientInfo: string;
  isRbacAuthorized?: boolean;
  appliedAssignmentId?: string;
  isAccessPolicyMatch?: boolean;
  /** Records of messages that could not be recorded as they were (see malformedRecord). */
  bodyDigest?: string;
  bodyType?: string;
  queue?: string;
  messageId?: string;
  originalEventId?: string;
  intendedChain?: string;
  originalOperationName?: string;
}

export interface AuditRecord {
  time: string;
  resourceId: string;
  operationName: string;
  operationVersion: string;
  category: 'AuditEvent';
  resultType: 'Success' | 'Failure';
  resultSignature: string;
  resultDescription: string;
  durationMs: string;
  callerIpAddress: string;
  correlationId: string;
  identity?: { claim: Record<string, string> };
  properties: AuditRecordProperties;
  eventId: string;
  chain: string;
  sequence: number;
}

/** Where a record goes in its chain. */
export interface ChainPlace {
  chain: string;
  sequence: number;
}

const REASONS: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  202: 'Accepted',
  204: 'No Content',
  301: 'Moved Permanently',
  302: 'Found',
  304: 'Not Modified',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  408: 'Request Timeout',
  409: 'Conflict',
  410: 'Gone',
  411: 'Length Required',
  412: 'Precondition Failed',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** The HTTP reason phrase Azure writes as resultSignature. */
export function reasonPhrase(status: number): string {
  return REASONS[status] ?? String(status);
}

export function resourceIdOf(chainVault: string | null, tenantId: string | null): string {
  const tenant = tenantId ? `/TENANTS/${tenantId}` : '';
  const vault = chainVault ? `/VAULTS/${chainVault}` : '';
  return `${tenant}/PROVIDERS/MICROSOFT.KEYVAULT${vault}`.toUpperCase();
}

function objectUrl(requestUri: string, objectId: string): string {
  let origin = '';
  let path = '';
  try {
    const url = new URL(requestUri);
    origin = url.origin;
    path = url.pathname;
  } catch {
    return objectId;
  }
  // Apex objects (applications, vaults) live under the management API.
  const prefix = path.startsWith('/management/') && !objectId.startsWith('/management/') ? '/management' : '';
  return `${origin}${prefix}${objectId}`;
}

/** Azure's AuditEvent record of one request, at its place in its chain. */
export function buildRecord(event: AuditEvent, place: ChainPlace, deploymentTenant: string | null): AuditRecord {
  const tenant = event.tenantId ?? deploymentTenant;
  const properties: AuditRecordProperties = {
    requestUri: event.requestUri,
    httpStatusCode: event.status,
    clientInfo: event.clientInfo ?? '',
  };
  if (event.objectId) properties.id = objectUrl(event.requestUri, event.objectId);
  const decision = event.authorization;
  if (decision?.by === 'rbac') {
    properties.isRbacAuthorized = true;
    properties.appliedAssignmentId = decision.assignmentId;
  } else if (decision?.by === 'policy') {
    properties.isAccessPolicyMatch = true;
  } else if (event.authorizationModel && event.status === 403) {
    // Refused at the vault: by its firewall or by the authorization decision; either way not granted.
    if (event.authorizationModel === 'rbac') properties.isRbacAuthorized = false;
    else properties.isAccessPolicyMatch = false;
  }
  const record: AuditRecord = {
    time: new Date(event.time).toISOString(),
    resourceId: resourceIdOf(event.vault, tenant),
    operationName: event.operation,
    operationVersion: event.apiVersion ?? '',
    category: 'AuditEvent',
    resultType: event.status >= 500 ? 'Failure' : 'Success',
    resultSignature: reasonPhrase(event.status),
    resultDescription: event.errorCode ?? '',
    durationMs: String(event.durationMs),
    callerIpAddress: event.clientIp ?? '',
    correlationId: event.correlationId,
    properties,
    eventId: event.id,
    chain: place.chain,
    sequence: place.sequence,
  };
  if (event.caller) {
    const claim: Record<string, string> = {};
    if (event.caller.oid) claim[CLAIM_OBJECT_ID] = event.caller.oid;
    if (event.caller.appid) claim[CLAIM_APP_ID] = event.caller.appid;
    if (event.caller.tid) claim[CLAIM_TENANT_ID] = event.caller.tid;
    record.identity = { claim };
  }
  return record;
}

/** What a queue message that is not an audit event was, without the body itself. */
export interface MalformedMessage {
  eventId: string;
  /** When it was queued (the message's timestamp), Unix milliseconds. */
  time: number;
  queue: string;
  messageId: string;
  body: unknown;
}

/**
 * A digest of a message body: SHA-256 of its JSON text, or of its type tag when it has none
 * (functions, cycles, BigInt). Never the body.
 */
export async function bodyDigest(body: unknown): Promise<{ digest: string; type: string }> {
  const type = body === null ? 'null' : Array.isArray(body) ? 'array' : typeof body;
  let text: string;
  try {
    text = JSON.stringify(body) ?? Object.prototype.toString.call(body);
  } catch {
    text = Object.prototype.toString.call(body);
  }
  return { digest: `sha256:${await sha256Hex(text)}`, type };
}

function systemRecord(
  operationName: string,
  time: number,
  description: string,
  place: ChainPlace,
  eventId: string,
  tenant: string | null,
  properties: Partial<AuditRecordProperties>,
): AuditRecord {
  return {
    time: new Date(time).toISOString(),
    resourceId: resourceIdOf(null, tenant),
    operationName,
    operationVersion: '',
    category: 'AuditEvent',
    resultType: 'Failure',
    resultSignature: '',
    resultDescription: description,
    durationMs: '0',
    callerIpAddress: '',
    correlationId: '',
    properties: { requestUri: '', httpStatusCode: 0, clientInfo: '', ...properties },
    eventId,
    chain: place.chain,
    sequence: place.sequence,
  };
}

/** The record of a message whose body is not an audit event: its digest, never the body. */
export function malformedRecord(
  m: MalformedMessage,
  digest: { digest: string; type: string },
  place: ChainPlace,
  tenant: string | null,
): AuditRecord {
  return systemRecord(
    'MalformedAuditEvent',
    m.time,
    'The audit queue delivered a message that is not an audit event; its digest is recorded instead.',
    place,
    m.eventId,
    tenant,
    { bodyDigest: digest.digest, bodyType: digest.type, queue: m.queue, messageId: m.messageId },
  );
}

/**
 * The record, in the deployment's chain, of a valid event that could not be appended to its own
 * chain after the dead-letter queue's retries: what it was and the digest of its canonical form.
 */
export async function unappendableRecord(
  event: AuditEvent,
  intendedChain: string,
  place: ChainPlace,
  eventId: string,
  tenant: string | null,
): Promise<AuditRecord> {
  return systemRecord(
    'UnappendableAuditEvent',
    event.time,
    'An audit event could not be appended to its chain; what it was is recorded here instead.',
    place,
    eventId,
    tenant,
    {
      httpStatusCode: event.status,
      requestUri: event.requestUri,
      originalEventId: event.id,
      intendedChain,
      originalOperationName: event.operation,
      bodyDigest: `sha256:${await sha256Hex(canonicalJson(event))}`,
    },
  );
}

export { DEPLOYMENT_CHAIN };

/** The queryable columns stored beside a record, all derived from it (the verifier re-derives them). */
export interface IndexedColumns {
  time: number;
  operation: string;
  callerAppId: string | null;
  callerObjectId: string | null;
  objectId: string | null;
  status: number;
  result: 'success' | 'denied' | 'failed' | 'error';
  errorCode: string | null;
  correlationId: string | null;
  clientIp: string | null;
}

/** success (< 400), denied (401, 403), failed (other 4xx), error (5xx, and records of no request). */
export function resultClass(status: number): IndexedColumns['result'] {
  if (status >= 100 && status < 400) return 'success';
  if (status === 401 || status === 403) return 'denied';
  if (status >= 400 && status < 500) return 'failed';
  return 'error';
}

export function indexedColumns(record: AuditRecord): IndexedColumns {
  let objectId: string | null = null;
  if (record.properties.id) {
    try {
      objectId = new URL(record.properties.id).pathname;
    } catch {
      objectId = record.properties.id;
    }
  }
  const claim = record.identity?.claim;
  return {
    time: Date.parse(record.time),
    operation: record.operationName,
    callerAppId: claim?.[CLAIM_APP_ID] ?? null,
    callerObjectId: claim?.[CLAIM_OBJECT_ID] ?? null,
    objectId,
    status: record.properties.httpStatusCode,
    result: resultClass(record.properties.httpStatusCode),
    errorCode:
      record.resultDescription &&
      record.operationName !== 'MalformedAuditEvent' &&
      record.operationName !== 'UnappendableAuditEvent'
        ? record.resultDescription
        : null,
    correlationId: record.correlationId || null,
    clientIp: record.callerIpAddress || null,
  };
}
