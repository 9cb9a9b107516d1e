import type { MiddlewareHandler } from 'hono';
import { resultOf, type AuditEvent } from '../audit/event';
import type { AppEnv } from './context';

/**
 * Emits one audit event per request, whatever its outcome, after the response is ready. Sending
 * is off the response path (waitUntil); a failed send is logged, never surfaced to the caller.
 */
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
    const event: AuditEvent = {
      id: crypto.randomUUID(),
      time: started,
      vault: draft.vault,
      operation: draft.operation,
      caller: c.get('caller')?.appId ?? null,
      objectId: draft.objectId,
      result: resultOf(c.res.status),
      status: c.res.status,
      durationMs: Date.now() - started,
      correlationId,
      clientIp: c.req.header('cf-connecting-ip') ?? null,
      errorCode: draft.errorCode,
    };
    c.executionCtx.waitUntil(
      c.env.AUDIT_QUEUE.send(event).catch((err: Error) => console.error(`audit event not queued: ${err.name}`)),
    );
  };
}

function sanitizeId(value: string | undefined): string | undefined {
  return value && /^[A-Za-z0-9-]{1,64}$/.test(value) ? value : undefined;
}
