/** HSM-backed keys over the bridge's HTTP API, on a fresh real SoftHSM2 token. */
import crypto from 'node:crypto';
import * as graphene from 'graphene-pk11';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Hsm } from '../src/hsm.js';
import {
  fromBase64Url,
  hsmKeyLabel,
  signRequest,
  toBase64Url,
  type HsmKeySpec,
  type HsmPublicJwk,
} from '../../bridge-protocol/index.js';
import { createBridgeApp, type LogFields } from '../src/server.js';
import { PKCS11_MODULE, SECRET, freshToken, withTokenSession, type TestToken } from './helpers.js';

let token: TestToken;
let hsm: Hsm;
let app: ReturnType<typeof createBridgeApp>;
let logs: Array<{ event: string } & LogFields> = [];

const openHsm = () =>
  Hsm.open({ pkcs11Module: PKCS11_MODULE, tokenLabel: token.label, pin: token.pin, kekLabel: 'ekv-kek', sessionPoolSize: 4 });
const newApp = () => createBridgeApp({ hsm, hmacSecret: SECRET, log: (event, fields) => logs.push({ event, ...fields }) });

/** Response bodies, read loosely: each test checks the fields it uses. */
type Json = any;

async function call(path: string, body: unknown, target = app): Promise<{ status: number; body: Json; headers: Headers }> {
  const raw = typeof body === 'string' ? body : JSON.stringify(body);
  const headers = await signRequest(SECRET, 'POST', path, raw);
  const res = await target.request(path, { method: 'POST', headers, body: raw });
  return { status: res.status, body: await res.json(), headers: res.headers };
}

async function ok(path: string, body: unknown): Promise<Json> {
  const res = await call(path, body);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

async function refused(path: string, body: unknown, status: number, code: string): Promise<string> {
  const res = await call(path, body);
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.body.error.code).toBe(code);
  return res.body.error.message as string;
}

const b64 = (bytes: Uint8Array) => toBase64Url(bytes);
const bin = (text: string) => Buffer.from(fromBase64Url(text));
const newId = () => crypto.randomBytes(16).toString('hex');
const HASH_BYTES = { sha256: 32, sha384: 48, sha512: 64 } as const;
const hashOf = (alg: string) => (({ '256': 'sha256', '384': 'sha384', '512': 'sha512' }) as const)[alg.slice(2, 5) as '256'];

/** The token's objects of a key, through raw graphene on one of the bridge's own sessions. */
function objectsOf(id: string): Promise<Array<{ cls: number; object: graphene.SessionObject; session: graphene.Session }>> {
  return hsm.withSession((session) => {
    const found = session.find({ id: Buffer.from(id, 'hex') });
    return Array.from({ length: found.length }, (_, i) => {
      const object = found.items(i);
      return { cls: object.getAttribute('class') as number, object, session };
    });
  });
}

const SPECS: Array<[string, HsmKeySpec]> = [
  ['RSA-2048', { kty: 'RSA', size: 2048 }],
  ['RSA-3072', { kty: 'RSA', size: 3072 }],
  ['RSA-4096', { kty: 'RSA', size: 4096 }],
  ['P-256', { kty: 'EC', crv: 'P-256' }],
  ['P-384', { kty: 'EC', crv: 'P-384' }],
  ['P-521', { kty: 'EC', crv: 'P-521' }],
  ['P-256K', { kty: 'EC', crv: 'P-256K' }],
  ['AES-128', { kty: 'oct', size: 128 }],
  ['AES-192', { kty: 'oct', size: 192 }],
  ['AES-256', { kty: 'oct', size: 256 }],
];
const keys: Record<string, { id: string; spec: HsmKeySpec; publicJwk?: HsmPublicJwk }> = {};
const key = (name: string) => keys[name]!;
const publicKeyOf = (name: string) => crypto.createPublicKey({ key: key(name).publicJwk as crypto.JsonWebKey, format: 'jwk' });

beforeAll(async () => {
  token = await freshToken('ekv-keys-test');
  process.env.SOFTHSM2_CONF = token.confPath;
  hsm = await openHsm();
  app = newApp();
  // Concurrently, through a pool of 4 sessions: RSA-4096 keeps one busy for a while.
  await Promise.all(
    SPECS.map(async ([name, spec]) => {
      const id = newId();
      const made = await ok('/v1/keys/generate', { id, spec });
      expect(made.handle).toBe(id);
      keys[name] = { id, spec, publicJwk: made.publicJwk };
    }),
  );
}, 120_000);

afterAll(async () => {
  await hsm?.close();
  await token?.remove();
});

describe('generate', () => {
  it.each(SPECS)('%s answers the public JWK (none for oct)', (name, spec) => {
    const { publicJwk } = key(name);
    if (spec.kty === 'oct') return expect(publicJwk).toBeUndefined();
    if (spec.kty === 'RSA') {
      expect(Object.keys(publicJwk!).sort()).toEqual(['e', 'kty', 'n']);
      expect(publicJwk).toMatchObject({ kty: 'RSA', e: 'AQAB' });
      const n = bin((publicJwk as { n: string }).n);
      expect(n.length).toBe(spec.size / 8);
      expect(n[0]! & 0x80).toBe(0x80);
      return;
    }
    const size = { 'P-256': 32, 'P-384': 48, 'P-521': 66, 'P-256K': 32 }[spec.crv];
    const jwk = publicJwk as { crv: string; x: string; y: string };
    expect(Object.keys(jwk).sort()).toEqual(['crv', 'kty', 'x', 'y']);
    expect(jwk.crv).toBe(spec.crv);
    expect(bin(jwk.x).length).toBe(size);
    expect(bin(jwk.y).length).toBe(size);
    // A point on the curve: node (or noble, for secp256k1) accepts it as a public key.
    if (spec.crv === 'P-256K') secp256k1.Point.fromBytes(Buffer.concat([Buffer.of(4), bin(jwk.x), bin(jwk.y)])).assertValidity();
    else publicKeyOf(name);
  });

  it.each(SPECS)(
    '%s: private/secret objects are sensitive, never extractable, token objects with only their usages',
    async (name, spec) => {
      const { id } = key(name);
      const objects = await objectsOf(id);
      const secret = objects.filter((o) => o.cls !== graphene.ObjectClass.PUBLIC_KEY);
      expect(objects.length).toBe(spec.kty === 'oct' ? 1 : 2);
      expect(secret.length).toBe(1);
      const { object, session } = secret[0]!;
      expect(
        object.getAttribute({
          label: null,
          token: null,
          private: null,
          sensitive: null,
          extractable: null,
          neverExtractable: null,
          alwaysSensitive: null,
          modifiable: null,
          local: null,
          derive: null,
        }),
      ).toEqual({
        label: hsmKeyLabel(id),
        token: true,
        private: true,
        sensitive: true,
        extractable: false,
        neverExtractable: true,
        alwaysSensitive: true,
        modifiable: false,
        local: true,
        derive: false,
      });
      const usages = object.getAttribute(
        spec.kty === 'oct'
          ? { encrypt: null, decrypt: null, wrap: null, unwrap: null, sign: null, verify: null }
          : { sign: null, decrypt: null, unwrap: null, signRecover: null },
      );
      expect(usages).toEqual(
        spec.kty === 'oct'
          ? { encrypt: true, decrypt: true, wrap: true, unwrap: true, sign: false, verify: false }
          : spec.kty === 'RSA'
            ? { sign: true, decrypt: true, unwrap: true, signRecover: false }
            : { sign: true, decrypt: false, unwrap: false, signRecover: false },
      );
      // The value cannot be read...
      if (spec.kty === 'RSA') {
        for (const attr of ['privateExponent', 'coefficient'])
          expect(() => object.getAttribute(attr)).toThrow(/CKR_ATTRIBUTE_SENSITIVE/);
      } else {
        expect(() => object.getAttribute('value')).toThrow(/CKR_ATTRIBUTE_SENSITIVE/);
      }
      // ...nor exported under a key we control...
      const mine = session.generateKey(graphene.KeyGenMechanism.AES, {
        keyType: graphene.KeyType.AES,
        valueLen: 32,
        token: false,
        wrap: true,
        extractable: true,
      });
      try {
        expect(() => session.wrapKey(graphene.MechanismEnum.AES_KEY_WRAP_PAD, mine, object.toType<graphene.Key>())).toThrow(
          /CKR_KEY_UNEXTRACTABLE|CKR_KEY_NOT_WRAPPABLE/,
        );
      } finally {
        session.destroy(mine);
      }
      // ...and the protection cannot be switched off.
      expect(() => object.setAttribute({ extractable: true })).toThrow(/CKR_/);
      expect(() => object.setAttribute({ sensitive: false })).toThrow(/CKR_/);

      const pub = objects.find((o) => o.cls === graphene.ObjectClass.PUBLIC_KEY);
      if (pub) {
        expect(pub.object.getAttribute({ label: null, token: null, private: null, verify: null })).toEqual({
          label: hsmKeyLabel(id),
          token: true,
          private: false,
          verify: true,
        });
      }
    },
  );

  it('refuses an id already in use (409), also when two requests race for it', async () => {
    expect(
      await refused('/v1/keys/generate', { id: key('P-256').id, spec: { kty: 'EC', crv: 'P-256' } }, 409, 'KeyExists'),
    ).not.toMatch(key('P-256').id);
    const id = newId();
    const results = await Promise.all([
      call('/v1/keys/generate', { id, spec: { kty: 'oct', size: 256 } }),
      call('/v1/keys/generate', { id, spec: { kty: 'oct', size: 256 } }),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual([200, 409]);
    expect((await objectsOf(id)).length).toBe(1);
  });

  it.each([
    ['RSA 1024', { kty: 'RSA', size: 1024 }],
    ['RSA without size', { kty: 'RSA' }],
    ['RSA size as string', { kty: 'RSA', size: '2048' }],
    ['EC P-192', { kty: 'EC', crv: 'P-192' }],
    ['oct 512', { kty: 'oct', size: 512 }],
    ['RSA-HSM kty', { kty: 'RSA-HSM', size: 2048 }],
    ['no kty', { size: 2048 }],
  ])('refuses spec %s (400)', async (_name, spec) => {
    await refused('/v1/keys/generate', { id: newId(), spec }, 400, 'BadRequest');
  });

  it.each([
    ['uppercase hex', 'ABCDEF00ABCDEF00ABCDEF00ABCDEF00'],
    ['short', 'abcdef'],
    ['not hex', 'zz'.repeat(16)],
    ['a number', 5],
  ])('refuses an id that is %s (400)', async (_name, id) => {
    await refused('/v1/keys/generate', { id, spec: { kty: 'oct', size: 256 } }, 400, 'BadRequest');
  });
});

describe('sign', () => {
  const CASES: Array<[string, string]> = [
    ['RSA-2048', 'RS256'],
    ['RSA-2048', 'RS384'],
    ['RSA-2048', 'RS512'],
    ['RSA-2048', 'PS256'],
    ['RSA-2048', 'PS384'],
    ['RSA-2048', 'PS512'],
    ['RSA-3072', 'RS384'],
    ['RSA-3072', 'PS256'],
    ['RSA-4096', 'RS512'],
    ['RSA-4096', 'PS512'],
    ['P-256', 'ES256'],
    ['P-384', 'ES384'],
    ['P-521', 'ES512'],
  ];

  it.each(CASES)('%s signs %s, verified by node:crypto', async (name, alg) => {
    const hash = hashOf(alg);
    const message = crypto.randomBytes(200);
    const digest = crypto.createHash(hash).update(message).digest();
    const { signature } = await ok('/v1/keys/sign', { handle: key(name).id, alg, digest: b64(digest) });
    const sig = bin(signature);
    const pub = publicKeyOf(name);
    const verifyKey = alg.startsWith('PS')
      ? { key: pub, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: HASH_BYTES[hash] }
      : alg.startsWith('ES')
        ? { key: pub, dsaEncoding: 'ieee-p1363' as const }
        : pub;
    if (alg.startsWith('ES')) expect(sig.length).toBe({ ES256: 64, ES384: 96, ES512: 132 }[alg]);
    else expect(sig.length).toBe((key(name).spec as { size: number }).size / 8);
    expect(crypto.verify(hash, message, verifyKey, sig)).toBe(true);
    expect(crypto.verify(hash, crypto.randomBytes(200), verifyKey, sig)).toBe(false);
  });

  it('P-256K signs ES256K as raw r||s, verified by @noble/curves', async () => {
    const { x, y } = key('P-256K').publicJwk as { x: string; y: string };
    const pub = Buffer.concat([Buffer.of(4), bin(x), bin(y)]);
    for (let i = 0; i < 4; i++) {
      const digest = crypto.createHash('sha256').update(crypto.randomBytes(50)).digest();
      const { signature } = await ok('/v1/keys/sign', { handle: key('P-256K').id, alg: 'ES256K', digest: b64(digest) });
      const sig = bin(signature);
      expect(sig.length).toBe(64);
      expect(secp256k1.verify(sig, digest, pub, { prehash: false, lowS: false })).toBe(true);
      digest[0]! ^= 1;
      expect(secp256k1.verify(sig, digest, pub, { prehash: false, lowS: false })).toBe(false);
    }
  });

  it('serves concurrent signatures through the session pool', async () => {
    const messages = Array.from({ length: 24 }, () => crypto.randomBytes(40));
    const results = await Promise.all(
      messages.map((m) =>
        ok('/v1/keys/sign', {
          handle: key('P-256').id,
          alg: 'ES256',
          digest: b64(crypto.createHash('sha256').update(m).digest()),
        }),
      ),
    );
    results.forEach((r, i) => {
      expect(
        crypto.verify('sha256', messages[i]!, { key: publicKeyOf('P-256'), dsaEncoding: 'ieee-p1363' }, bin(r.signature)),
      ).toBe(true);
    });
  });

  it.each([
    ['ES256 with an RSA key', 'RSA-2048', 'ES256', 32, /needs an EC key/],
    ['RS256 with an EC key', 'P-256', 'RS256', 32, /needs an RSA key/],
    ['PS256 with an oct key', 'AES-256', 'PS256', 32, /needs an RSA key/],
    ['ES384 with a P-256 key', 'P-256', 'ES384', 48, /needs a P-384 key/],
    ['ES256 with a P-256K key', 'P-256K', 'ES256', 32, /needs a P-256 key/],
    ['ES256K with a P-256 key', 'P-256', 'ES256K', 32, /needs a P-256K key/],
    ['RS256 with a 31-byte digest', 'RSA-2048', 'RS256', 31, /32-byte digest/],
    ['ES512 with a 66-byte digest', 'P-521', 'ES512', 66, /./],
    ['PS384 with a 32-byte digest', 'RSA-2048', 'PS384', 32, /48-byte digest/],
    ['HS256', 'AES-256', 'HS256', 32, /not a signing algorithm/],
    ['lowercase es256', 'P-256', 'es256', 32, /not a signing algorithm/],
  ])('refuses %s (400)', async (_name, name, alg, length, message) => {
    expect(
      await refused('/v1/keys/sign', { handle: key(name).id, alg, digest: b64(crypto.randomBytes(length)) }, 400, 'BadRequest'),
    ).toMatch(message);
  });
});

describe('RSA decrypt and unwrap', () => {
  const encryptFor = (name: string, alg: string, data: Buffer) =>
    crypto.publicEncrypt(
      alg === 'RSA1_5'
        ? { key: publicKeyOf(name), padding: crypto.constants.RSA_PKCS1_PADDING }
        : {
            key: publicKeyOf(name),
            padding: crypto.constants.RSA_PKCS1_OAEP_PADDING,
            oaepHash: alg === 'RSA-OAEP' ? 'sha1' : 'sha256',
          },
      data,
    );

  it.each([
    ['RSA-2048', 'RSA-OAEP'],
    ['RSA-2048', 'RSA-OAEP-256'],
    ['RSA-2048', 'RSA1_5'],
    ['RSA-3072', 'RSA-OAEP-256'],
    ['RSA-4096', 'RSA-OAEP'],
    ['RSA-4096', 'RSA-OAEP-256'],
    ['RSA-4096', 'RSA1_5'],
  ])('%s decrypts %s ciphertexts from node:crypto (empty, short and longest messages)', async (name, alg) => {
    const k = (key(name).spec as { size: number }).size / 8;
    const longest = alg === 'RSA1_5' ? k - 11 : k - 2 * (alg === 'RSA-OAEP' ? 20 : 32) - 2;
    for (const length of [0, 1, 32, longest]) {
      const message = crypto.randomBytes(length);
      const res = await call('/v1/keys/decrypt', { handle: key(name).id, alg, ciphertext: b64(encryptFor(name, alg, message)) });
      expect(res.status, `${length} bytes`).toBe(200);
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(bin(res.body.plaintext)).toEqual(message);
    }
  });

  it.each(['RSA-OAEP', 'RSA-OAEP-256', 'RSA1_5'])('unwraps a %s-wrapped AES key', async (alg) => {
    const aesKey = crypto.randomBytes(32);
    const { key: unwrapped } = await ok('/v1/keys/unwrap', {
      handle: key('RSA-2048').id,
      alg,
      wrapped: b64(encryptFor('RSA-2048', alg, aesKey)),
    });
    expect(bin(unwrapped)).toEqual(aesKey);
  });

  /**
   * RSA1_5 may not fail: with OpenSSL >= 3.2 underneath (SoftHSM in Node 22 binds to Node's own
   * OpenSSL 3.5), PKCS#1 v1.5 decryption uses implicit rejection against Bleichenbacher/Marvin
   * attacks and answers a pseudo-random message instead of an error.
   */
  async function refusedOrGarbage(path: string, body: Record<string, string>, alg: string, original: Buffer) {
    const res = await call(path, body);
    if (alg === 'RSA1_5' && res.status === 200) {
      expect(bin(res.body.plaintext ?? res.body.key)).not.toEqual(original);
      return;
    }
    expect(res.status, JSON.stringify(res.body)).toBe(422);
    expect(res.body.error.code).toBe('OperationFailed');
  }

  it.each(['RSA-OAEP', 'RSA-OAEP-256', 'RSA1_5'])(
    'answers 422 OperationFailed for a tampered %s ciphertext or another key',
    async (alg) => {
      const original = crypto.randomBytes(32);
      const ciphertext = encryptFor('RSA-2048', alg, original);
      for (const index of [0, 100, ciphertext.length - 1]) {
        const tampered = Buffer.from(ciphertext);
        tampered[index]! ^= 0x01;
        await refusedOrGarbage('/v1/keys/decrypt', { handle: key('RSA-2048').id, alg, ciphertext: b64(tampered) }, alg, original);
      }
      // Another key's ciphertext of the same size (RSA-OAEP into an RSA-2048 that is not its own).
      const other = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
      const foreign = crypto.publicEncrypt(
        {
          key: other,
          padding: alg === 'RSA1_5' ? crypto.constants.RSA_PKCS1_PADDING : crypto.constants.RSA_PKCS1_OAEP_PADDING,
          oaepHash: alg === 'RSA-OAEP' ? 'sha1' : 'sha256',
        },
        crypto.randomBytes(32),
      );
      await refusedOrGarbage('/v1/keys/unwrap', { handle: key('RSA-2048').id, alg, wrapped: b64(foreign) }, alg, original);
      expect(JSON.stringify(logs)).not.toContain(b64(ciphertext));
    },
  );

  it('refuses a ciphertext that is not the modulus size, an AES alg, and RSA encryption in the HSM (400)', async () => {
    const handle = key('RSA-2048').id;
    expect(
      await refused('/v1/keys/decrypt', { handle, alg: 'RSA-OAEP', ciphertext: b64(crypto.randomBytes(255)) }, 400, 'BadRequest'),
    ).toMatch(/256 bytes/);
    await refused(
      '/v1/keys/decrypt',
      {
        handle,
        alg: 'A256GCM',
        ciphertext: b64(crypto.randomBytes(16)),
        iv: b64(crypto.randomBytes(12)),
        tag: b64(crypto.randomBytes(16)),
      },
      400,
      'BadRequest',
    );
    await refused(
      '/v1/keys/decrypt',
      { handle, alg: 'RSA-OAEP', ciphertext: b64(crypto.randomBytes(256)), iv: b64(crypto.randomBytes(12)) },
      400,
      'BadRequest',
    );
    expect(
      await refused('/v1/keys/encrypt', { handle, alg: 'RSA-OAEP', plaintext: b64(crypto.randomBytes(16)) }, 400, 'BadRequest'),
    ).toMatch(/public key/);
    expect(
      await refused('/v1/keys/wrap', { handle, alg: 'RSA-OAEP-256', key: b64(crypto.randomBytes(32)) }, 400, 'BadRequest'),
    ).toMatch(/public key/);
    await refused(
      '/v1/keys/decrypt',
      { handle: key('P-256').id, alg: 'RSA-OAEP', ciphertext: b64(crypto.randomBytes(256)) },
      400,
      'BadRequest',
    );
  });
});

describe('AES encrypt and decrypt', () => {
  const AES = [
    ['AES-128', 128],
    ['AES-192', 192],
    ['AES-256', 256],
  ] as const;

  it.each(AES)('%s: A*GCM round-trips with aad; the token chooses a fresh 12-byte iv; tampering is 422', async (name, bits) => {
    const handle = key(name).id;
    const alg = `A${bits}GCM`;
    const aad = crypto.randomBytes(20);
    for (const plaintext of [crypto.randomBytes(1), crypto.randomBytes(100)]) {
      const sealed = await ok('/v1/keys/encrypt', { handle, alg, plaintext: b64(plaintext), aad: b64(aad) });
      expect(bin(sealed.ciphertext).length).toBe(plaintext.length);
      expect(bin(sealed.iv).length).toBe(12);
      expect(bin(sealed.tag).length).toBe(16);
      const res = await call('/v1/keys/decrypt', {
        handle,
        alg,
        ciphertext: sealed.ciphertext,
        iv: sealed.iv,
        tag: sealed.tag,
        aad: b64(aad),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(bin(res.body.plaintext)).toEqual(plaintext);

      const tag = bin(sealed.tag);
      tag[0]! ^= 1;
      await refused(
        '/v1/keys/decrypt',
        { handle, alg, ciphertext: sealed.ciphertext, iv: sealed.iv, tag: b64(tag), aad: b64(aad) },
        422,
        'OperationFailed',
      );
      await refused(
        '/v1/keys/decrypt',
        { handle, alg, ciphertext: sealed.ciphertext, iv: sealed.iv, tag: sealed.tag },
        422,
        'OperationFailed',
      );
      const iv = bin(sealed.iv);
      iv[11]! ^= 1;
      await refused(
        '/v1/keys/decrypt',
        { handle, alg, ciphertext: sealed.ciphertext, iv: b64(iv), tag: sealed.tag, aad: b64(aad) },
        422,
        'OperationFailed',
      );
    }
    const a = await ok('/v1/keys/encrypt', { handle, alg, plaintext: b64(Buffer.alloc(16)) });
    const b = await ok('/v1/keys/encrypt', { handle, alg, plaintext: b64(Buffer.alloc(16)) });
    expect(a.iv).not.toBe(b.iv);
    expect(a.ciphertext).not.toBe(b.ciphertext);
  });

  it.each(AES)('%s: A*CBC and A*CBCPAD round-trip; CBCPAD is CBC plus a PKCS#7 block', async (name, bits) => {
    const handle = key(name).id;
    const iv = crypto.randomBytes(16);
    const blocks = crypto.randomBytes(48);
    const cbc = await ok('/v1/keys/encrypt', { handle, alg: `A${bits}CBC`, plaintext: b64(blocks), iv: b64(iv) });
    expect(bin(cbc.iv)).toEqual(iv);
    expect(cbc.tag).toBeUndefined();
    expect(bin(cbc.ciphertext).length).toBe(48);
    const padded = await ok('/v1/keys/encrypt', { handle, alg: `A${bits}CBCPAD`, plaintext: b64(blocks), iv: b64(iv) });
    expect(bin(padded.ciphertext).length).toBe(64);
    expect(bin(padded.ciphertext).subarray(0, 48)).toEqual(bin(cbc.ciphertext));
    // The padding block is E(C3 xor 16 x 0x10): the same as CBC-encrypting 16 bytes of 0x10 after C3.
    const tail = await ok('/v1/keys/encrypt', {
      handle,
      alg: `A${bits}CBC`,
      plaintext: b64(Buffer.alloc(16, 0x10)),
      iv: b64(bin(cbc.ciphertext).subarray(32)),
    });
    expect(bin(padded.ciphertext).subarray(48)).toEqual(bin(tail.ciphertext));

    expect(
      bin((await ok('/v1/keys/decrypt', { handle, alg: `A${bits}CBC`, ciphertext: cbc.ciphertext, iv: cbc.iv })).plaintext),
    ).toEqual(blocks);
    for (const length of [1, 15, 16, 33]) {
      const plaintext = crypto.randomBytes(length);
      const sealed = await ok('/v1/keys/encrypt', { handle, alg: `A${bits}CBCPAD`, plaintext: b64(plaintext) });
      expect(bin(sealed.iv).length).toBe(16); // generated by the token
      expect(bin(sealed.ciphertext).length).toBe((Math.floor(length / 16) + 1) * 16);
      const opened = await ok('/v1/keys/decrypt', {
        handle,
        alg: `A${bits}CBCPAD`,
        ciphertext: sealed.ciphertext,
        iv: sealed.iv,
      });
      expect(bin(opened.plaintext)).toEqual(plaintext);
    }
    // Bad padding: the last plaintext byte is 0x00.
    const bad = await ok('/v1/keys/encrypt', { handle, alg: `A${bits}CBC`, plaintext: b64(Buffer.alloc(32)), iv: b64(iv) });
    await refused(
      '/v1/keys/decrypt',
      { handle, alg: `A${bits}CBCPAD`, ciphertext: bad.ciphertext, iv: b64(iv) },
      422,
      'OperationFailed',
    );
  });

  it('refuses mismatched sizes, missing or extra parameters and wrong block lengths (400)', async () => {
    const handle = key('AES-256').id;
    const cases: Array<[string, unknown, RegExp]> = [
      ['/v1/keys/encrypt', { handle, alg: 'A128GCM', plaintext: b64(crypto.randomBytes(16)) }, /128-bit key; this key is 256/],
      [
        '/v1/keys/encrypt',
        { handle: key('AES-128').id, alg: 'A256CBCPAD', plaintext: b64(crypto.randomBytes(16)) },
        /256-bit key/,
      ],
      [
        '/v1/keys/encrypt',
        { handle, alg: 'A256GCM', plaintext: b64(crypto.randomBytes(16)), iv: b64(crypto.randomBytes(12)) },
        /generates the 'iv'/,
      ],
      ['/v1/keys/encrypt', { handle, alg: 'A256CBC', plaintext: b64(crypto.randomBytes(17)) }, /multiple of 16/],
      [
        '/v1/keys/encrypt',
        { handle, alg: 'A256CBC', plaintext: b64(crypto.randomBytes(16)), iv: b64(crypto.randomBytes(12)) },
        /16-byte 'iv'/,
      ],
      [
        '/v1/keys/encrypt',
        { handle, alg: 'A256CBCPAD', plaintext: b64(crypto.randomBytes(16)), aad: b64(crypto.randomBytes(4)) },
        /'aad' is not used/,
      ],
      ['/v1/keys/encrypt', { handle, alg: 'A256KW', plaintext: b64(crypto.randomBytes(16)) }, /not an encryption algorithm/],
      ['/v1/keys/encrypt', { handle, alg: 'A256GCM', plaintext: '' }, /'plaintext' must decode to 1\.\./],
      [
        '/v1/keys/decrypt',
        { handle, alg: 'A256GCM', ciphertext: '', iv: b64(crypto.randomBytes(12)), tag: b64(crypto.randomBytes(16)) },
        /'ciphertext' must decode to 1\.\./,
      ],
      ['/v1/keys/encrypt', { handle: key('P-256').id, alg: 'A256GCM', plaintext: b64(crypto.randomBytes(16)) }, /needs an oct/],
      [
        '/v1/keys/decrypt',
        { handle, alg: 'A256GCM', ciphertext: b64(crypto.randomBytes(16)), iv: b64(crypto.randomBytes(12)) },
        /16-byte 'tag'/,
      ],
      [
        '/v1/keys/decrypt',
        { handle, alg: 'A256GCM', ciphertext: b64(crypto.randomBytes(16)), tag: b64(crypto.randomBytes(16)) },
        /12-byte 'iv'/,
      ],
      [
        '/v1/keys/decrypt',
        { handle, alg: 'A256CBC', ciphertext: b64(crypto.randomBytes(20)), iv: b64(crypto.randomBytes(16)) },
        /multiple of 16/,
      ],
      ['/v1/keys/decrypt', { handle, alg: 'A256CBC', ciphertext: b64(crypto.randomBytes(32)) }, /16-byte 'iv'/],
      [
        '/v1/keys/decrypt',
        {
          handle,
          alg: 'A256CBC',
          ciphertext: b64(crypto.randomBytes(32)),
          iv: b64(crypto.randomBytes(16)),
          tag: b64(crypto.randomBytes(16)),
        },
        /'tag' is not used/,
      ],
      ['/v1/keys/decrypt', { handle, alg: 'A256CTR', ciphertext: b64(crypto.randomBytes(32)) }, /not a decryption algorithm/],
      ['/v1/keys/decrypt', { handle, alg: 'A256GCM', ciphertext: 'not base64!', iv: b64(crypto.randomBytes(12)) }, /base64url/],
    ];
    for (const [path, body, message] of cases) {
      expect(await refused(path, body, 400, 'BadRequest'), JSON.stringify(body)).toMatch(message);
    }
  });

  it('takes 32 KiB payloads (bodies up to 64 KiB) and answers 413 beyond', async () => {
    const handle = key('AES-256').id;
    const plaintext = crypto.randomBytes(32 * 1024);
    const sealed = await ok('/v1/keys/encrypt', { handle, alg: 'A256GCM', plaintext: b64(plaintext) });
    const opened = await ok('/v1/keys/decrypt', {
      handle,
      alg: 'A256GCM',
      ciphertext: sealed.ciphertext,
      iv: sealed.iv,
      tag: sealed.tag,
    });
    expect(bin(opened.plaintext)).toEqual(plaintext);
    await refused(
      '/v1/keys/encrypt',
      { handle, alg: 'A256GCM', plaintext: b64(crypto.randomBytes(33 * 1024)) },
      400,
      'BadRequest',
    );
    expect((await call('/v1/keys/encrypt', { handle, alg: 'A256GCM', plaintext: 'A'.repeat(65 * 1024) })).status).toBe(413);
    // The data-key routes keep their 16 KiB limit.
    expect((await call('/v1/wrap', { plaintext: 'A'.repeat(17 * 1024), context: 'Y3R4' })).status).toBe(413);
  });
});

describe('AES key wrap', () => {
  it.each([
    ['AES-128', 'A128KW'],
    ['AES-192', 'A192KW'],
    ['AES-256', 'A256KW'],
  ])('%s: %s wraps and unwraps 16..64-byte keys; tampering is 422', async (name, alg) => {
    const handle = key(name).id;
    for (const length of [16, 24, 32, 64]) {
      const material = crypto.randomBytes(length);
      const { wrapped } = await ok('/v1/keys/wrap', { handle, alg, key: b64(material) });
      expect(bin(wrapped).length).toBe(length + 8);
      // RFC 3394 is deterministic: the same key wraps to the same bytes.
      expect((await ok('/v1/keys/wrap', { handle, alg, key: b64(material) })).wrapped).toBe(wrapped);
      const res = await call('/v1/keys/unwrap', { handle, alg, wrapped });
      expect(res.status).toBe(200);
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(bin(res.body.key)).toEqual(material);
      const tampered = bin(wrapped);
      tampered[length]! ^= 0x01;
      await refused('/v1/keys/unwrap', { handle, alg, wrapped: b64(tampered) }, 422, 'OperationFailed');
    }
    // No temporary objects are left behind in the token.
    expect(await hsm.withSession((session) => session.find({ token: false }).length)).toBe(0);
  });

  it('a key wrapped under one AES key does not unwrap under another (422)', async () => {
    const { wrapped } = await ok('/v1/keys/wrap', { handle: key('AES-256').id, alg: 'A256KW', key: b64(crypto.randomBytes(32)) });
    const other = newId();
    await ok('/v1/keys/generate', { id: other, spec: { kty: 'oct', size: 256 } });
    await refused('/v1/keys/unwrap', { handle: other, alg: 'A256KW', wrapped }, 422, 'OperationFailed');
  });

  it.each([
    ['a 12-byte key', '/v1/keys/wrap', 'AES-256', 'A256KW', { key: 12 }, /multiple of 8/],
    ['a 20-byte key', '/v1/keys/wrap', 'AES-256', 'A256KW', { key: 20 }, /multiple of 8/],
    ['a 2 KiB key', '/v1/keys/wrap', 'AES-256', 'A256KW', { key: 2048 }, /must decode|multiple of 8/],
    ['a size mismatch', '/v1/keys/wrap', 'AES-256', 'A128KW', { key: 32 }, /128-bit key/],
    ['a GCM alg', '/v1/keys/wrap', 'AES-256', 'A256GCM', { key: 32 }, /not a key-wrap algorithm/],
    ['an RSA key', '/v1/keys/wrap', 'RSA-2048', 'A256KW', { key: 32 }, /needs an oct/],
    ['16 wrapped bytes', '/v1/keys/unwrap', 'AES-256', 'A256KW', { wrapped: 16 }, /multiple of 8/],
    ['30 wrapped bytes', '/v1/keys/unwrap', 'AES-256', 'A256KW', { wrapped: 30 }, /multiple of 8/],
    ['an EC key', '/v1/keys/unwrap', 'P-256', 'A256KW', { wrapped: 40 }, /needs an oct/],
    ['RSA-OAEP on an oct key', '/v1/keys/unwrap', 'AES-256', 'RSA-OAEP', { wrapped: 256 }, /needs an RSA key/],
  ])('refuses %s (400)', async (_name, path, name, alg, sizes, message) => {
    const body: Record<string, string> = { handle: key(name).id, alg };
    for (const [field, length] of Object.entries(sizes)) body[field] = b64(crypto.randomBytes(length));
    expect(await refused(path, body, 400, 'BadRequest')).toMatch(message);
  });
});

describe('import', () => {
  const importJwk = async (jwk: crypto.JsonWebKey, id = newId()) => ({ id, ...(await ok('/v1/keys/import', { id, jwk })) });

  it('imports an RSA-2048 JWK from node:crypto: signatures match node, decryption works, and it is sensitive', async () => {
    const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = privateKey.export({ format: 'jwk' });
    const made = await importJwk(jwk);
    expect(made.handle).toBe(made.id);
    expect(made.publicJwk).toEqual({ kty: 'RSA', n: jwk.n, e: jwk.e });

    const message = crypto.randomBytes(64);
    const { signature } = await ok('/v1/keys/sign', {
      handle: made.id,
      alg: 'RS256',
      digest: b64(crypto.createHash('sha256').update(message).digest()),
    });
    expect(bin(signature)).toEqual(crypto.sign('sha256', message, privateKey)); // PKCS#1 v1.5 is deterministic
    const pss = await ok('/v1/keys/sign', {
      handle: made.id,
      alg: 'PS512',
      digest: b64(crypto.createHash('sha512').update(message).digest()),
    });
    expect(
      crypto.verify(
        'sha512',
        message,
        { key: publicKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 64 },
        bin(pss.signature),
      ),
    ).toBe(true);
    const secret = crypto.randomBytes(32);
    const ciphertext = crypto.publicEncrypt({ key: publicKey, oaepHash: 'sha256' }, secret);
    expect(
      bin((await ok('/v1/keys/decrypt', { handle: made.id, alg: 'RSA-OAEP-256', ciphertext: b64(ciphertext) })).plaintext),
    ).toEqual(secret);

    await expectImportedProtected(made.id, 'RSA');
  });

  it.each([
    ['P-256', 'ES256', 'sha256'],
    ['P-384', 'ES384', 'sha384'],
    ['P-521', 'ES512', 'sha512'],
  ] as const)('imports an EC %s JWK from node:crypto and signs %s in the token', async (crv, alg, hash) => {
    const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: crv });
    const jwk = privateKey.export({ format: 'jwk' });
    const made = await importJwk(jwk);
    expect(made.publicJwk).toEqual({ kty: 'EC', crv, x: jwk.x, y: jwk.y });
    const message = crypto.randomBytes(64);
    const { signature } = await ok('/v1/keys/sign', {
      handle: made.id,
      alg,
      digest: b64(crypto.createHash(hash).update(message).digest()),
    });
    expect(crypto.verify(hash, message, { key: publicKey, dsaEncoding: 'ieee-p1363' }, bin(signature))).toBe(true);
    await expectImportedProtected(made.id, 'EC');
  });

  it('imports a P-256K (secp256k1) JWK and signs ES256K', async () => {
    const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
    const jwk = { ...privateKey.export({ format: 'jwk' }), crv: 'P-256K' };
    const made = await importJwk(jwk);
    expect(made.publicJwk).toEqual({ kty: 'EC', crv: 'P-256K', x: jwk.x, y: jwk.y });
    const digest = crypto.randomBytes(32);
    const { signature } = await ok('/v1/keys/sign', { handle: made.id, alg: 'ES256K', digest: b64(digest) });
    const pub = Buffer.concat([Buffer.of(4), bin(jwk.x!), bin(jwk.y!)]);
    expect(secp256k1.verify(bin(signature), digest, pub, { prehash: false, lowS: false })).toBe(true);
  });

  async function expectImportedProtected(id: string, kty: 'RSA' | 'EC') {
    const objects = await objectsOf(id);
    expect(objects.length).toBe(2);
    const priv = objects.find((o) => o.cls === graphene.ObjectClass.PRIVATE_KEY)!;
    expect(
      priv.object.getAttribute({
        label: null,
        token: null,
        private: null,
        sensitive: null,
        extractable: null,
        modifiable: null,
        sign: null,
        decrypt: null,
        derive: null,
      }),
    ).toEqual({
      label: hsmKeyLabel(id),
      token: true,
      private: true,
      sensitive: true,
      extractable: false,
      modifiable: false,
      sign: true,
      decrypt: kty === 'RSA',
      derive: false,
    });
    expect(() => priv.object.getAttribute(kty === 'RSA' ? 'privateExponent' : 'value')).toThrow(/CKR_ATTRIBUTE_SENSITIVE/);
    const { session } = priv;
    const mine = session.generateKey(graphene.KeyGenMechanism.AES, {
      keyType: graphene.KeyType.AES,
      valueLen: 32,
      token: false,
      wrap: true,
      extractable: true,
    });
    try {
      expect(() => session.wrapKey(graphene.MechanismEnum.AES_KEY_WRAP_PAD, mine, priv.object.toType<graphene.Key>())).toThrow(
        /CKR_KEY_UNEXTRACTABLE|CKR_KEY_NOT_WRAPPABLE/,
      );
    } finally {
      session.destroy(mine);
    }
    // The staging object and the transport key are gone.
    expect(await hsm.withSession((s) => s.find({ token: false }).length)).toBe(0);
  }

  it('refuses inconsistent, unsupported or incomplete JWKs (400) without echoing them', async () => {
    const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
    const other = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
    const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
    const ecOther = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
    const small = crypto.generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'jwk' });
    const cases: Array<[string, unknown, RegExp]> = [
      ['another d', { ...rsa, d: other.d }, /inconsistent/],
      ['another p', { ...rsa, p: other.p }, /inconsistent/],
      ['swapped dp/dq', { ...rsa, dp: rsa.dq, dq: rsa.dp }, /inconsistent/],
      ['another qi', { ...rsa, qi: other.qi }, /inconsistent/],
      ['missing qi', { ...rsa, qi: undefined }, /'qi'/],
      ['1024 bits', small, /2048, 3072 or 4096/],
      ['multi-prime', { ...rsa, oth: [] }, /multi-prime/],
      ['EC with another d', { ...ec, d: ecOther.d }, /inconsistent/],
      ['EC public only', { ...ec, d: undefined }, /'d'/],
      ['EC P-192', { ...ec, crv: 'P-192' }, /crv/],
      ['EC short x', { ...ec, x: b64(bin(ec.x!).subarray(1)) }, /32 bytes/],
      ['EC d = 0', { ...ec, d: b64(Buffer.alloc(32)) }, /'d'/],
      ['oct', { kty: 'oct', k: b64(crypto.randomBytes(32)) }, /RSA or EC/],
      ['a string', 'jwk', /object/],
    ];
    for (const [name, jwk, message] of cases) {
      const text = await refused('/v1/keys/import', { id: newId(), jwk }, 400, 'BadRequest');
      expect(text, name).toMatch(message);
      expect(text).not.toContain(rsa.d!.slice(0, 20));
      expect(text).not.toContain(ec.d!);
    }
    expect(JSON.stringify(logs)).not.toContain(rsa.d!.slice(0, 20));
  });

  it('refuses an id already in use (409)', async () => {
    const jwk = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
    await refused('/v1/keys/import', { id: key('AES-128').id, jwk }, 409, 'KeyExists');
  });
});

describe('handles, destroy, rng, auth, status', () => {
  it('answers 404 KeyNotFound for an unknown handle on every key route, 400 for a malformed one', async () => {
    const handle = newId();
    const d32 = b64(crypto.randomBytes(32));
    await refused('/v1/keys/sign', { handle, alg: 'ES256', digest: d32 }, 404, 'KeyNotFound');
    await refused('/v1/keys/decrypt', { handle, alg: 'RSA-OAEP', ciphertext: b64(crypto.randomBytes(256)) }, 404, 'KeyNotFound');
    await refused('/v1/keys/encrypt', { handle, alg: 'A256GCM', plaintext: d32 }, 404, 'KeyNotFound');
    await refused('/v1/keys/wrap', { handle, alg: 'A256KW', key: d32 }, 404, 'KeyNotFound');
    await refused('/v1/keys/unwrap', { handle, alg: 'A256KW', wrapped: b64(crypto.randomBytes(40)) }, 404, 'KeyNotFound');
    expect(await ok('/v1/keys/destroy', { handle })).toEqual({ destroyed: false });
    await refused('/v1/keys/sign', { handle: 'KEK', alg: 'ES256', digest: d32 }, 400, 'BadRequest');
    await refused('/v1/keys/destroy', { handle: '../ekv-kek' }, 400, 'BadRequest');
    await refused('/v1/keys/sign', { alg: 'ES256', digest: d32 }, 400, 'BadRequest');
  });

  it('destroys every object of a key, evicts it, and is idempotent', async () => {
    const id = newId();
    const { publicJwk } = await ok('/v1/keys/generate', { id, spec: { kty: 'EC', crv: 'P-256' } });
    expect(publicJwk).toBeDefined();
    const digest = b64(crypto.randomBytes(32));
    await ok('/v1/keys/sign', { handle: id, alg: 'ES256', digest }); // now cached
    expect((await objectsOf(id)).length).toBe(2);
    expect(await ok('/v1/keys/destroy', { handle: id })).toEqual({ destroyed: true });
    expect((await objectsOf(id)).length).toBe(0);
    await refused('/v1/keys/sign', { handle: id, alg: 'ES256', digest }, 404, 'KeyNotFound');
    expect(await ok('/v1/keys/destroy', { handle: id })).toEqual({ destroyed: false });
    // The id can be used again.
    await ok('/v1/keys/generate', { id, spec: { kty: 'oct', size: 128 } });
    await ok('/v1/keys/encrypt', { handle: id, alg: 'A128GCM', plaintext: digest });
  });

  it('notices a key destroyed behind its back (404) instead of using a stale handle', async () => {
    const id = newId();
    await ok('/v1/keys/generate', { id, spec: { kty: 'oct', size: 256 } });
    await ok('/v1/keys/encrypt', { handle: id, alg: 'A256GCM', plaintext: b64(Buffer.alloc(8)) });
    await hsm.withSession((session) => session.destroy({ id: Buffer.from(id, 'hex') }));
    await refused('/v1/keys/encrypt', { handle: id, alg: 'A256GCM', plaintext: b64(Buffer.alloc(8)) }, 404, 'KeyNotFound');
  });

  it('never touches objects that only share the CKA_ID (the KEK is safe from destroy)', async () => {
    const kekId = await hsm.withSession((session) => session.find({ label: 'ekv-kek' }).items(0).getAttribute('id') as Buffer);
    const handle = kekId.toString('hex');
    expect(handle).toMatch(/^[0-9a-f]{32}$/);
    await refused('/v1/keys/encrypt', { handle, alg: 'A256GCM', plaintext: b64(Buffer.alloc(8)) }, 404, 'KeyNotFound');
    expect(await ok('/v1/keys/destroy', { handle })).toEqual({ destroyed: false });
    await refused('/v1/keys/generate', { id: handle, spec: { kty: 'oct', size: 256 } }, 409, 'KeyExists');
    expect(await hsm.health()).toEqual({ ok: true });
  });

  it('answers 1 and 128 random bytes from the token, and 400 outside 1..128', async () => {
    const one = await call('/v1/rng', { count: 1 });
    expect(one.status).toBe(200);
    expect(one.headers.get('cache-control')).toBe('no-store');
    expect(bin(one.body.bytes).length).toBe(1);
    const a = bin((await ok('/v1/rng', { count: 128 })).bytes);
    const b = bin((await ok('/v1/rng', { count: 128 })).bytes);
    expect(a.length).toBe(128);
    expect(a).not.toEqual(b);
    for (const count of [0, 129, -1, 1.5, '16', null]) await refused('/v1/rng', { count }, 400, 'BadRequest');
    await refused('/v1/rng', {}, 400, 'BadRequest');
  });

  it('refuses unauthenticated or badly signed key requests (401)', async () => {
    const body = JSON.stringify({ handle: key('P-256').id, alg: 'ES256', digest: b64(crypto.randomBytes(32)) });
    expect((await app.request('/v1/keys/sign', { method: 'POST', body })).status).toBe(401);
    const headers = await signRequest('another-secret-0123456789-abcdefghijkl', 'POST', '/v1/keys/sign', body);
    expect((await app.request('/v1/keys/sign', { method: 'POST', headers, body })).status).toBe(401);
    const forRng = await signRequest(SECRET, 'POST', '/v1/rng', body);
    expect((await app.request('/v1/keys/sign', { method: 'POST', headers: forRng, body })).status).toBe(401);
    expect((await app.request('/v1/rng', { method: 'POST', body: '{"count":8}' })).status).toBe(401);
  });

  it('counts key operations in /v1/status and logs no payloads', async () => {
    logs = [];
    const fresh = newApp();
    const digest = crypto.randomBytes(32);
    const plaintext = crypto.randomBytes(24);
    const post = (path: string, body: unknown) => call(path, body, fresh);
    const id = newId();
    await post('/v1/keys/generate', { id, spec: { kty: 'oct', size: 256 } });
    await post('/v1/keys/sign', { handle: key('P-256').id, alg: 'ES256', digest: b64(digest) });
    await post('/v1/keys/sign', { handle: key('P-256').id, alg: 'ES384', digest: b64(digest) }); // 400, still counted
    const sealed = (await post('/v1/keys/encrypt', { handle: id, alg: 'A256GCM', plaintext: b64(plaintext) })).body;
    await post('/v1/keys/decrypt', {
      handle: id,
      alg: 'A256GCM',
      ciphertext: sealed.ciphertext,
      iv: sealed.iv,
      tag: b64(Buffer.alloc(16)),
    });
    const { wrapped } = (await post('/v1/keys/wrap', { handle: id, alg: 'A256KW', key: b64(plaintext) })).body;
    await post('/v1/keys/unwrap', { handle: id, alg: 'A256KW', wrapped });
    await post('/v1/keys/destroy', { handle: id });
    await post('/v1/rng', { count: 16 });
    const headers = await signRequest(SECRET, 'GET', '/v1/status', '');
    const status = await fresh.request('/v1/status', { headers });
    expect(await status.json()).toEqual({
      kekLabel: 'ekv-kek',
      ops: {
        wrap: 0,
        unwrap: 0,
        generate: 1,
        import: 0,
        sign: 2,
        decrypt: 1,
        encrypt: 1,
        wrapKey: 1,
        unwrapKey: 1,
        destroy: 1,
        rng: 1,
        publicKey: 0,
      },
    });
    expect(logs).toContainEqual(expect.objectContaining({ event: 'key_operation_failed' }));
    const text = JSON.stringify(logs);
    for (const secret of [b64(digest), b64(plaintext), sealed.ciphertext, wrapped, token.pin]) expect(text).not.toContain(secret);
  });
});

describe('persistence', () => {
  it('keeps the keys as token objects across a restart, found again by handle', async () => {
    const { id } = key('RSA-2048');
    await hsm.close();
    // Outside the bridge's code entirely: a fresh module load and login.
    const seen = withTokenSession(token, (session) => {
      const found = session.find({ label: hsmKeyLabel(id) });
      return Array.from({ length: found.length }, (_, i) => {
        const object = found.items(i);
        return object.getAttribute('class') === graphene.ObjectClass.PRIVATE_KEY
          ? object.getAttribute({ class: null, token: null, sensitive: null, extractable: null })
          : object.getAttribute({ class: null, token: null });
      });
    });
    expect(seen).toHaveLength(2);
    expect(seen).toContainEqual({ class: graphene.ObjectClass.PRIVATE_KEY, token: true, sensitive: true, extractable: false });
    expect(seen).toContainEqual({ class: graphene.ObjectClass.PUBLIC_KEY, token: true });

    hsm = await openHsm();
    app = newApp();
    const message = crypto.randomBytes(32);
    const digest = b64(crypto.createHash('sha256').update(message).digest());
    const { signature } = await ok('/v1/keys/sign', { handle: id, alg: 'RS256', digest });
    expect(crypto.verify('sha256', message, publicKeyOf('RSA-2048'), bin(signature))).toBe(true);
    // Every kind is found again, not only RSA: EC keys by their curve, AES keys by their size.
    const ec = await ok('/v1/keys/sign', { handle: key('P-256').id, alg: 'ES256', digest });
    expect(crypto.verify('sha256', message, { key: publicKeyOf('P-256'), dsaEncoding: 'ieee-p1363' }, bin(ec.signature))).toBe(
      true,
    );
    const sealed = await ok('/v1/keys/encrypt', { handle: key('AES-256').id, alg: 'A256GCM', plaintext: b64(message) });
    const opened = await ok('/v1/keys/decrypt', {
      handle: key('AES-256').id,
      alg: 'A256GCM',
      ciphertext: sealed.ciphertext,
      iv: sealed.iv,
      tag: sealed.tag,
    });
    expect(Buffer.from(bin(opened.plaintext)).equals(message)).toBe(true);
  });
});
