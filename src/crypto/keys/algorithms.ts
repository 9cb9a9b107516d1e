/**
 * Algorithm rules shared by software and HSM keys, as Azure Key Vault enforces them. Names follow
 * @azure/keyvault-keys (KnownJsonWebKeySignatureAlgorithm, KnownJsonWebKeyEncryptionAlgorithm).
 */
import { badParameter } from '../../core/errors';
import type { Curve, KeyKind } from './types';

export type KeyOperation = 'sign' | 'verify' | 'encrypt' | 'decrypt' | 'wrapKey' | 'unwrapKey';

export type HashName = 'SHA-1' | 'SHA-256' | 'SHA-384' | 'SHA-512';
type Family = 'RSA' | 'EC' | 'oct';

interface AlgInfo {
  family: Family;
  ops: readonly KeyOperation[];
  /** Signature algorithms: the digest the caller sends (its length is checked). */
  hash?: HashName;
  /** ES*: the one curve the algorithm is defined for. */
  crv?: Curve;
  /** A*: the AES key size the algorithm needs. */
  bits?: number;
}

const SIGN: readonly KeyOperation[] = ['sign', 'verify'];
const CIPHER: readonly KeyOperation[] = ['encrypt', 'decrypt'];
const WRAP: readonly KeyOperation[] = ['wrapKey', 'unwrapKey'];
// RSA encryption algorithms serve encrypt/decrypt and wrapKey/unwrapKey alike.
const RSA_CIPHER: readonly KeyOperation[] = [...CIPHER, ...WRAP];

const ALGORITHMS: Readonly<Record<string, AlgInfo>> = {
  RS256: { family: 'RSA', ops: SIGN, hash: 'SHA-256' },
  RS384: { family: 'RSA', ops: SIGN, hash: 'SHA-384' },
  RS512: { family: 'RSA', ops: SIGN, hash: 'SHA-512' },
  PS256: { family: 'RSA', ops: SIGN, hash: 'SHA-256' },
  PS384: { family: 'RSA', ops: SIGN, hash: 'SHA-384' },
  PS512: { family: 'RSA', ops: SIGN, hash: 'SHA-512' },
  ES256: { family: 'EC', ops: SIGN, hash: 'SHA-256', crv: 'P-256' },
  ES384: { family: 'EC', ops: SIGN, hash: 'SHA-384', crv: 'P-384' },
  ES512: { family: 'EC', ops: SIGN, hash: 'SHA-512', crv: 'P-521' },
  ES256K: { family: 'EC', ops: SIGN, hash: 'SHA-256', crv: 'P-256K' },
  'RSA-OAEP': { family: 'RSA', ops: RSA_CIPHER },
  'RSA-OAEP-256': { family: 'RSA', ops: RSA_CIPHER },
  RSA1_5: { family: 'RSA', ops: RSA_CIPHER },
  A128GCM: { family: 'oct', ops: CIPHER, bits: 128 },
  A192GCM: { family: 'oct', ops: CIPHER, bits: 192 },
  A256GCM: { family: 'oct', ops: CIPHER, bits: 256 },
  A128CBC: { family: 'oct', ops: CIPHER, bits: 128 },
  A192CBC: { family: 'oct', ops: CIPHER, bits: 192 },
  A256CBC: { family: 'oct', ops: CIPHER, bits: 256 },
  A128CBCPAD: { family: 'oct', ops: CIPHER, bits: 128 },
  A192CBCPAD: { family: 'oct', ops: CIPHER, bits: 192 },
  A256CBCPAD: { family: 'oct', ops: CIPHER, bits: 256 },
  A128KW: { family: 'oct', ops: WRAP, bits: 128 },
  A192KW: { family: 'oct', ops: WRAP, bits: 192 },
  A256KW: { family: 'oct', ops: WRAP, bits: 256 },
};

const DIGEST_BYTES: Readonly<Record<HashName, number>> = { 'SHA-1': 20, 'SHA-256': 32, 'SHA-384': 48, 'SHA-512': 64 };

const familyOf = (kind: KeyKind): Family => (kind.startsWith('RSA') ? 'RSA' : kind.startsWith('EC') ? 'EC' : 'oct');
const FAMILY_LABEL: Record<Family, string> = { RSA: 'RSA', EC: 'EC', oct: 'oct (AES)' };
const WHAT: Record<KeyOperation, string> = {
  sign: 'signing',
  verify: 'signing',
  encrypt: 'encryption',
  decrypt: 'encryption',
  wrapKey: 'key wrapping',
  unwrapKey: 'key wrapping',
};

/** Echoes caller input in messages only in a bounded, printable form. */
const shown = (value: string) => JSON.stringify(value.length > 32 ? `${value.slice(0, 32)}…` : value).slice(1, -1);

/** The hash a signature algorithm's digest comes from (for the padding code). */
export function hashOf(alg: string): HashName {
  const hash = ALGORITHMS[alg]?.hash;
  if (!hash) throw badParameter(`The algorithm '${shown(alg)}' is not a signature algorithm.`);
  return hash;
}

export const digestLength = (hash: HashName): number => DIGEST_BYTES[hash];

/**
 * Returns `alg` if the key may use it for `op`. Refuses unknown algorithms, algorithms of another
 * operation or key type, ES* on the wrong curve and A* with the wrong key size.
 */
export function checkAlgorithm(op: KeyOperation, alg: unknown, key: { kind: KeyKind; size?: number; crv?: Curve }): string {
  if (typeof alg !== 'string' || alg === '') throw badParameter("The 'alg' parameter is required.");
  const info = Object.hasOwn(ALGORITHMS, alg) ? ALGORITHMS[alg] : undefined;
  if (!info) throw badParameter(`The algorithm '${shown(alg)}' is not supported.`);
  if (!info.ops.includes(op)) throw badParameter(`The algorithm '${alg}' cannot be used for the ${op} operation.`);
  const family = familyOf(key.kind);
  if (info.family !== family) {
    throw badParameter(
      `Key and ${WHAT[op]} algorithm are incompatible: algorithm '${alg}' cannot be used with ${FAMILY_LABEL[family]} keys.`,
    );
  }
  if (info.crv && key.crv !== info.crv) {
    throw badParameter(
      `Key and ${WHAT[op]} algorithm are incompatible. The key uses curve '${key.crv ?? 'unknown'}', and algorithm '${alg}' can only be used with curve '${info.crv}'.`,
    );
  }
  if (info.bits && key.size !== undefined && key.size !== info.bits) {
    throw badParameter(
      `Key and ${WHAT[op]} algorithm are incompatible. The key is ${key.size} bits long, and algorithm '${alg}' requires a ${info.bits}-bit key.`,
    );
  }
  return alg;
}

/**
 * The digest sent to sign/verify must have the length of the algorithm's hash (Azure's message
 * names the request field: 'value' for sign, 'digest' for verify).
 */
export function checkDigest(alg: string, digest: Uint8Array, field = 'value'): void {
  const expected = DIGEST_BYTES[hashOf(alg)];
  if (digest.byteLength !== expected) {
    throw badParameter(
      `Invalid length of '${field}': ${digest.byteLength} bytes. ${alg} requires ${expected} bytes, encoded with base64url.`,
    );
  }
}

/** Azure's JsonWebKeyOperation values. */
export const KEY_OPS: readonly string[] = ['encrypt', 'decrypt', 'sign', 'verify', 'wrapKey', 'unwrapKey', 'import', 'export'];

const CRYPTO_OPS: Record<Family, readonly string[]> = {
  RSA: ['encrypt', 'decrypt', 'sign', 'verify', 'wrapKey', 'unwrapKey'],
  EC: ['sign', 'verify'],
  oct: ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey'],
};

/** What Azure puts in key_ops when a key is created without them: everything its type can do. */
export const defaultKeyOps = (kind: KeyKind): string[] => [...CRYPTO_OPS[familyOf(kind)]];

/**
 * key_ops a key of this type may carry: the operations its type can perform, plus 'import' and
 * 'export', which are about the key's life rather than its algorithms and apply to every type.
 */
export const validKeyOps = (kind: KeyKind): Set<string> => new Set([...CRYPTO_OPS[familyOf(kind)], 'import', 'export']);
