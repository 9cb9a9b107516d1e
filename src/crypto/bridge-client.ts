import {
  signRequest,
  type BridgeErrorBody,
  type BridgeHealth,
  type DestroyKeyRequest,
  type DestroyKeyResponse,
  type GenerateKeyRequest,
  type GenerateKeyResponse,
  type HsmKeySpec,
  type HsmPublicJwk,
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
} from '../../hsm-bridge/src/protocol';
import { BridgeUnavailableError, IntegrityError, VaultError, badParameter } from '../core/errors';
import { fromBase64Url, toBase64Url, utf8 } from '../core/encoding';

export type { HsmKeySpec, HsmPublicJwk } from '../../hsm-bridge/src/protocol';

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
}

/** HMAC-signed client of the HSM bridge (see hsm-bridge/src/protocol.ts). */
export class BridgeClient {
  constructor(
    private readonly baseUrl: string,
    private readonly secret: string,
  ) {}

  async wrap(plaintext: Uint8Array, context: string): Promise<{ wrapped: string; kekLabel: string }> {
    const body: WrapRequest = { plaintext: toBase64Url(plaintext), context: toBase64Url(utf8(context)) };
    const res = await this.call<WrapResponse>('/v1/wrap', body);
    return { wrapped: res.wrapped, kekLabel: res.kekLabel };
  }

  async unwrap(wrapped: string, context: string): Promise<Uint8Array> {
    const body: UnwrapRequest = { wrapped, context: toBase64Url(utf8(context)) };
    const res = await this.call<UnwrapResponse>('/v1/unwrap', body);
    return fromBase64Url(res.plaintext);
  }

  // HSM keys: the private or secret material never leaves the token; handles are the ids given.

  /** Generates a key in the token under `id` (32 lowercase hex); HsmKeyExistsError if taken. */
  async generateKey(id: string, spec: HsmKeySpec): Promise<{ handle: string; publicJwk?: HsmPublicJwk }> {
    const body: GenerateKeyRequest = { id, spec };
    const res = await this.call<GenerateKeyResponse>('/v1/keys/generate', body, { keyRoute: true, timeoutMs: KEY_CREATE_TIMEOUT_MS });
    return res.publicJwk ? { handle: text(res.handle), publicJwk: res.publicJwk } : { handle: text(res.handle) };
  }

  /** Imports a private RSA or EC JWK into the token as a non-extractable key. */
  async importKey(id: string, jwk: Record<string, string>): Promise<{ handle: string; publicJwk: HsmPublicJwk }> {
    const body: ImportKeyRequest = { id, jwk };
    const res = await this.call<ImportKeyResponse>('/v1/keys/import', body, { keyRoute: true, timeoutMs: KEY_CREATE_TIMEOUT_MS });
    if (!res.publicJwk) throw malformed();
    return { handle: text(res.handle), publicJwk: res.publicJwk };
  }

  /** Signs a digest (RS*, PS*, ES* incl. ES256K); ES* signatures are raw r||s. */
  async sign(handle: string, alg: string, digest: Uint8Array): Promise<Uint8Array> {
    const body: KeySignRequest = { handle, alg, digest: toBase64Url(digest) };
    return bytes((await this.call<KeySignResponse>('/v1/keys/sign', body, { keyRoute: true })).signature);
  }

  /** RSA-OAEP(-256)/RSA1_5 with an RSA key; A*GCM (iv, tag, aad), A*CBC(PAD) (iv) with an oct key. */
  async decrypt(
    handle: string,
    alg: string,
    ciphertext: Uint8Array,
    opts: { iv?: Uint8Array; aad?: Uint8Array; tag?: Uint8Array } = {},
  ): Promise<Uint8Array> {
    const body: KeyDecryptRequest = { handle, alg, ciphertext: toBase64Url(ciphertext), ...optionalBytes(opts) };
    return bytes((await this.call<KeyDecryptResponse>('/v1/keys/decrypt', body, { keyRoute: true })).plaintext);
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
    const body: KeyEncryptRequest = { handle, alg, plaintext: toBase64Url(plaintext), ...optionalBytes(opts) };
    const res = await this.call<KeyEncryptResponse>('/v1/keys/encrypt', body, { keyRoute: true });
    return {
      ciphertext: bytes(res.ciphertext),
      ...(res.iv !== undefined ? { iv: bytes(res.iv) } : {}),
      ...(res.tag !== undefined ? { tag: bytes(res.tag) } : {}),
    };
  }

  /** A128KW/A192KW/A256KW of key bytes under an oct key. */
  async wrapKey(handle: string, alg: string, key: Uint8Array): Promise<Uint8Array> {
    const body: KeyWrapRequest = { handle, alg, key: toBase64Url(key) };
    return bytes((await this.call<KeyWrapResponse>('/v1/keys/wrap', body, { keyRoute: true })).wrapped);
  }

  /** RSA-OAEP(-256)/RSA1_5 with an RSA key, A*KW with an oct key. */
  async unwrapKey(handle: string, alg: string, wrapped: Uint8Array): Promise<Uint8Array> {
    const body: KeyUnwrapRequest = { handle, alg, wrapped: toBase64Url(wrapped) };
    return bytes((await this.call<KeyUnwrapResponse>('/v1/keys/unwrap', body, { keyRoute: true })).key);
  }

  /** Destroys the key's token objects; false when there were none (idempotent). */
  async destroyKey(handle: string): Promise<boolean> {
    const body: DestroyKeyRequest = { handle };
    const res = await this.call<DestroyKeyResponse>('/v1/keys/destroy', body, { keyRoute: true });
    if (typeof res.destroyed !== 'boolean') throw malformed();
    return res.destroyed;
  }

  /** The public JWK of an RSA or EC key, read from the token (not from any stored copy). */
  async publicKey(handle: string): Promise<HsmPublicJwk> {
    const body: PublicKeyRequest = { handle };
    const res = await this.call<PublicKeyResponse>('/v1/keys/public', body, { keyRoute: true });
    if (typeof res.publicJwk !== 'object' || res.publicJwk === null) throw malformed();
    return res.publicJwk;
  }

  /** 1..128 bytes from the token's random generator. */
  async random(count: number): Promise<Uint8Array> {
    const body: RandomRequest = { count };
    return bytes((await this.call<RandomResponse>('/v1/rng', body, { keyRoute: true })).bytes);
  }

  /** The bridge's own health (unauthenticated endpoint); never throws. */
  async health(): Promise<BridgeHealth> {
    try {
      const res = await fetch(new URL('/healthz', this.baseUrl), { signal: AbortSignal.timeout(TIMEOUT_MS) });
      const body = (await res.json()) as BridgeHealth;
      return res.ok && body.kek ? body : { status: 'unavailable', kek: false, reason: body.reason ?? `HTTP ${res.status}` };
    } catch (err) {
      return { status: 'unavailable', kek: false, reason: describe(err) };
    }
  }

  private async call<T>(path: string, payload: unknown, opts: CallOptions = {}): Promise<T> {
    const body = JSON.stringify(payload);
    let headers: Record<string, string>;
    try {
      headers = await signRequest(this.secret, 'POST', path, body);
    } catch {
      throw new BridgeUnavailableError('the bridge secret is not configured correctly');
    }
    bridgeStats.calls++;
    let res: Response | undefined;
    // One retry when the connection itself failed (not on a timeout): the runtime reuses idle
    // keep-alive connections, and one the bridge closed meanwhile fails on first write. Signed
    // afresh (a new nonce); every bridge operation is safe to repeat (key creation under a taken
    // id answers KeyExists).
    for (let attempt = 1; !res; attempt++) {
      try {
        if (attempt > 1) headers = await signRequest(this.secret, 'POST', path, body);
        res = await fetch(new URL(path, this.baseUrl), {
          method: 'POST',
          headers: { ...headers, 'content-type': 'application/json' },
          body,
          signal: AbortSignal.timeout(opts.timeoutMs ?? TIMEOUT_MS),
        });
      } catch (err) {
        if (attempt >= 2 || describe(err) === 'timed out') throw new BridgeUnavailableError(describe(err));
      }
    }
    if (opts.keyRoute && [400, 404, 409, 422].includes(res.status)) throw keyRouteError(res.status, await errorOf(res));
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
    try {
      return (await res.json()) as T;
    } catch {
      throw malformed();
    }
  }
}

/** The vault's error for a key route's 4xx answer. */
function keyRouteError(status: number, error: { code?: string; message?: string }): VaultError {
  // The bridge's messages name fields and algorithms, never key bytes, digests or plaintexts.
  if (status === 400) return badParameter(error.message ? sentence(error.message) : 'The HSM refused the request.');
  if (status === 422) return badParameter(OPERATION_FAILED);
  if (status === 409 && error.code === 'KeyExists') return new HsmKeyExistsError();
  // The vault's record points at a token object that is not there.
  if (status === 404 && error.code === 'KeyNotFound') return new IntegrityError('HSM key');
  // e.g. a 404 for the route itself: a bridge too old for HSM keys.
  return new BridgeUnavailableError(`bridge answered HTTP ${status}${error.code ? ` (${error.code})` : ''}`);
}

async function errorOf(res: Response): Promise<{ code?: string; message?: string }> {
  try {
    const body = (await res.json()) as Partial<BridgeErrorBody>;
    const code = typeof body.error?.code === 'string' ? body.error.code : undefined;
    const message = typeof body.error?.message === 'string' ? body.error.message.slice(0, 300) : undefined;
    return { code, message };
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

function malformed(): BridgeUnavailableError {
  return new BridgeUnavailableError('malformed answer from the bridge');
}

function text(value: unknown): string {
  if (typeof value !== 'string') throw malformed();
  return value;
}

function bytes(value: unknown): Uint8Array {
  try {
    return fromBase64Url(text(value));
  } catch {
    throw malformed();
  }
}

function describe(err: unknown): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) return 'timed out';
  return 'connection failed';
}
