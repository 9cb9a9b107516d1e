/**
 * The key store: finds a key's token objects once and remembers them (destroy forgets them),
 * serialises the creation of token objects, destroys them, and turns token errors into the key
 * errors the server answers with. Every operation runs on a pooled session (session.ts).
 */
import * as graphene from 'graphene-pk11';
import { HsmError, ckrName } from '../hsm.js';
import { curveFromParams } from '../key-material.js';
import { checkId } from './algorithms.js';
import { KeyExistsError, KeyNotFoundError, KeyOperationError, KeyRequestError } from './errors.js';
import { onSession, type SessionSource } from './session.js';
import { objectNames } from './templates.js';
import type { TokenKey } from './token-key.js';

// What tokens answer to a ciphertext or wrapped key that does not decrypt or authenticate.
// (SoftHSM 2.6 reports a bad GCM tag, bad padding or a failed key-wrap check as CKR_GENERAL_ERROR.)
const REJECTIONS = new Set([
  'CKR_ENCRYPTED_DATA_INVALID',
  'CKR_ENCRYPTED_DATA_LEN_RANGE',
  'CKR_WRAPPED_KEY_INVALID',
  'CKR_WRAPPED_KEY_LEN_RANGE',
  'CKR_DATA_INVALID',
  'CKR_DATA_LEN_RANGE',
  'CKR_GENERAL_ERROR',
  'CKR_FUNCTION_FAILED',
]);
const STALE_HANDLE = new Set(['CKR_OBJECT_HANDLE_INVALID', 'CKR_KEY_HANDLE_INVALID']);

export class KeyStore {
  /** Key handle → its usable token object, found once. */
  private readonly cache = new Map<string, TokenKey>();
  /** Ids being generated or imported right now (a second request for one is a conflict). */
  private readonly creating = new Set<string>();
  /**
   * Token-object creation, one at a time: SoftHSM has failed concurrent key-pair generations with
   * CKR_GENERAL_ERROR. Creations are rare; operations on existing keys stay concurrent.
   */
  private creations: Promise<void> = Promise.resolve();

  constructor(readonly source: SessionSource) {}

  /** Remembers the object a generate or import just made. */
  remember(id: string, key: TokenKey): void {
    this.cache.set(id, key);
  }

  forget(id: string): void {
    this.cache.delete(id);
  }

  /** fn on a pooled session, token errors translated: for work that is not on one key's object. */
  async run<T>(handle: string, what: string, fn: (session: graphene.Session) => Promise<T> | T): Promise<T> {
    try {
      return await onSession(this.source, fn);
    } catch (err) {
      throw this.translate(err, handle, what, false);
    }
  }

  /** Destroys every object of the key. false when there was none. */
  async destroy(handle: string): Promise<boolean> {
    checkId(handle);
    this.cache.delete(handle);
    try {
      return await onSession(this.source, (session) => {
        const destroyed = session.destroy(objectNames(handle));
        this.cache.delete(handle);
        return destroyed > 0;
      });
    } catch (err) {
      throw this.translate(err, handle, 'destroy', false);
    }
  }

  /** Runs fn on a pooled session with the key's token object, translating token errors. */
  async withKey<T>(
    handle: string,
    what: string,
    rejections: boolean,
    fn: (session: graphene.Session, key: TokenKey) => Promise<T>,
  ): Promise<T> {
    checkId(handle);
    try {
      return await onSession(this.source, (session) => fn(session, this.cache.get(handle) ?? this.find(session, handle)));
    } catch (err) {
      throw this.translate(err, handle, what, rejections);
    }
  }

  /** Finds the key's private or secret object (synchronously, so no destroy can interleave). */
  private find(session: graphene.Session, handle: string): TokenKey {
    const found = session.find(objectNames(handle));
    for (let i = 0; i < found.length; i++) {
      const object = found.items(i);
      const { class: cls, keyType } = object.getAttribute({ class: null, keyType: null }) as { class: number; keyType: number };
      let key: TokenKey | undefined;
      if (cls === graphene.ObjectClass.PRIVATE_KEY && keyType === graphene.KeyType.RSA) {
        const modulus = object.getAttribute('modulus') as Buffer;
        key = { kty: 'RSA', key: object.toType<graphene.Key>(), bytes: modulus.length };
      } else if (cls === graphene.ObjectClass.PRIVATE_KEY && keyType === graphene.KeyType.EC) {
        // CKA_EC_PARAMS and CKA_ECDSA_PARAMS are one attribute; graphene answers it under the
        // older name, whichever was asked for.
        const params = object.getAttribute({ paramsEC: null }) as { paramsEC?: Buffer; paramsECDSA?: Buffer };
        const raw = params.paramsEC ?? params.paramsECDSA;
        const curve = raw ? curveFromParams(raw) : undefined;
        if (curve) key = { kty: 'EC', key: object.toType<graphene.Key>(), curve };
      } else if (cls === graphene.ObjectClass.SECRET_KEY && keyType === graphene.KeyType.AES) {
        key = { kty: 'oct', key: object.toType<graphene.Key>(), bytes: object.getAttribute('valueLen') as number };
      }
      if (key) {
        this.cache.set(handle, key);
        return key;
      }
    }
    throw new KeyNotFoundError();
  }

  /** Claims the id for a generate or import, refusing ids already in use. */
  async create<T>(id: string, what: string, fn: (session: graphene.Session) => Promise<T>): Promise<T> {
    if (this.creating.has(id)) throw new KeyExistsError();
    this.creating.add(id);
    const previous = this.creations;
    let release!: () => void;
    this.creations = new Promise<void>((resolve) => (release = resolve));
    try {
      await previous;
      return await onSession(this.source, async (session) => {
        // Any object with this CKA_ID, whatever its label, makes the id unusable.
        if (session.find({ id: Buffer.from(id, 'hex') }).length > 0) throw new KeyExistsError();
        return fn(session);
      });
    } catch (err) {
      throw this.translate(err, id, what, false);
    } finally {
      release();
      this.creating.delete(id);
    }
  }

  translate(err: unknown, handle: string, what: string, rejections: boolean): Error {
    if (
      err instanceof KeyRequestError ||
      err instanceof KeyNotFoundError ||
      err instanceof KeyExistsError ||
      err instanceof KeyOperationError ||
      err instanceof HsmError
    ) {
      return err;
    }
    const ckr = ckrName(err);
    if (ckr && STALE_HANDLE.has(ckr)) {
      this.cache.delete(handle); // destroyed behind our back (or concurrently)
      return new KeyNotFoundError();
    }
    if (rejections && ckr && REJECTIONS.has(ckr)) return new KeyOperationError();
    return new HsmError('HSM_FAILURE', `${what} failed (${ckr ?? 'unknown error'})`);
  }
}
