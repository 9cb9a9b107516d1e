/**
 * The bridge's HTTP API. Every /v1/* request is HMAC-authenticated (see protocol.ts) and
 * replay-checked before it is even parsed; /healthz is open so orchestrators can probe it.
 * Logs carry events and reasons only: never the secret, request bodies or key bytes.
 */
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { getConnInfo } from '@hono/node-server/conninfo';
import {
  fromBase64Url,
  toBase64Url,
  verifyRequest,
  type BridgeHealth,
  type UnwrapRequest,
  type UnwrapResponse,
  type WrapRequest,
  type WrapResponse,
} from './protocol.js';
import { HsmError, UnwrapError, MAX_WRAP_PLAINTEXT, type Hsm } from './hsm.js';
import { ReplayCache } from './replay-cache.js';

/** The part of Hsm the server needs. */
export type BridgeHsm = Pick<Hsm, 'kekLabel' | 'wrap' | 'unwrap' | 'health'>;

export type LogFields = Record<string, string | number | boolean | undefined>;
export type BridgeLog = (event: string, fields?: LogFields) => void;

/** One JSON line per event on stderr (stdout is kept for the "listening" line). */
export const jsonLog: BridgeLog = (event, fields = {}) => {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), event, ...fields })}\n`);
};

export interface BridgeAppOptions {
  hsm: BridgeHsm;
  hmacSecret: string;
  log?: BridgeLog;
  /** Clock in milliseconds; injectable for tests. */
  now?: () => number;
  replayCacheSize?: number;
}

export interface BridgeStatus {
  kekLabel: string;
  ops: { wrap: number; unwrap: number };
}

const MAX_BODY_BYTES = 16 * 1024;
const MAX_CONTEXT_BYTES = 1024;

class BadRequest extends Error {}

type Env = { Variables: { rawBody: Uint8Array } };

function errorBody(code: string, message: string) {
  return { error: { code, message } };
}

function parseJson(raw: Uint8Array): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw));
  } catch {
    throw new BadRequest('body is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new BadRequest('body must be a JSON object');
  }
  return value as Record<string, unknown>;
}

function bytesField(body: Record<string, unknown>, name: string, min: number, max: number): Uint8Array {
  const value = body[name];
  if (typeof value !== 'string') throw new BadRequest(`'${name}' is required and must be a base64url string`);
  let bytes: Uint8Array;
  try {
    bytes = fromBase64Url(value);
  } catch {
    throw new BadRequest(`'${name}' is not valid base64url`);
  }
  if (bytes.length < min || bytes.length > max) {
    throw new BadRequest(`'${name}' must decode to ${min}..${max} bytes`);
  }
  return bytes;
}

function remoteAddress(c: Context): string | undefined {
  try {
    return getConnInfo(c).remote.address;
  } catch {
    return undefined; // not served by @hono/node-server (e.g. app.request in tests)
  }
}

export function createBridgeApp(options: BridgeAppOptions): Hono<Env> {
  const { hsm, hmacSecret } = options;
  const log = options.log ?? jsonLog;
  const now = options.now ?? Date.now;
  const replay = new ReplayCache(options.replayCacheSize);
  const ops = { wrap: 0, unwrap: 0 };

  const app = new Hono<Env>();

  app.get('/healthz', async (c) => {
    const health = await hsm.health();
    const body: BridgeHealth = health.ok
      ? { status: 'ok', kek: true }
      : { status: 'unavailable', kek: false, reason: health.reason };
    return c.json(body, health.ok ? 200 : 503);
  });

  app.use(
    '/v1/*',
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: (c) => c.json(errorBody('PayloadTooLarge', `body exceeds ${MAX_BODY_BYTES} bytes`), 413),
    }),
  );

  // Authentication: the raw body is read once, digested for the signature, and kept for parsing.
  app.use('/v1/*', async (c, next) => {
    const raw = new Uint8Array(await c.req.arrayBuffer());
    const url = new URL(c.req.url);
    const path = url.pathname + url.search;
    const refuse = (reason: string) => {
      log('auth_refused', { reason, method: c.req.method, path, remote: remoteAddress(c) });
      return c.json(errorBody('Unauthorized', reason), 401);
    };
    const nowMs = now();
    const result = await verifyRequest(hmacSecret, c.req.method, path, raw, c.req.raw.headers, nowMs);
    if (!result.ok) return refuse(result.reason);
    // Only authenticated nonces are remembered, so forged requests cannot fill the cache.
    if (!replay.accept(result.nonce, result.timestamp, nowMs / 1000)) return refuse('replayed nonce');
    c.set('rawBody', raw);
    await next();
  });

  app.post('/v1/wrap', async (c) => {
    const body = parseJson(c.get('rawBody')) as Partial<Record<keyof WrapRequest, unknown>>;
    const plaintext = bytesField(body, 'plaintext', 1, MAX_WRAP_PLAINTEXT);
    const context = bytesField(body, 'context', 1, MAX_CONTEXT_BYTES);
    ops.wrap++;
    const wrapped = await hsm.wrap(plaintext, context);
    return c.json({ wrapped: toBase64Url(wrapped), kekLabel: hsm.kekLabel } satisfies WrapResponse);
  });

  app.post('/v1/unwrap', async (c) => {
    const body = parseJson(c.get('rawBody')) as Partial<Record<keyof UnwrapRequest, unknown>>;
    const wrapped = bytesField(body, 'wrapped', 1, MAX_BODY_BYTES);
    const context = bytesField(body, 'context', 1, MAX_CONTEXT_BYTES);
    ops.unwrap++;
    const plaintext = await hsm.unwrap(wrapped, context);
    c.header('cache-control', 'no-store'); // the answer is a plaintext data key
    return c.json({ plaintext: toBase64Url(plaintext) } satisfies UnwrapResponse);
  });

  app.get('/v1/status', (c) => c.json({ kekLabel: hsm.kekLabel, ops: { ...ops } } satisfies BridgeStatus));

  app.notFound((c) => c.json(errorBody('NotFound', 'no such route'), 404));

  app.onError((err, c) => {
    if (err instanceof BadRequest) return c.json(errorBody('BadRequest', err.message), 400);
    if (err instanceof UnwrapError) {
      log('unwrap_failed', { reason: err.message });
      return c.json(errorBody('UnwrapFailed', 'the wrapped key does not authenticate under this KEK and context'), 422);
    }
    if (err instanceof HsmError) {
      // HsmError messages are written to be safe to show: no PINs, no key bytes.
      log('hsm_error', { code: err.code, message: err.message });
      return c.json(errorBody('HsmUnavailable', err.message), 503);
    }
    log('internal_error', { name: err instanceof Error ? err.name : typeof err });
    return c.json(errorBody('InternalError', 'internal error'), 500);
  });

  return app;
}
