/**
 * The HSM side of the bridge: one PKCS#11 module, one token, its KEKs, a small pool of logged-in
 * sessions. A KEK is generated inside the token (sensitive, never extractable) and only used
 * for AES-256-GCM encrypt/decrypt of data keys; its bytes never reach this process.
 *
 * KEK rotation: the KEKs form one family of labels, `{HSM_KEK_LABEL}` (generation 1) then
 * `{HSM_KEK_LABEL}.2`, `.3`…; the highest generation in the token is current and wraps; any member
 * unwraps a blob whose caller names it. The family lives in the token, so every bridge instance
 * on it agrees (each rescans within KEK_RESCAN_MS of another instance's rotation).
 */
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import * as graphene from 'graphene-pk11';
import { MAX_WRAP_PLAINTEXT } from '../../bridge-protocol/index.js';
import type { BridgeConfig } from './config.js';

export const WRAP_VERSION = 0x01;
/** Wrap is for data keys, not bulk data (the protocol's limit). */
export { MAX_WRAP_PLAINTEXT };
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEK_BYTES = 32;
const CKF_OS_LOCKING_OK = 0x2;
const CKS_RW_USER_FUNCTIONS = 3;
const CKA_CLASS = 0x0;

/** How long a bridge trusts its idea of the current KEK before rescanning the token. */
const KEK_RESCAN_MS = 60_000;

export type HsmErrorCode =
  | 'MODULE_NOT_FOUND'
  | 'MODULE_LOAD_FAILED'
  | 'TOKEN_NOT_FOUND'
  | 'TOKEN_AMBIGUOUS'
  | 'MECHANISM_UNSUPPORTED'
  | 'PIN_INCORRECT'
  | 'PIN_LOCKED'
  | 'LOGIN_FAILED'
  | 'KEK_AMBIGUOUS'
  | 'KEK_UNSUITABLE'
  | 'KEK_CREATE_FAILED'
  | 'KEK_NOT_FOUND'
  | 'KEK_IN_USE'
  | 'HSM_FAILURE'
  | 'ALREADY_OPEN'
  | 'CLOSED';

/** Startup and operational failures of the HSM. Messages never contain PINs or key bytes. */
export class HsmError extends Error {
  override name = 'HsmError';
  constructor(
    readonly code: HsmErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** The wrapped blob is garbage, was tampered with, or belongs to another context or KEK. */
export class UnwrapError extends Error {
  override name = 'UnwrapError';
}

export interface KekAttributes {
  class: number;
  keyType: number;
  valueLen: number;
  sensitive: boolean;
  extractable: boolean;
  alwaysSensitive: boolean;
  neverExtractable: boolean;
  token: boolean;
  encrypt: boolean;
  decrypt: boolean;
}

export type HsmHealth = { ok: true } | { ok: false; reason: string };

/** The PKCS#11 return-value name of an error from pkcs11js (e.g. CKR_PIN_INCORRECT), if any. */
export function ckrName(err: unknown): string | undefined {
  const message = err instanceof Error ? err.message : String(err);
  return /CKR_[A-Z0-9_]+/.exec(message)?.[0];
}

// What SoftHSM and other tokens answer to a GCM tag mismatch or malformed ciphertext.
// (SoftHSM 2.6 reports a bad tag as CKR_GENERAL_ERROR.)
const DECRYPT_REJECTIONS = new Set([
  'CKR_ENCRYPTED_DATA_INVALID',
  'CKR_ENCRYPTED_DATA_LEN_RANGE',
  'CKR_GENERAL_ERROR',
  'CKR_FUNCTION_FAILED',
]);

/** Hands each operation its own session; PKCS#11 allows one active operation per session. */
class SessionPool {
  private readonly idle: graphene.Session[];
  private readonly waiters: Array<(session: graphene.Session) => void> = [];

  constructor(readonly sessions: graphene.Session[]) {
    this.idle = [...sessions];
  }

  async use<T>(fn: (session: graphene.Session) => Promise<T> | T): Promise<T> {
    const session = this.idle.pop() ?? (await new Promise<graphene.Session>((resolve) => this.waiters.push(resolve)));
    try {
      return await fn(session);
    } finally {
      const next = this.waiters.shift();
      if (next) next(session);
      else this.idle.push(session);
    }
  }

  /** Resolves once every session is back and holds them all, so no operation is in flight. */
  async drain(): Promise<void> {
    const acquire = () => this.idle.pop() ?? new Promise<graphene.Session>((resolve) => this.waiters.push(resolve));
    await Promise.all(this.sessions.map(acquire));
  }
}

function gcm(iv: Buffer, aad: Uint8Array): graphene.MechanismType {
  // AesGcm240Params passes CK_GCM_PARAMS with ulIvBits set (PKCS#11 v2.40 layout, the one SoftHSM
  // 2.6 declares). The older AesGcmParams leaves ulIvBits uninitialised.
  return { name: 'AES_GCM', params: new graphene.AesGcm240Params(iv, Buffer.from(aad), TAG_BYTES * 8) };
}

function findToken(mod: graphene.Module, label: string): graphene.Slot {
  const slots = mod.getSlots(true);
  const labels: string[] = [];
  const matches: graphene.Slot[] = [];
  for (let i = 0; i < slots.length; i++) {
    const slot = slots.items(i);
    const token = slot.getToken();
    // Uninitialised slots have no usable token; they only add noise to the error message.
    if (!(token.flags & graphene.TokenFlag.TOKEN_INITIALIZED)) continue;
    labels.push(token.label);
    if (token.label === label) matches.push(slot);
  }
  if (matches.length === 0) {
    const present = labels.length ? labels.map((l) => `'${l}'`).join(', ') : 'none';
    throw new HsmError(
      'TOKEN_NOT_FOUND',
      `no initialised token labelled '${label}' (tokens present: ${present}); check HSM_TOKEN_LABEL`,
    );
  }
  if (matches.length > 1) {
    throw new HsmError('TOKEN_AMBIGUOUS', `${matches.length} tokens are labelled '${label}'; labels must be unique`);
  }
  return matches[0]!;
}

function requireMechanisms(slot: graphene.Slot): void {
  const mechs = slot.getMechanisms();
  const have = new Set<number>();
  for (let i = 0; i < mechs.length; i++) have.add(mechs.items(i).type);
  for (const [name, type] of [
    ['CKM_AES_GCM', graphene.MechanismEnum.AES_GCM],
    ['CKM_AES_KEY_GEN', graphene.MechanismEnum.AES_KEY_GEN],
  ] as const) {
    if (!have.has(type)) throw new HsmError('MECHANISM_UNSUPPORTED', `the token does not support ${name}`);
  }
}

function login(session: graphene.Session, slot: graphene.Slot, pin: string, label: string): void {
  if (slot.getToken().flags & graphene.TokenFlag.USER_PIN_LOCKED) {
    throw new HsmError('PIN_LOCKED', `the user PIN of token '${label}' is locked; the security officer must reset it`);
  }
  try {
    session.login(pin, graphene.UserType.USER);
  } catch (err) {
    const ckr = ckrName(err);
    // One attempt only, never retried: every wrong PIN counts towards locking the token.
    if (ckr === 'CKR_PIN_INCORRECT') {
      throw new HsmError(
        'PIN_INCORRECT',
        `login to token '${label}' failed: the PIN is incorrect (CKR_PIN_INCORRECT); not retrying, ` +
          'as repeated attempts lock the token. Check HSM_PIN / HSM_PIN_FILE',
      );
    }
    if (ckr === 'CKR_PIN_LOCKED') {
      throw new HsmError('PIN_LOCKED', `the user PIN of token '${label}' is locked (CKR_PIN_LOCKED)`);
    }
    throw new HsmError('LOGIN_FAILED', `login to token '${label}' failed (${ckr ?? 'unknown error'})`);
  }
}

const KEK_TEMPLATE_CHECKS: Array<[keyof KekAttributes, unknown, string]> = [
  ['keyType', graphene.KeyType.AES, 'an AES key'],
  ['valueLen', KEK_BYTES, '256 bits long'],
  ['sensitive', true, 'sensitive'],
  ['extractable', false, 'not extractable'],
  ['encrypt', true, 'allowed to encrypt'],
  ['decrypt', true, 'allowed to decrypt'],
];

function readKekAttributes(key: graphene.SessionObject): KekAttributes {
  return key.getAttribute({
    class: null,
    keyType: null,
    valueLen: null,
    sensitive: null,
    extractable: null,
    alwaysSensitive: null,
    neverExtractable: null,
    token: null,
    encrypt: null,
    decrypt: null,
  }) as unknown as KekAttributes;
}

/** The generation of a KEK label of the family `base` (1 for base itself), or undefined. */
export function kekGeneration(base: string, label: string): number | undefined {
  if (label === base) return 1;
  if (!label.startsWith(`${base}.`)) return undefined;
  const rest = label.slice(base.length + 1);
  return /^[1-9][0-9]{0,8}$/.test(rest) && Number(rest) >= 2 ? Number(rest) : undefined;
}

export const kekLabelOf = (base: string, generation: number) => (generation === 1 ? base : `${base}.${generation}`);

/** The KEK labelled `label`, checked to be fit for the role; undefined when the token has none. */
function findKek(session: graphene.Session, label: string): graphene.SecretKey | undefined {
  const found = session.find({ class: graphene.ObjectClass.SECRET_KEY, label });
  if (found.length > 1) {
    throw new HsmError(
      'KEK_AMBIGUOUS',
      `${found.length} secret keys are labelled '${label}'; refusing to guess which is the KEK`,
    );
  }
  if (found.length === 0) return undefined;
  const key = found.items(0).toType<graphene.SecretKey>();
  const attrs = readKekAttributes(key);
  // A key that could leave the HSM is not a KEK this bridge will use.
  for (const [name, want, meaning] of KEK_TEMPLATE_CHECKS) {
    if (attrs[name] !== want) {
      throw new HsmError('KEK_UNSUITABLE', `the key labelled '${label}' is not ${meaning}; refusing to use it as the KEK`);
    }
  }
  return key;
}

/** The generations of the family `base` present in the token, ascending. */
function kekGenerations(session: graphene.Session, base: string): number[] {
  const found = session.find({ class: graphene.ObjectClass.SECRET_KEY });
  const generations = new Set<number>();
  for (let i = 0; i < found.length; i++) {
    const generation = kekGeneration(base, found.items(i).toType<graphene.SecretKey>().label);
    if (generation !== undefined) generations.add(generation);
  }
  return [...generations].sort((a, b) => a - b);
}

/** The current (highest-generation) KEK of the family, generating generation 1 on first start. */
function findOrCreateKek(session: graphene.Session, base: string): { label: string; key: graphene.SecretKey } {
  const newest = kekGenerations(session, base).at(-1);
  const label = kekLabelOf(base, newest ?? 1);
  const found = findKek(session, label);
  return { label, key: found ?? generateKek(session, label) };
}

function generateKek(session: graphene.Session, label: string): graphene.SecretKey {
  try {
    return session.generateKey(graphene.KeyGenMechanism.AES, {
      class: graphene.ObjectClass.SECRET_KEY,
      keyType: graphene.KeyType.AES,
      valueLen: KEK_BYTES,
      label,
      id: randomBytes(16),
      token: true,
      private: true,
      sensitive: true,
      extractable: false,
      modifiable: false,
      encrypt: true,
      decrypt: true,
      wrap: false,
      unwrap: false,
      sign: false,
      verify: false,
      derive: false,
    });
  } catch (err) {
    throw new HsmError('KEK_CREATE_FAILED', `could not generate the KEK '${label}' (${ckrName(err) ?? 'unknown error'})`);
  }
}

/** PKCS#11 state (initialisation, login) is per process, so one Hsm at a time owns it. */
let openInstance: Hsm | undefined;

export class Hsm {
  private closed = false;

  private constructor(
    private readonly mod: graphene.Module,
    private readonly pool: SessionPool,
    private current: { label: string; key: graphene.SecretKey },
    /** The KEK family's base label (HSM_KEK_LABEL). */
    readonly kekBaseLabel: string,
    readonly tokenLabel: string,
  ) {
    this.keks.set(current.label, current.key);
  }

  /** KEK handles by label, as found (a destroyed one is removed). */
  private readonly keks = new Map<string, graphene.SecretKey>();
  private scannedAt = Date.now();
  /** KEK creation and destruction, one at a time. */
  private kekChange: Promise<unknown> = Promise.resolve();

  /** The label of the current KEK: the one wrap uses. */
  get kekLabel(): string {
    return this.current.label;
  }

  /** Loads the module, logs in once and finds (or on first start generates) the KEK. */
  static async open(
    config: Pick<BridgeConfig, 'pkcs11Module' | 'tokenLabel' | 'pin' | 'kekLabel' | 'sessionPoolSize'>,
  ): Promise<Hsm> {
    if (openInstance) {
      throw new HsmError('ALREADY_OPEN', 'an Hsm is already open in this process; close it first (PKCS#11 state is per process)');
    }
    if (!existsSync(config.pkcs11Module)) {
      throw new HsmError('MODULE_NOT_FOUND', `PKCS#11 module not found at ${config.pkcs11Module}; check PKCS11_MODULE`);
    }
    let mod: graphene.Module;
    try {
      mod = graphene.Module.load(config.pkcs11Module);
      // OS locking: operations run on libuv worker threads, several at once.
      mod.initialize({ flags: CKF_OS_LOCKING_OK });
    } catch (err) {
      const detail = ckrName(err) ?? (err instanceof Error ? err.message.split('\n')[0] : 'unknown error');
      throw new HsmError('MODULE_LOAD_FAILED', `cannot load PKCS#11 module ${config.pkcs11Module}: ${detail}`);
    }
    const sessions: graphene.Session[] = [];
    try {
      const slot = findToken(mod, config.tokenLabel);
      requireMechanisms(slot);
      const flags = graphene.SessionFlag.SERIAL_SESSION | graphene.SessionFlag.RW_SESSION;
      sessions.push(slot.open(flags));
      // Login state is per application and token, so the other sessions share this one login.
      login(sessions[0]!, slot, config.pin, config.tokenLabel);
      for (let i = 1; i < config.sessionPoolSize; i++) sessions.push(slot.open(flags));
      const kek = findOrCreateKek(sessions[0]!, config.kekLabel);
      openInstance = new Hsm(mod, new SessionPool(sessions), kek, config.kekLabel, config.tokenLabel);
      return openInstance;
    } catch (err) {
      finalize(mod);
      if (err instanceof HsmError) throw err;
      throw new HsmError('HSM_FAILURE', `HSM startup failed (${ckrName(err) ?? (err as Error).message})`);
    }
  }

  /** AES-256-GCM under the current KEK; returns version(1) || iv(12) || ciphertext || tag(16). */
  async wrap(plaintext: Uint8Array, context: Uint8Array): Promise<Uint8Array> {
    return (await this.wrapLabelled(plaintext, context)).wrapped;
  }

  /** wrap(), also naming the KEK that wrapped (the caller stores it to unwrap later). */
  async wrapLabelled(plaintext: Uint8Array, context: Uint8Array): Promise<{ wrapped: Uint8Array; kekLabel: string }> {
    this.assertOpen();
    if (Date.now() - this.scannedAt > KEK_RESCAN_MS) await this.rescan();
    const kek = this.current;
    if (plaintext.length < 1 || plaintext.length > MAX_WRAP_PLAINTEXT) {
      throw new RangeError(`plaintext must be 1..${MAX_WRAP_PLAINTEXT} bytes`);
    }
    const iv = randomBytes(IV_BYTES);
    // Synchronous, for the reason unwrap() gives.
    const sealed = await this.pool
      .use((session) =>
        session.createCipher(gcm(iv, context), kek.key).once(Buffer.from(plaintext), Buffer.alloc(plaintext.length + TAG_BYTES)),
      )
      .catch((err: unknown) => {
        throw new HsmError('HSM_FAILURE', `wrap failed (${ckrName(err) ?? 'unknown error'})`);
      });
    return { wrapped: Buffer.concat([Buffer.of(WRAP_VERSION), iv, sealed]), kekLabel: kek.label };
  }

  /**
   * Reverses wrap() under the KEK labelled `kekLabel` (the current one if not given); throws
   * UnwrapError when the blob is malformed, tampered with, the context differs or no such KEK exists.
   */
  async unwrap(wrapped: Uint8Array, context: Uint8Array, kekLabel?: string): Promise<Uint8Array> {
    this.assertOpen();
    const kek = kekLabel === undefined ? this.current.key : await this.kekByLabel(kekLabel);
    if (!kek) throw new UnwrapError('no KEK with this label in the token');
    if (wrapped.length < 1 + IV_BYTES + TAG_BYTES + 1) throw new UnwrapError('wrapped blob is too short');
    if (wrapped.length > 1 + IV_BYTES + MAX_WRAP_PLAINTEXT + TAG_BYTES) throw new UnwrapError('wrapped blob is too long');
    if (wrapped[0] !== WRAP_VERSION) throw new UnwrapError('unknown wrapped blob version');
    const iv = Buffer.from(wrapped.subarray(1, 1 + IV_BYTES));
    const sealed = Buffer.from(wrapped.subarray(1 + IV_BYTES));
    // Called synchronously, both halves. C_DecryptInit already is (graphene runs it in the Decipher
    // constructor): it is where SoftHSM finds the key, ~40 µs of file checks. C_Decrypt of a 48-byte
    // blob is ~5 µs, less than handing it to a libuv thread and back (a wake-up each way, which on a
    // busy machine doubled the time of a batch of 8); run there, it only made the unwrap slower.
    const plain = await this.pool
      .use((session) =>
        // SoftHSM wants room for the whole input, tag included.
        session.createDecipher(gcm(iv, context), kek).once(sealed, Buffer.alloc(sealed.length)),
      )
      .catch((err: unknown) => {
        const ckr = ckrName(err);
        if (ckr && DECRYPT_REJECTIONS.has(ckr)) throw new UnwrapError('authentication tag mismatch');
        throw new HsmError('HSM_FAILURE', `unwrap failed (${ckr ?? 'unknown error'})`);
      });
    return new Uint8Array(plain);
  }

  /**
   * Runs fn on a logged-in session from the pool, for other modules' operations (keys.ts).
   * The session is fn's alone until the returned promise settles.
   */
  async withSession<T>(fn: (session: graphene.Session) => Promise<T> | T): Promise<T> {
    this.assertOpen();
    return this.pool.use(fn);
  }

  /** For tests and diagnostics: the current KEK's protection attributes (never its value). */
  kekAttributes(): KekAttributes {
    this.assertOpen();
    return readKekAttributes(this.current.key);
  }

  /** The KEKs of the family in the token, oldest first, the current one marked. */
  async listKeks(): Promise<Array<{ label: string; current: boolean }>> {
    this.assertOpen();
    await this.rescan();
    const generations = await this.pool.use((session) => kekGenerations(session, this.kekBaseLabel));
    return generations
      .map((g) => kekLabelOf(this.kekBaseLabel, g))
      .map((label) => ({ label, current: label === this.current.label }));
  }

  /** Generates the next generation's KEK and makes it current: new wraps use it from now on. */
  async createKek(): Promise<string> {
    this.assertOpen();
    return this.serialised(() =>
      this.pool.use((session) => {
        const next = (kekGenerations(session, this.kekBaseLabel).at(-1) ?? 0) + 1;
        const label = kekLabelOf(this.kekBaseLabel, next);
        const key = generateKek(session, label);
        this.keks.set(label, key);
        this.current = { label, key };
        return label;
      }),
    );
  }

  /**
   * Destroys a KEK that is not current; whatever it still wraps becomes unreadable for good, so
   * the caller (the Worker) checks first that nothing references it. KEK_NOT_FOUND, KEK_IN_USE.
   */
  async destroyKek(label: string): Promise<void> {
    this.assertOpen();
    if (kekGeneration(this.kekBaseLabel, label) === undefined)
      throw new HsmError('KEK_NOT_FOUND', 'no KEK with this label in the token');
    await this.serialised(async () => {
      await this.rescan();
      if (label === this.current.label)
        throw new HsmError('KEK_IN_USE', `'${label}' is the current KEK; rotate to a new one first`);
      await this.pool.use((session) => {
        const key = findKek(session, label);
        if (!key) throw new HsmError('KEK_NOT_FOUND', 'no KEK with this label in the token');
        this.keks.delete(label);
        key.destroy();
      });
    });
  }

  /** A KEK of the family by label (looked up in the token the first time), or undefined. */
  private async kekByLabel(label: string): Promise<graphene.SecretKey | undefined> {
    if (kekGeneration(this.kekBaseLabel, label) === undefined) return undefined;
    const known = this.keks.get(label);
    if (known) return known;
    const found = await this.pool.use((session) => findKek(session, label));
    if (found) this.keks.set(label, found);
    return found;
  }

  /** Picks up a rotation made by another bridge instance on the same token. */
  private async rescan(): Promise<void> {
    this.scannedAt = Date.now();
    const newest = await this.pool.use((session) => {
      const generation = kekGenerations(session, this.kekBaseLabel).at(-1);
      if (generation === undefined) return undefined;
      const label = kekLabelOf(this.kekBaseLabel, generation);
      return label === this.current.label ? undefined : { label, key: findKek(session, label) };
    });
    if (newest?.key) {
      this.keks.set(newest.label, newest.key);
      this.current = { label: newest.label, key: newest.key };
    }
  }

  private serialised<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.kekChange.then(fn, fn);
    this.kekChange = run.catch(() => undefined);
    return run;
  }

  /** Whether the token still answers: a logged-in session and a readable KEK handle. */
  async health(): Promise<HsmHealth> {
    if (this.closed) return { ok: false, reason: 'closed' };
    try {
      return await this.pool.use((session) => {
        const info = session.lib.C_GetSessionInfo(session.handle);
        if (info.state !== CKS_RW_USER_FUNCTIONS) return { ok: false as const, reason: 'session not logged in' };
        session.lib.C_GetAttributeValue(session.handle, this.current.key.handle, [{ type: CKA_CLASS }]);
        return { ok: true as const };
      });
    } catch (err) {
      return { ok: false, reason: ckrName(err) ?? 'token did not answer' };
    }
  }

  /** Closes the sessions and finalizes the module. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.drain(); // let in-flight operations finish first
    finalize(this.mod);
    if (openInstance === this) openInstance = undefined;
  }

  private assertOpen(): void {
    if (this.closed) throw new HsmError('CLOSED', 'the HSM connection is closed');
  }
}

function finalize(mod: graphene.Module): void {
  try {
    mod.finalize(); // closes all sessions and logs out
  } catch {
    // already finalized or the token is gone; nothing more to release
  }
  try {
    mod.close();
  } catch {
    // ignore: unloading the library is best effort
  }
}
