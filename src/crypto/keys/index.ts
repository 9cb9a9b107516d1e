/**
 * Cryptography of Azure Key Vault keys whose private part lives in the Worker (RSA, EC), the
 * public operations of every RSA/EC key (HSM ones included), and the algorithm rules all keys
 * share. Each operation re-checks its algorithm and digest against the key, so a caller that
 * forgot to cannot sign with the wrong padding or curve.
 */
import { badParameter } from '../../core/errors';
import { checkAlgorithm, checkDigest, type KeyOperation } from './algorithms';
import { ecSign, ecVerify } from './ec';
import { rsaDecrypt, rsaEncrypt, rsaKeySize, rsaSign, rsaVerify } from './rsa';
import { isCurve, type Curve, type Jwk, type KeyKind, type PublicJwk } from './types';

export { AES_SIZES, CURVES, RSA_SIZES, type Curve, type Jwk, type KeyKind, type PublicJwk } from './types';
export { checkAlgorithm, checkDigest, defaultKeyOps, KEY_OPS, validKeyOps, type KeyOperation } from './algorithms';
export { generateSoftwareKey } from './generate';
export { parseImportJwk, publicOf } from './jwk';
export { rsaKeySize } from './rsa';

/** The rule-relevant shape of a software key or public half (kty without -HSM). */
function describe(jwk: PublicJwk): { kind: KeyKind; size?: number; crv?: Curve } {
  if (jwk.kty === 'RSA' || jwk.kty === 'RSA-HSM') return { kind: 'RSA', size: rsaKeySize(jwk) };
  if (jwk.kty === 'EC' || jwk.kty === 'EC-HSM') {
    if (!isCurve(jwk.crv)) throw badParameter('The EC key uses an unsupported curve.');
    return { kind: 'EC', crv: jwk.crv };
  }
  throw badParameter('This operation needs an RSA or EC key.');
}

function checked(op: KeyOperation, jwk: PublicJwk, alg: string) {
  const key = describe(jwk);
  checkAlgorithm(op, alg, key);
  return key;
}

export async function sign(privateJwk: Jwk, alg: string, digest: Uint8Array): Promise<Uint8Array> {
  const key = checked('sign', privateJwk, alg);
  checkDigest(alg, digest);
  return key.kind === 'RSA' ? rsaSign(privateJwk, alg, digest) : ecSign(privateJwk, digest);
}

export async function verify(publicJwk: PublicJwk, alg: string, digest: Uint8Array, signature: Uint8Array): Promise<boolean> {
  const key = checked('verify', publicJwk, alg);
  checkDigest(alg, digest, 'digest');
  return key.kind === 'RSA' ? rsaVerify(publicJwk, alg, digest, signature) : ecVerify(publicJwk, digest, signature);
}

/** RSA-OAEP, RSA-OAEP-256, RSA1_5 (encrypt and wrapKey alike). */
export async function encrypt(publicJwk: PublicJwk, alg: string, plaintext: Uint8Array): Promise<Uint8Array> {
  checked('encrypt', publicJwk, alg);
  return rsaEncrypt(publicJwk, alg, plaintext);
}

/** RSA-OAEP, RSA-OAEP-256, RSA1_5 (decrypt and unwrapKey alike). */
export async function decrypt(privateJwk: Jwk, alg: string, ciphertext: Uint8Array): Promise<Uint8Array> {
  checked('decrypt', privateJwk, alg);
  return rsaDecrypt(privateJwk, alg, ciphertext);
}
