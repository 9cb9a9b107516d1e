/** A key's usable token object as found once, and the checks that an algorithm suits it. */
import type * as graphene from 'graphene-pk11';
import type { CurveInfo } from '../key-material.js';
import { KeyRequestError } from '../key-material.js';
import { shown, type AesAlg } from './algorithms.js';

export type TokenKey =
  | { kty: 'RSA'; key: graphene.Key; bytes: number }
  | { kty: 'EC'; key: graphene.Key; curve: CurveInfo }
  | { kty: 'oct'; key: graphene.Key; bytes: number };

export function requireRsa(key: TokenKey, alg: string): asserts key is Extract<TokenKey, { kty: 'RSA' }> {
  if (key.kty !== 'RSA') throw new KeyRequestError(`${shown(alg)} needs an RSA key; this is an ${key.kty} key`);
}

export function requireAes(key: TokenKey, alg: string, want: AesAlg): void {
  if (key.kty !== 'oct') throw new KeyRequestError(`${shown(alg)} needs an oct (AES) key; this is an ${key.kty} key`);
  if (key.bytes !== want.bytes) {
    throw new KeyRequestError(`${shown(alg)} needs a ${want.bytes * 8}-bit key; this key is ${key.bytes * 8} bits`);
  }
}
