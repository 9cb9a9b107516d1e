/** Signing a digest the caller computed, with an RSA (PKCS#1 v1.5, PSS) or EC key in the token. */
import * as graphene from 'graphene-pk11';
import { DIGEST_INFO_PREFIX } from '../key-material.js';
import { HASHES, SIGN_ALGS, shown } from './algorithms.js';
import { KeyRequestError } from './errors.js';
import { pkcs11 } from './session.js';
import type { KeyStore } from './store.js';
import { requireRsa } from './token-key.js';

/** Signs a digest the caller computed. ES* signatures are raw r||s, each half the curve's size. */
export async function signDigest(store: KeyStore, handle: string, alg: string, digest: Uint8Array): Promise<Uint8Array> {
  const a = Object.hasOwn(SIGN_ALGS, alg) ? SIGN_ALGS[alg]! : undefined;
  if (!a) throw new KeyRequestError(`${shown(alg)} is not a signing algorithm (use RS*, PS*, ES256, ES384, ES512 or ES256K)`);
  if (digest.length !== a.digest) {
    throw new KeyRequestError(`${shown(alg)} signs a ${a.digest}-byte digest; 'digest' is ${digest.length} bytes`);
  }
  return store.withKey(handle, 'sign', false, async (session, key) => {
    let mech: graphene.MechanismType;
    let data: Buffer;
    if (a.kty === 'RSA') {
      requireRsa(key, alg);
      const hash = HASHES[a.hash];
      if (a.pss) {
        mech = { name: 'RSA_PKCS_PSS', params: new graphene.RsaPssParams(hash.mech, hash.mgf, hash.bytes) };
        data = Buffer.from(digest);
      } else {
        mech = 'RSA_PKCS';
        data = Buffer.concat([DIGEST_INFO_PREFIX[a.hash], digest]);
      }
    } else {
      if (key.kty !== 'EC') throw new KeyRequestError(`${shown(alg)} needs an EC key; this is an ${key.kty} key`);
      if (key.curve.crv !== a.crv) {
        throw new KeyRequestError(`${shown(alg)} needs a ${a.crv} key; this key is on ${key.curve.crv}`);
      }
      mech = 'ECDSA';
      data = Buffer.from(digest);
    }
    const signature = await pkcs11<Buffer>((done) => session.createSign(mech, key.key).once(data, done));
    return new Uint8Array(signature);
  });
}
