/**
 * HSM-backed keys (Azure RSA-HSM, EC-HSM, oct-HSM): generated or imported inside the token as
 * sensitive, non-extractable token objects, and used only there. Every operation runs on a session
 * from the Hsm's pool; token objects are found once per key and remembered (destroy forgets them).
 *
 * A key <id> (32 hex characters, chosen by the caller) is the set of token objects with
 * CKA_ID = the id's 16 bytes and CKA_LABEL = "ekv-key-<id>": a private key and its public key
 * (RSA, EC) or one secret key (AES). The handle of every later operation is the id.
 *
 * Nothing here logs or puts into an error message key bytes, digests or plaintexts.
 */
import * as graphene from 'graphene-pk11';
import { HsmError, ckrName } from './hsm.js';
import {
  CURVES,
  DIGEST_INFO_PREFIX,
  KeyRequestError,
  curveFromParams,
  ecPublicJwk,
  importMaterial,
  oaepDecode,
  rsaPublicJwk,
  type CurveInfo,
} from './key-material.js';
import {
  HSM_AES_SIZES,
  HSM_CURVES,
  HSM_KEY_ID_PATTERN,
  HSM_RSA_SIZES,
  MAX_AAD_BYTES,
  MAX_CIPHER_BYTES,
  MAX_KW_KEY_BYTES,
  MAX_RANDOM_BYTES,
  hsmKeyLabel,
  type HsmAesSize,
  type HsmCurve,
  type HsmKeySpec,
  type HsmPublicJwk,
  type HsmRsaSize,
} from '../../bridge-protocol/index.js';

export { KeyRequestError } from './key-material.js';

/** No token objects under that handle (404). */
export class KeyNotFoundError extends Error {
  override name = 'KeyNotFoundError';
  constructor() {
    super('no key with this handle in the token');
  }
}

/** The token already holds objects with that id (409). */
export class KeyExistsError extends Error {
  override name = 'KeyExistsError';
  constructor() {
    super('the token already holds objects with this id');
  }
}

/** A decryption or unwrap that does not authenticate: bad tag, bad padding, wrong key (422). */
export class KeyOperationError extends Error {
  override name = 'KeyOperationError';
  constructor() {
    super('the operation failed: the ciphertext or key does not authenticate');
  }
}

/** What keys.ts needs of the Hsm: a pooled, logged-in session. */
export interface SessionSource {
  withSession<T>(fn: (session: graphene.Session) => Promise<T> | T): Promise<T>;
}


const GCM_IV_BYTES = 12;
const GCM_TAG_BYTES = 16;
const AES_BLOCK = 16;
const RSA_EXPONENT = Buffer.from([0x01, 0x00, 0x01]);

type TokenKey =
  | { kty: 'RSA'; key: graphene.Key; bytes: number }
  | { kty: 'EC'; key: graphene.Key; curve: CurveInfo }
  | { kty: 'oct'; key: graphene.Key; bytes: number };

const HASHES = {
  sha256: { bytes: 32, mech: graphene.MechanismEnum.SHA256, mgf: graphene.RsaMgf.MGF1_SHA256 },
  sha384: { bytes: 48, mech: graphene.MechanismEnum.SHA384, mgf: graphene.RsaMgf.MGF1_SHA384 },
  sha512: { bytes: 64, mech: graphene.MechanismEnum.SHA512, mgf: graphene.RsaMgf.MGF1_SHA512 },
} as const;

type SignAlg =
  | { kty: 'RSA'; hash: keyof typeof HASHES; pss: boolean; digest: number }
  | { kty: 'EC'; crv: HsmCurve; digest: number };

const SIGN_ALGS: Record<string, SignAlg> = {
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

const RSA_DECRYPT_ALGS = new Set(['RSA-OAEP', 'RSA-OAEP-256', 'RSA1_5']);

type AesAlg = { bytes: number; mode: 'GCM' | 'CBC' | 'CBCPAD' | 'KW' };

function aesAlg(alg: string): AesAlg | undefined {
  const m = /^A(128|192|256)(GCM|CBC|CBCPAD|KW)$/.exec(alg);
  return m ? { bytes: Number(m[1]) / 8, mode: m[2] as AesAlg['mode'] } : undefined;
}

/** The alg as it may appear in an error message: it comes from the request. */
function shown(alg: string): string {
  return /^[A-Za-z0-9_-]{1,16}$/.test(alg) ? `'${alg}'` : 'this algorithm';
}

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
// C_DecryptInit's answers when the token cannot do OAEP with these parameters (SoftHSM 2.6: SHA-1 only).
const PARAMS_UNSUPPORTED = new Set(['CKR_ARGUMENTS_BAD', 'CKR_MECHANISM_PARAM_INVALID', 'CKR_MECHANISM_INVALID']);
// C_GenerateKeyPair's answers for a curve the token does not know.
const CURVE_UNSUPPORTED = new Set([
  'CKR_CURVE_NOT_SUPPORTED',
  'CKR_DOMAIN_PARAMS_INVALID',
  'CKR_ATTRIBUTE_VALUE_INVALID',
  'CKR_TEMPLATE_INCONSISTENT',
]);

/**
 * Ends whatever operation a failed call left active in the session. PKCS#11 says a failed C_Encrypt
 * ends the operation, but SoftHSM keeps it on argument errors and CKR_BUFFER_TOO_SMALL, and the
 * next C_*Init on that pooled session would answer CKR_OPERATION_ACTIVE.
 */
function settle(session: graphene.Session): void {
  const out = Buffer.alloc(1024);
  const { lib, handle } = session;
  for (const end of [() => lib.C_EncryptFinal(handle, out), () => lib.C_DecryptFinal(handle, out), () => lib.C_SignFinal(handle, out)]) {
    try {
      end();
    } catch {
      // CKR_OPERATION_NOT_INITIALIZED: nothing was active; any other error also ends the operation
    }
  }
  out.fill(0);
}

/** fn on a pooled session; a failure leaves no operation active in it. */
function onSession<T>(source: SessionSource, fn: (session: graphene.Session) => Promise<T> | T): Promise<T> {
  return source.withSession(async (session) => {
    try {
      return await fn(session);
    } catch (err) {
      settle(session);
      throw err;
    }
  });
}

/** A graphene call with a node-style callback, as a promise (the work runs off the event loop). */
function pkcs11<T>(start: (done: (err: Error | null, value: T | null) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => start((err, value) => (err ? reject(err) : resolve(value as T))));
}

// Protection of every private and secret key object; usages are added per key type.
const PROTECTED = {
  token: true,
  private: true,
  sensitive: true,
  extractable: false,
  modifiable: false,
  derive: false,
} as const;

function objectNames(id: string) {
  return { id: Buffer.from(id, 'hex'), label: hsmKeyLabel(id) };
}

function rsaPrivateTemplate(id: string): graphene.ITemplate {
  return {
    class: graphene.ObjectClass.PRIVATE_KEY,
    keyType: graphene.KeyType.RSA,
    ...objectNames(id),
    ...PROTECTED,
    sign: true,
    decrypt: true,
    unwrap: true,
    signRecover: false,
  };
}

function ecPrivateTemplate(id: string): graphene.ITemplate {
  return {
    class: graphene.ObjectClass.PRIVATE_KEY,
    keyType: graphene.KeyType.EC,
    ...objectNames(id),
    ...PROTECTED,
    sign: true,
    decrypt: false,
    unwrap: false,
    signRecover: false,
  };
}

function publicTemplate(id: string, keyType: graphene.KeyType): graphene.ITemplate {
  const rsa = keyType === graphene.KeyType.RSA;
  return {
    class: graphene.ObjectClass.PUBLIC_KEY,
    keyType,
    ...objectNames(id),
    token: true,
    private: false,
    modifiable: false,
    verify: true,
    encrypt: rsa,
    wrap: rsa,
    derive: false,
  };
}

/** A session object holding bytes for C_WrapKey: wrappable, but its value cannot be read. */
function stagingTemplate(value: Buffer): graphene.ITemplate {
  return {
    class: graphene.ObjectClass.SECRET_KEY,
    keyType: graphene.KeyType.GENERIC_SECRET,
    token: false,
    private: true,
    sensitive: true,
    extractable: true,
    value,
    encrypt: false,
    decrypt: false,
    sign: false,
    verify: false,
    wrap: false,
    unwrap: false,
    derive: false,
  };
}

function checkId(id: unknown, name = 'handle'): asserts id is string {
  if (typeof id !== 'string' || !HSM_KEY_ID_PATTERN.test(id)) {
    throw new KeyRequestError(`'${name}' must be 32 lowercase hex characters`);
  }
}

function checkSpec(spec: unknown): HsmKeySpec {
  const s = (typeof spec === 'object' && spec !== null ? spec : {}) as Record<string, unknown>;
  if (s.kty === 'RSA' && (HSM_RSA_SIZES as readonly unknown[]).includes(s.size)) return { kty: 'RSA', size: s.size as HsmRsaSize };
  if (s.kty === 'EC' && (HSM_CURVES as readonly unknown[]).includes(s.crv)) return { kty: 'EC', crv: s.crv as HsmCurve };
  if (s.kty === 'oct' && (HSM_AES_SIZES as readonly unknown[]).includes(s.size)) return { kty: 'oct', size: s.size as HsmAesSize };
  throw new KeyRequestError(
    "'spec' must be {kty:'RSA', size: 2048|3072|4096}, {kty:'EC', crv: 'P-256'|'P-384'|'P-521'|'P-256K'} or {kty:'oct', size: 128|192|256}",
  );
}

function bytesInRange(bytes: Uint8Array, name: string, min: number, max: number): void {
  if (bytes.length < min || bytes.length > max) throw new KeyRequestError(`'${name}' must be ${min}..${max} bytes`);
}

function requireRsa(key: TokenKey, alg: string): asserts key is Extract<TokenKey, { kty: 'RSA' }> {
  if (key.kty !== 'RSA') throw new KeyRequestError(`${shown(alg)} needs an RSA key; this is an ${key.kty} key`);
}

function requireAes(key: TokenKey, alg: string, want: AesAlg): void {
  if (key.kty !== 'oct') throw new KeyRequestError(`${shown(alg)} needs an oct (AES) key; this is an ${key.kty} key`);
  if (key.bytes !== want.bytes) {
    throw new KeyRequestError(`${shown(alg)} needs a ${want.bytes * 8}-bit key; this key is ${key.bytes * 8} bits`);
  }
}

function refuseExtras(opts: Record<string, Uint8Array | undefined>, names: string[], alg: string): void {
  for (const name of names) {
    if (opts[name] !== undefined) throw new KeyRequestError(`'${name}' is not used with ${shown(alg)}`);
  }
}

function gcm(iv: Buffer, aad: Uint8Array | undefined): graphene.MechanismType {
  // AesGcm240Params: CK_GCM_PARAMS with ulIvBits set (the layout SoftHSM 2.6 declares); see hsm.ts.
  return { name: 'AES_GCM', params: new graphene.AesGcm240Params(iv, Buffer.from(aad ?? []), GCM_TAG_BYTES * 8) };
}

function cbc(iv: Buffer, pad: boolean): graphene.MechanismType {
  return { name: pad ? 'AES_CBC_PAD' : 'AES_CBC', params: new graphene.AesCbcParams(iv) };
}

export interface CipherOptions {
  iv?: Uint8Array;
  aad?: Uint8Array;
  tag?: Uint8Array;
}

export class HsmKeys {
  /** Key handle → its usable token object, found once. */
  private readonly cache = new Map<string, TokenKey>();
  /** Ids being generated or imported right now (a second request for one is a conflict). */
  private readonly creating = new Set<string>();
  /**
   * Token-object creation, one at a time: SoftHSM has failed concurrent key-pair generations with
   * CKR_GENERAL_ERROR. Creations are rare; operations on existing keys stay concurrent.
   */
  private creations: Promise<void> = Promise.resolve();
  /** Whether the token does RSA-OAEP with SHA-256 itself; learnt on first use. */
  private nativeOaep256: boolean | undefined;

  constructor(private readonly source: SessionSource) {}

  async generate(id: string, spec: HsmKeySpec): Promise<{ handle: string; publicJwk?: HsmPublicJwk }> {
    checkId(id, 'id');
    const checked = checkSpec(spec);
    return this.create(id, 'generate', async (session) => {
      if (checked.kty === 'oct') {
        const key = await pkcs11<graphene.SecretKey>((done) =>
          session.generateKey(
            graphene.KeyGenMechanism.AES,
            {
              keyType: graphene.KeyType.AES,
              valueLen: checked.size / 8,
              ...objectNames(id),
              ...PROTECTED,
              encrypt: true,
              decrypt: true,
              wrap: true,
              unwrap: true,
              sign: false,
              verify: false,
            },
            done,
          ),
        );
        this.cache.set(id, { kty: 'oct', key, bytes: checked.size / 8 });
        return { handle: id };
      }

      let pair: graphene.IKeyPair;
      if (checked.kty === 'RSA') {
        pair = await pkcs11<graphene.IKeyPair>((done) =>
          session.generateKeyPair(
            graphene.KeyGenMechanism.RSA,
            { ...publicTemplate(id, graphene.KeyType.RSA), modulusBits: checked.size, publicExponent: RSA_EXPONENT },
            rsaPrivateTemplate(id),
            done,
          ),
        );
      } else {
        const curve = CURVES[checked.crv];
        pair = await pkcs11<graphene.IKeyPair>((done) =>
          session.generateKeyPair(
            graphene.KeyGenMechanism.EC,
            { ...publicTemplate(id, graphene.KeyType.EC), paramsEC: curve.oid },
            ecPrivateTemplate(id),
            done,
          ),
        ).catch((err: unknown) => {
          const ckr = ckrName(err);
          if (ckr && CURVE_UNSUPPORTED.has(ckr)) {
            throw new KeyRequestError(`the HSM cannot generate keys on curve ${checked.crv} (${ckr})`);
          }
          throw err;
        });
      }
      try {
        if (checked.kty === 'RSA') {
          const pub = pair.publicKey.getAttribute({ modulus: null, publicExponent: null }) as { modulus: Buffer; publicExponent: Buffer };
          this.cache.set(id, { kty: 'RSA', key: pair.privateKey, bytes: checked.size / 8 });
          return { handle: id, publicJwk: rsaPublicJwk(pub.modulus, pub.publicExponent) };
        }
        const curve = CURVES[checked.crv];
        const publicJwk = ecPublicJwk(curve, pair.publicKey.getAttribute('pointEC') as Buffer);
        this.cache.set(id, { kty: 'EC', key: pair.privateKey, curve });
        return { handle: id, publicJwk };
      } catch (err) {
        // A key whose public half cannot be read is of no use: do not leave it behind.
        this.cache.delete(id);
        session.destroy(objectNames(id));
        throw err;
      }
    });
  }

  /**
   * Imports a private RSA or EC JWK. The PKCS#8 encoding enters the token as a staging session
   * object (sensitive: its value cannot be read back), is wrapped inside the token under a
   * one-time AES transport key (CKM_AES_KEY_WRAP_PAD) and C_UnwrapKey'd into a sensitive,
   * non-extractable session key, which C_CopyObject makes the final token object; staging object,
   * transport key and session key are destroyed at once.
   * SoftHSM 2.6 quirks behind the detours: CKM_AES_KEY_WRAP_PAD is offered to C_WrapKey and
   * C_UnwrapKey but not to C_Encrypt (hence the staging object rather than encrypting the blob
   * directly), and C_UnwrapKey straight into a CKA_MODIFIABLE=false token object fails with
   * CKR_ATTRIBUTE_READ_ONLY (hence the copy, which may turn modifiable off).
   */
  async import(id: string, jwk: Record<string, unknown>): Promise<{ handle: string; publicJwk: HsmPublicJwk }> {
    checkId(id, 'id');
    const material = importMaterial(jwk);
    try {
      return await this.create(id, 'import', async (session) => {
        const transport = session.generateKey(graphene.KeyGenMechanism.AES, {
          keyType: graphene.KeyType.AES,
          valueLen: 32,
          token: false,
          private: true,
          sensitive: true,
          extractable: false,
          wrap: true,
          unwrap: true,
          encrypt: false,
          decrypt: false,
          sign: false,
          verify: false,
          derive: false,
        });
        let wrapped: Buffer | undefined;
        try {
          const staging = session.create(stagingTemplate(material.pkcs8)).toType<graphene.SecretKey>();
          try {
            wrapped = await pkcs11<Buffer>((done) => session.wrapKey('AES_KEY_WRAP_PAD', transport, staging, done));
          } finally {
            session.destroy(staging);
          }
          const template = material.kty === 'RSA' ? rsaPrivateTemplate(id) : ecPrivateTemplate(id);
          const unwrapped = await pkcs11<graphene.Key>((done) =>
            session.unwrapKey('AES_KEY_WRAP_PAD', transport, wrapped!, { ...template, token: false, modifiable: true }, done),
          );
          let privateKey: graphene.Key;
          try {
            privateKey = session.copy(unwrapped, { token: true, modifiable: false }).toType<graphene.Key>();
          } finally {
            session.destroy(unwrapped);
          }
          try {
            session.create(
              material.kty === 'RSA'
                ? { ...publicTemplate(id, graphene.KeyType.RSA), modulus: material.modulus, publicExponent: material.exponent }
                : { ...publicTemplate(id, graphene.KeyType.EC), paramsEC: material.curve.oid, pointEC: material.point },
            );
          } catch (err) {
            session.destroy(privateKey);
            throw err;
          }
          this.cache.set(
            id,
            material.kty === 'RSA'
              ? { kty: 'RSA', key: privateKey, bytes: material.bits / 8 }
              : { kty: 'EC', key: privateKey, curve: material.curve },
          );
          return { handle: id, publicJwk: material.publicJwk };
        } finally {
          session.destroy(transport);
          wrapped?.fill(0);
        }
      });
    } finally {
      material.pkcs8.fill(0);
    }
  }

  /** Signs a digest the caller computed. ES* signatures are raw r||s, each half the curve's size. */
  async sign(handle: string, alg: string, digest: Uint8Array): Promise<Uint8Array> {
    const a = Object.hasOwn(SIGN_ALGS, alg) ? SIGN_ALGS[alg]! : undefined;
    if (!a) throw new KeyRequestError(`${shown(alg)} is not a signing algorithm (use RS*, PS*, ES256, ES384, ES512 or ES256K)`);
    if (digest.length !== a.digest) {
      throw new KeyRequestError(`${shown(alg)} signs a ${a.digest}-byte digest; 'digest' is ${digest.length} bytes`);
    }
    return this.withKey(handle, 'sign', false, async (session, key) => {
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

  /** RSA-OAEP, RSA-OAEP-256, RSA1_5 with an RSA key; A*GCM, A*CBC, A*CBCPAD with an oct key. */
  async decrypt(handle: string, alg: string, ciphertext: Uint8Array, opts: CipherOptions = {}): Promise<Uint8Array> {
    if (RSA_DECRYPT_ALGS.has(alg)) {
      refuseExtras({ ...opts }, ['iv', 'aad', 'tag'], alg);
      return this.withKey(handle, 'decrypt', true, (session, key) => this.rsaDecrypt(session, key, alg, ciphertext));
    }
    const a = aesAlg(alg);
    if (!a || a.mode === 'KW') throw new KeyRequestError(`${shown(alg)} is not a decryption algorithm`);
    bytesInRange(ciphertext, 'ciphertext', a.mode === 'GCM' ? 1 : AES_BLOCK, MAX_CIPHER_BYTES);
    let mech: graphene.MechanismType;
    let input: Buffer;
    if (a.mode === 'GCM') {
      if (opts.iv?.length !== GCM_IV_BYTES) throw new KeyRequestError(`${shown(alg)} needs a ${GCM_IV_BYTES}-byte 'iv'`);
      if (opts.tag?.length !== GCM_TAG_BYTES) throw new KeyRequestError(`${shown(alg)} needs a ${GCM_TAG_BYTES}-byte 'tag'`);
      if (opts.aad) bytesInRange(opts.aad, 'aad', 0, MAX_AAD_BYTES);
      mech = gcm(Buffer.from(opts.iv), opts.aad);
      input = Buffer.concat([ciphertext, opts.tag]);
    } else {
      refuseExtras({ aad: opts.aad, tag: opts.tag }, ['aad', 'tag'], alg);
      if (opts.iv?.length !== AES_BLOCK) throw new KeyRequestError(`${shown(alg)} needs a ${AES_BLOCK}-byte 'iv'`);
      if (ciphertext.length % AES_BLOCK) throw new KeyRequestError(`${shown(alg)} ciphertext must be a multiple of ${AES_BLOCK} bytes`);
      mech = cbc(Buffer.from(opts.iv), a.mode === 'CBCPAD');
      input = Buffer.from(ciphertext);
    }
    return this.withKey(handle, 'decrypt', true, async (session, key) => {
      requireAes(key, alg, a);
      // SoftHSM wants room for the whole input (the GCM tag included).
      const out = await pkcs11<Buffer>((done) => session.createDecipher(mech, key.key).once(input, Buffer.alloc(input.length), done));
      const plaintext = new Uint8Array(out);
      out.fill(0);
      return plaintext;
    });
  }

  /**
   * AES encryption with an oct key. GCM: the IV is always generated by the token (a caller's IV is
   * refused, so no IV is ever reused under a key); CBC*: the caller's IV, or one from the token.
   */
  async encrypt(
    handle: string,
    alg: string,
    plaintext: Uint8Array,
    opts: Omit<CipherOptions, 'tag'> = {},
  ): Promise<{ ciphertext: Uint8Array; iv: Uint8Array; tag?: Uint8Array }> {
    if (RSA_DECRYPT_ALGS.has(alg)) {
      throw new KeyRequestError(`${shown(alg)} encryption needs only the public key: the caller encrypts, not the HSM`);
    }
    const a = aesAlg(alg);
    if (!a || a.mode === 'KW') throw new KeyRequestError(`${shown(alg)} is not an encryption algorithm`);
    // Not empty: SoftHSM refuses empty input (CKR_ARGUMENTS_BAD).
    bytesInRange(plaintext, 'plaintext', a.mode === 'CBC' ? AES_BLOCK : 1, MAX_CIPHER_BYTES);
    if (a.mode === 'GCM') {
      if (opts.iv !== undefined) throw new KeyRequestError(`the HSM generates the 'iv' of ${shown(alg)} encryption; do not send one`);
      if (opts.aad) bytesInRange(opts.aad, 'aad', 0, MAX_AAD_BYTES);
    } else {
      refuseExtras({ aad: opts.aad }, ['aad'], alg);
      if (opts.iv !== undefined && opts.iv.length !== AES_BLOCK) throw new KeyRequestError(`${shown(alg)} needs a ${AES_BLOCK}-byte 'iv'`);
      if (a.mode === 'CBC' && plaintext.length % AES_BLOCK) {
        throw new KeyRequestError(`${shown(alg)} (no padding) plaintext must be a multiple of ${AES_BLOCK} bytes`);
      }
    }
    return this.withKey(handle, 'encrypt', false, async (session, key) => {
      requireAes(key, alg, a);
      const iv = opts.iv ? Buffer.from(opts.iv) : session.generateRandom(a.mode === 'GCM' ? GCM_IV_BYTES : AES_BLOCK);
      const mech = a.mode === 'GCM' ? gcm(iv, opts.aad) : cbc(iv, a.mode === 'CBCPAD');
      const input = Buffer.from(plaintext);
      try {
        const out = await pkcs11<Buffer>((done) =>
          session.createCipher(mech, key.key).once(input, Buffer.alloc(input.length + AES_BLOCK), done),
        );
        if (a.mode !== 'GCM') return { ciphertext: new Uint8Array(out), iv: new Uint8Array(iv) };
        return {
          ciphertext: new Uint8Array(out.subarray(0, out.length - GCM_TAG_BYTES)),
          iv: new Uint8Array(iv),
          tag: new Uint8Array(out.subarray(out.length - GCM_TAG_BYTES)),
        };
      } finally {
        input.fill(0);
      }
    });
  }

  /** RFC 3394 key wrap (A128KW/A192KW/A256KW) of key bytes under an oct key, inside the token. */
  async wrap(handle: string, alg: string, keyBytes: Uint8Array): Promise<Uint8Array> {
    if (RSA_DECRYPT_ALGS.has(alg)) {
      throw new KeyRequestError(`${shown(alg)} wrapping needs only the public key: the caller wraps, not the HSM`);
    }
    const a = aesAlg(alg);
    if (!a || a.mode !== 'KW') throw new KeyRequestError(`${shown(alg)} is not a key-wrap algorithm (use A128KW, A192KW or A256KW)`);
    if (keyBytes.length < 16 || keyBytes.length > MAX_KW_KEY_BYTES || keyBytes.length % 8) {
      throw new KeyRequestError(`'key' must be a multiple of 8 bytes, 16..${MAX_KW_KEY_BYTES}`);
    }
    return this.withKey(handle, 'wrap', false, async (session, key) => {
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
  async unwrap(handle: string, alg: string, wrapped: Uint8Array): Promise<Uint8Array> {
    if (RSA_DECRYPT_ALGS.has(alg)) {
      return this.withKey(handle, 'unwrap', true, (session, key) => this.rsaDecrypt(session, key, alg, wrapped));
    }
    const a = aesAlg(alg);
    if (!a || a.mode !== 'KW') {
      throw new KeyRequestError(`${shown(alg)} is not an unwrap algorithm (use RSA-OAEP, RSA-OAEP-256, RSA1_5 or A*KW)`);
    }
    if (wrapped.length < 24 || wrapped.length > MAX_KW_KEY_BYTES + 8 || wrapped.length % 8) {
      throw new KeyRequestError(`'wrapped' must be a multiple of 8 bytes, 24..${MAX_KW_KEY_BYTES + 8}`);
    }
    return this.withKey(handle, 'unwrap', true, async (session, key) => {
      requireAes(key, alg, a);
      // Unwrapped into a short-lived session object whose value is read once, then destroyed.
      const temp = await pkcs11<graphene.Key>((done) =>
        session.unwrapKey(
          'AES_KEY_WRAP',
          key.key,
          Buffer.from(wrapped),
          {
            class: graphene.ObjectClass.SECRET_KEY,
            keyType: graphene.KeyType.GENERIC_SECRET,
            token: false,
            private: true,
            sensitive: false,
            extractable: true,
            encrypt: false,
            decrypt: false,
            sign: false,
            verify: false,
            wrap: false,
            unwrap: false,
            derive: false,
          },
          done,
        ),
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

  /**
   * The public JWK of an RSA or EC key, read from the token's public key object (CKA_MODULUS and
   * CKA_PUBLIC_EXPONENT, or CKA_EC_PARAMS and CKA_EC_POINT): what a verifier trusts instead of a
   * copy kept elsewhere. 400 for an oct key (it has no public half), 404 when there is none.
   */
  async publicKey(handle: string): Promise<HsmPublicJwk> {
    checkId(handle);
    try {
      return await onSession(this.source, (session) => {
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
    } catch (err) {
      throw this.translate(err, handle, 'public key', false);
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

  /** Bytes from the token's random generator. */
  async random(count: number): Promise<Uint8Array> {
    if (!Number.isInteger(count) || count < 1 || count > MAX_RANDOM_BYTES) {
      throw new KeyRequestError(`'count' must be an integer from 1 to ${MAX_RANDOM_BYTES}`);
    }
    try {
      return await onSession(this.source, (session) => new Uint8Array(session.generateRandom(count)));
    } catch (err) {
      throw this.translate(err, '', 'random', false);
    }
  }

  private async rsaDecrypt(session: graphene.Session, key: TokenKey, alg: string, ciphertext: Uint8Array): Promise<Uint8Array> {
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

  /** Runs fn on a pooled session with the key's token object, translating token errors. */
  private async withKey<T>(
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
  private async create<T>(id: string, what: string, fn: (session: graphene.Session) => Promise<T>): Promise<T> {
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

  private translate(err: unknown, handle: string, what: string, rejections: boolean): Error {
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

function copyAndWipe(buffer: Buffer): Uint8Array {
  const out = new Uint8Array(buffer);
  buffer.fill(0);
  return out;
}

/** One HsmKeys per Hsm, so that every app over the same token shares one handle cache. */
const instances = new WeakMap<SessionSource, HsmKeys>();

export function hsmKeys(source: SessionSource): HsmKeys {
  let keys = instances.get(source);
  if (!keys) instances.set(source, (keys = new HsmKeys(source)));
  return keys;
}
