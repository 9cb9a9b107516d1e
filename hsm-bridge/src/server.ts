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
  type DestroyKeyRequest,
  type DestroyKeyResponse,
  type GenerateKeyRequest,
  type GenerateKeyResponse,
  type ImportKeyRequest,
  type ImportKeyResponse,
  type KeyDecryptRequest,
  type KeyDecryptResponse,
  type KeyEncryptRequest,
  type KeyEncryptResponse,
  type KeySignRequest,
  type KeySignResponse,
  type KeyUnwrapRequest,
  type KeyUnwrapResponse,
  type KeyWrapRequest,
  type KeyWrapResponse,
  type PublicKeyRequest,
  type PublicKeyResponse,
  type RandomRequest,
  type RandomResponse,
  type UnwrapRequest,
  type UnwrapResponse,
  type WrapRequest,
  type WrapResponse,
} from './protocol.js';
import { HsmError, UnwrapError, MAX_WRAP_PLAINTEXT, type Hsm } from './hsm.js';
import {
  KeyExistsError,
  KeyNotFoundError,
  KeyOperationError,
  KeyRequestError,
  MAX_AAD_BYTES,
  MAX_CIPHER_BYTES,
  MAX_KW_KEY_BYTES,
  hsmKeys,
} from './keys.js';
import { ReplayCache } from './replay-cache.js';

/** The part of Hsm the server needs (withSession for the key operations of keys.ts). */
export type BridgeHsm = Pick<Hsm, 'kekLabel' | 'wrap' | 'unwrap' | 'health' | 'withSession'>;

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
  /** Requests per operation since start: data keys (wrap, unwrap), then HSM keys. */
  ops: {
    wrap: number;
    unwrap: number;
    generate: number;
    import: number;
    sign: number;
    decrypt: number;
    encrypt: number;
    wrapKey: number;
    unwrapKey: number;
    destroy: number;
    publicKey: number;
    rng: number;
  };
}

const MAX_BODY_BYTES = 16 * 1024;
/** /v1/keys/* and /v1/rng carry RSA-4096 JWKs and AES payloads. */
const MAX_KEY_BODY_BYTES = 64 * 1024;
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

/** An optional bytes field: absent (or null) is undefined. */
function optionalBytes(body: Record<string, unknown>, name: string, max: number): Uint8Array | undefined {
  return body[name] === undefined || body[name] === null ? undefined : bytesField(body, name, 0, max);
}

function stringField(body: Record<string, unknown>, name: string): string {
  const value = body[name];
  if (typeof value !== 'string' || value.length === 0 || value.length > 64) {
    throw new BadRequest(`'${name}' is required and must be a short string`);
  }
  return value;
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
  const ops: BridgeStatus['ops'] = {
    wrap: 0,
    unwrap: 0,
    generate: 0,
    import: 0,
    sign: 0,
    decrypt: 0,
    encrypt: 0,
    wrapKey: 0,
    unwrapKey: 0,
    destroy: 0,
    publicKey: 0,
    rng: 0,
  };
  const keys = hsmKeys(hsm);

  const app = new Hono<Env>();

  app.get('/healthz', async (c) => {
    const health = await hsm.health();
    const body: BridgeHealth = health.ok
      ? { status: 'ok', kek: true }
      : { status: 'unavailable', kek: false, reason: health.reason };
    return c.json(body, health.ok ? 200 : 503);
  });

  const limit = (maxSize: number) =>
    bodyLimit({ maxSize, onError: (c) => c.json(errorBody('PayloadTooLarge', `body exceeds ${maxSize} bytes`), 413) });
  const keyLimit = limit(MAX_KEY_BODY_BYTES);
  const dataKeyLimit = limit(MAX_BODY_BYTES);
  app.use('/v1/*', (c, next) => {
    const path = new URL(c.req.url).pathname;
    return (path.startsWith('/v1/keys/') || path === '/v1/rng' ? keyLimit : dataKeyLimit)(c, next);
  });

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

  // HSM keys. Semantic checks (algorithms, sizes, key types) are keys.ts's; here only JSON shapes.
  app.post('/v1/keys/generate', async (c) => {
    const body = parseJson(c.get('rawBody')) as Partial<Record<keyof GenerateKeyRequest, unknown>>;
    const id = stringField(body, 'id');
    if (typeof body.spec !== 'object' || body.spec === null) throw new BadRequest("'spec' is required and must be an object");
    ops.generate++;
    const made = await keys.generate(id, body.spec as GenerateKeyRequest['spec']);
    return c.json(made satisfies GenerateKeyResponse);
  });

  app.post('/v1/keys/import', async (c) => {
    const body = parseJson(c.get('rawBody')) as Partial<Record<keyof ImportKeyRequest, unknown>>;
    const id = stringField(body, 'id');
    if (typeof body.jwk !== 'object' || body.jwk === null || Array.isArray(body.jwk)) {
      throw new BadRequest("'jwk' is required and must be an object");
    }
    ops.import++;
    const made = await keys.import(id, body.jwk as Record<string, string>);
    return c.json(made satisfies ImportKeyResponse);
  });

  app.post('/v1/keys/sign', async (c) => {
    const body = parseJson(c.get('rawBody')) as Partial<Record<keyof KeySignRequest, unknown>>;
    const [handle, alg] = [stringField(body, 'handle'), stringField(body, 'alg')];
    const digest = bytesField(body, 'digest', 1, 64);
    ops.sign++;
    const signature = await keys.sign(handle, alg, digest);
    return c.json({ signature: toBase64Url(signature) } satisfies KeySignResponse);
  });

  app.post('/v1/keys/decrypt', async (c) => {
    const body = parseJson(c.get('rawBody')) as Partial<Record<keyof KeyDecryptRequest, unknown>>;
    const [handle, alg] = [stringField(body, 'handle'), stringField(body, 'alg')];
    const ciphertext = bytesField(body, 'ciphertext', 1, MAX_CIPHER_BYTES);
    const opts = {
      iv: optionalBytes(body, 'iv', 64),
      aad: optionalBytes(body, 'aad', MAX_AAD_BYTES),
      tag: optionalBytes(body, 'tag', 64),
    };
    ops.decrypt++;
    const plaintext = await keys.decrypt(handle, alg, ciphertext, opts);
    c.header('cache-control', 'no-store');
    return c.json({ plaintext: toBase64Url(plaintext) } satisfies KeyDecryptResponse);
  });

  app.post('/v1/keys/encrypt', async (c) => {
    const body = parseJson(c.get('rawBody')) as Partial<Record<keyof KeyEncryptRequest, unknown>>;
    const [handle, alg] = [stringField(body, 'handle'), stringField(body, 'alg')];
    const plaintext = bytesField(body, 'plaintext', 1, MAX_CIPHER_BYTES);
    const opts = { iv: optionalBytes(body, 'iv', 64), aad: optionalBytes(body, 'aad', MAX_AAD_BYTES) };
    ops.encrypt++;
    const sealed = await keys.encrypt(handle, alg, plaintext, opts);
    return c.json({
      ciphertext: toBase64Url(sealed.ciphertext),
      iv: toBase64Url(sealed.iv),
      ...(sealed.tag ? { tag: toBase64Url(sealed.tag) } : {}),
    } satisfies KeyEncryptResponse);
  });

  app.post('/v1/keys/wrap', async (c) => {
    const body = parseJson(c.get('rawBody')) as Partial<Record<keyof KeyWrapRequest, unknown>>;
    const [handle, alg] = [stringField(body, 'handle'), stringField(body, 'alg')];
    const key = bytesField(body, 'key', 1, MAX_KW_KEY_BYTES);
    ops.wrapKey++;
    const wrapped = await keys.wrap(handle, alg, key);
    return c.json({ wrapped: toBase64Url(wrapped) } satisfies KeyWrapResponse);
  });

  app.post('/v1/keys/unwrap', async (c) => {
    const body = parseJson(c.get('rawBody')) as Partial<Record<keyof KeyUnwrapRequest, unknown>>;
    const [handle, alg] = [stringField(body, 'handle'), stringField(body, 'alg')];
    const wrapped = bytesField(body, 'wrapped', 1, MAX_CIPHER_BYTES);
    ops.unwrapKey++;
    const key = await keys.unwrap(handle, alg, wrapped);
    c.header('cache-control', 'no-store'); // the answer is a plaintext key
    return c.json({ key: toBase64Url(key) } satisfies KeyUnwrapResponse);
  });

  app.post('/v1/keys/destroy', async (c) => {
    const body = parseJson(c.get('rawBody')) as Partial<Record<keyof DestroyKeyRequest, unknown>>;
    const handle = stringField(body, 'handle');
    ops.destroy++;
    return c.json({ destroyed: await keys.destroy(handle) } satisfies DestroyKeyResponse);
  });

  app.post('/v1/keys/public', async (c) => {
    const body = parseJson(c.get('rawBody')) as Partial<Record<keyof PublicKeyRequest, unknown>>;
    const handle = stringField(body, 'handle');
    ops.publicKey++;
    return c.json({ publicJwk: await keys.publicKey(handle) } satisfies PublicKeyResponse);
  });

  app.post('/v1/rng', async (c) => {
    const body = parseJson(c.get('rawBody')) as Partial<Record<keyof RandomRequest, unknown>>;
    if (typeof body.count !== 'number') throw new BadRequest("'count' is required and must be a number");
    ops.rng++;
    const bytes = await keys.random(body.count);
    c.header('cache-control', 'no-store');
    return c.json({ bytes: toBase64Url(bytes) } satisfies RandomResponse);
  });

  app.get('/v1/status', (c) => c.json({ kekLabel: hsm.kekLabel, ops: { ...ops } } satisfies BridgeStatus));

  app.notFound((c) => c.json(errorBody('NotFound', 'no such route'), 404));

  app.onError((err, c) => {
    if (err instanceof BadRequest || err instanceof KeyRequestError) return c.json(errorBody('BadRequest', err.message), 400);
    if (err instanceof KeyNotFoundError) return c.json(errorBody('KeyNotFound', 'no key with this handle in the token'), 404);
    if (err instanceof KeyExistsError) return c.json(errorBody('KeyExists', 'the token already holds objects with this id'), 409);
    if (err instanceof KeyOperationError) {
      log('key_operation_failed', { path: new URL(c.req.url).pathname });
      return c.json(errorBody('OperationFailed', 'the operation failed: the ciphertext or key does not authenticate'), 422);
    }
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
