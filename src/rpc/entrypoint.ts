/**
 * The vault Worker's service-binding entrypoint: Workers of the same account bind it
 * (`[[services]] binding = "VAULT", service = "edge-key-vault", entrypoint = "VaultRpc"`, with
 * `props = { vault, clientId }`) and read secrets and use keys with no HTTP hop, no token and, warm,
 * no D1 query (README, "Service bindings"). Each method is one audited, authorized operation, as
 * the HTTP API's; packages/vault-client wraps it in a typed client.
 */
import { WorkerEntrypoint } from 'cloudflare:workers';
import { KeyActions, SecretActions, type DataAction } from '../core/data-actions';
import type { Env } from '../core/env';
import { withRequestScope } from '../core/request-scope';
import { KeyOperations, type OperationResult } from '../objects/key-operations';
import { KeyStore } from '../objects/keys';
import { SecretStore } from '../objects/secrets';
import { badParameter } from '../core/errors';
import type { KeyOperationInput } from '../objects/key-validation';
import { rpcCall, type RpcOperation, type RpcScope } from './call';
import {
  MAX_BATCH,
  type RpcKeyOperationInput,
  type RpcKeyOperationResult,
  type RpcProps,
  type RpcResult,
  type RpcSecret,
  type RpcSecretRef,
} from './wire';

export class VaultRpc extends WorkerEntrypoint<Env, RpcProps> {
  /** A secret's latest version, or the version named: SecretGet. */
  getSecret(name: string, version?: string): Promise<RpcResult<RpcSecret>> {
    return this.readSecret('getSecret', name, version);
  }

  /**
   * Several secrets in one call, each its own SecretGet (its own authorization decision and audit
   * record): one refused entry does not fail the others. At most MAX_BATCH entries.
   */
  async getSecrets(refs: RpcSecretRef[]): Promise<RpcResult<RpcResult<RpcSecret>[]>> {
    if (!Array.isArray(refs) || refs.length === 0 || refs.length > MAX_BATCH) {
      // Audited and authorized like any call (at the collection), then refused as HTTP refuses a bad body.
      return this.call({ method: 'getSecrets', operation: 'SecretGet', action: SecretActions.get, object: '/secrets' }, () => {
        throw badParameter(`getSecrets takes 1 to ${MAX_BATCH} secret names.`);
      });
    }
    const value = await Promise.all(
      refs.map((ref) =>
        typeof ref === 'string' ? this.readSecret('getSecrets', ref) : this.readSecret('getSecrets', ref?.name, ref?.version),
      ),
    );
    return { ok: true, value };
  }

  sign(name: string, alg: string, digest: Uint8Array, version?: string): Promise<RpcResult<RpcKeyOperationResult>> {
    return this.keyCall('sign', 'KeySign', KeyActions.sign, name, (ops) =>
      ops.sign(text(name, 'name'), optionalText(version, 'version'), text(alg, 'alg'), bytes(digest, 'digest', 1024)),
    );
  }

  verify(name: string, alg: string, digest: Uint8Array, signature: Uint8Array, version?: string): Promise<RpcResult<boolean>> {
    return this.call(
      { method: 'verify', operation: 'KeyVerify', action: KeyActions.verify, object: `/keys/${String(name)}` },
      async (scope) => {
        const ops = keyOperations(scope);
        const { valid } = await ops.verify(
          text(name, 'name'),
          optionalText(version, 'version'),
          text(alg, 'alg'),
          bytes(digest, 'digest', 1024),
          bytes(signature, 'signature', 1024),
        );
        return valid;
      },
    );
  }

  encrypt(name: string, input: RpcKeyOperationInput, version?: string) {
    return this.keyCall('encrypt', 'KeyEncrypt', KeyActions.encrypt, name, (ops) =>
      ops.encrypt(text(name, 'name'), optionalText(version, 'version'), operationInput(input)),
    );
  }

  decrypt(name: string, input: RpcKeyOperationInput, version?: string) {
    return this.keyCall('decrypt', 'KeyDecrypt', KeyActions.decrypt, name, (ops) =>
      ops.decrypt(text(name, 'name'), optionalText(version, 'version'), operationInput(input)),
    );
  }

  wrapKey(name: string, input: RpcKeyOperationInput, version?: string) {
    return this.keyCall('wrapKey', 'KeyWrap', KeyActions.wrap, name, (ops) =>
      ops.wrapKey(text(name, 'name'), optionalText(version, 'version'), operationInput(input)),
    );
  }

  unwrapKey(name: string, input: RpcKeyOperationInput, version?: string) {
    return this.keyCall('unwrapKey', 'KeyUnwrap', KeyActions.unwrap, name, (ops) =>
      ops.unwrapKey(text(name, 'name'), optionalText(version, 'version'), operationInput(input)),
    );
  }

  private readSecret(method: string, name: unknown, version?: unknown): Promise<RpcResult<RpcSecret>> {
    return this.call(
      { method, operation: 'SecretGet', action: SecretActions.get, object: `/secrets/${String(name)}` },
      async ({ services, vault, origin }) => {
        const r = await new SecretStore(services.db, services.keys, vault).get(
          text(name, 'name'),
          optionalText(version, 'version'),
        );
        return {
          id: `${origin}/secrets/${r.name}/${r.version}`,
          name: r.name,
          version: r.version,
          value: r.value!,
          contentType: r.contentType,
          tags: r.tags,
          enabled: r.enabled,
          nbf: r.nbf,
          exp: r.exp,
          created: r.created,
          updated: r.updated,
        };
      },
    );
  }

  private keyCall(
    method: string,
    operation: string,
    action: DataAction,
    name: string,
    run: (ops: KeyOperations) => Promise<OperationResult>,
  ): Promise<RpcResult<RpcKeyOperationResult>> {
    return this.call({ method, operation, action, object: `/keys/${String(name)}` }, async (scope) => {
      const r = await run(keyOperations(scope));
      return {
        kid: `${scope.origin}/keys/${r.record.name}/${r.record.version}`,
        value: r.value,
        ...(r.iv ? { iv: r.iv } : {}),
        ...(r.tag ? { tag: r.tag } : {}),
        ...(r.aad ? { aad: r.aad } : {}),
      };
    });
  }

  private call<T>(op: RpcOperation, run: (scope: RpcScope) => Promise<T>): Promise<RpcResult<T>> {
    // The call's waitUntil, for the caches' background renewals (src/core/request-scope.ts).
    return withRequestScope(this.ctx, () => rpcCall(this.env, this.ctx, this.ctx.props ?? {}, op, run));
  }
}

// Arguments are checked once the call is authorized, as the HTTP API checks bodies: a refusal is
// the same 400 BadParameter.
const MAX_OPERATION_BYTES = 64 * 1024;

function text(value: unknown, what: string): string {
  if (typeof value !== 'string') throw badParameter(`${what} must be a string.`);
  return value;
}

function optionalText(value: unknown, what: string): string | undefined {
  return value === undefined || value === null || value === '' ? undefined : text(value, what);
}

function bytes(value: unknown, what = 'value', max = MAX_OPERATION_BYTES): Uint8Array {
  const out = value instanceof Uint8Array ? value : value instanceof ArrayBuffer ? new Uint8Array(value) : undefined;
  if (!out) throw badParameter(`${what} must be a Uint8Array.`);
  if (out.byteLength > max) throw badParameter(`${what} is larger than ${max} bytes.`);
  return out;
}

const optionalBytes = (value: unknown, what: string) => (value === undefined || value === null ? undefined : bytes(value, what));

function operationInput(input: RpcKeyOperationInput): KeyOperationInput {
  if (input === null || typeof input !== 'object')
    throw badParameter('The operation input must be {alg, value, iv?, aad?, tag?}.');
  return {
    alg: text(input.alg, 'alg'),
    value: bytes(input.value),
    iv: optionalBytes(input.iv, 'iv'),
    aad: optionalBytes(input.aad, 'aad'),
    tag: optionalBytes(input.tag, 'tag'),
  };
}

function keyOperations({ services, vault }: RpcScope): KeyOperations {
  return new KeyOperations(new KeyStore(services.db, services.keys, services.bridge, vault), services.bridge);
}
