/**
 * Key wrap and unwrap in the token: RFC 3394 AES key wrap (A*KW) with an oct key, and RSA unwrap
 * (RSA-OAEP, RSA-OAEP-256, RSA1_5: a decryption) with an RSA key.
 */
import type * as graphene from 'graphene-pk11';
import { MAX_KW_KEY_BYTES } from '../../../bridge-protocol/index.js';
import { RSA_DECRYPT_ALGS, aesAlg, shown } from './algorithms.js';
import { KeyRequestError } from './errors.js';
import type { RsaDecryptor } from './rsa-decrypt.js';
import { pkcs11 } from './session.js';
import type { KeyStore } from './store.js';
import { stagingTemplate, unwrappedBytesTemplate } from './templates.js';
import { requireAes } from './token-key.js';

/** RFC 3394 key wrap (A128KW/A192KW/A256KW) of key bytes under an oct key, inside the token. */
export async function wrapKey(store: KeyStore, handle: string, alg: string, keyBytes: Uint8Array): Promise<Uint8Array> {
  if (RSA_DECRYPT_ALGS.has(alg)) {
    throw new KeyRequestError(`${shown(alg)} wrapping needs only the public key: the caller wraps, not the HSM`);
  }
  const a = aesAlg(alg);
  if (!a || a.mode !== 'KW')
    throw new KeyRequestError(`${shown(alg)} is not a key-wrap algorithm (use A128KW, A192KW or A256KW)`);
  if (keyBytes.length < 16 || keyBytes.length > MAX_KW_KEY_BYTES || keyBytes.length % 8) {
    throw new KeyRequestError(`'key' must be a multiple of 8 bytes, 16..${MAX_KW_KEY_BYTES}`);
  }
  return store.withKey(handle, 'wrap', false, async (session, key) => {
    requireAes(key, alg, a);
    // SoftHSM 2.6 has CKM_AES_KEY_WRAP only for C_WrapKey, so the bytes become a staging object.
    const value = Buffer.from(keyBytes);
    try {
      const staging = session.create(stagingTemplate(value)).toType<graphene.SecretKey>();
      try {
        const wrapped = await pkcs11<Buffer>((done) => session.wrapKey('AES_KEY_WRAP', key.key, staging, done));
        return new Uint8Array(wrapped);
      } finally {
        session.destroy(staging);
      }
    } finally {
      value.fill(0);
    }
  });
}

/** RSA-OAEP, RSA-OAEP-256, RSA1_5 (= decrypt) with an RSA key; A*KW with an oct key. */
export async function unwrapKey(
  store: KeyStore,
  rsa: RsaDecryptor,
  handle: string,
  alg: string,
  wrapped: Uint8Array,
): Promise<Uint8Array> {
  if (RSA_DECRYPT_ALGS.has(alg)) {
    return store.withKey(handle, 'unwrap', true, (session, key) => rsa.decrypt(session, key, alg, wrapped));
  }
  const a = aesAlg(alg);
  if (!a || a.mode !== 'KW') {
    throw new KeyRequestError(`${shown(alg)} is not an unwrap algorithm (use RSA-OAEP, RSA-OAEP-256, RSA1_5 or A*KW)`);
  }
  if (wrapped.length < 24 || wrapped.length > MAX_KW_KEY_BYTES + 8 || wrapped.length % 8) {
    throw new KeyRequestError(`'wrapped' must be a multiple of 8 bytes, 24..${MAX_KW_KEY_BYTES + 8}`);
  }
  return store.withKey(handle, 'unwrap', true, async (session, key) => {
    requireAes(key, alg, a);
    // Unwrapped into a short-lived session object whose value is read once, then destroyed.
    const temp = await pkcs11<graphene.Key>((done) =>
      session.unwrapKey('AES_KEY_WRAP', key.key, Buffer.from(wrapped), unwrappedBytesTemplate(), done),
    );
    try {
      const value = temp.getAttribute('value') as Buffer;
      const out = new Uint8Array(value);
      value.fill(0);
      return out;
    } finally {
      session.destroy(temp);
    }
  });
}
