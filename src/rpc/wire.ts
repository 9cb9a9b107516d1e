/**
 * What crosses the service binding: the shapes the vault's RPC entrypoint (entrypoint.ts) returns
 * and packages/vault-client decodes (its own copy of these types; a test checks the two agree).
 *
 * Workers RPC rethrows an Error as a plain Error with its name and message only: a code or status
 * would be lost. So no method throws across the binding; each returns a result whose refusal
 * carries Azure's code, inner code and HTTP status, and the client turns that into a typed error.
 */

/** A refusal, as the HTTP API would answer it: status, Azure's code, its innererror code, message. */
export interface RpcError {
  status: number;
  code: string;
  innerCode?: string;
  message: string;
  /** 429 Throttled only: whole seconds until the limit lets a call through (HTTP's Retry-After). */
  retryAfterSeconds?: number;
}

export type RpcResult<T> = { ok: true; value: T } | { ok: false; error: RpcError };

/** Who the calling Worker is: the `props` of its binding, set by whoever deploys it. */
export interface RpcProps {
  /** The vault this binding reads (`{vault}` of `{vault}.{zone}`). */
  vault?: string;
  /** The client id of the application of this vault's tenant the calling Worker acts as. */
  clientId?: string;
}

/** A secret version with its value (a SecretBundle's fields; times in Unix seconds). */
export interface RpcSecret {
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

/** One entry of a batch read: a name (its latest version) or a name and version. */
export type RpcSecretRef = string | { name: string; version?: string };

/** encrypt, decrypt, wrapKey, unwrapKey: as the HTTP body, with raw bytes instead of base64url. */
export interface RpcKeyOperationInput {
  alg: string;
  value: Uint8Array;
  iv?: Uint8Array;
  aad?: Uint8Array;
  tag?: Uint8Array;
}

/** A KeyOperationResult: the key version used (kid) and the bytes. */
export interface RpcKeyOperationResult {
  kid: string;
  value: Uint8Array;
  iv?: Uint8Array;
  tag?: Uint8Array;
  aad?: Uint8Array;
}

/** The most entries one getSecrets call takes (Azure's page size). */
export const MAX_BATCH = 25;
