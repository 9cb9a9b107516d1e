/**
 * Cryptographic operations with a vault key (sign, verify, encrypt, decrypt, wrap, unwrap), with
 * Azure's checks in Azure's order: enabled, nbf/exp, key_ops, algorithm.
 */
import type { BridgeClient } from '../crypto/bridge-client';
import * as software from '../crypto/keys';
import { checkAlgorithm, checkDigest, type KeyOperation } from '../crypto/keys';
import { badParameter, forbidden } from '../core/errors';
import type { KeyOperationInput } from './key-validation';
import type { KeyMaterial, KeyRecord, KeyStore } from './keys';
import { now } from '../core/clock';

/** The answer of encrypt/decrypt/wrapkey/unwrapkey: the result bytes and, for AES-GCM/CBC, iv and tag. */
export interface OperationResult {
  record: KeyRecord;
  value: Uint8Array;
  iv?: Uint8Array;
  tag?: Uint8Array;
  aad?: Uint8Array;
}

// Azure: keys outside their nbf/exp window still decrypt, unwrap and verify (so data protected
// earlier stays readable); they no longer encrypt, wrap or sign.
const WINDOWED: ReadonlySet<KeyOperation> = new Set(['encrypt', 'wrapKey', 'sign']);

/**
 * The cryptographic operations on a vault's keys. Software keys are used in the Worker; HSM
 * keys' private and symmetric operations go to the bridge, their public ones stay here.
 */
export class KeyOperations {
  constructor(
    private readonly store: KeyStore,
    private readonly bridge: BridgeClient,
  ) {}

  async sign(name: string, version: string | undefined, alg: string, digest: Uint8Array): Promise<OperationResult> {
    const { material, algorithm } = await this.prepare('sign', name, version, alg);
    checkDigest(algorithm, digest);
    const value = material.hsmHandle
      ? await this.bridge.sign(material.hsmHandle, algorithm, digest)
      : await software.sign(material.privateJwk!, algorithm, digest);
    return { record: material.record, value };
  }

  async verify(name: string, version: string | undefined, alg: string, digest: Uint8Array, signature: Uint8Array) {
    const { material, algorithm } = await this.prepare('verify', name, version, alg);
    checkDigest(algorithm, digest);
    const valid = await software.verify(material.record.publicJwk!, algorithm, digest, signature);
    return { record: material.record, valid };
  }

  async encrypt(name: string, version: string | undefined, input: KeyOperationInput): Promise<OperationResult> {
    const { material, algorithm } = await this.prepare('encrypt', name, version, input.alg);
    // RSA encryption needs only the public key: done here for software and HSM keys alike.
    if (material.record.kind !== 'oct-HSM') {
      return { record: material.record, value: await software.encrypt(material.record.publicJwk!, algorithm, input.value) };
    }
    const out = await this.bridge.encrypt(material.hsmHandle!, algorithm, input.value, {
      iv: input.iv ?? undefined,
      aad: input.aad ?? undefined,
    });
    return { record: material.record, value: out.ciphertext, iv: out.iv, tag: out.tag, aad: input.aad ?? undefined };
  }

  async decrypt(name: string, version: string | undefined, input: KeyOperationInput): Promise<OperationResult> {
    const { material, algorithm } = await this.prepare('decrypt', name, version, input.alg);
    if (material.privateJwk)
      return { record: material.record, value: await software.decrypt(material.privateJwk, algorithm, input.value) };
    if (material.record.kind === 'oct-HSM') requireSymmetricParameters(algorithm, input);
    const value = await this.bridge.decrypt(material.hsmHandle!, algorithm, input.value, {
      iv: input.iv ?? undefined,
      aad: input.aad ?? undefined,
      tag: input.tag ?? undefined,
    });
    return { record: material.record, value };
  }

  async wrapKey(name: string, version: string | undefined, input: KeyOperationInput): Promise<OperationResult> {
    const { material, algorithm } = await this.prepare('wrapKey', name, version, input.alg);
    const value =
      material.record.kind === 'oct-HSM'
        ? await this.bridge.wrapKey(material.hsmHandle!, algorithm, input.value)
        : await software.encrypt(material.record.publicJwk!, algorithm, input.value);
    return { record: material.record, value };
  }

  async unwrapKey(name: string, version: string | undefined, input: KeyOperationInput): Promise<OperationResult> {
    const { material, algorithm } = await this.prepare('unwrapKey', name, version, input.alg);
    const value = material.privateJwk
      ? await software.decrypt(material.privateJwk, algorithm, input.value)
      : await this.bridge.unwrapKey(material.hsmHandle!, algorithm, input.value);
    return { record: material.record, value };
  }

  /**
   * Loads the version and applies Azure's checks, in Azure's order: the key exists, is enabled
   * and (for encrypt/wrap/sign) inside its nbf/exp window; key_ops allows the operation; the
   * algorithm fits the operation and the key.
   */
  private async prepare(op: KeyOperation, name: string, version: string | undefined, alg: unknown) {
    const needsPrivate = op === 'sign' || op === 'decrypt' || op === 'unwrapKey';
    const material: KeyMaterial = await this.store.material(name, version, needsPrivate);
    const r = material.record;
    if (!r.enabled) throw forbidden(`Operation ${op} is not allowed on a disabled key.`, 'KeyDisabled');
    if (WINDOWED.has(op)) {
      const t = now();
      if (r.nbf != null && t < r.nbf)
        throw forbidden(`Operation ${op} is not allowed on a key that is not yet valid.`, 'KeyNotYetValid');
      if (r.exp != null && t >= r.exp) throw forbidden(`Operation ${op} is not allowed on an expired key.`, 'KeyExpired');
    }
    if (!r.keyOps.includes(op)) throw forbidden(`Operation ${op} is not permitted on this key.`, 'KeyOperationForbidden');
    const algorithm = checkAlgorithm(op, alg, { kind: r.kind, size: r.size, crv: r.crv });
    return { material, algorithm };
  }
}

/** AES-GCM decryption needs the iv and tag it was made with; CBC needs the iv. */
function requireSymmetricParameters(alg: string, input: KeyOperationInput): void {
  if (alg.endsWith('GCM')) {
    if (!input.iv || input.iv.length !== 12) throw badParameter(`${alg} decryption needs the 12-byte iv returned by encrypt.`);
    if (!input.tag || input.tag.length !== 16)
      throw badParameter(`${alg} decryption needs the 16-byte authentication tag returned by encrypt.`);
  } else if (!input.iv || input.iv.length !== 16) {
    throw badParameter(`${alg} decryption needs the 16-byte iv used to encrypt.`);
  }
}
