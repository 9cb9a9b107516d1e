/** The KEK wrapper against a real SoftHSM2 token, in process. */
import { randomBytes } from 'node:crypto';
import * as graphene from 'graphene-pk11';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Hsm, HsmError, UnwrapError, WRAP_VERSION } from '../src/hsm.js';
import { PKCS11_MODULE, enc, freshToken, withTokenSession as withRawSession, type TestToken } from './helpers.js';

let token: TestToken;
let hsm: Hsm;

const withTokenSession = (use: (session: graphene.Session) => void) => withRawSession(token, use);

const config = () => ({
  pkcs11Module: PKCS11_MODULE,
  tokenLabel: token.label,
  pin: token.pin,
  kekLabel: 'ekv-kek',
  sessionPoolSize: 2,
});

beforeAll(async () => {
  token = await freshToken('ekv-hsm-test');
  // SoftHSM reads its configuration when the module is initialised, i.e. in Hsm.open.
  process.env.SOFTHSM2_CONF = token.confPath;
  hsm = await Hsm.open(config());
});

afterAll(async () => {
  await hsm?.close();
  await token?.remove();
});

describe('wrap/unwrap', () => {
  const context = enc('vault=dev;kind=dek;version=1');

  it('round-trips a data key and produces version || iv || ciphertext || tag', async () => {
    const dek = randomBytes(32);
    const wrapped = await hsm.wrap(dek, context);
    expect(wrapped.length).toBe(1 + 12 + 32 + 16);
    expect(wrapped[0]).toBe(WRAP_VERSION);
    expect(Buffer.from(wrapped).includes(dek)).toBe(false);
    expect(Buffer.from(await hsm.unwrap(wrapped, context))).toEqual(dek);
  });

  it('uses a fresh IV every time', async () => {
    const dek = randomBytes(32);
    const a = await hsm.wrap(dek, context);
    const b = await hsm.wrap(dek, context);
    expect(Buffer.from(a.subarray(1, 13))).not.toEqual(Buffer.from(b.subarray(1, 13)));
    expect(Buffer.from(a)).not.toEqual(Buffer.from(b));
  });

  it('refuses to unwrap under a different context', async () => {
    const wrapped = await hsm.wrap(randomBytes(32), context);
    await expect(hsm.unwrap(wrapped, enc('vault=other;kind=dek;version=1'))).rejects.toBeInstanceOf(UnwrapError);
  });

  it('refuses a blob with any single flipped byte (version, iv, ciphertext, tag)', async () => {
    const wrapped = await hsm.wrap(randomBytes(32), context);
    for (const index of [0, 1, 12, 13, 30, 44, 45, wrapped.length - 1]) {
      const tampered = Uint8Array.from(wrapped);
      tampered[index]! ^= 0x01;
      await expect(hsm.unwrap(tampered, context), `byte ${index}`).rejects.toBeInstanceOf(UnwrapError);
    }
  });

  it('refuses truncated and garbage blobs with UnwrapError', async () => {
    const wrapped = await hsm.wrap(randomBytes(32), context);
    await expect(hsm.unwrap(wrapped.subarray(0, wrapped.length - 1), context)).rejects.toBeInstanceOf(UnwrapError);
    await expect(hsm.unwrap(wrapped.subarray(0, 20), context)).rejects.toBeInstanceOf(UnwrapError);
    await expect(hsm.unwrap(new Uint8Array(0), context)).rejects.toBeInstanceOf(UnwrapError);
    await expect(hsm.unwrap(Uint8Array.of(1, ...randomBytes(60)), context)).rejects.toBeInstanceOf(UnwrapError);
  });

  it('refuses plaintexts that are not data-key sized', async () => {
    await expect(hsm.wrap(new Uint8Array(0), context)).rejects.toThrow(RangeError);
    await expect(hsm.wrap(new Uint8Array(65), context)).rejects.toThrow(RangeError);
    expect((await hsm.wrap(new Uint8Array(64), context)).length).toBe(1 + 12 + 64 + 16);
  });

  it('serves many concurrent operations through a small session pool', async () => {
    const keys = Array.from({ length: 64 }, () => randomBytes(32));
    const results = await Promise.all(keys.map(async (k) => hsm.unwrap(await hsm.wrap(k, context), context)));
    results.forEach((r, i) => expect(Buffer.from(r)).toEqual(keys[i]));
  });

  it('reports health', async () => {
    expect(await hsm.health()).toEqual({ ok: true });
  });
});

describe('the KEK', () => {
  it('is a sensitive, never-extractable AES-256 token key', () => {
    expect(hsm.kekAttributes()).toEqual({
      class: graphene.ObjectClass.SECRET_KEY,
      keyType: graphene.KeyType.AES,
      valueLen: 32,
      sensitive: true,
      extractable: false,
      alwaysSensitive: true,
      neverExtractable: true,
      token: true,
      encrypt: true,
      decrypt: true,
    });
  });

  it('persists across a reopen, unwraps old blobs, and its value cannot be read or exported', async () => {
    const context = enc('persist');
    const dek = randomBytes(32);
    const wrapped = await hsm.wrap(dek, context);
    await hsm.close();
    await expect(hsm.wrap(dek, context)).rejects.toBeInstanceOf(HsmError);
    expect(await hsm.health()).toEqual({ ok: false, reason: 'closed' });

    // Look at the token with plain graphene, outside the bridge's code.
    withTokenSession((session) => {
      const keys = session.find({ class: graphene.ObjectClass.SECRET_KEY, label: 'ekv-kek' });
      expect(keys.length).toBe(1); // exactly one KEK, generated once
      const kek = keys.items(0).toType<graphene.SecretKey>();
      expect(() => kek.getAttribute('value')).toThrow(/CKR_ATTRIBUTE_SENSITIVE/);
      // Not exportable by wrapping under a key we control either.
      const mine = session.generateKey(graphene.KeyGenMechanism.AES, {
        keyType: graphene.KeyType.AES,
        valueLen: 32,
        token: false,
        wrap: true,
        extractable: true,
      });
      expect(() => session.wrapKey(graphene.MechanismEnum.AES_KEY_WRAP_PAD, mine, kek)).toThrow(
        /CKR_KEY_UNEXTRACTABLE|CKR_KEY_NOT_WRAPPABLE/,
      );
      // And its protection cannot be switched off.
      expect(() => kek.setAttribute({ extractable: true })).toThrow(/CKR_/);
      expect(() => kek.setAttribute({ sensitive: false })).toThrow(/CKR_/);
    });

    hsm = await Hsm.open(config());
    expect(Buffer.from(await hsm.unwrap(wrapped, context))).toEqual(dek);
  });

  it('refuses to use a key under the KEK label that could leave the HSM', async () => {
    await hsm.close();
    withTokenSession((session) => {
      session.generateKey(graphene.KeyGenMechanism.AES, {
        keyType: graphene.KeyType.AES,
        valueLen: 32,
        token: true,
        label: 'weak-kek',
        sensitive: false,
        extractable: true,
        encrypt: true,
        decrypt: true,
      });
    });
    const err = await Hsm.open({ ...config(), kekLabel: 'weak-kek' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HsmError);
    expect((err as HsmError).code).toBe('KEK_UNSUITABLE');
    hsm = await Hsm.open(config()); // the real KEK is unaffected
    expect(await hsm.health()).toEqual({ ok: true });
  });
});

describe('login', () => {
  it('is one Hsm per process, since PKCS#11 login state is per process', async () => {
    const err = await Hsm.open(config()).catch((e: unknown) => e);
    expect((err as HsmError).code).toBe('ALREADY_OPEN');
    expect(await hsm.health()).toEqual({ ok: true });
  });

  it('tries a wrong PIN exactly once and says so', async () => {
    await hsm.close();
    const login = vi.spyOn(graphene.Session.prototype, 'login');
    try {
      const err = await Hsm.open({ ...config(), pin: 'wrong-pin-123' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(HsmError);
      expect((err as HsmError).code).toBe('PIN_INCORRECT');
      expect((err as HsmError).message).toMatch(/CKR_PIN_INCORRECT.*not retrying/);
      expect((err as HsmError).message).not.toContain('wrong-pin-123');
      expect(login).toHaveBeenCalledTimes(1);
    } finally {
      login.mockRestore();
    }
    // The token is not locked: the right PIN still works.
    hsm = await Hsm.open(config());
    expect(await hsm.health()).toEqual({ ok: true });
  });
});
