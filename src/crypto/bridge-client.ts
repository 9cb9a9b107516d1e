/**
 * The Worker's client of the HSM bridge: requests signed, and answers parsed, with the shared wire
 * protocol (bridge-protocol/). An answer that does not fit its schema is a malformed answer (503,
 * the bridge is treated as unavailable), never a crash; error answers become vault errors here.
 */
import type * as z from 'zod';
import {
  BRIDGE_ROUTES,
  MAX_BATCH_ITEMS,
  BridgeErrorBody,
  BridgeHealth,
  type BridgeErrorCode,
  type BridgeRoute,
  type HsmKeySpec,
  type HsmPublicJwk,
  type UnwrapRequest,
} from '../../bridge-protocol';
import { BridgeUnavailableError, IntegrityError, VaultError, badParameter, conflict, notFound } from '../core/errors';
import { toBase64Url, utf8 } from '../core/encoding';
import { signRequestSync } from './bridge-signing';

export type { HsmKeySpec, HsmPublicJwk } from '../../bridge-protocol';

/** Per-isolate count of calls made to the bridge (checked by tests and the benchmark). */
export const bridgeStats = { calls: 0 };

const TIMEOUT_MS = 5_000;
/** Generating an RSA-4096 key in the token takes seconds; importing one is not instant either. */
const KEY_CREATE_TIMEOUT_MS = 30_000;

/** What the vault says when an HSM decryption or unwrap does not authenticate. */
const OPERATION_FAILED = 'The operation failed: the ciphertext or key does not authenticate.';

/** The token already holds objects under the id asked for (bridge answer 409 KeyExists). */
export class HsmKeyExistsError extends VaultError {
  constructor() {
    super(409, 'Conflict', 'The HSM already holds a key with this id.');
    this.name = 'HsmKeyExistsError';
  }
}

interface CallOptions {
  timeoutMs?: number;
  /** /v1/keys/* and /v1/rng: 400, 404, 409 and 422 are answers about the request, not outages. */
  keyRoute?: boolean;
  /** Never sent a second time, even when the connection failed (the first may have landed). */
  once?: boolean;
  /** A route older bridges lack: their 404 is a RouteMissing, for the caller to fall back. */
  optional?: boolean;
  /** /v1/kek/*: 404 KekNotFound and 409 KekInUse are answers about the request, not outages. */
  kekRoute?: boolean;
}

/**
 * The members of a fetch Response this client reads: a Response is one, and so is what a Node
 * caller's transport hands over (scripts/lib/node-bridge-transport.ts, for the bench and tests).
 */
export interface BridgeAnswer {
  readonly status: number;
  readonly ok: boolean;
  json(): Promise<unknown>;
  readonly body: { cancel(): Promise<void> } | null;
}

/** How requests leave the Worker: the global fetch, or an mTLS certificate binding's fetch. */
export type BridgeFetch = (input: URL, init: RequestInit) => Promise<BridgeAnswer>;

/** The bridge has no such route (it predates it); the caller falls back to the older route. */
class RouteMissing extends Error {}

interface PendingUnwrap {
  item: UnwrapRequest;
  resolve: (plaintext: Uint8Array) => void;
  reject: (err: unknown) => void;
}

export interface BridgeClientOptions {
  /**
   * How long the first unwrap waits for others to join its batch, in ms. 0 (the default) gathers
   * the unwraps started in the same turn of the event loop (a Promise.all over several data keys,
   * or calls resolved by the same answer) at no added latency; a longer window also gathers calls
   * that arrive later, at the cost of that delay on every cold read. Negative: never batch.
   */
  coalesceMs?: number;
}

/**
 * Runs fn once the current turn is over (its microtasks included), or after `ms` when positive.
 * setTimeout(0) would do for a turn, but Node clamps it to 1 ms, which a batch then waits on top
 * of its round trip; setImmediate (Node; workerd with nodejs_compat) runs right after the turn.
 */
function later(fn: () => void, ms: number): { cancel(): void } {
  const immediate = (globalThis as { setImmediate?: (f: () => void) => unknown; clearImmediate?: (h: unknown) => void })
    .setImmediate;
  if (ms <= 0 && immediate) {
    const handle = immediate(fn);
    return { cancel: () => (globalThis as { clearImmediate?: (h: unknown) => void }).clearImmediate?.(handle) };
  }
  const handle = setTimeout(fn, ms);
  return { cancel: () => clearTimeout(handle) };
}

/**
 * HMAC-signed client of the HSM bridge (see bridge-protocol/). One per request (services()): its
 * unwrap coalescer only ever batches this request's own calls, so no request awaits I/O another
 * request started (a Workers rule; the isolate-wide data-key cache shares settled keys only).
 */
export class BridgeClient {
  private queued: PendingUnwrap[] = [];
  private timer: { cancel(): void } | undefined;
  private readonly coalesceMs: number;

  constructor(
    private readonly baseUrl: string,
    private readonly secret: string,
    /** e.g. `env.BRIDGE_MTLS.fetch`, which presents the Worker's client certificate (services.ts). */
    private readonly send: BridgeFetch = (input, init) => fetch(input, init),
    options: BridgeClientOptions = {},
  ) {
    this.coalesceMs = options.coalesceMs ?? 0;
  }

  async wrap(plaintext: Uint8Array, context: string): Promise<{ wrapped: string; kekLabel: string }> {
    const res = await this.call(BRIDGE_ROUTES.wrap, { plaintext: toBase64Url(plaintext), context: toBase64Url(utf8(context)) });
    return { wrapped: res.wrapped, kekLabel: res.kekLabel };
  }

  /**
   * Unwraps a data key. Calls made together are sent as one POST /v1/unwrap-batch (one signed
   * request, up to MAX_BATCH_ITEMS keys); each call still succeeds or fails on its own, with the
   * errors a lone /v1/unwrap gives. A call alone goes to /v1/unwrap. `kekLabel`: the KEK that
   * wrapped the key, as the wrap answer named it (the bridge's current KEK when absent).
   */
  unwrap(wrapped: string, context: string, kekLabel?: string): Promise<Uint8Array> {
    const item = { wrapped, context: toBase64Url(utf8(context)), ...(kekLabel ? { kekLabel } : {}) };
    if (this.coalesceMs < 0) return this.unwrapOne(item);
    return new Promise<Uint8Array>((resolve, reject) => {
      this.queued.push({ item, resolve, reject });
      if (this.queued.length >= MAX_BATCH_ITEMS) this.flush();
      else if (this.queued.length === 1) this.timer = later(() => this.flush(), this.coalesceMs);
    });
  }

  private flush(): void {
    this.timer?.cancel();
    this.timer = undefined;
    const batch = this.queued;
    this.queued = [];
    if (batch.length === 0) return;
    const settle = (p: PendingUnwrap, run: Promise<Uint8Array>) => run.then(p.resolve, p.reject);
    if (batch.length === 1) {
      void settle(batch[0]!, this.unwrapOne(batch[0]!.item));
      return;
    }
    this.unwrapBatch(batch.map((p) => p.item)).then(
      (outcomes) =>
        batch.forEach((p, i) => {
          const outcome = outcomes[i]!;
          if (outcome instanceof Uint8Array) p.resolve(outcome);
          else p.reject(outcome);
        }),
      (err: unknown) => {
        if (!(err instanceof RouteMissing)) return batch.forEach((p) => p.reject(err));
        for (const p of batch) void settle(p, this.unwrapOne(p.item)); // a bridge without the batch route
      },
    );
  }

  private async unwrapOne(item: UnwrapRequest): Promise<Uint8Array> {
    return (await this.call(BRIDGE_ROUTES.unwrap, item)).plaintext;
  }

  /** One outcome per item, in order: the plaintext, or the vault error /v1/unwrap would give. */
  private async unwrapBatch(items: UnwrapRequest[]): Promise<Array<Uint8Array | VaultError>> {
    const { results } = await this.call(BRIDGE_ROUTES.unwrapBatch, { items }, { optional: true });
    if (results.length !== items.length) throw malformed();
    return results.map((r) => {
      if ('plaintext' in r) return r.plaintext;
      if (r.error.code === 'UnwrapFailed') return new IntegrityError('data key');
      return new BridgeUnavailableError(`bridge answered ${r.error.code}`);
    });
  }

  // KEK rotation (operator actions through the management API).

  /** Generates a new KEK in the HSM and makes it current; returns its label. */
  async createKek(): Promise<string> {
    return (await this.call(BRIDGE_ROUTES.kekCreate, {}, { once: true, timeoutMs: KEY_CREATE_TIMEOUT_MS })).kekLabel;
  }

  /** The KEKs in the HSM, oldest first, and which one is current. */
  async listKeks(): Promise<{ current: string; keks: Array<{ label: string; current: boolean }> }> {
    return this.call(BRIDGE_ROUTES.kekList, {});
  }

  /** Destroys a KEK that is not current: 404 when there is none, 409 for the current one. */
  async destroyKek(kekLabel: string): Promise<void> {
    await this.call(BRIDGE_ROUTES.kekDestroy, { kekLabel }, { kekRoute: true, once: true });
  }

  // HSM keys: the private or secret material never leaves the token; handles are the ids given.

  /** Generates a key in the token under `id` (32 lowercase hex); HsmKeyExistsError if taken. */
  async generateKey(id: string, spec: HsmKeySpec): Promise<{ handle: string; publicJwk?: HsmPublicJwk }> {
    const res = await this.call(
      BRIDGE_ROUTES.generateKey,
      { id, spec },
      { keyRoute: true, timeoutMs: KEY_CREATE_TIMEOUT_MS, once: true },
    );
    return res.publicJwk ? { handle: res.handle, publicJwk: res.publicJwk } : { handle: res.handle };
  }

  /** Imports a private RSA or EC JWK into the token as a non-extractable key. */
  async importKey(id: string, jwk: Record<string, string>): Promise<{ handle: string; publicJwk: HsmPublicJwk }> {
    const res = await this.call(
      BRIDGE_ROUTES.importKey,
      { id, jwk },
      { keyRoute: true, timeoutMs: KEY_CREATE_TIMEOUT_MS, once: true },
    );
    return { handle: res.handle, publicJwk: res.publicJwk };
  }

  /** Signs a digest (RS*, PS*, ES* incl. ES256K); ES* signatures are raw r||s. */
  async sign(handle: string, alg: string, digest: Uint8Array): Promise<Uint8Array> {
    return (await this.call(BRIDGE_ROUTES.sign, { handle, alg, digest: toBase64Url(digest) }, { keyRoute: true })).signature;
  }

  /** RSA-OAEP(-256)/RSA1_5 with an RSA key; A*GCM (iv, tag, aad), A*CBC(PAD) (iv) with an oct key. */
  async decrypt(
    handle: string,
    alg: string,
    ciphertext: Uint8Array,
    opts: { iv?: Uint8Array; aad?: Uint8Array; tag?: Uint8Array } = {},
  ): Promise<Uint8Array> {
    const body = { handle, alg, ciphertext: toBase64Url(ciphertext), ...optionalBytes(opts) };
    return (await this.call(BRIDGE_ROUTES.decrypt, body, { keyRoute: true })).plaintext;
  }

  /**
   * AES encryption with an oct key. For A*GCM the token chooses the IV (sending one is refused);
   * for A*CBC(PAD) the given IV is used, or the token chooses one. The IV used is always returned.
   */
  async encrypt(
    handle: string,
    alg: string,
    plaintext: Uint8Array,
    opts: { iv?: Uint8Array; aad?: Uint8Array } = {},
  ): Promise<{ ciphertext: Uint8Array; iv?: Uint8Array; tag?: Uint8Array }> {
    const body = { handle, alg, plaintext: toBase64Url(plaintext), ...optionalBytes(opts) };
    const res = await this.call(BRIDGE_ROUTES.encrypt, body, { keyRoute: true });
    return {
      ciphertext: res.ciphertext,
      ...(res.iv !== undefined ? { iv: res.iv } : {}),
      ...(res.tag !== undefined ? { tag: res.tag } : {}),
    };
  }

  /** A128KW/A192KW/A256KW of key bytes under an oct key. */
  async wrapKey(handle: string, alg: string, key: Uint8Array): Promise<Uint8Array> {
    return (await this.call(BRIDGE_ROUTES.wrapKey, { handle, alg, key: toBase64Url(key) }, { keyRoute: true })).wrapped;
  }

  /** RSA-OAEP(-256)/RSA1_5 with an RSA key, A*KW with an oct key. */
  async unwrapKey(handle: string, alg: string, wrapped: Uint8Array): Promise<Uint8Array> {
    return (await this.call(BRIDGE_ROUTES.unwrapKey, { handle, alg, wrapped: toBase64Url(wrapped) }, { keyRoute: true })).key;
  }

  /** Destroys the key's token objects; false when there were none (idempotent). */
  async destroyKey(handle: string): Promise<boolean> {
    return (await this.call(BRIDGE_ROUTES.destroyKey, { handle }, { keyRoute: true })).destroyed;
  }

  /** The public JWK of an RSA or EC key, read from the token (not from any stored copy). */
  async publicKey(handle: string): Promise<HsmPublicJwk> {
    return (await this.call(BRIDGE_ROUTES.publicKey, { handle }, { keyRoute: true })).publicJwk;
  }

  /** 1..128 bytes from the token's random generator. */
  async random(count: number): Promise<Uint8Array> {
    return (await this.call(BRIDGE_ROUTES.random, { count }, { keyRoute: true })).bytes;
  }

  /** The bridge's own health (unauthenticated endpoint); never throws. */
  async health(): Promise<BridgeHealth> {
    try {
      const get = () => this.send(new URL('/healthz', this.baseUrl), { signal: AbortSignal.timeout(TIMEOUT_MS) });
      // As in call(): a pooled connection the bridge closed is tried once more, on a new one.
      const res = await get().catch((err: unknown) => (describe(err) === 'connection failed' ? get() : Promise.reject(err)));
      const parsed = BridgeHealth.safeParse(await res.json());
      if (!parsed.success) return { status: 'unavailable', kek: false, reason: 'malformed answer from the bridge' };
      const body = parsed.data;
      return res.ok && body.kek ? body : { status: 'unavailable', kek: false, reason: body.reason ?? `HTTP ${res.status}` };
    } catch (err) {
      return { status: 'unavailable', kek: false, reason: describe(err) };
    }
  }

  /** POSTs a route's request; resolves to its answer as the route's schema parses it. */
  private async call<R extends BridgeRoute>(
    route: R,
    payload: z.input<R['request']>,
    opts: CallOptions = {},
  ): Promise<z.output<R['response']>> {
    const path = route.path;
    const body = JSON.stringify(payload);
    bridgeStats.calls++;
    // The deadline covers the answer's body too; it is cleared once that is read, so no timer
    // outlives its call (AbortSignal.timeout's would fire seconds later, an abort event and a
    // DOMException per finished call: on Node a cost every batch paid again afterwards).
    const deadline = timeoutSignal(opts.timeoutMs ?? TIMEOUT_MS);
    try {
      return await this.exchange(route, path, body, opts, deadline.signal);
    } finally {
      deadline.clear();
    }
  }

  private async exchange<R extends BridgeRoute>(
    route: R,
    path: string,
    body: string,
    opts: CallOptions,
    signal: AbortSignal,
  ): Promise<z.output<R['response']>> {
    let res: BridgeAnswer;
    // A keep-alive connection the bridge closed as we reused it fails before the request reaches
    // it; one fresh attempt (newly signed: a nonce is never sent twice) then goes through. Not for
    // key creation, whose first attempt may have landed: a retry would see the key it made as taken.
    for (let attempt = 1; ; attempt++) {
      let headers: Record<string, string>;
      try {
        headers = signRequestSync(this.secret, 'POST', path, body);
      } catch {
        throw new BridgeUnavailableError('the bridge secret is not configured correctly');
      }
      try {
        res = await this.send(new URL(path, this.baseUrl), {
          method: 'POST',
          headers: { ...headers, 'content-type': 'application/json' },
          body,
          signal,
        });
        break;
      } catch (err) {
        const reason = describe(err);
        if (reason !== 'connection failed' || opts.once || attempt >= 2) throw new BridgeUnavailableError(reason);
      }
    }
    if (opts.optional && res.status === 404 && (await errorOf(res)).code === 'NotFound') throw new RouteMissing();
    if (opts.keyRoute && [400, 404, 409, 422].includes(res.status)) throw keyRouteError(res.status, await errorOf(res));
    if (opts.kekRoute && (res.status === 404 || res.status === 409)) {
      const { code } = await errorOf(res);
      if (code === 'KekNotFound') throw notFound('KekNotFound', 'The HSM holds no KEK with this label.');
      if (code === 'KekInUse') throw conflict('This is the current KEK; rotate to a new one before destroying it.');
      throw new BridgeUnavailableError(`bridge answered HTTP ${res.status}`);
    }
    if (res.status === 422) {
      await res.body?.cancel();
      throw new IntegrityError('data key');
    }
    if (!res.ok) {
      await res.body?.cancel();
      // 401 means the two sides disagree on the secret: an operator problem, logged without it.
      if (res.status === 401) console.error('hsm bridge refused our request signature (check BRIDGE_HMAC_SECRET)');
      throw new BridgeUnavailableError(`bridge answered HTTP ${res.status}`);
    }
    let answer: unknown;
    try {
      answer = await res.json();
    } catch {
      throw malformed();
    }
    const parsed = route.response.safeParse(answer);
    if (!parsed.success) throw malformed();
    return parsed.data as z.output<R['response']>;
  }
}

/** The vault's error for a key route's 4xx answer. */
function keyRouteError(status: number, error: { code?: BridgeErrorCode; message?: string }): VaultError {
  // The bridge's messages name fields and algorithms, never key bytes, digests or plaintexts.
  if (status === 400) return badParameter(error.message ? sentence(error.message) : 'The HSM refused the request.');
  if (status === 422) return badParameter(OPERATION_FAILED);
  if (status === 409 && error.code === 'KeyExists') return new HsmKeyExistsError();
  // The vault's record points at a token object that is not there.
  if (status === 404 && error.code === 'KeyNotFound') return new IntegrityError('HSM key');
  // e.g. a 404 for the route itself: a bridge too old for HSM keys.
  return new BridgeUnavailableError(`bridge answered HTTP ${status}${error.code ? ` (${error.code})` : ''}`);
}

/** The code and message of an error answer; nothing when the body is not one. */
async function errorOf(res: BridgeAnswer): Promise<{ code?: BridgeErrorCode; message?: string }> {
  try {
    const parsed = BridgeErrorBody.safeParse(await res.json());
    return parsed.success ? { code: parsed.data.error.code, message: parsed.data.error.message.slice(0, 300) } : {};
  } catch {
    return {};
  }
}

function sentence(message: string): string {
  const text = message.charAt(0).toUpperCase() + message.slice(1);
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

function optionalBytes(opts: Record<string, Uint8Array | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(opts)) if (value !== undefined) out[name] = toBase64Url(value);
  return out;
}

/** AbortSignal.timeout that can be cleared: the same TimeoutError when it fires. */
function timeoutSignal(ms: number): { signal: AbortSignal; clear(): void } {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DOMException('The operation timed out.', 'TimeoutError')), ms);
  return { signal: controller.signal, clear: () => clearTimeout(timer) };
}

function malformed(): BridgeUnavailableError {
  return new BridgeUnavailableError('malformed answer from the bridge');
}

function describe(err: unknown): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) return 'timed out';
  return 'connection failed';
}
