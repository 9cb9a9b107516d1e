/**
 * One RPC call through the same steps as an HTTP request to the data plane (src/http/operation.ts):
 * the caller (from the binding's props instead of a token), the vault, its firewall, the one
 * authorization decision, the operation, and one audit event, log line and metrics point whatever
 * the outcome. Errors become the refusal the HTTP API would answer, as a value (wire.ts says why).
 */
import { authorize, type AuthorizationDecision } from '../access/authorize';
import { isRpcAllowed } from '../access/network';
import { AUDIT_EVENT_VERSION, type AuditEvent } from '../audit/event';
import { observeRequest } from '../audit/observe';
import { queueAuditEvent } from '../audit/send';
import type { DataAction } from '../core/data-actions';
import type { Env } from '../core/env';
import type { RequestMeter } from '../core/log';
import { forbidden, notFound, VaultError } from '../core/errors';
import { takeLimits, THROTTLED_MESSAGE, vaultRequestEntries } from '../core/request-limits';
import { readCacheMs, type VaultRecord } from '../core/vault';
import { services, type Services } from '../crypto/services';
import { cachedApplication } from '../identity/applications';
import { findTenantId } from '../identity/tenant';
import type { Caller } from '../identity/tokens';
import { describeError, storageUnavailable } from '../storage/errors';
import { findVault } from '../storage/vaults';
import type { RpcError, RpcProps, RpcResult } from './wire';

export interface RpcOperation {
  /** The method's name, for the audit record's request URI. */
  method: string;
  /** Azure's audit name: SecretGet, KeySign, … */
  operation: string;
  action: DataAction;
  /** What the call touches: `/secrets/{name}`, `/keys/{name}`. */
  object: string;
}

export interface RpcScope {
  services: Services;
  vault: VaultRecord;
  caller: Caller;
  /** `https://{vault}.{zone}`: ids are built on it. */
  origin: string;
}

// Marks an audit record as made over the service binding (the HTTP API has no /rpc/ route).
const RPC_CLIENT_INFO = 'EdgeKeyVault-RPC (service binding)';

/** 429 Throttled, as the HTTP API answers it, with its Retry-After carried in the result. */
class ThrottledError extends Error {
  constructor(
    reason: string,
    readonly retryAfterSeconds: number,
  ) {
    super(`${THROTTLED_MESSAGE} Reason: ${reason}`);
  }
}

const unauthorized = (message: string) => new VaultError(401, 'Unauthorized', message);

/** The caller the binding's props name: an application of this vault's tenant, still existing. */
async function callerOf(s: Services, props: RpcProps, vault: VaultRecord, tenantId: string): Promise<Caller> {
  const clientId = typeof props.clientId === 'string' ? props.clientId : '';
  if (!clientId) throw unauthorized('The service binding names no application (props.clientId).');
  // Within the vault's read-cache bound: a deleted application is refused everywhere within it.
  const app = await cachedApplication(s.db, clientId, readCacheMs(vault));
  if (!app || app.tenantId !== tenantId)
    throw unauthorized(`The application ${clientId.slice(0, 64)} of this service binding does not exist.`);
  return { tenantId: app.tenantId, objectId: app.objectId, appId: app.clientId };
}

/** Runs inside the call's request scope (entrypoint.ts sets it), whose waitUntil the caches' renewals use. */
export async function rpcCall<T>(
  env: Env,
  ctx: ExecutionContext,
  props: RpcProps,
  op: RpcOperation,
  run: (scope: RpcScope) => Promise<T>,
): Promise<RpcResult<T>> {
  const started = Date.now();
  const vaultName = typeof props.vault === 'string' ? props.vault.toLowerCase() : null;
  const audit: {
    caller?: Caller;
    tenantId?: string;
    vault?: VaultRecord;
    decision?: AuthorizationDecision;
    status: number;
    errorCode: string | null;
  } = {
    status: 200,
    errorCode: null,
  };
  let meter: RequestMeter | undefined;
  try {
    const s = services(env);
    meter = s.meter;
    if (!vaultName) throw unauthorized('The service binding names no vault (props.vault).');
    const tenantId = await findTenantId(s.db);
    if (!tenantId) throw new VaultError(503, 'ServiceUnavailable', 'This vault service has not been bootstrapped yet.');
    audit.tenantId = tenantId;
    const vault = await findVault(s.db, vaultName);
    if (!vault) throw notFound('VaultNotFound', `The vault ${vaultName} does not exist.`);
    audit.vault = vault;
    const caller = await callerOf(s, props, vault, tenantId);
    audit.caller = caller;
    // The HTTP API's limits, on the same counters: refused before the firewall, authorization or any data.
    const limited = takeLimits(vaultRequestEntries(env, vault.name, op.operation, caller.objectId));
    if (limited) throw new ThrottledError(limited.reason, limited.retryAfterSeconds);
    // RPC callers have no client address for ip rules to match (README, "Service bindings").
    if (!isRpcAllowed(vault)) {
      throw forbidden(
        `Service-binding callers are not allowed by this vault's firewall (networkAcls.bypass is None).\r\nCaller: appid=${caller.appId};oid=${caller.objectId}\r\nVault: ${vault.name}`,
        'ForbiddenByFirewall',
      );
    }
    audit.decision = await authorize(s.db, caller, op.action, { vault, tenantId, path: op.object, operation: op.operation });
    const value = await run({ services: s, vault, caller, origin: `https://${vault.name}.${env.VAULT_ZONE}` });
    return { ok: true, value };
  } catch (err) {
    const error = rpcErrorOf(err);
    audit.status = error.status;
    audit.errorCode = error.innerCode ?? error.code;
    return { ok: false, error };
  } finally {
    const caller = audit.caller;
    const vault = audit.vault;
    const event: AuditEvent = {
      v: AUDIT_EVENT_VERSION,
      id: crypto.randomUUID(),
      time: started,
      vault: vaultName?.slice(0, 255) ?? null,
      tenantId: audit.tenantId ?? null,
      operation: op.operation,
      apiVersion: null,
      caller: caller ? { tid: caller.tenantId, oid: caller.objectId, appid: caller.appId } : null,
      objectId: op.object.slice(0, 1024),
      requestUri: `https://${vaultName ?? 'unknown'}.${env.VAULT_ZONE}/rpc/${op.method}`.slice(0, 2048),
      status: audit.status,
      errorCode: audit.errorCode?.slice(0, 128) ?? null,
      durationMs: Date.now() - started,
      clientIp: null,
      correlationId: crypto.randomUUID(),
      clientInfo: RPC_CLIENT_INFO,
      authorization: audit.decision ? decisionOf(audit.decision) : null,
      authorizationModel: vault ? (vault.enableRbacAuthorization ? 'rbac' : 'policy') : null,
    };
    queueAuditEvent(ctx, env.AUDIT_QUEUE as Queue<AuditEvent>, event);
    // The same log line and metrics point as an HTTP request; an RPC call has no request id of its own.
    observeRequest(env, event, event.correlationId, meter);
  }
}

/** The decision's identifiers only (as src/http/audit.ts copies them). */
function decisionOf(d: AuthorizationDecision): AuditEvent['authorization'] {
  return d.by === 'rbac'
    ? { by: 'rbac', assignmentId: d.assignmentId, roleDefinitionId: d.roleDefinitionId }
    : { by: 'policy', objectId: d.objectId };
}

/** What the HTTP API would answer (src/http/errors.ts renderError), as a value; nothing internal leaks. */
export function rpcErrorOf(err: unknown): RpcError {
  if (err instanceof VaultError)
    return {
      status: err.status,
      code: err.code,
      message: err.message,
      ...(err.innerCode ? { innerCode: err.innerCode } : {}),
    };
  if (err instanceof ThrottledError)
    return { status: 429, code: 'Throttled', message: err.message, retryAfterSeconds: err.retryAfterSeconds };
  if (storageUnavailable(err)) {
    console.error(`storage unavailable: ${describeError(err)}`);
    return { status: 503, code: 'ServiceUnavailable', message: 'The vault storage is temporarily unavailable; retry later.' };
  }
  console.error(`unhandled error: ${describeError(err)}`);
  return { status: 500, code: 'InternalServerError', message: 'The server encountered an internal error.' };
}
