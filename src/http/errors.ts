/** Azure's error body, and the one place an error thrown anywhere becomes a response. */
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { describeError, storageUnavailable } from '../storage/errors';
import { VaultError } from '../core/errors';
import type { AppContext } from './context';

/** Azure's error body: {"error":{"code","message","innererror"?}}. */
export function errorBody(code: string, message: string, innerCode?: string) {
  return { error: { code, message, ...(innerCode ? { innererror: { code: innerCode } } : {}) } };
}

/**
 * An Azure-shaped error answer. Its code goes into the request's audit event: the inner code when
 * there is one (ForbiddenByFirewall says more than Forbidden), else the code.
 */
export function errorResponse(c: AppContext, status: ContentfulStatusCode, code: string, message: string, innerCode?: string) {
  c.get('audit').errorCode = innerCode ?? code;
  return c.json(errorBody(code, message, innerCode), status);
}

/**
 * Renders any thrown error. Vault errors carry their status and code; D1 being unavailable is a
 * 503 with Retry-After; anything else is a 500 whose message says nothing about the internals (and
 * so nothing secret).
 */
export function renderError(err: unknown, c: AppContext): Response {
  if (err instanceof VaultError) {
    if (err.status === 503) c.header('Retry-After', '5');
    return errorResponse(c, err.status, err.code, err.message, err.innerCode);
  }
  if (storageUnavailable(err)) {
    // Like the bridge being down: nothing is served from a half-read state, and the caller retries.
    console.error(`storage unavailable: ${describeError(err)}`);
    c.header('Retry-After', '5');
    return errorResponse(c, 503, 'ServiceUnavailable', 'The vault storage is temporarily unavailable; retry later.');
  }
  console.error(`unhandled error: ${describeError(err)}`);
  return errorResponse(c, 500, 'InternalServerError', 'The server encountered an internal error.');
}
