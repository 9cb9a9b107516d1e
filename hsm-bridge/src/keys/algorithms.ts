/**
 * The algorithms, sizes and ids a key request may name, and the checks of a request before it
 * reaches the token. Messages name the field or algorithm (when it looks like one), never a value.
 */
import * as graphene from 'graphene-pk11';
import {
  HSM_AES_SIZES,
  HSM_CURVES,
  HSM_KEY_ID_PATTERN,
  HSM_RSA_SIZES,
  type HsmAesSize,
  type HsmCurve,
  type HsmKeySpec,
  type HsmRsaSize,
} from '../../../bridge-protocol/index.js';
import { KeyRequestError } from '../key-material.js';

export const GCM_IV_BYTES = 12;
export const GCM_TAG_BYTES = 16;
export const AES_BLOCK = 16;

export const HASHES = {
  sha256: { bytes: 32, mech: graphene.MechanismEnum.SHA256, mgf: graphene.RsaMgf.MGF1_SHA256 },
  sha384: { bytes: 48, mech: graphene.MechanismEnum.SHA384, mgf: graphene.RsaMgf.MGF1_SHA384 },
  sha512: { bytes: 64, mech: graphene.MechanismEnum.SHA512, mgf: graphene.RsaMgf.MGF1_SHA512 },
} as const;

export type SignAlg =
  { kty: 'RSA'; hash: keyof typeof HASHES; pss: boolean; digest: number } | { kty: 'EC'; crv: HsmCurve; digest: number };

export const SIGN_ALGS: Record<string, SignAlg> = {
  RS256: { kty: 'RSA', hash: 'sha256', pss: false, digest: 32 },
  RS384: { kty: 'RSA', hash: 'sha384', pss: false, digest: 48 },
  RS512: { kty: 'RSA', hash: 'sha512', pss: false, digest: 64 },
  PS256: { kty: 'RSA', hash: 'sha256', pss: true, digest: 32 },
  PS384: { kty: 'RSA', hash: 'sha384', pss: true, digest: 48 },
  PS512: { kty: 'RSA', hash: 'sha512', pss: true, digest: 64 },
  ES256: { kty: 'EC', crv: 'P-256', digest: 32 },
  ES384: { kty: 'EC', crv: 'P-384', digest: 48 },
  ES512: { kty: 'EC', crv: 'P-521', digest: 64 },
  ES256K: { kty: 'EC', crv: 'P-256K', digest: 32 },
};

export const RSA_DECRYPT_ALGS = new Set(['RSA-OAEP', 'RSA-OAEP-256', 'RSA1_5']);

export type AesAlg = { bytes: number; mode: 'GCM' | 'CBC' | 'CBCPAD' | 'KW' };

export function aesAlg(alg: string): AesAlg | undefined {
  const m = /^A(128|192|256)(GCM|CBC|CBCPAD|KW)$/.exec(alg);
  return m ? { bytes: Number(m[1]) / 8, mode: m[2] as AesAlg['mode'] } : undefined;
}

/** The alg as it may appear in an error message: it comes from the request. */
export function shown(alg: string): string {
  return /^[A-Za-z0-9_-]{1,16}$/.test(alg) ? `'${alg}'` : 'this algorithm';
}

export function checkId(id: unknown, name = 'handle'): asserts id is string {
  if (typeof id !== 'string' || !HSM_KEY_ID_PATTERN.test(id)) {
    throw new KeyRequestError(`'${name}' must be 32 lowercase hex characters`);
  }
}

export function checkSpec(spec: unknown): HsmKeySpec {
  const s = (typeof spec === 'object' && spec !== null ? spec : {}) as Record<string, unknown>;
  if (s.kty === 'RSA' && (HSM_RSA_SIZES as readonly unknown[]).includes(s.size))
    return { kty: 'RSA', size: s.size as HsmRsaSize };
  if (s.kty === 'EC' && (HSM_CURVES as readonly unknown[]).includes(s.crv)) return { kty: 'EC', crv: s.crv as HsmCurve };
  if (s.kty === 'oct' && (HSM_AES_SIZES as readonly unknown[]).includes(s.size))
    return { kty: 'oct', size: s.size as HsmAesSize };
  throw new KeyRequestError(
    "'spec' must be {kty:'RSA', size: 2048|3072|4096}, {kty:'EC', crv: 'P-256'|'P-384'|'P-521'|'P-256K'} or {kty:'oct', size: 128|192|256}",
  );
}

export function bytesInRange(bytes: Uint8Array, name: string, min: number, max: number): void {
  if (bytes.length < min || bytes.length > max) throw new KeyRequestError(`'${name}' must be ${min}..${max} bytes`);
}

export function refuseExtras(opts: Record<string, Uint8Array | undefined>, names: string[], alg: string): void {
  for (const name of names) {
    if (opts[name] !== undefined) throw new KeyRequestError(`'${name}' is not used with ${shown(alg)}`);
  }
}

export function gcm(iv: Buffer, aad: Uint8Array | undefined): graphene.MechanismType {
  // AesGcm240Params: CK_GCM_PARAMS with ulIvBits set (the layout SoftHSM 2.6 declares); see hsm.ts.
  return { name: 'AES_GCM', params: new graphene.AesGcm240Params(iv, Buffer.from(aad ?? []), GCM_TAG_BYTES * 8) };
}

export function cbc(iv: Buffer, pad: boolean): graphene.MechanismType {
  return { name: pad ? 'AES_CBC_PAD' : 'AES_CBC', params: new graphene.AesCbcParams(iv) };
}
