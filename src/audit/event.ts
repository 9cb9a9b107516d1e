/**
 * One audit event per request, allowed or refused. It names what happened and to what, never a
 * value, key, token or secret.
 */
export interface AuditEvent {
  id: string;
  /** Unix milliseconds. */
  time: number;
  vault: string | null;
  operation: string;
  /** The caller's application id, when authenticated. */
  caller: string | null;
  objectId: string | null;
  result: 'success' | 'denied' | 'failed' | 'error';
  status: number;
  durationMs: number;
  correlationId: string;
  clientIp: string | null;
  /** The error code of a refused or failed request (e.g. `DataIntegrityError`); null on success. */
  errorCode: string | null;
}

export function resultOf(status: number): AuditEvent['result'] {
  if (status < 400) return 'success';
  if (status === 401 || status === 403) return 'denied';
  if (status < 500) return 'failed';
  return 'error';
}

/** The event of a request for a host this service does not serve (answered before any app runs). */
export function unknownHostEvent(request: Request): AuditEvent {
  return {
    id: crypto.randomUUID(),
    time: Date.now(),
    vault: null,
    operation: 'UnknownHost',
    caller: null,
    objectId: null,
    result: 'failed',
    status: 404,
    durationMs: 0,
    correlationId: crypto.randomUUID(),
    clientIp: request.headers.get('cf-connecting-ip'),
    errorCode: 'NotFound',
  };
}
