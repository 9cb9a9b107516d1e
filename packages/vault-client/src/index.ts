/**
 * A typed client for Workers that bind the vault Worker's VaultRpc entrypoint:
 *
 *   const vault = new VaultClient(env.VAULT);
 *   const dbPassword = await vault.getSecretValue('db-password');
 *
 * The entrypoint returns refusals as values (Workers RPC would keep only an Error's message); this
 * client turns them into VaultRpcError, whose `status`, `code` and `innerCode` are what the HTTP
 * API answers (404 SecretNotFound, 403 Forbidden/ForbiddenByRbac, …). The wire types below mirror
 * src/rpc/wire.ts of the vault; test/e2e/edge-rpc.e2e.test.ts checks that they agree.
 */

export interface RpcError {
  status: number;
  code: string;
  innerCode?: string;
  message: string;
  /** 429 Throttled only: whole seconds until the limit lets a call through (HTTP's Retry-After). */
  retryAfterSeconds?: number;
}

export type RpcResult<T> = { ok: true; value: T } | { ok: false; error: RpcError };

export interface Secret {
  /** `https://{vault}.{zone}/secrets/{name}/{version}`. */
  id: string;
  name: string;
  version: string;
  value: string;
  contentType: string | null;
  tags: Record<string, string> | null;
  enabled: boolean;
  nbf: number | null;
  exp: number | null;
  created: number;
  updated: number;
}

export type SecretRef = string | { name: string; version?: string };

export interface KeyOperationInput {
  alg: string;
  value: Uint8Array;
  iv?: Uint8Array;
  aad?: Uint8Array;
  tag?: Uint8Array;
}

export interface KeyOperationResult {
  kid: string;
  value: Uint8Array;
  iv?: Uint8Array;
  tag?: Uint8Array;
  aad?: Uint8Array;
}

/** What the binding offers (the VaultRpc entrypoint's methods); any stub of it fits. */
export interface VaultBinding {
  getSecret(name: string, version?: string): Promise<RpcResult<Secret>>;
  getSecrets(refs: SecretRef[]): Promise<RpcResult<RpcResult<Secret>[]>>;
  sign(name: string, alg: string, digest: Uint8Array, version?: string): Promise<RpcResult<KeyOperationResult>>;
  verify(name: string, alg: string, digest: Uint8Array, signature: Uint8Array, version?: string): Promise<RpcResult<boolean>>;
  encrypt(name: string, input: KeyOperationInput, version?: string): Promise<RpcResult<KeyOperationResult>>;
  decrypt(name: string, input: KeyOperationInput, version?: string): Promise<RpcResult<KeyOperationResult>>;
  wrapKey(name: string, input: KeyOperationInput, version?: string): Promise<RpcResult<KeyOperationResult>>;
  unwrapKey(name: string, input: KeyOperationInput, version?: string): Promise<RpcResult<KeyOperationResult>>;
}

/** A refusal of the vault: Azure's code and inner code, and the HTTP status it stands for. */
export class VaultRpcError extends Error {
  readonly status: number;
  readonly code: string;
  readonly innerCode: string | undefined;
  /** On a 429 Throttled: whole seconds to wait before calling again. */
  readonly retryAfterSeconds: number | undefined;

  constructor(error: RpcError) {
    super(error.message);
    this.name = 'VaultRpcError';
    this.status = error.status;
    this.code = error.code;
    this.innerCode = error.innerCode;
    this.retryAfterSeconds = error.retryAfterSeconds;
  }

  /** 404: no such secret, key, version or vault. */
  get isNotFound(): boolean {
    return this.status === 404;
  }

  /** 429: a request limit of the vault or of this caller was reached; wait retryAfterSeconds. */
  get isThrottled(): boolean {
    return this.status === 429;
  }

  /** 403: refused by authorization, the firewall, or the object's state (disabled, expired). */
  get isForbidden(): boolean {
    return this.status === 403;
  }
}

function unwrap<T>(result: RpcResult<T>): T {
  if (result.ok) return result.value;
  throw new VaultRpcError(result.error);
}

export class VaultClient {
  constructor(private readonly binding: VaultBinding) {}

  /** A secret's latest version (or `version`), with its value and attributes. */
  async getSecret(name: string, version?: string): Promise<Secret> {
    return unwrap(await this.binding.getSecret(name, version));
  }

  /** Only the value. */
  async getSecretValue(name: string, version?: string): Promise<string> {
    return (await this.getSecret(name, version)).value;
  }

  /**
   * Up to 25 secrets in one call, in the order asked: each a Secret or the VaultRpcError that
   * refused it (one refusal does not fail the others). A malformed call throws.
   */
  async getSecrets(refs: SecretRef[]): Promise<(Secret | VaultRpcError)[]> {
    return unwrap(await this.binding.getSecrets(refs)).map((r) => (r.ok ? r.value : new VaultRpcError(r.error)));
  }

  /** Signs a digest (the hash of the message, as Azure's sign takes it). */
  async sign(name: string, alg: string, digest: Uint8Array, version?: string): Promise<KeyOperationResult> {
    return unwrap(await this.binding.sign(name, alg, digest, version));
  }

  async verify(name: string, alg: string, digest: Uint8Array, signature: Uint8Array, version?: string): Promise<boolean> {
    return unwrap(await this.binding.verify(name, alg, digest, signature, version));
  }

  async encrypt(name: string, input: KeyOperationInput, version?: string): Promise<KeyOperationResult> {
    return unwrap(await this.binding.encrypt(name, input, version));
  }

  async decrypt(name: string, input: KeyOperationInput, version?: string): Promise<KeyOperationResult> {
    return unwrap(await this.binding.decrypt(name, input, version));
  }

  async wrapKey(name: string, input: KeyOperationInput, version?: string): Promise<KeyOperationResult> {
    return unwrap(await this.binding.wrapKey(name, input, version));
  }

  async unwrapKey(name: string, input: KeyOperationInput, version?: string): Promise<KeyOperationResult> {
    return unwrap(await this.binding.unwrapKey(name, input, version));
  }
}
