/**
 * What is particular to HSM keys, through the unmodified SDK and raw HTTP:
 *  - their private or secret material never appears in any answer;
 *  - oct-HSM keys (AES 128/192/256): A*GCM with additional authenticated data, A*CBC, A*CBCPAD and
 *    A*KW round-trip, and anything tampered is refused;
 *  - the bridge (and so the HSM) goes away: software keys keep working, HSM keys' private and
 *    symmetric operations answer 503 with Retry-After, and work again once it is back.
 *
 * RSA-HSM and EC-HSM signatures and ciphertexts are cross-checked in keys-crypto.e2e.test.ts.
 */
import { createHash, generateKeyPairSync, randomBytes, verify as nodeVerify } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CryptographyClient, KeyVaultKey } from '@azure/keyvault-keys';
import {
  adminToken,
  b64url,
  bridge,
  collect,
  cryptoClient,
  expectRestError,
  keyClient,
  NO_RETRY,
  nodePublicKey,
  PRIVATE_JWK_FIELDS,
  toSdkJwk,
  uniqueName,
  vaultRequest,
} from '../support/e2e.js';

const FAST_POLL = { intervalInMs: 100 };
const sha256 = (data: Uint8Array) => new Uint8Array(createHash('sha256').update(data).digest());
const flipped = (bytes: Uint8Array, index = Math.floor(bytes.length / 2)) => {
  const copy = Uint8Array.from(bytes);
  copy[index]! ^= 0x01;
  return copy;
};

function expectNoPrivateFields(jwk: object | undefined, where: string) {
  expect(jwk, where).toBeDefined();
  for (const field of PRIVATE_JWK_FIELDS) expect((jwk as Record<string, unknown>)[field], `${where}: ${field}`).toBeUndefined();
}

/** Every member named like a private JWK field anywhere in a JSON answer (tags are the caller's). */
function privateMembers(value: unknown, path = '$'): string[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => privateMembers(v, `${path}[${i}]`));
  if (typeof value !== 'object' || value === null) return [];
  return Object.entries(value).flatMap(([k, v]) => [
    ...((PRIVATE_JWK_FIELDS as readonly string[]).includes(k) ? [`${path}.${k}`] : []),
    ...(k === 'tags' ? [] : privateMembers(v, `${path}.${k}`)),
  ]);
}

// ------------------------------------------------------------------------ no material in answers

describe('HSM keys never reveal their material', () => {
  it("in the SDK's KeyVaultKey nor in the raw JSON of create, import, get, update, list, delete and recover", async () => {
    const client = keyClient();
    const token = await adminToken();
    const made: KeyVaultKey[] = [
      await client.createRsaKey(uniqueName('nomat-rsa'), { hsm: true, keySize: 2048 }),
      await client.createEcKey(uniqueName('nomat-ec'), { hsm: true, curve: 'P-256K' }),
      await client.createOctKey(uniqueName('nomat-oct'), { hsm: true, keySize: 192 }),
      await client.importKey(
        uniqueName('nomat-imp-rsa'),
        toSdkJwk(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' })),
        {
          hardwareProtected: true,
        },
      ),
      await client.importKey(
        uniqueName('nomat-imp-ec'),
        toSdkJwk(generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ format: 'jwk' })),
        {
          hardwareProtected: true,
        },
      ),
    ];
    for (const key of made) {
      const where = `${key.keyType} ${key.name}`;
      expect(key.keyType).toMatch(/-HSM$/);
      expectNoPrivateFields(key.key, `${where} (created)`);
      expectNoPrivateFields((await client.getKey(key.name)).key, `${where} (getKey)`);
      expectNoPrivateFields(
        (await client.updateKeyProperties(key.name, { tags: { stage: 'updated' } })).key,
        `${where} (update)`,
      );

      for (const path of [`/keys/${key.name}`, `/keys/${key.name}/${key.properties.version}`]) {
        const res = await vaultRequest(path, { token });
        expect(res.status, res.text).toBe(200);
        const body = res.json<{ key: Record<string, unknown> }>();
        expect(body.key.kty).toBe(key.keyType);
        expectNoPrivateFields(body.key, `${where} raw GET ${path}`);
        expect(privateMembers(res.json()), `${where} raw GET ${path}`).toEqual([]);
      }
      const versions = await vaultRequest(`/keys/${key.name}/versions`, { token });
      expect(versions.status, versions.text).toBe(200);
      expect(privateMembers(versions.json()), `${where} versions`).toEqual([]);
    }
    // oct-HSM: not even a public part.
    const oct = made[2]!;
    expect(oct.key!.n).toBeUndefined();
    expect(oct.key!.x).toBeUndefined();

    const deletedName = made[0]!.name;
    const deleted = await (await client.beginDeleteKey(deletedName, FAST_POLL)).pollUntilDone();
    expectNoPrivateFields(deleted.key, 'deleted RSA-HSM');
    const rawDeleted = await vaultRequest(`/deletedkeys/${deletedName}`, { token });
    expect(rawDeleted.status, rawDeleted.text).toBe(200);
    expect(privateMembers(rawDeleted.json())).toEqual([]);
    const rawDeletedList = await vaultRequest('/deletedkeys', { token });
    expect(rawDeletedList.status, rawDeletedList.text).toBe(200);
    expect(privateMembers(rawDeletedList.json())).toEqual([]);
    const recovered = await (await client.beginRecoverDeletedKey(deletedName, FAST_POLL)).pollUntilDone();
    expectNoPrivateFields(recovered.key, 'recovered RSA-HSM');
  });
});

// ---------------------------------------------------------------------------------- oct-HSM keys

const AES_SIZES = [128, 192, 256] as const;
type AesSize = (typeof AES_SIZES)[number];
const octKeys = new Map<AesSize, { key: KeyVaultKey; crypto: CryptographyClient }>();

describe.each(AES_SIZES)('oct-HSM %i', (size) => {
  const GCM = `A${size}GCM` as const;
  const CBC = `A${size}CBC` as const;
  const CBCPAD = `A${size}CBCPAD` as const;
  const KW = `A${size}KW` as const;
  const oct = () => octKeys.get(size)!;

  beforeAll(async () => {
    const key = await keyClient().createOctKey(uniqueName(`oct-hsm-${size}`), { hsm: true, keySize: size });
    octKeys.set(size, { key, crypto: cryptoClient(key.id!) });
  });

  it(`is created with the size asked for and Azure's default key_ops`, () => {
    const { key } = oct();
    expect(key.keyType).toBe('oct-HSM');
    expect([...key.keyOperations!].sort()).toEqual(['decrypt', 'encrypt', 'unwrapKey', 'wrapKey']);
    expect(key.key!.k).toBeUndefined();
  });

  it(`${GCM} with additional authenticated data round-trips; iv and tag come from the vault, fresh each time`, async () => {
    const { key, crypto } = oct();
    const plaintext = randomBytes(100);
    const aad = Buffer.from('header: v1');
    const encrypted = await crypto.encrypt({ algorithm: GCM, plaintext, additionalAuthenticatedData: aad });
    expect(encrypted.algorithm).toBe(GCM);
    expect(encrypted.keyID).toBe(key.id);
    expect(encrypted.result).toHaveLength(plaintext.length); // GCM: no padding; the tag is apart
    expect(encrypted.iv).toHaveLength(12);
    expect(encrypted.authenticationTag).toHaveLength(16);
    expect(Buffer.from(encrypted.additionalAuthenticatedData!)).toEqual(aad);
    expect(Buffer.from(encrypted.result)).not.toEqual(plaintext);

    const decrypted = await crypto.decrypt({
      algorithm: GCM,
      ciphertext: encrypted.result,
      iv: encrypted.iv!,
      authenticationTag: encrypted.authenticationTag!,
      additionalAuthenticatedData: aad,
    });
    expect(Buffer.from(decrypted.result)).toEqual(plaintext);

    const again = await crypto.encrypt({ algorithm: GCM, plaintext, additionalAuthenticatedData: aad });
    expect(Buffer.from(again.iv!)).not.toEqual(Buffer.from(encrypted.iv!));
    expect(Buffer.from(again.result)).not.toEqual(Buffer.from(encrypted.result));

    // Without additional data, and a plaintext of one byte.
    const plain = await crypto.encrypt({ algorithm: GCM, plaintext: Buffer.from('x') });
    expect(plain.result).toHaveLength(1);
    const back = await crypto.decrypt({
      algorithm: GCM,
      ciphertext: plain.result,
      iv: plain.iv!,
      authenticationTag: plain.authenticationTag!,
    });
    expect(Buffer.from(back.result).toString()).toBe('x');
  });

  it(`${GCM} refuses a tampered tag, ciphertext, iv or additional data, and a missing tag (400)`, async () => {
    const { crypto } = oct();
    const aad = Buffer.from('bound');
    const e = await crypto.encrypt({ algorithm: GCM, plaintext: randomBytes(40), additionalAuthenticatedData: aad });
    const base = {
      algorithm: GCM,
      ciphertext: e.result,
      iv: e.iv!,
      authenticationTag: e.authenticationTag!,
      additionalAuthenticatedData: aad,
    };
    await expectRestError(crypto.decrypt({ ...base, authenticationTag: flipped(e.authenticationTag!) }), 400);
    await expectRestError(crypto.decrypt({ ...base, ciphertext: flipped(e.result) }), 400);
    await expectRestError(crypto.decrypt({ ...base, iv: flipped(e.iv!) }), 400);
    await expectRestError(crypto.decrypt({ ...base, additionalAuthenticatedData: Buffer.from('other') }), 400);
    await expectRestError(crypto.decrypt({ ...base, additionalAuthenticatedData: undefined }), 400);
    await expectRestError(crypto.decrypt({ ...base, authenticationTag: undefined as unknown as Uint8Array }), 400);
    // The untouched one still decrypts.
    expect((await crypto.decrypt(base)).result).toHaveLength(40);
  });

  it(`${CBC} (no padding) round-trips with the caller's iv and chains blocks as CBC does; other lengths are 400`, async () => {
    const { crypto } = oct();
    const iv = randomBytes(16);
    const plaintext = randomBytes(32);
    const encrypted = await crypto.encrypt({ algorithm: CBC, plaintext, iv });
    expect(encrypted.result).toHaveLength(32);
    expect(Buffer.from(encrypted.iv!)).toEqual(iv);
    const decrypted = await crypto.decrypt({ algorithm: CBC, ciphertext: encrypted.result, iv });
    expect(Buffer.from(decrypted.result)).toEqual(plaintext);

    // CBC: C2 = E(P2 xor C1), so P2 encrypted with iv = C1 gives C2; the same iv gives the same ciphertext.
    const c1 = encrypted.result.subarray(0, 16);
    const second = await crypto.encrypt({ algorithm: CBC, plaintext: plaintext.subarray(16), iv: c1 });
    expect(Buffer.from(second.result)).toEqual(Buffer.from(encrypted.result.subarray(16)));
    const same = await crypto.encrypt({ algorithm: CBC, plaintext, iv });
    expect(Buffer.from(same.result)).toEqual(Buffer.from(encrypted.result));
    // A wrong iv garbles the first block only.
    const wrongIv = await crypto.decrypt({ algorithm: CBC, ciphertext: encrypted.result, iv: flipped(iv, 0) });
    expect(Buffer.from(wrongIv.result.subarray(16))).toEqual(plaintext.subarray(16));
    expect(Buffer.from(wrongIv.result.subarray(0, 16))).not.toEqual(plaintext.subarray(0, 16));

    // Without an iv the vault makes one and returns it.
    const generated = await crypto.encrypt({ algorithm: CBC, plaintext });
    expect(generated.iv).toHaveLength(16);
    expect(
      Buffer.from((await crypto.decrypt({ algorithm: CBC, ciphertext: generated.result, iv: generated.iv! })).result),
    ).toEqual(plaintext);

    await expectRestError(crypto.encrypt({ algorithm: CBC, plaintext: randomBytes(20), iv }), 400);
    await expectRestError(crypto.decrypt({ algorithm: CBC, ciphertext: encrypted.result.subarray(0, 20), iv }), 400);
    await expectRestError(crypto.encrypt({ algorithm: CBC, plaintext, iv: randomBytes(8) }), 400);
  });

  it(`${CBCPAD} pads to whole blocks (PKCS#7) and round-trips any length`, async () => {
    const { crypto } = oct();
    const iv = randomBytes(16);
    for (const length of [1, 15, 16, 21, 100]) {
      const plaintext = randomBytes(length);
      const encrypted = await crypto.encrypt({ algorithm: CBCPAD, plaintext, iv });
      expect(encrypted.result, `length ${length}`).toHaveLength((Math.floor(length / 16) + 1) * 16);
      const decrypted = await crypto.decrypt({ algorithm: CBCPAD, ciphertext: encrypted.result, iv });
      expect(Buffer.from(decrypted.result), `length ${length}`).toEqual(plaintext);
    }
    // The padded encryption of whole blocks is their CBC encryption plus one block of padding.
    const plaintext = randomBytes(32);
    const padded = await crypto.encrypt({ algorithm: CBCPAD, plaintext, iv });
    const unpadded = await crypto.encrypt({ algorithm: CBC, plaintext, iv });
    expect(Buffer.from(padded.result.subarray(0, 32))).toEqual(Buffer.from(unpadded.result));
    // And CBC (no padding) of that shows the padding block: sixteen 0x10 bytes.
    const raw = await crypto.decrypt({ algorithm: CBC, ciphertext: padded.result, iv });
    expect(Buffer.from(raw.result.subarray(32))).toEqual(Buffer.alloc(16, 16));
  });

  it(`${KW} wraps 16-, 24- and 32-byte keys (RFC 3394: 8 bytes longer, deterministic) and unwraps them; tampered ones are 400`, async () => {
    const { crypto } = oct();
    for (const length of [16, 24, 32]) {
      const cek = randomBytes(length);
      const wrapped = await crypto.wrapKey(KW, cek);
      expect(wrapped.algorithm).toBe(KW);
      expect(wrapped.result).toHaveLength(length + 8);
      expect(Buffer.from((await crypto.wrapKey(KW, cek)).result)).toEqual(Buffer.from(wrapped.result));
      const unwrapped = await crypto.unwrapKey(KW, wrapped.result);
      expect(Buffer.from(unwrapped.result)).toEqual(cek);
      await expectRestError(crypto.unwrapKey(KW, flipped(wrapped.result)), 400);
    }
    await expectRestError(crypto.wrapKey(KW, randomBytes(15)), 400);
    await expectRestError(crypto.wrapKey(KW, randomBytes(8)), 400);
  });

  it('algorithms of another size, operation or key type are 400', async () => {
    const { crypto } = oct();
    const other = AES_SIZES.find((s) => s !== size)!;
    await expectRestError(crypto.encrypt({ algorithm: `A${other}GCM`, plaintext: randomBytes(16) }), 400, 'BadParameter');
    await expectRestError(
      crypto.encrypt({ algorithm: `A${other}CBCPAD`, plaintext: randomBytes(16), iv: randomBytes(16) }),
      400,
      'BadParameter',
    );
    await expectRestError(crypto.wrapKey(`A${other}KW`, randomBytes(32)), 400, 'BadParameter');
    await expectRestError(crypto.wrapKey(GCM as unknown as 'A256KW', randomBytes(32)), 400, 'BadParameter');
    await expectRestError(
      crypto.encrypt({ algorithm: KW as unknown as 'A256GCM', plaintext: randomBytes(32) }),
      400,
      'BadParameter',
    );
    await expectRestError(crypto.encrypt({ algorithm: 'RSA-OAEP-256', plaintext: randomBytes(16) }), 400, 'BadParameter');
    await expectRestError(crypto.wrapKey('RSA-OAEP', randomBytes(32)), 400, 'BadParameter');
  });
});

describe('oct-HSM key_ops and versions', () => {
  it('key_ops restrict what an oct-HSM key does (403), and each version is its own AES key', async () => {
    const client = keyClient();
    const name = uniqueName('oct-ops');
    const v1 = await client.createOctKey(name, { hsm: true, keySize: 256 });
    const v1Crypto = cryptoClient(v1); // holds v1 as created, with every operation allowed
    const cek = randomBytes(32);
    const wrapped = await v1Crypto.wrapKey('A256KW', cek);
    await v1Crypto.encrypt({ algorithm: 'A256GCM', plaintext: randomBytes(16) });

    await client.updateKeyProperties(name, v1.properties.version!, { keyOps: ['wrapKey', 'unwrapKey'] });
    await expectRestError(v1Crypto.encrypt({ algorithm: 'A256GCM', plaintext: randomBytes(16) }), 403, 'Forbidden');
    await expectRestError(
      v1Crypto.decrypt({ algorithm: 'A256CBC', ciphertext: randomBytes(16), iv: randomBytes(16) }),
      403,
      'Forbidden',
    );

    const v2 = await client.createOctKey(name, { hsm: true, keySize: 256 });
    const v2Crypto = cryptoClient(v2);
    const wrappedV2 = await v2Crypto.wrapKey('A256KW', cek);
    expect(Buffer.from(wrappedV2.result)).not.toEqual(Buffer.from(wrapped.result));
    await expectRestError(v2Crypto.unwrapKey('A256KW', wrapped.result), 400); // another key: integrity check fails
    expect(Buffer.from((await v1Crypto.unwrapKey('A256KW', wrapped.result)).result)).toEqual(cek);
    expect(await collect(client.listPropertiesOfKeyVersions(name))).toHaveLength(2);
  });
});

// --------------------------------------------------------------------------------- bridge outage

describe('HSM bridge outage', () => {
  afterAll(async () => {
    await bridge.start(); // never leave the stack without its bridge, whatever failed
  });

  it('software keys keep signing and decrypting; HSM keys answer 503 with Retry-After; all heals when the bridge returns', async () => {
    const client = keyClient();
    const token = await adminToken();
    const software = await client.createRsaKey(uniqueName('outage-sw'));
    const softwareEc = await client.createEcKey(uniqueName('outage-sw-ec'), { curve: 'P-256K' });
    const rsaHsm = await client.createRsaKey(uniqueName('outage-rsa-hsm'), { hsm: true });
    const ecHsm = await client.createEcKey(uniqueName('outage-ec-hsm'), { hsm: true, curve: 'P-256' });
    const octHsm = await client.createOctKey(uniqueName('outage-oct-hsm'), { hsm: true, keySize: 256 });
    // Clients without retries: the SDK would otherwise honour Retry-After and try again.
    const sw = cryptoClient(software, undefined, NO_RETRY);
    const swEc = cryptoClient(softwareEc, undefined, NO_RETRY);
    const rsa = cryptoClient(rsaHsm, undefined, NO_RETRY);
    const ec = cryptoClient(ecHsm, undefined, NO_RETRY);
    const aes = cryptoClient(octHsm, undefined, NO_RETRY);
    const noRetry = keyClient(undefined, undefined, NO_RETRY);
    await noRetry.getKey(octHsm.name); // its token is taken before the outage

    const message = randomBytes(64);
    const digest = sha256(message);
    // Warm: each software key's data key is unwrapped (and cached) before the bridge goes.
    const swCiphertext = (await sw.encrypt({ algorithm: 'RSA-OAEP-256', plaintext: Buffer.from('software') })).result;
    await sw.sign('RS256', digest);
    await swEc.sign('ES256K', digest);
    const hsmSignature = (await ec.sign('ES256', digest)).result;
    const hsmCiphertext = (await rsa.encrypt({ algorithm: 'RSA-OAEP-256', plaintext: Buffer.from('hsm') })).result;

    await bridge.stop();
    try {
      // Software keys: private operations in the Worker.
      const signed = await sw.sign('PS256', digest);
      expect((await sw.verify('PS256', digest, signed.result)).result).toBe(true);
      expect(Buffer.from((await sw.decrypt({ algorithm: 'RSA-OAEP-256', ciphertext: swCiphertext })).result).toString()).toBe(
        'software',
      );
      expect((await swEc.sign('ES256K', digest)).result).toHaveLength(64);

      // HSM keys: 503 with Retry-After, through the SDK...
      for (const attempt of [
        () => ec.sign('ES256', digest),
        () => rsa.sign('RS256', digest),
        () => rsa.decrypt({ algorithm: 'RSA-OAEP-256', ciphertext: hsmCiphertext }),
        () => rsa.unwrapKey('RSA-OAEP', hsmCiphertext),
        () => aes.encrypt({ algorithm: 'A256GCM', plaintext: Buffer.from('x') }),
        () => aes.wrapKey('A256KW', randomBytes(32)),
      ]) {
        const err = await expectRestError(attempt(), 503);
        const retryAfter = err.response?.headers.get('retry-after');
        expect(retryAfter, err.message).toMatch(/^\d+$/);
        expect(Number(retryAfter)).toBeGreaterThan(0);
      }
      // ...and raw.
      const raw = await vaultRequest(`/keys/${ecHsm.name}/sign`, {
        method: 'POST',
        token,
        body: { alg: 'ES256', value: b64url(digest) },
      });
      expect(raw.status, raw.text).toBe(503);
      expect(raw.headers['retry-after']).toMatch(/^\d+$/);
      expect(raw.json<{ error: { code: string; message: string } }>().error.code).toBeTruthy();
      // Nothing new can be made in the HSM either, and nothing half-made is left behind.
      const refusedName = uniqueName('outage-new-hsm');
      await expectRestError(noRetry.createEcKey(refusedName, { hsm: true }), 503);
      await expectRestError(client.getKey(refusedName), 404);

      // Public operations of HSM keys need no HSM.
      expect((await ec.verify('ES256', digest, hsmSignature)).result).toBe(true);
      expect(nodeVerify('sha256', message, { key: nodePublicKey(ecHsm.key!), dsaEncoding: 'ieee-p1363' }, hsmSignature)).toBe(
        true,
      );
    } finally {
      await bridge.start();
    }

    // Healed, without restarting the Worker.
    const signed = await ec.sign('ES256', digest);
    expect(nodeVerify('sha256', message, { key: nodePublicKey(ecHsm.key!), dsaEncoding: 'ieee-p1363' }, signed.result)).toBe(
      true,
    );
    expect(Buffer.from((await rsa.decrypt({ algorithm: 'RSA-OAEP-256', ciphertext: hsmCiphertext })).result).toString()).toBe(
      'hsm',
    );
    const e = await aes.encrypt({ algorithm: 'A256GCM', plaintext: Buffer.from('back') });
    expect(
      Buffer.from(
        (await aes.decrypt({ algorithm: 'A256GCM', ciphertext: e.result, iv: e.iv!, authenticationTag: e.authenticationTag! }))
          .result,
      ).toString(),
    ).toBe('back');
  });
});
