/**
 * Emits one audit event per request, whatever its outcome, after the response is ready. Sending
 * is off the response path (waitUntil) and batched with other requests' events; a failed send is
 * retried, then logged, never surfaced to the caller (src/audit/send.ts). The same facts make the request's one log line and metrics data
 * point (src/audit/observe.ts): synchronous, no I/O the response waits on.
 * The event is built from what the request already knows (no D1 query); the queue consumer turns
 * it into the chained record (src/audit/).
 */
import type { MiddlewareHandler } from 'hono';
import {
  apiVersionOf,
  AUDIT_EVENT_VERSION,
  clientInfoOf,
  requestUriOf,
  type AuditAuthorization,
  type AuditEvent,
} from '../audit/event';
import { queueAuditEvent } from '../audit/send';
import { observeRequest } from '../audit/observe';
import type { AppEnv, AuditDraft } from './context';

export function auditMiddleware(defaultVault: string | null): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const started = Date.now();
    // As Azure does: our own request id, and the client's request id (echoed) to correlate by.
    const requestId = crypto.randomUUID();
    const clientRequestId = sanitizeId(c.req.header('x-ms-client-request-id'));
    const correlationId = clientRequestId ?? requestId;
    c.set('correlationId', correlationId);
    c.set('audit', { operation: 'Unknown', vault: defaultVault, objectId: null, errorCode: null });
    await next();
    c.header('x-ms-request-id', requestId);
    if (clientRequestId) c.header('x-ms-client-request-id', clientRequestId);
    const draft = c.get('audit');
    const caller = c.get('caller');
    const vault = c.get('vault');
    const event: AuditEvent = {
      v: AUDIT_EVENT_VERSION,
      id: crypto.randomUUID(),
      time: started,
      vault: cut(draft.vault, 255),
      // Only with a vault host: apex routes that look a vault up (management of its event
      // subscriptions, role assignments) are recorded in the deployment's chain, as before.
      vaultId: draft.vault ? (vault?.id ?? null) : null,
      tenantId: c.get('tenantId') ?? caller?.tenantId ?? null,
      operation: draft.operation,
      apiVersion: c.get('apiVersion') ?? apiVersionOf(c.req.url),
      caller: caller ? { tid: caller.tenantId, oid: caller.objectId, appid: caller.appId } : null,
      objectId: cut(draft.objectId, 1024),
      requestUri: requestUriOf(c.req.url),
      status: c.res.status,
      errorCode: cut(draft.errorCode, 128),
      durationMs: Date.now() - started,
      clientIp: cut(c.req.header('cf-connecting-ip') ?? null, 64),
      correlationId,
      clientInfo: clientInfoOf(c.req.header('user-agent')),
      authorization: decisionOf(draft.authorization),
      authorizationModel: vault ? (vault.enableRbacAuthorization ? 'rbac' : 'policy') : null,
    };
    queueAuditEvent(c.executionCtx, c.env.AUDIT_QUEUE as Queue<AuditEvent>, event);
    observeRequest(c.env, event, requestId, c.get('services').meter);
  };
}

/** The decision's identifiers only, field by field (whatever else the decision object holds stays out). */
function decisionOf(decision: AuditDraft['authorization']): AuditAuthorization | null {
  if (!decision) return null;
  const d = decision as { by?: unknown; assignmentId?: unknown; roleDefinitionId?: unknown; objectId?: unknown };
  if (d.by === 'rbac')
    return { by: 'rbac', assignmentId: String(d.assignmentId ?? ''), roleDefinitionId: String(d.roleDefinitionId ?? '') };
  if (d.by === 'policy') return { by: 'policy', objectId: String(d.objectId ?? '') };
  return null;
}

// Whatever a caller controls is cut to size: an oversized message could not be queued at all.
const cut = (value: string | null, max: number): string | null => (value === null ? null : value.slice(0, max));

function sanitizeId(value: string | undefined): string | undefined {
  return value && /^[A-Za-z0-9-]{1,64}$/.test(value) ? value : undefined;
}
