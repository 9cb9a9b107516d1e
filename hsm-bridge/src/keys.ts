/**
 * HSM-backed keys (Azure RSA-HSM, EC-HSM, oct-HSM): generated or imported inside the token as
 * sensitive, non-extractable token objects, and used only there. Every operation runs on a session
 * from the Hsm's pool; token objects are found once per key and remembered (destroy forgets them).
 *
 * A key <id> (32 hex characters, chosen by the caller) is the set of token objects with
 * CKA_ID = the id's 16 bytes and CKA_LABEL = "ekv-key-<id>": a private key and its public key
 * (RSA, EC) or one secret key (AES). The handle of every later operation is the id.
 *
 * This file is the one face of keys/: templates, the key store, creation, sign, cipher, wrap.
 * Nothing there logs or puts into an error message key bytes, digests or plaintexts.
 */
import { MAX_RANDOM_BYTES, type HsmKeySpec, type HsmPublicJwk } from '../../bridge-protocol/index.js';
import { decrypt, encrypt, type CipherOptions } from './keys/cipher.js';
import { generateKey, importKey } from './keys/create.js';
import { KeyRequestError } from './keys/errors.js';
import { readPublicKey } from './keys/public-key.js';
import { RsaDecryptor } from './keys/rsa-decrypt.js';
import type { SessionSource } from './keys/session.js';
import { signDigest } from './keys/sign.js';
import { KeyStore } from './keys/store.js';
import { unwrapKey, wrapKey } from './keys/wrap.js';

export { KeyExistsError, KeyNotFoundError, KeyOperationError, KeyRequestError } from './keys/errors.js';
export type { CipherOptions } from './keys/cipher.js';
export type { SessionSource } from './keys/session.js';

export class HsmKeys {
  private readonly store: KeyStore;
  private readonly rsa = new RsaDecryptor();

  constructor(source: SessionSource) {
    this.store = new KeyStore(source);
  }

  generate(id: string, spec: HsmKeySpec): Promise<{ handle: string; publicJwk?: HsmPublicJwk }> {
    return generateKey(this.store, id, spec);
  }

  /** Imports a private RSA or EC JWK as non-extractable token objects (see keys/create.ts). */
  import(id: string, jwk: Record<string, unknown>): Promise<{ handle: string; publicJwk: HsmPublicJwk }> {
    return importKey(this.store, id, jwk);
  }

  /** Signs a digest the caller computed. ES* signatures are raw r||s, each half the curve's size. */
  sign(handle: string, alg: string, digest: Uint8Array): Promise<Uint8Array> {
    return signDigest(this.store, handle, alg, digest);
  }

  /** RSA-OAEP, RSA-OAEP-256, RSA1_5 with an RSA key; A*GCM, A*CBC, A*CBCPAD with an oct key. */
  decrypt(handle: string, alg: string, ciphertext: Uint8Array, opts: CipherOptions = {}): Promise<Uint8Array> {
    return decrypt(this.store, this.rsa, handle, alg, ciphertext, opts);
  }

  /** AES encryption with an oct key; GCM IVs always come from the token. */
  encrypt(
    handle: string,
    alg: string,
    plaintext: Uint8Array,
    opts: Omit<CipherOptions, 'tag'> = {},
  ): Promise<{ ciphertext: Uint8Array; iv: Uint8Array; tag?: Uint8Array }> {
    return encrypt(this.store, handle, alg, plaintext, opts);
  }

  /** RFC 3394 key wrap (A128KW/A192KW/A256KW) of key bytes under an oct key, inside the token. */
  wrap(handle: string, alg: string, keyBytes: Uint8Array): Promise<Uint8Array> {
    return wrapKey(this.store, handle, alg, keyBytes);
  }

  /** RSA-OAEP, RSA-OAEP-256, RSA1_5 (= decrypt) with an RSA key; A*KW with an oct key. */
  unwrap(handle: string, alg: string, wrapped: Uint8Array): Promise<Uint8Array> {
    return unwrapKey(this.store, this.rsa, handle, alg, wrapped);
  }

  /** The public JWK of an RSA or EC key, read from the token (not from any stored copy). */
  publicKey(handle: string): Promise<HsmPublicJwk> {
    return readPublicKey(this.store, handle);
  }

  /** Destroys every object of the key. false when there was none. */
  destroy(handle: string): Promise<boolean> {
    return this.store.destroy(handle);
  }

  /** Bytes from the token's random generator. */
  async random(count: number): Promise<Uint8Array> {
    if (!Number.isInteger(count) || count < 1 || count > MAX_RANDOM_BYTES) {
      throw new KeyRequestError(`'count' must be an integer from 1 to ${MAX_RANDOM_BYTES}`);
    }
    return this.store.run('', 'random', (session) => new Uint8Array(session.generateRandom(count)));
  }
}

/** One HsmKeys per Hsm, so that every app over the same token shares one handle cache. */
const instances = new WeakMap<SessionSource, HsmKeys>();

export function hsmKeys(source: SessionSource): HsmKeys {
  let keys = instances.get(source);
  if (!keys) instances.set(source, (keys = new HsmKeys(source)));
  return keys;
}
