/**
 * A request's log line and metrics point, from its audit event (never from the request itself), so
 * both transports (HTTP in src/http/audit.ts, RPC in src/rpc/call.ts) and the refused hosts of
 * src/index.ts report the same fields. Synchronous and cheap: no I/O the answer waits on.
 */
import type { Env } from '../core/env';
import { logRequest, newMeter, type RequestMeter, type RequestSummary } from '../core/log';
import { requestPoint } from '../core/metrics';
import type { AuditEvent } from './event';

export function observeRequest(env: Env, event: AuditEvent, requestId: string, meter: RequestMeter = newMeter()): void {
  const summary: RequestSummary = {
    correlationId: event.correlationId,
    requestId,
    operation: event.operation,
    vault: event.vault,
    status: event.status,
    errorCode: event.errorCode,
    durationMs: event.durationMs,
    callerId: event.caller?.oid ?? null,
    meter,
  };
  logRequest(summary);
  requestPoint(env.METRICS, summary);
}
