/** Reading a key's public half from the token's public key object, as a JWK. */
import * as graphene from 'graphene-pk11';
import type { HsmPublicJwk } from '../../../bridge-protocol/index.js';
import { curveFromParams, ecPublicJwk, rsaPublicJwk } from '../key-material.js';
import { checkId } from './algorithms.js';
import { KeyNotFoundError, KeyRequestError } from './errors.js';
import type { KeyStore } from './store.js';
import { objectNames } from './templates.js';

/**
 * The public JWK of an RSA or EC key, read from the token's public key object (CKA_MODULUS and
 * CKA_PUBLIC_EXPONENT, or CKA_EC_PARAMS and CKA_EC_POINT): what a verifier trusts instead of a
 * copy kept elsewhere. 400 for an oct key (it has no public half), 404 when there is none.
 */
export async function readPublicKey(store: KeyStore, handle: string): Promise<HsmPublicJwk> {
  checkId(handle);
  return store.run(handle, 'public key', (session) => {
    const found = session.find({ ...objectNames(handle), class: graphene.ObjectClass.PUBLIC_KEY });
    for (let i = 0; i < found.length; i++) {
      const object = found.items(i);
      const keyType = object.getAttribute('keyType') as number;
      if (keyType === graphene.KeyType.RSA) {
        const pub = object.getAttribute({ modulus: null, publicExponent: null }) as { modulus: Buffer; publicExponent: Buffer };
        return rsaPublicJwk(pub.modulus, pub.publicExponent);
      }
      if (keyType === graphene.KeyType.EC) {
        const params = object.getAttribute({ paramsEC: null }) as { paramsEC?: Buffer; paramsECDSA?: Buffer };
        const raw = params.paramsEC ?? params.paramsECDSA;
        const curve = raw ? curveFromParams(raw) : undefined;
        if (curve) return ecPublicJwk(curve, object.getAttribute('pointEC') as Buffer);
      }
    }
    if (session.find(objectNames(handle)).length > 0) throw new KeyRequestError('this key has no public key (an oct key)');
    throw new KeyNotFoundError();
  });
}
