/**
 * The bridge's HTTP API. Every /v1/* request is HMAC-authenticated (see bridge-protocol/) and
 * replay-checked before it is even parsed; then its body is parsed with the route's schema from
 * bridge-protocol/schemas.ts. /healthz is open so orchestrators can probe it.
 * Logs carry events and reasons only: never the secret, request bodies or key bytes.
 */
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { getConnInfo } from '@hono/node-server/conninfo';
import type * as z from 'zod';
import {
  BRIDGE_ERROR_STATUS,
  BRIDGE_ROUTES,
  describeIssue,
  toBase64Url,
  type BridgeErrorBody,
  type BridgeErrorCode,
  type BridgeHealth,
  type BridgeRoute,
  type BridgeStatus,
  type DestroyKeyResponse,
  type GenerateKeyResponse,
  type ImportKeyResponse,
  type KekCreateResponse,
  type KekDestroyResponse,
  type KekListResponse,
  type KeyDecryptResponse,
  type KeyEncryptResponse,
  type KeySignResponse,
  type KeyUnwrapResponse,
  type KeyWrapResponse,
  type PublicKeyResponse,
  type RandomResponse,
  type UnwrapBatchResponse,
  type UnwrapBatchResult,
  type UnwrapResponse,
  type WrapResponse,
  UnwrapRequest,
} from '../../bridge-protocol/index.js';
import { HsmError, UnwrapError, type Hsm } from './hsm.js';
import { KeyExistsError, KeyNotFoundError, KeyOperationError, KeyRequestError, hsmKeys } from './keys.js';
import type { NonceJournal } from './nonce-journal.js';
import { ReplayCache } from './replay-cache.js';
import { verifyRequestSync } from './request-auth.js';

/** The part of Hsm the server needs (withSession for the key operations of keys.ts). */
export type BridgeHsm = Pick<
  Hsm,
  'kekLabel' | 'wrap' | 'wrapLabelled' | 'unwrap' | 'health' | 'withSession' | 'createKek' | 'listKeks' | 'destroyKek'
>;

export type LogFields = Record<string, string | number | boolean | undefined>;
export type BridgeLog = (event: string, fields?: LogFields) => void;

/** One JSON line per event on stderr (stdout is kept for the "listening" line). */
export const jsonLog: BridgeLog = (event, fields = {}) => {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), event, ...fields })}\n`);
};

export interface BridgeAppOptions {
  hsm: BridgeHsm;
  /** The shared secret; during a rotation [current, previous], either accepted (README). */
  hmacSecret: string | readonly string[];
  log?: BridgeLog;
  /** Clock in milliseconds; injectable for tests. */
  now?: () => number;
  replayCacheSize?: number;
  /**
   * What makes the replay protection outlast a restart: the replay cache refuses everything at or
   * below its floor, and every answer waits until its timestamp is covered on disk (nonce-journal.ts).
   * startBridge always passes one; only tests that build an app in process go without.
   */
  journal?: Pick<NonceJournal, 'floor' | 'record'>;
}

export type { BridgeStatus } from '../../bridge-protocol/index.js';

const MAX_BODY_BYTES = 16 * 1024;
/** /v1/keys/* and /v1/rng carry RSA-4096 JWKs and AES payloads; /v1/unwrap-batch up to 32 data keys. */
const MAX_KEY_BODY_BYTES = 64 * 1024;

class BadRequest extends Error {}

/** Routes that create or destroy token objects: they run only once their timestamp is covered on disk. */
const CHANGES_TOKEN = new Set<string>([
  BRIDGE_ROUTES.generateKey.path,
  BRIDGE_ROUTES.importKey.path,
  BRIDGE_ROUTES.destroyKey.path,
]);

type Env = { Variables: { rawBody: Uint8Array } };

function errorBody(code: BridgeErrorCode, message: string): BridgeErrorBody {
  return { error: { code, message } };
}

/** The error answer of a code, with the status the protocol gives it. */
function answerError(c: Context, code: BridgeErrorCode, message: string): Response {
  return c.json(errorBody(code, message), BRIDGE_ERROR_STATUS[code]);
}

/** The body as the route's schema parses it; a body that does not fit is a BadRequest naming the field. */
function parseBody<S extends z.ZodType>(schema: S, raw: Uint8Array): z.output<S> {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw));
  } catch {
    throw new BadRequest('body is not valid JSON');
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new BadRequest(describeIssue(parsed.error));
  return parsed.data;
}

/** What /v1/unwrap would answer for this error, as a batch item's code and message. */
function batchItemError(err: unknown, log: BridgeLog): ['UnwrapFailed' | 'HsmUnavailable' | 'InternalError', string] {
  if (err instanceof UnwrapError) {
    log('unwrap_failed', { reason: err.message, batch: true });
    return ['UnwrapFailed', 'the wrapped key does not authenticate under this KEK and context'];
  }
  if (err instanceof HsmError) {
    log('hsm_error', { code: err.code, message: err.message, batch: true });
    return ['HsmUnavailable', err.message];
  }
  log('internal_error', { name: err instanceof Error ? err.name : typeof err, batch: true });
  return ['InternalError', 'internal error'];
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
  const journal = options.journal;
  if (journal) replay.refuseUpTo(journal.floor);
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

  const limit = (maxSize: number): MiddlewareHandler<Env> => {
    const tooLarge = (c: Context) => answerError(c, 'PayloadTooLarge', `body exceeds ${maxSize} bytes`);
    const streamed = bodyLimit({ maxSize, onError: tooLarge });
    // A declared length is checked here, without bodyLimit: it opens c.req.raw.body, which makes
    // @hono/node-server wrap the request in a web stream, and reading the body through that cost
    // 0.2-0.4 ms a request against a direct read of the socket. Chunked bodies, of no declared
    // length, still go through bodyLimit, which counts as it reads.
    return (c, next) => {
      const length = c.req.header('content-length');
      if (length === undefined || !/^\d+$/.test(length) || c.req.header('transfer-encoding') !== undefined) {
        return streamed(c, next);
      }
      return Number(length) <= maxSize ? next() : Promise.resolve(tooLarge(c));
    };
  };
  const keyLimit = limit(MAX_KEY_BODY_BYTES);
  const dataKeyLimit = limit(MAX_BODY_BYTES);
  app.use('/v1/*', (c, next) => {
    const path = new URL(c.req.url).pathname;
    return (
      path.startsWith('/v1/keys/') || path === '/v1/rng' || path === BRIDGE_ROUTES.unwrapBatch.path ? keyLimit : dataKeyLimit
    )(c, next);
  });

  let lastPreviousSecretLog = -Infinity;
  // Authentication: the raw body is read once, digested for the signature, and kept for parsing.
  app.use('/v1/*', async (c, next) => {
    const raw = new Uint8Array(await c.req.arrayBuffer());
    const url = new URL(c.req.url);
    const path = url.pathname + url.search;
    const refuse = (reason: string) => {
      log('auth_refused', { reason, method: c.req.method, path, remote: remoteAddress(c) });
      return answerError(c, 'Unauthorized', reason);
    };
    const nowMs = now();
    const result = verifyRequestSync(hmacSecret, c.req.method, path, raw, c.req.raw.headers, nowMs);
    if (!result.ok) return refuse(result.reason);
    // Tells the operator when the Worker still signs with the old secret, so it is not dropped too early.
    if (result.secretIndex > 0 && nowMs - lastPreviousSecretLog >= 60_000) {
      lastPreviousSecretLog = nowMs;
      log('previous_hmac_secret_used', { path });
    }
    // Only authenticated nonces are remembered, so forged requests cannot fill the cache.
    if (!replay.accept(result.nonce, result.timestamp, nowMs / 1000)) return refuse('replayed nonce');
    c.set('rawBody', raw);
    if (!journal) return next();
    // Covered on disk before any answer: a restarted bridge must refuse it while it could be replayed.
    const durable = journal.record(result.timestamp).then(
      () => undefined,
      (err: unknown) => err,
    );
    const journalFailed = (err: unknown) => {
      log('nonce_journal_failed', { code: (err as NodeJS.ErrnoException).code ?? 'error' });
      return answerError(c, 'StateUnavailable', 'the bridge cannot record the request nonce');
    };
    if (CHANGES_TOKEN.has(url.pathname)) {
      const failed = await durable;
      if (failed !== undefined) return journalFailed(failed);
      return next();
    }
    // Operations that change nothing in the token run while the floor is written, when it is (the
    // fsync is about as long as a batch of unwraps); the answer still waits until it is on disk,
    // and a failed write replaces it, so no answer ever leaves before a restart would refuse it.
    await next();
    const failed = await durable;
    if (failed !== undefined) {
      c.res = undefined;
      c.res = journalFailed(failed);
    }
  });

  /** A POST route: its body parsed with the route's schema, counted once it parses (null: not counted). */
  const post = <R extends BridgeRoute>(
    route: R,
    op: keyof BridgeStatus['ops'] | null,
    run: (body: z.output<R['request']>, c: Context<Env>) => Promise<Response>,
  ) =>
    app.post(route.path, async (c) => {
      const body = parseBody(route.request, c.get('rawBody')) as z.output<R['request']>;
      if (op) ops[op]++;
      return run(body, c);
    });

  post(BRIDGE_ROUTES.wrap, 'wrap', async ({ plaintext, context }, c) => {
    const { wrapped, kekLabel } = await hsm.wrapLabelled(plaintext, context);
    return c.json({ wrapped: toBase64Url(wrapped), kekLabel } satisfies WrapResponse);
  });

  post(BRIDGE_ROUTES.unwrap, 'unwrap', async ({ wrapped, context, kekLabel }, c) => {
    const plaintext = await hsm.unwrap(wrapped, context, kekLabel);
    c.header('cache-control', 'no-store'); // the answer is a plaintext data key
    return c.json({ plaintext: toBase64Url(plaintext) } satisfies UnwrapResponse);
  });

  // One signed request, one nonce, many data keys: the Worker's coalescer sends the unwraps a
  // request makes together this way. The envelope must parse (else 400 for all); each item is then
  // answered or failed on its own, and counted as one unwrap. The items share the session pool.
  app.post(BRIDGE_ROUTES.unwrapBatch.path, async (c) => {
    const { items } = parseBody(BRIDGE_ROUTES.unwrapBatch.request, c.get('rawBody'));
    ops.unwrap += items.length;
    const results = await Promise.all(
      items.map(async (item, index): Promise<UnwrapBatchResult> => {
        const parsed = UnwrapRequest.safeParse(item);
        if (!parsed.success) return { error: { code: 'BadRequest', message: `item ${index}: ${describeIssue(parsed.error)}` } };
        try {
          const { wrapped, context, kekLabel } = parsed.data;
          return { plaintext: toBase64Url(await hsm.unwrap(wrapped, context, kekLabel)) };
        } catch (err) {
          const [code, message] = batchItemError(err, log);
          return { error: { code, message } };
        }
      }),
    );
    c.header('cache-control', 'no-store'); // the answer holds plaintext data keys
    return c.json({ results } satisfies UnwrapBatchResponse);
  });

  // HSM keys. The schemas check shapes and sizes; algorithms and key types are keys.ts's to check.
  post(BRIDGE_ROUTES.generateKey, 'generate', async ({ id, spec }, c) => {
    return c.json((await keys.generate(id, spec)) satisfies GenerateKeyResponse);
  });

  post(BRIDGE_ROUTES.importKey, 'import', async ({ id, jwk }, c) => {
    return c.json((await keys.import(id, jwk)) satisfies ImportKeyResponse);
  });

  post(BRIDGE_ROUTES.sign, 'sign', async ({ handle, alg, digest }, c) => {
    const signature = await keys.sign(handle, alg, digest);
    return c.json({ signature: toBase64Url(signature) } satisfies KeySignResponse);
  });

  post(BRIDGE_ROUTES.decrypt, 'decrypt', async ({ handle, alg, ciphertext, iv, aad, tag }, c) => {
    const plaintext = await keys.decrypt(handle, alg, ciphertext, { iv, aad, tag });
    c.header('cache-control', 'no-store');
    return c.json({ plaintext: toBase64Url(plaintext) } satisfies KeyDecryptResponse);
  });

  post(BRIDGE_ROUTES.encrypt, 'encrypt', async ({ handle, alg, plaintext, iv, aad }, c) => {
    const sealed = await keys.encrypt(handle, alg, plaintext, { iv, aad });
    return c.json({
      ciphertext: toBase64Url(sealed.ciphertext),
      iv: toBase64Url(sealed.iv),
      ...(sealed.tag ? { tag: toBase64Url(sealed.tag) } : {}),
    } satisfies KeyEncryptResponse);
  });

  post(BRIDGE_ROUTES.wrapKey, 'wrapKey', async ({ handle, alg, key }, c) => {
    const wrapped = await keys.wrap(handle, alg, key);
    return c.json({ wrapped: toBase64Url(wrapped) } satisfies KeyWrapResponse);
  });

  post(BRIDGE_ROUTES.unwrapKey, 'unwrapKey', async ({ handle, alg, wrapped }, c) => {
    const key = await keys.unwrap(handle, alg, wrapped);
    c.header('cache-control', 'no-store'); // the answer is a plaintext key
    return c.json({ key: toBase64Url(key) } satisfies KeyUnwrapResponse);
  });

  post(BRIDGE_ROUTES.destroyKey, 'destroy', async ({ handle }, c) => {
    return c.json({ destroyed: await keys.destroy(handle) } satisfies DestroyKeyResponse);
  });

  post(BRIDGE_ROUTES.publicKey, 'publicKey', async ({ handle }, c) => {
    return c.json({ publicJwk: await keys.publicKey(handle) } satisfies PublicKeyResponse);
  });

  post(BRIDGE_ROUTES.random, 'rng', async ({ count }, c) => {
    const bytes = await keys.random(count);
    c.header('cache-control', 'no-store');
    return c.json({ bytes: toBase64Url(bytes) } satisfies RandomResponse);
  });

  // KEK rotation: rare operator actions, logged rather than counted.
  post(BRIDGE_ROUTES.kekCreate, null, async (_body, c) => {
    const kekLabel = await hsm.createKek();
    log('kek_created', { kekLabel });
    return c.json({ kekLabel } satisfies KekCreateResponse);
  });

  post(BRIDGE_ROUTES.kekList, null, async (_body, c) => {
    const keks = await hsm.listKeks();
    return c.json({ current: hsm.kekLabel, keks } satisfies KekListResponse);
  });

  post(BRIDGE_ROUTES.kekDestroy, null, async ({ kekLabel }, c) => {
    await hsm.destroyKek(kekLabel);
    log('kek_destroyed', { kekLabel });
    return c.json({ destroyed: true } satisfies KekDestroyResponse);
  });

  app.get('/v1/status', (c) => c.json({ kekLabel: hsm.kekLabel, ops: { ...ops } } satisfies BridgeStatus));

  app.notFound((c) => answerError(c, 'NotFound', 'no such route'));

  app.onError((err, c) => {
    if (err instanceof BadRequest || err instanceof KeyRequestError) return answerError(c, 'BadRequest', err.message);
    if (err instanceof KeyNotFoundError) return answerError(c, 'KeyNotFound', 'no key with this handle in the token');
    if (err instanceof KeyExistsError) return answerError(c, 'KeyExists', 'the token already holds objects with this id');
    if (err instanceof KeyOperationError) {
      log('key_operation_failed', { path: new URL(c.req.url).pathname });
      return answerError(c, 'OperationFailed', 'the operation failed: the ciphertext or key does not authenticate');
    }
    if (err instanceof UnwrapError) {
      log('unwrap_failed', { reason: err.message });
      return answerError(c, 'UnwrapFailed', 'the wrapped key does not authenticate under this KEK and context');
    }
    if (err instanceof HsmError && err.code === 'KEK_NOT_FOUND') return answerError(c, 'KekNotFound', err.message);
    if (err instanceof HsmError && err.code === 'KEK_IN_USE') return answerError(c, 'KekInUse', err.message);
    if (err instanceof HsmError) {
      // HsmError messages are written to be safe to show: no PINs, no key bytes.
      log('hsm_error', { code: err.code, message: err.message });
      return answerError(c, 'HsmUnavailable', err.message);
    }
    log('internal_error', { name: err instanceof Error ? err.name : typeof err });
    return answerError(c, 'InternalError', 'internal error');
  });

  return app;
}
