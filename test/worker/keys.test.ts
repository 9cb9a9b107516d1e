/**
 * The Keys API over HTTP: create, import, get, update, list, delete, recover, purge, backup and
 * restore, in Azure's shapes.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { BridgeClient, bridgeStats } from '../../src/crypto/bridge-client';
import { fromBase64Url, toBase64Url } from '../../src/core/encoding';
import { d1Stats } from '../../src/storage/db';
import { API, call, env, json, setupVault } from './helpers';

let token: string;
let origin: string;
let vault: string;

beforeAll(async () => {
  ({ token, origin, vault } = await setupVault());
});

const DOWN = { BRIDGE_URL: 'http://127.0.0.1:9' }; // nothing listens there: the bridge is down
const PRIVATE_FIELDS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 't', 'key_hsm'];

const url = (path: string) => `${origin}${path}${path.includes('?') ? '&' : '?'}${API}`;
const post = (path: string, body: unknown = {}, opts: { env?: Record<string, string> } = {}) =>
  call('POST', url(path), { token, body, ...opts });
const get = (path: string) => call('GET', url(path), { token });
const create = async (name: string, body: Record<string, unknown>) => {
  const res = await post(`/keys/${name}/create`, body);
  if (res.status !== 200) throw new Error(`create ${name}: ${res.status} ${await res.text()}`);
  return json(res);
};
const versionOf = (kid: string) => kid.split('/').pop()!;
const b64 = (bytes: Uint8Array | ArrayBuffer) => toBase64Url(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes));
const sha = async (hash: string, data: string) =>
  new Uint8Array(await crypto.subtle.digest(hash, new TextEncoder().encode(data)));

/** The vault's public key as WebCrypto sees it: an independent verifier of the vault's work. */
async function webCryptoPublic(
  jwk: Record<string, string>,
  algorithm: { name: string; hash?: string; namedCurve?: string },
  usage: 'verify' | 'encrypt',
) {
  const { kid: _kid, key_ops: _ops, ...pub } = jwk;
  return crypto.subtle.importKey('jwk', { ...pub, kty: pub.kty!.replace('-HSM', '') }, algorithm, true, [usage]);
}

describe('create and read', () => {
  it('creates every key type with Azure defaults and never returns private material', async () => {
    const cases: Array<[Record<string, unknown>, Record<string, unknown>]> = [
      [{ kty: 'RSA' }, { kty: 'RSA', key_ops: ['encrypt', 'decrypt', 'sign', 'verify', 'wrapKey', 'unwrapKey'] }],
      [{ kty: 'EC' }, { kty: 'EC', crv: 'P-256', key_ops: ['sign', 'verify'] }],
      [
        { kty: 'EC', crv: 'P-256K' },
        { kty: 'EC', crv: 'P-256K' },
      ],
      [{ kty: 'RSA-HSM' }, { kty: 'RSA-HSM' }],
      [
        { kty: 'EC-HSM', crv: 'P-384' },
        { kty: 'EC-HSM', crv: 'P-384' },
      ],
      [
        { kty: 'oct-HSM', key_size: 256 },
        { kty: 'oct-HSM', key_ops: ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey'] },
      ],
    ];
    for (const [i, [body, expected]] of cases.entries()) {
      const bundle = await create(`typed-${i}`, body);
      expect(bundle.key).toMatchObject(expected);
      expect(bundle.key.kid).toMatch(new RegExp(`^${origin}/keys/typed-${i}/[0-9a-f]{32}$`));
      for (const field of PRIVATE_FIELDS) expect(bundle.key).not.toHaveProperty(field);
      expect(bundle.attributes).toMatchObject({ enabled: true, recoveryLevel: 'Recoverable+Purgeable', recoverableDays: 90 });
      if (String(body.kty).startsWith('RSA')) expect(fromBase64Url(bundle.key.n).length).toBe(256);
      if (body.kty === 'oct-HSM') expect(bundle.key).not.toHaveProperty('n');
      const read = await json(await get(`/keys/typed-${i}/`));
      expect(read.key).toEqual(bundle.key);
    }
  });

  it('refuses unsupported types, sizes, curves, exponents and key_ops with 400, writing nothing', async () => {
    const bad: Array<Record<string, unknown>> = [
      { kty: 'oct' },
      { kty: 'DSA' },
      { kty: 'RSA', key_size: 1024 },
      { kty: 'RSA', public_exponent: 3 },
      { kty: 'EC', crv: 'P-192' },
      { kty: 'oct-HSM', key_size: 512 },
      { kty: 'EC', key_ops: ['encrypt'] },
      { kty: 'RSA', key_ops: ['fly'] },
      { kty: 'RSA', tags: { a: 'x'.repeat(300) } },
      // An own `__proto__` name (as JSON.parse makes it) with an object value: refused like any other.
      { kty: 'RSA', tags: JSON.parse('{"__proto__": {"x": "y"}}') },
    ];
    for (const body of bad) {
      const res = await post('/keys/refused/create', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect((await json(res)).error.code).toBe('BadParameter');
    }
    expect((await get('/keys/refused')).status).toBe(404);
    expect((await post('/keys/bad_name!/create', { kty: 'RSA' })).status).toBe(400);
  });

  it('keeps versions: latest by default, each by id, listed oldest first in pages', async () => {
    const first = await create('versioned', { kty: 'EC', tags: { v: '1' } });
    const second = await create('versioned', { kty: 'EC', crv: 'P-521' });
    expect((await json(await get('/keys/versioned'))).key.kid).toBe(second.key.kid);
    const old = await json(await get(`/keys/versioned/${versionOf(first.key.kid)}`));
    expect(old.key.crv).toBe('P-256');
    expect(old.tags).toEqual({ v: '1' });
    // Oldest first by creation second; versions made within one second come in version-id order.
    const page1 = await json(await get('/keys/versioned/versions?maxresults=1'));
    expect(page1.value).toHaveLength(1);
    const page2 = await json(await call('GET', page1.nextLink, { token }));
    expect(page2.nextLink).toBeNull();
    expect([...page1.value, ...page2.value].map((i: any) => i.kid).sort()).toEqual([first.key.kid, second.key.kid].sort());
    expect(page1.value[0].attributes.created).toBeLessThanOrEqual(page2.value[0].attributes.created);
    const list = await json(await get('/keys?maxresults=25'));
    expect(list.value.some((i: any) => i.kid === `${origin}/keys/versioned`)).toBe(true);
    expect(JSON.stringify(list)).not.toMatch(/"(n|x|d)":/);
  });

  it('updates key_ops, attributes and tags of a version', async () => {
    await create('updatable', { kty: 'RSA' });
    const res = await call('PATCH', url('/keys/updatable/'), {
      token,
      body: { key_ops: ['sign', 'verify'], attributes: { enabled: false, exp: 4102444800 }, tags: { team: 'a' } },
    });
    expect(res.status).toBe(200);
    const updated = await json(res);
    expect(updated.key.key_ops).toEqual(['sign', 'verify']);
    expect(updated.attributes).toMatchObject({ enabled: false, exp: 4102444800 });
    expect(updated.tags).toEqual({ team: 'a' });
    const refused = await call('PATCH', url('/keys/updatable'), { token, body: { key_ops: ['derive'] } });
    expect(refused.status).toBe(400);
  });
});

describe('cryptographic operations', () => {
  it('signs digests with software and HSM keys; WebCrypto verifies; the vault verifies and rejects tampering', async () => {
    const message = 'the quick brown fox';
    const cases = [
      {
        kty: 'RSA',
        alg: 'RS256',
        hash: 'SHA-256',
        imp: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
        ver: { name: 'RSASSA-PKCS1-v1_5' },
      },
      {
        kty: 'RSA-HSM',
        alg: 'RS256',
        hash: 'SHA-256',
        imp: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
        ver: { name: 'RSASSA-PKCS1-v1_5' },
      },
      {
        kty: 'RSA',
        alg: 'PS384',
        hash: 'SHA-384',
        imp: { name: 'RSA-PSS', hash: 'SHA-384' },
        ver: { name: 'RSA-PSS', saltLength: 48 },
      },
      {
        kty: 'RSA-HSM',
        alg: 'PS512',
        hash: 'SHA-512',
        imp: { name: 'RSA-PSS', hash: 'SHA-512' },
        ver: { name: 'RSA-PSS', saltLength: 64 },
      },
      {
        kty: 'EC',
        crv: 'P-256',
        alg: 'ES256',
        hash: 'SHA-256',
        imp: { name: 'ECDSA', namedCurve: 'P-256' },
        ver: { name: 'ECDSA', hash: 'SHA-256' },
      },
      {
        kty: 'EC-HSM',
        crv: 'P-384',
        alg: 'ES384',
        hash: 'SHA-384',
        imp: { name: 'ECDSA', namedCurve: 'P-384' },
        ver: { name: 'ECDSA', hash: 'SHA-384' },
      },
      {
        kty: 'EC',
        crv: 'P-521',
        alg: 'ES512',
        hash: 'SHA-512',
        imp: { name: 'ECDSA', namedCurve: 'P-521' },
        ver: { name: 'ECDSA', hash: 'SHA-512' },
      },
    ] as const;
    for (const [i, c] of cases.entries()) {
      const name = `signer-${i}`;
      const bundle = await create(name, { kty: c.kty, ...('crv' in c ? { crv: c.crv } : {}) });
      const digest = await sha(c.hash, message);
      const res = await post(`/keys/${name}/${versionOf(bundle.key.kid)}/sign`, { alg: c.alg, value: b64(digest) });
      expect(res.status, c.alg).toBe(200);
      const signed = await json(res);
      expect(signed.kid).toBe(bundle.key.kid);
      const publicKey = await webCryptoPublic(bundle.key, c.imp as never, 'verify');
      const sig = fromBase64Url(signed.value);
      expect(
        await crypto.subtle.verify(c.ver as never, publicKey, sig, new TextEncoder().encode(message)),
        `${c.kty} ${c.alg}`,
      ).toBe(true);

      const verify = (value: Uint8Array, d = digest) =>
        post(`/keys/${name}/verify`, { alg: c.alg, digest: b64(d), value: b64(value) });
      expect((await json(await verify(sig))).value).toBe(true);
      const tampered = sig.slice();
      tampered[5]! ^= 1;
      expect((await json(await verify(tampered))).value).toBe(false);
      expect((await json(await verify(sig, await sha(c.hash, 'another message')))).value).toBe(false);
    }
  });

  it('encrypts and decrypts with RSA (software and HSM), interoperating with WebCrypto RSA-OAEP', async () => {
    for (const kty of ['RSA', 'RSA-HSM']) {
      const name = `rsa-enc-${kty}`;
      const bundle = await create(name, { kty });
      const plaintext = new TextEncoder().encode(`secret for ${kty}`);
      for (const alg of ['RSA-OAEP', 'RSA-OAEP-256', 'RSA1_5']) {
        const enc = await json(await post(`/keys/${name}/encrypt`, { alg, value: b64(plaintext) }));
        const dec = await post(`/keys/${name}/decrypt`, { alg, value: enc.value });
        expect(dec.status, `${kty} ${alg}`).toBe(200);
        expect(fromBase64Url((await json(dec)).value)).toEqual(plaintext);
      }
      // WebCrypto encrypts under the returned public key; the vault decrypts.
      const pub = await webCryptoPublic(bundle.key, { name: 'RSA-OAEP', hash: 'SHA-256' }, 'encrypt');
      const ct = await crypto.subtle.encrypt({ name: 'RSA-OAEP' }, pub, plaintext);
      const dec = await json(await post(`/keys/${name}/unwrapkey`, { alg: 'RSA-OAEP-256', value: b64(ct) }));
      expect(fromBase64Url(dec.value)).toEqual(plaintext);
      // A damaged ciphertext is a 400, not a server error.
      const bad = new Uint8Array(ct);
      bad[10]! ^= 0xff;
      const refused = await post(`/keys/${name}/decrypt`, { alg: 'RSA-OAEP-256', value: b64(bad) });
      expect(refused.status).toBe(400);
    }
  });

  it('does AES-GCM, CBC, CBCPAD and key wrap with oct-HSM keys; tampering is refused', async () => {
    await create('aes', { kty: 'oct-HSM', key_size: 256 });
    const plaintext = new TextEncoder().encode('sixteen byte msg'); // 16 bytes: valid for unpadded CBC too
    const aad = new TextEncoder().encode('context');
    const gcm = await json(await post('/keys/aes/encrypt', { alg: 'A256GCM', value: b64(plaintext), aad: b64(aad) }));
    expect(fromBase64Url(gcm.iv)).toHaveLength(12);
    expect(fromBase64Url(gcm.tag)).toHaveLength(16);
    const back = await json(
      await post('/keys/aes/decrypt', { alg: 'A256GCM', value: gcm.value, iv: gcm.iv, tag: gcm.tag, aad: b64(aad) }),
    );
    expect(fromBase64Url(back.value)).toEqual(plaintext);
    const wrongAad = await post('/keys/aes/decrypt', {
      alg: 'A256GCM',
      value: gcm.value,
      iv: gcm.iv,
      tag: gcm.tag,
      aad: b64(new Uint8Array(3)),
    });
    expect(wrongAad.status).toBe(400);
    const noTag = await post('/keys/aes/decrypt', { alg: 'A256GCM', value: gcm.value, iv: gcm.iv });
    expect(noTag.status).toBe(400);

    const iv = crypto.getRandomValues(new Uint8Array(16));
    for (const alg of ['A256CBC', 'A256CBCPAD']) {
      const enc = await json(await post('/keys/aes/encrypt', { alg, value: b64(plaintext), iv: b64(iv) }));
      const dec = await json(await post('/keys/aes/decrypt', { alg, value: enc.value, iv: b64(iv) }));
      expect(fromBase64Url(dec.value), alg).toEqual(plaintext);
    }

    const cek = crypto.getRandomValues(new Uint8Array(32));
    const wrapped = await json(await post('/keys/aes/wrapkey', { alg: 'A256KW', value: b64(cek) }));
    expect(fromBase64Url(wrapped.value)).toHaveLength(40);
    const unwrapped = await json(await post('/keys/aes/unwrapkey', { alg: 'A256KW', value: wrapped.value }));
    expect(fromBase64Url(unwrapped.value)).toEqual(cek);
    const damaged = fromBase64Url(wrapped.value);
    damaged[0]! ^= 1;
    expect((await post('/keys/aes/unwrapkey', { alg: 'A256KW', value: b64(damaged) })).status).toBe(400);
    expect((await post('/keys/aes/encrypt', { alg: 'A128GCM', value: b64(plaintext) })).status).toBe(400);
  });

  it('enforces key_ops, algorithm, digest size, enabled and the nbf/exp window as Azure does', async () => {
    const ec = await create('rules-ec', { kty: 'EC', crv: 'P-256', key_ops: ['verify'] });
    const digest = await sha('SHA-256', 'x');
    const sign = (name: string, alg: string, d = digest) => post(`/keys/${name}/sign`, { alg, value: b64(d) });
    const refused = await sign('rules-ec', 'ES256');
    expect(refused.status).toBe(403);
    expect((await json(refused)).error.code).toBe('Forbidden');

    await create('rules-rsa', { kty: 'RSA' });
    expect((await sign('rules-rsa', 'ES256')).status).toBe(400); // algorithm of another key type
    expect((await sign('rules-rsa', 'HS256')).status).toBe(400); // not a vault algorithm
    expect((await sign('rules-rsa', 'RS256', digest.slice(0, 31))).status).toBe(400);
    expect((await sign('rules-rsa', 'RS512', digest)).status).toBe(400); // 32 bytes for a SHA-512 alg
    await create('rules-p384', { kty: 'EC', crv: 'P-384' });
    expect((await sign('rules-p384', 'ES256')).status).toBe(400); // curve and algorithm disagree
    expect((await post('/keys/rules-ec/encrypt', { alg: 'RSA-OAEP', value: 'AA' })).status).toBe(403);

    const patch = (name: string, attributes: Record<string, unknown>) =>
      call('PATCH', url(`/keys/${name}`), { token, body: { attributes } });
    await patch('rules-rsa', { enabled: false });
    expect((await sign('rules-rsa', 'RS256')).status).toBe(403);
    await patch('rules-rsa', { enabled: true, exp: Math.floor(Date.now() / 1000) - 10 });
    const expired = await sign('rules-rsa', 'RS256');
    expect(expired.status).toBe(403);
    // Outside its window a key still verifies and decrypts (so earlier data stays readable).
    await patch('rules-rsa', { exp: null });
    const sig = (await json(await sign('rules-rsa', 'RS256'))).value;
    const enc = (await json(await post('/keys/rules-rsa/encrypt', { alg: 'RSA-OAEP', value: 'aGk' }))).value;
    await patch('rules-rsa', { exp: Math.floor(Date.now() / 1000) - 10 });
    expect((await json(await post('/keys/rules-rsa/verify', { alg: 'RS256', digest: b64(digest), value: sig }))).value).toBe(
      true,
    );
    expect((await json(await post('/keys/rules-rsa/decrypt', { alg: 'RSA-OAEP', value: enc }))).value).toBe('aGk');
    expect((await post('/keys/rules-rsa/encrypt', { alg: 'RSA-OAEP', value: 'aGk' })).status).toBe(403);
    expect(ec.key.key_ops).toEqual(['verify']);
  });

  it('serves a warm software-key sign with no D1 query and no bridge call (the sealed key row is cached)', async () => {
    await create('hot', { kty: 'EC' });
    const digest = b64(await sha('SHA-256', 'hot'));
    await post('/keys/hot/sign', { alg: 'ES256', value: digest }); // warms the data key and the row
    const before = { d1: d1Stats.statements, bridge: bridgeStats.calls };
    // `//sign` is how the SDK addresses the latest version when its key id has none.
    const res = await post('/keys/hot//sign', { alg: 'ES256', value: digest });
    expect(res.status).toBe(200);
    expect(d1Stats.statements - before.d1).toBe(0);
    expect(bridgeStats.calls - before.bridge).toBe(0);
  });

  it('keeps software keys working when the bridge is down; HSM keys answer 503 with Retry-After', async () => {
    await create('sw-outage', { kty: 'RSA' });
    await create('hsm-outage', { kty: 'RSA-HSM' });
    const digest = b64(await sha('SHA-256', 'outage'));
    await post('/keys/sw-outage/sign', { alg: 'RS256', value: digest }); // warm the data key
    const sw = await post('/keys/sw-outage/sign', { alg: 'RS256', value: digest }, { env: DOWN });
    expect(sw.status).toBe(200);
    const hsm = await post('/keys/hsm-outage/sign', { alg: 'RS256', value: digest }, { env: DOWN });
    expect(hsm.status).toBe(503);
    expect(hsm.headers.get('retry-after')).toMatch(/^\d+$/);
    // Public operations of an HSM key need no bridge.
    const enc = await post('/keys/hsm-outage/encrypt', { alg: 'RSA-OAEP-256', value: 'aGk' }, { env: DOWN });
    expect(enc.status).toBe(200);
    const created = await post('/keys/hsm-new/create', { kty: 'EC-HSM' }, { env: DOWN });
    expect(created.status).toBe(503);
    expect((await get('/keys/hsm-new')).status).toBe(404);
  });
});

describe('import', () => {
  it('imports RSA and EC private keys, in software or into the HSM, and uses them', async () => {
    const rsa = (await crypto.subtle.generateKey(
      { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
      true,
      ['sign', 'verify'],
    )) as CryptoKeyPair;
    const ec = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'sign',
      'verify',
    ])) as CryptoKeyPair;
    const rsaJwk = (await crypto.subtle.exportKey('jwk', rsa.privateKey)) as JsonWebKey;
    const ecJwk = (await crypto.subtle.exportKey('jwk', ec.privateKey)) as JsonWebKey;
    const message = new TextEncoder().encode('imported');
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', message));
    for (const [name, jwk, hsm, alg, verifier, params] of [
      ['imp-rsa', rsaJwk, false, 'RS256', rsa.publicKey, { name: 'RSASSA-PKCS1-v1_5' }],
      ['imp-rsa-hsm', rsaJwk, true, 'RS256', rsa.publicKey, { name: 'RSASSA-PKCS1-v1_5' }],
      ['imp-ec', ecJwk, false, 'ES256', ec.publicKey, { name: 'ECDSA', hash: 'SHA-256' }],
      ['imp-ec-hsm', ecJwk, true, 'ES256', ec.publicKey, { name: 'ECDSA', hash: 'SHA-256' }],
    ] as const) {
      const { alg: _a, ext: _e, key_ops: _k, ...key } = jwk;
      const res = await call('PUT', url(`/keys/${name}`), { token, body: { key, Hsm: hsm } });
      expect(res.status, name).toBe(200);
      const bundle = await json(res);
      expect(bundle.key.kty).toBe(`${key.kty}${hsm ? '-HSM' : ''}`);
      for (const field of PRIVATE_FIELDS) expect(bundle.key).not.toHaveProperty(field);
      const signed = await json(await post(`/keys/${name}/sign`, { alg, value: b64(digest) }));
      expect(await crypto.subtle.verify(params as never, verifier, fromBase64Url(signed.value), message), name).toBe(true);
    }
  });

  it('refuses public-only, inconsistent and symmetric JWKs with 400', async () => {
    const ec = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign'])) as CryptoKeyPair;
    const jwk = (await crypto.subtle.exportKey('jwk', ec.privateKey)) as unknown as Record<string, string>;
    const other = (await crypto.subtle.exportKey(
      'jwk',
      ((await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign'])) as CryptoKeyPair).privateKey,
    )) as unknown as Record<string, string>;
    for (const key of [
      { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y },
      { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y, d: other.d },
      { kty: 'oct', k: 'AAAAAAAAAAAAAAAAAAAAAA' },
    ]) {
      const res = await call('PUT', url('/keys/imp-bad'), { token, body: { key } });
      expect(res.status).toBe(400);
    }
    expect((await get('/keys/imp-bad')).status).toBe(404);
  });
});

describe('lifecycle', () => {
  it('soft-deletes, lists, recovers and purges; an HSM key stays usable until purged', async () => {
    await create('life', { kty: 'EC-HSM' });
    const digest = b64(await sha('SHA-256', 'life'));
    const deleted = await json(await call('DELETE', url('/keys/life'), { token }));
    expect(deleted.recoveryId).toBe(`${origin}/deletedkeys/life`);
    expect(deleted.scheduledPurgeDate - deleted.deletedDate).toBe(90 * 86400);
    expect((await get('/keys/life')).status).toBe(404);
    expect((await post('/keys/life/sign', { alg: 'ES256', value: digest })).status).toBe(404);
    expect((await post('/keys/life/create', { kty: 'EC' })).status).toBe(409);
    expect((await json(await get('/deletedkeys/life'))).key.kid).toBe(deleted.key.kid);
    expect((await json(await get('/deletedkeys'))).value.map((i: any) => i.kid)).toContain(`${origin}/keys/life`);

    expect((await post('/deletedkeys/life/recover')).status).toBe(200);
    expect((await post('/keys/life/sign', { alg: 'ES256', value: digest })).status).toBe(200);

    await call('DELETE', url('/keys/life'), { token });
    const handle = (await env.DB.prepare('SELECT hsm_handle FROM key_versions WHERE name = ?')
      .bind('life')
      .first<{ hsm_handle: string }>())!.hsm_handle;
    const purged = await call('DELETE', url('/deletedkeys/life'), { token });
    expect(purged.status).toBe(204);
    expect((await get('/deletedkeys/life')).status).toBe(404);
    // The token object is destroyed with it.
    const bridge = new BridgeClient(env.BRIDGE_URL, env.BRIDGE_HMAC_SECRET);
    await expect(bridge.sign(handle, 'ES256', fromBase64Url(digest))).rejects.toMatchObject({ code: 'DataIntegrityError' });
  });

  it('refuses purge under purge protection, and keeps the key', async () => {
    const { token: t, origin: o } = await setupVault({ enablePurgeProtection: true });
    await call('POST', `${o}/keys/guarded/create?${API}`, { token: t, body: { kty: 'RSA-HSM' } });
    await call('DELETE', `${o}/keys/guarded?${API}`, { token: t });
    const res = await call('DELETE', `${o}/deletedkeys/guarded?${API}`, { token: t });
    expect(res.status).toBe(403);
    expect((await call('POST', `${o}/deletedkeys/guarded/recover?${API}`, { token: t })).status).toBe(200);
    const digest = b64(await sha('SHA-256', 'guarded'));
    expect(
      (await call('POST', `${o}/keys/guarded/sign?${API}`, { token: t, body: { alg: 'RS256', value: digest } })).status,
    ).toBe(200);
  });

  it('backs up and restores software keys; HSM keys refuse backup; tampered blobs are refused', async () => {
    const made = await create('bk', { kty: 'EC', crv: 'P-256K' });
    const digest = b64(await sha('SHA-256', 'backup'));
    const sig = (await json(await post('/keys/bk/sign', { alg: 'ES256K', value: digest }))).value;
    const { value: blob } = await json(await post('/keys/bk/backup'));
    expect(blob).not.toContain(made.key.x);
    await call('DELETE', url('/keys/bk'), { token });
    expect((await post('/keys/restore', { value: blob })).status).toBe(409); // name still taken while deleted
    await call('DELETE', url('/deletedkeys/bk'), { token });
    const restored = await post('/keys/restore', { value: blob });
    expect(restored.status).toBe(200);
    expect((await json(restored)).key.kid).toBe(made.key.kid);
    expect((await json(await post('/keys/bk/verify', { alg: 'ES256K', digest, value: sig }))).value).toBe(true);
    expect((await post('/keys/bk/sign', { alg: 'ES256K', value: digest })).status).toBe(200);

    const tampered = blob.slice(0, 40) + (blob[40] === 'A' ? 'B' : 'A') + blob.slice(41);
    expect((await post('/keys/restore', { value: tampered })).status).toBe(400);

    await create('bk-hsm', { kty: 'RSA-HSM' });
    const refused = await post('/keys/bk-hsm/backup');
    expect(refused.status).toBe(400);
    expect((await json(refused)).error.message).toMatch(/HSM/);
  });

  it('stores no private material in the clear', async () => {
    await create('at-rest', { kty: 'RSA' });
    await create('at-rest-hsm', { kty: 'RSA-HSM' });
    const rows = await env.DB.prepare(
      'SELECT kty, public_jwk, private_ciphertext, hsm_handle FROM key_versions WHERE vault_id = (SELECT id FROM vaults WHERE name = ?)',
    )
      .bind(vault)
      .all<{ kty: string; public_jwk: string | null; private_ciphertext: string | null; hsm_handle: string | null }>();
    expect(rows.results.length).toBeGreaterThan(10);
    for (const row of rows.results) {
      if (row.public_jwk) for (const field of PRIVATE_FIELDS) expect(JSON.parse(row.public_jwk)).not.toHaveProperty(field);
      if (row.kty.endsWith('-HSM')) {
        expect(row.private_ciphertext).toBeNull();
        expect(row.hsm_handle).toMatch(/^[0-9a-f]{32}$/);
      } else {
        expect(row.private_ciphertext).not.toMatch(/"d"/);
      }
    }
  });
});

describe('rng', () => {
  it('returns 1–128 random bytes from the HSM and refuses other counts', async () => {
    const one = await json(await post('/rng', { count: 1 }));
    expect(fromBase64Url(one.value)).toHaveLength(1);
    const many = await json(await post('/rng', { count: 128 }));
    expect(fromBase64Url(many.value)).toHaveLength(128);
    expect((await post('/rng', { count: 0 })).status).toBe(400);
    expect((await post('/rng', { count: 129 })).status).toBe(400);
    expect((await post('/rng', { count: 8 }, { env: DOWN })).status).toBe(503);
  });
});

describe('lifetime wiring', () => {
  const pollEvents = async (name: string, expected: number) => {
    for (let i = 0; i < 80; i++) {
      const rows = await env.DB.prepare('SELECT event_type, version FROM events WHERE vault = ? AND subject = ? COLLATE NOCASE')
        .bind(vault, name)
        .all<{ event_type: string; version: string }>();
      if (rows.results.length >= expected) return rows.results;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`events of ${name} did not arrive`);
  };
  const dueAt = async (name: string) =>
    (await env.DB.prepare(
      'SELECT rotation_due_at AS due FROM keys WHERE name = ? AND vault_id = (SELECT id FROM vaults WHERE name = ?)',
    )
      .bind(name, vault)
      .first<{ due: number | null }>())!.due;

  it('announces every created and imported version with KeyNewVersionCreated', async () => {
    const first = await create('announced', { kty: 'EC' });
    const second = await create('announced', { kty: 'EC' });
    const events = await pollEvents('announced', 2);
    expect(events.map((e) => e.event_type)).toEqual([
      'Microsoft.KeyVault.KeyNewVersionCreated',
      'Microsoft.KeyVault.KeyNewVersionCreated',
    ]);
    expect(events.map((e) => e.version).sort()).toEqual([versionOf(first.key.kid), versionOf(second.key.kid)].sort());
  });

  it('schedules the default near-expiry notice from the latest version, and follows exp changes', async () => {
    const t = Math.floor(Date.now() / 1000);
    await create('scheduled', { kty: 'RSA', attributes: { exp: t + 60 * 86400 } });
    expect(await dueAt('scheduled')).toBe(t + 30 * 86400); // Azure's default policy: Notify 30 days before expiry
    await call('PATCH', url('/keys/scheduled'), { token, body: { attributes: { exp: t + 90 * 86400 } } });
    expect(await dueAt('scheduled')).toBe(t + 60 * 86400);
    await call('PATCH', url('/keys/scheduled'), { token, body: { attributes: { exp: null } } });
    expect(await dueAt('scheduled')).toBeNull();
  });
});
