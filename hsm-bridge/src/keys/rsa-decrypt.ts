/**
 * RSA decryption with a private key in the token: RSA1_5, RSA-OAEP (SHA-1) and RSA-OAEP-256. Tokens
 * that only do OAEP with SHA-1 (SoftHSM 2.6) get raw RSA in the token and OAEP decoding here.
 */
import * as graphene from 'graphene-pk11';
import { ckrName } from '../hsm.js';
import { oaepDecode } from '../key-material.js';
import { shown } from './algorithms.js';
import { KeyOperationError, KeyRequestError } from './errors.js';
import { copyAndWipe, pkcs11 } from './session.js';
import { requireRsa, type TokenKey } from './token-key.js';

// C_DecryptInit's answers when the token cannot do OAEP with these parameters (SoftHSM 2.6: SHA-1 only).
const PARAMS_UNSUPPORTED = new Set(['CKR_ARGUMENTS_BAD', 'CKR_MECHANISM_PARAM_INVALID', 'CKR_MECHANISM_INVALID']);

export class RsaDecryptor {
  /** Whether the token does RSA-OAEP with SHA-256 itself; learnt on first use. */
  private nativeOaep256: boolean | undefined;

  async decrypt(session: graphene.Session, key: TokenKey, alg: string, ciphertext: Uint8Array): Promise<Uint8Array> {
    requireRsa(key, alg);
    if (ciphertext.length !== key.bytes) {
      throw new KeyRequestError(`${shown(alg)} input for this ${key.bytes * 8}-bit key must be ${key.bytes} bytes`);
    }
    const input = Buffer.from(ciphertext);
    const decrypt = (mech: graphene.MechanismType) =>
      pkcs11<Buffer>((done) => session.createDecipher(mech, key.key).once(input, Buffer.alloc(key.bytes), done));

    if (alg === 'RSA1_5') return copyAndWipe(await decrypt('RSA_PKCS'));
    if (alg === 'RSA-OAEP') {
      const sha1 = new graphene.RsaOaepParams(graphene.MechanismEnum.SHA1, graphene.RsaMgf.MGF1_SHA1);
      return copyAndWipe(await decrypt({ name: 'RSA_PKCS_OAEP', params: sha1 }));
    }
    // RSA-OAEP-256
    if (this.nativeOaep256 !== false) {
      const sha256 = new graphene.RsaOaepParams(graphene.MechanismEnum.SHA256, graphene.RsaMgf.MGF1_SHA256);
      try {
        const out = await decrypt({ name: 'RSA_PKCS_OAEP', params: sha256 });
        this.nativeOaep256 = true;
        return copyAndWipe(out);
      } catch (err) {
        // C_DecryptInit refusing the parameters is a capability answer, not a decryption failure.
        const ckr = ckrName(err);
        if (this.nativeOaep256 === true || !ckr || !PARAMS_UNSUPPORTED.has(ckr)) throw err;
        this.nativeOaep256 = false;
      }
    }
    // The token only does OAEP with SHA-1 (SoftHSM 2.6): raw RSA in the token, OAEP decoding here.
    const em = await decrypt('RSA_X_509');
    const padded = Buffer.alloc(key.bytes);
    em.copy(padded, key.bytes - em.length); // a token may drop leading zero bytes
    em.fill(0);
    try {
      const plaintext = oaepDecode(padded, 'sha256', key.bytes);
      if (!plaintext) throw new KeyOperationError();
      return copyAndWipe(plaintext);
    } finally {
      padded.fill(0);
    }
  }
}
