/**
 * Every KeyClient method of @azure/keyvault-keys, unmodified, against the running stack: create
 * (every type), import, get, update, list, versions, soft delete, recover, purge, backup and
 * restore, random bytes, rotation and rotation policies; and the refusals Azure answers for
 * cryptographic operations the key may not perform (key_ops, algorithm, digest size, disabled,
 * expired, deleted).
 *
 * The cryptography of each key type is in keys-crypto.e2e.test.ts (software keys) and
 * keys-hsm.e2e.test.ts (HSM keys, bridge outage).
 */
import { createHash, generateKeyPairSync, randomBytes, verify as nodeVerify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { KnownKeyTypes, type KeyClient, type KeyVaultKey } from '@azure/keyvault-keys';
import {
  collect,
  cryptoClient,
  expectRestError,
  keyClient,
  nodePublicKey,
  PRIVATE_JWK_FIELDS,
  stackInfo,
  toSdkJwk,
  uniqueName,
  vaultRequest,
} from '../support/e2e.js';

const FAST_POLL = { intervalInMs: 100 };
const RSA_OPS = ['decrypt', 'encrypt', 'sign', 'unwrapKey', 'verify', 'wrapKey'];
const EC_OPS = ['sign', 'verify'];
const OCT_OPS = ['decrypt', 'encrypt', 'unwrapKey', 'wrapKey'];

const sha256 = (data: Uint8Array) => new Uint8Array(createHash('sha256').update(data).digest());
const sha384 = (data: Uint8Array) => new Uint8Array(createHash('sha384').update(data).digest());
const sha512 = (data: Uint8Array) => new Uint8Array(createHash('sha512').update(data).digest());
const sorted = (ops: string[] | undefined) => [...(ops ?? [])].sort();
/** A whole-second date `seconds` from now (Azure's attributes carry seconds). */
const secondsFromNow = (seconds: number) => new Date(Math.floor(Date.now() / 1000 + seconds) * 1000);

async function deleteAndWait(client: KeyClient, name: string) {
  const poller = await client.beginDeleteKey(name, FAST_POLL);
  return poller.pollUntilDone();
}

function expectNoPrivateMaterial(key: KeyVaultKey | { key?: Record<string, unknown> }) {
  const jwk = key.key as Record<string, unknown> | undefined;
  expect(jwk).toBeDefined();
  for (const field of PRIVATE_JWK_FIELDS) expect(jwk![field], `key.${field}`).toBeUndefined();
}

describe('KeyClient against the local vault', () => {
  const client = () => keyClient();
  const vaultUrl = () => stackInfo().credentials.vaultUrl;

  it('createKey, createRsaKey, createEcKey and createOctKey make every supported type; ids and attributes follow Azure', async () => {
    const rsaName = uniqueName('create-rsa');
    const expiresOn = secondsFromNow(86_400);
    const notBefore = secondsFromNow(-60);
    const rsa = await client().createKey(rsaName, KnownKeyTypes.RSA, {
      keySize: 2048,
      keyOps: ['sign', 'verify'],
      tags: { env: 'e2e', team: 'vault' },
      expiresOn,
      notBefore,
    });
    expect(rsa.name).toBe(rsaName);
    expect(rsa.properties.version).toMatch(/^[0-9a-f]{32}$/);
    expect(rsa.id).toBe(`${vaultUrl()}/keys/${rsaName}/${rsa.properties.version}`);
    expect(rsa.key!.kid).toBe(rsa.id);
    expect(rsa.properties.id).toBe(rsa.id);
    expect(rsa.properties.vaultUrl).toBe(vaultUrl());
    expect(rsa.keyType).toBe('RSA');
    expect(rsa.key!.n).toHaveLength(256);
    expect(Array.from(rsa.key!.e!)).toEqual([1, 0, 1]);
    expect(sorted(rsa.keyOperations)).toEqual(['sign', 'verify']);
    expect(rsa.properties.enabled).toBe(true);
    expect(rsa.properties.tags).toEqual({ env: 'e2e', team: 'vault' });
    expect(rsa.properties.expiresOn?.getTime()).toBe(expiresOn.getTime());
    expect(rsa.properties.notBefore?.getTime()).toBe(notBefore.getTime());
    expect(Math.abs(rsa.properties.createdOn!.getTime() - Date.now())).toBeLessThan(120_000);
    expect(rsa.properties.updatedOn!.getTime()).toBe(rsa.properties.createdOn!.getTime());
    expect(rsa.properties.recoverableDays).toBe(90);
    expect(rsa.properties.recoveryLevel).toBe('Recoverable+Purgeable');
    expect(rsa.properties.exportable).toBe(false);
    expectNoPrivateMaterial(rsa);

    const rsa3072 = await client().createRsaKey(uniqueName('create-rsa3072'), { keySize: 3072 });
    expect(rsa3072.keyType).toBe('RSA');
    expect(rsa3072.key!.n).toHaveLength(384);
    expect(sorted(rsa3072.keyOperations)).toEqual(RSA_OPS); // Azure's defaults: everything RSA can do

    const ec = await client().createEcKey(uniqueName('create-ec'), { curve: 'P-384' });
    expect(ec.keyType).toBe('EC');
    expect(ec.key!.crv).toBe('P-384');
    expect(ec.key!.x).toHaveLength(48);
    expect(ec.key!.y).toHaveLength(48);
    expect(sorted(ec.keyOperations)).toEqual(EC_OPS);
    expectNoPrivateMaterial(ec);

    const ecDefault = await client().createKey(uniqueName('create-ec-default'), KnownKeyTypes.EC);
    expect(ecDefault.key!.crv).toBe('P-256');

    const rsaHsm = await client().createRsaKey(uniqueName('create-rsa-hsm'), { hsm: true });
    expect(rsaHsm.keyType).toBe('RSA-HSM');
    expect(rsaHsm.key!.n).toHaveLength(256); // 2048 by default
    expectNoPrivateMaterial(rsaHsm);

    const ecHsm = await client().createEcKey(uniqueName('create-ec-hsm'), { curve: 'P-256', hsm: true });
    expect(ecHsm.keyType).toBe('EC-HSM');
    expect(ecHsm.key!.crv).toBe('P-256');
    expect(ecHsm.key!.x).toHaveLength(32);

    const octName = uniqueName('create-oct-hsm');
    const oct = await client().createOctKey(octName, { hsm: true, keySize: 128 });
    expect(oct.keyType).toBe('oct-HSM');
    expect(oct.id).toBe(`${vaultUrl()}/keys/${octName}/${oct.properties.version}`);
    expect(sorted(oct.keyOperations)).toEqual(OCT_OPS);
    expectNoPrivateMaterial(oct);
  });

  it('refuses what cannot be created with 400: software oct keys, unsupported sizes and curves, key_ops the type cannot do', async () => {
    await expectRestError(client().createOctKey(uniqueName('bad-oct'), { keySize: 256 }), 400, 'BadParameter');
    await expectRestError(client().createRsaKey(uniqueName('bad-rsa'), { keySize: 1024 }), 400, 'BadParameter');
    // (raw: the SDK 4.10.2 does not send publicExponent)
    const exponent3 = await vaultRequest(`/keys/${uniqueName('bad-exp')}/create`, {
      method: 'POST',
      body: { kty: 'RSA', key_size: 2048, public_exponent: 3 },
    });
    expect(exponent3.status, exponent3.text).toBe(400);
    const exponent65537 = await vaultRequest(`/keys/${uniqueName('exp')}/create`, {
      method: 'POST',
      body: { kty: 'RSA', key_size: 2048, public_exponent: 65537 },
    });
    expect(exponent65537.status, exponent65537.text).toBe(200);
    await expectRestError(client().createEcKey(uniqueName('bad-crv'), { curve: 'P-192' as 'P-256' }), 400, 'BadParameter');
    await expectRestError(client().createOctKey(uniqueName('bad-oct-size'), { hsm: true, keySize: 512 }), 400, 'BadParameter');
    await expectRestError(client().createEcKey(uniqueName('bad-ops'), { keyOps: ['encrypt'] }), 400, 'BadParameter');
    await expectRestError(client().createOctKey(uniqueName('bad-oct-ops'), { hsm: true, keyOps: ['sign'] }), 400, 'BadParameter');
    await expectRestError(client().createKey('not_a_valid_name', KnownKeyTypes.EC), 400, 'BadParameter');
  });

  it('importKey takes RSA and EC private JWKs made by node:crypto, as software or HSM keys; only the public part comes back', async () => {
    const rsaPair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const rsaJwk = rsaPair.privateKey.export({ format: 'jwk' });
    const rsaName = uniqueName('import-rsa');
    const rsa = await client().importKey(rsaName, toSdkJwk(rsaJwk), { tags: { source: 'node' } });
    expect(rsa.name).toBe(rsaName);
    expect(rsa.keyType).toBe('RSA');
    expect(Buffer.from(rsa.key!.n!).toString('base64url')).toBe(rsaJwk.n);
    expect(Buffer.from(rsa.key!.e!).toString('base64url')).toBe(rsaJwk.e);
    expect(sorted(rsa.keyOperations)).toEqual(RSA_OPS);
    expect(rsa.properties.tags).toEqual({ source: 'node' });
    expectNoPrivateMaterial(rsa);

    const ecPair = generateKeyPairSync('ec', { namedCurve: 'P-521' });
    const ecJwk = ecPair.privateKey.export({ format: 'jwk' });
    const ecHsm = await client().importKey(uniqueName('import-ec-hsm'), toSdkJwk(ecJwk), { hardwareProtected: true });
    expect(ecHsm.keyType).toBe('EC-HSM');
    expect(ecHsm.key!.crv).toBe('P-521');
    expect(Buffer.from(ecHsm.key!.x!).toString('base64url')).toBe(ecJwk.x);
    expect(Buffer.from(ecHsm.key!.y!).toString('base64url')).toBe(ecJwk.y);
    expectNoPrivateMaterial(ecHsm);

    // The imported key is that key: what it signs verifies under node's own public key.
    const message = randomBytes(64);
    const signed = await cryptoClient(ecHsm).sign('ES512', sha512(message));
    expect(signed.result).toHaveLength(132);
    expect(nodeVerify('sha512', message, { key: ecPair.publicKey, dsaEncoding: 'ieee-p1363' }, signed.result)).toBe(true);

    // key_ops of the JWK are kept; an import with restricted ops cannot sign.
    const restricted = toSdkJwk(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }));
    restricted.keyOps = ['verify'];
    const verifyOnly = await client().importKey(uniqueName('import-ops'), restricted);
    expect(verifyOnly.keyOperations).toEqual(['verify']);
  });

  it('importKey refuses public-only and inconsistent JWKs with 400', async () => {
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const publicOnly = toSdkJwk(pair.publicKey.export({ format: 'jwk' }));
    await expectRestError(client().importKey(uniqueName('import-public'), publicOnly), 400, 'BadParameter');

    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
    const mixed = toSdkJwk({ ...pair.privateKey.export({ format: 'jwk' }), d: other.d });
    await expectRestError(client().importKey(uniqueName('import-mixed'), mixed), 400, 'BadParameter');
    await expectRestError(
      client().importKey(uniqueName('import-mixed-hsm'), mixed, { hardwareProtected: true }),
      400,
      'BadParameter',
    );

    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
    const otherEc = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
    await expectRestError(
      client().importKey(uniqueName('import-ec-mixed'), toSdkJwk({ ...ec, d: otherEc.d })),
      400,
      'BadParameter',
    );
  });

  it('getKey reads the latest version or any given one; names are case-insensitive; unknown names and versions are 404', async () => {
    const name = uniqueName('GetKey');
    const v1 = await client().createEcKey(name, { curve: 'P-256' });
    const v2 = await client().createEcKey(name, { curve: 'P-384' });
    expect(v2.properties.version).not.toBe(v1.properties.version);

    const latest = await client().getKey(name);
    expect(latest.id).toBe(v2.id);
    expect(latest.key!.crv).toBe('P-384');
    expect(Buffer.from(latest.key!.x!)).toEqual(Buffer.from(v2.key!.x!));

    const first = await client().getKey(name, { version: v1.properties.version! });
    expect(first.id).toBe(v1.id);
    expect(first.key!.crv).toBe('P-256');
    expect(Buffer.from(first.key!.x!)).toEqual(Buffer.from(v1.key!.x!));

    expect((await client().getKey(name.toLowerCase())).id).toBe(v2.id);
    await expectRestError(client().getKey(name, { version: '0'.repeat(32) }), 404, 'KeyNotFound');
    await expectRestError(client().getKey(uniqueName('missing')), 404, 'KeyNotFound');
  });

  it('updateKeyProperties changes enabled, expiresOn, tags and keyOps of one version; the others are untouched', async () => {
    const name = uniqueName('update');
    const v1 = await client().createRsaKey(name, { tags: { v: '1' } });
    const v2 = await client().createRsaKey(name, { tags: { v: '2' } });
    const expiresOn = secondsFromNow(7 * 86_400);

    const updated = await client().updateKeyProperties(name, v1.properties.version!, {
      enabled: false,
      expiresOn,
      tags: { rotated: 'yes' },
      keyOps: ['verify', 'encrypt'],
    });
    expect(updated.id).toBe(v1.id);
    expect(updated.properties.enabled).toBe(false);
    expect(updated.properties.expiresOn?.getTime()).toBe(expiresOn.getTime());
    expect(updated.properties.tags).toEqual({ rotated: 'yes' });
    expect(sorted(updated.keyOperations)).toEqual(['encrypt', 'verify']);
    expect(updated.properties.updatedOn!.getTime()).toBeGreaterThanOrEqual(v1.properties.updatedOn!.getTime());
    expect(Buffer.from(updated.key!.n!)).toEqual(Buffer.from(v1.key!.n!)); // the material is the same

    const reread = await client().getKey(name, { version: v1.properties.version! });
    expect(reread.properties.enabled).toBe(false);
    expect(reread.properties.tags).toEqual({ rotated: 'yes' });
    expect(sorted(reread.keyOperations)).toEqual(['encrypt', 'verify']);

    const other = await client().getKey(name);
    expect(other.id).toBe(v2.id);
    expect(other.properties.enabled).toBe(true);
    expect(other.properties.tags).toEqual({ v: '2' });
    expect(sorted(other.keyOperations)).toEqual(RSA_OPS);

    // Without a version: the latest.
    const latest = await client().updateKeyProperties(name, { tags: { latest: 'true' } });
    expect(latest.id).toBe(v2.id);
    expect(latest.properties.tags).toEqual({ latest: 'true' });

    await expectRestError(
      client().updateKeyProperties(name, v1.properties.version!, { keyOps: ['sign', 'nonsense' as 'sign'] }),
      400,
    );
    await expectRestError(client().updateKeyProperties(uniqueName('nokey'), { enabled: false }), 404, 'KeyNotFound');
  });

  it('listPropertiesOfKeys pages and lists the latest version of each key, without key material', async () => {
    const prefix = uniqueName('list');
    const names = Array.from({ length: 5 }, (_, i) => `${prefix}-${i}`);
    for (const name of names) await client().createEcKey(name, { curve: 'P-256', tags: { list: prefix } });

    const pages: string[][] = [];
    for await (const page of client().listPropertiesOfKeys().byPage({ maxPageSize: 2 })) {
      expect(page.length).toBeLessThanOrEqual(2);
      pages.push(page.map((p) => p.name));
    }
    const paged = pages.flat();
    expect(new Set(paged).size).toBe(paged.length);
    expect(paged).toEqual(expect.arrayContaining(names));
    expect(pages.length).toBeGreaterThanOrEqual(3);

    const mine = (await collect(client().listPropertiesOfKeys())).filter((p) => p.name.startsWith(prefix));
    expect(mine.map((p) => p.name).sort()).toEqual(names);
    for (const p of mine) {
      expect(p.id).toBe(`${vaultUrl()}/keys/${p.name}`);
      expect(p.enabled).toBe(true);
      expect(p.tags).toEqual({ list: prefix });
    }

    const raw = await vaultRequest('/keys?maxresults=25');
    expect(raw.status, raw.text).toBe(200);
    const body = raw.json<{ value: Record<string, unknown>[]; nextLink: string | null }>();
    for (const item of body.value) {
      expect(item).toHaveProperty('kid');
      expect(item).not.toHaveProperty('key');
    }
  });

  it('listPropertiesOfKeyVersions lists every version, over several pages with maxPageSize 2', async () => {
    const name = uniqueName('versions');
    const versions: string[] = [];
    for (let i = 0; i < 5; i++) versions.push((await client().createEcKey(name, { curve: 'P-256' })).properties.version!);

    const pages: string[][] = [];
    for await (const page of client().listPropertiesOfKeyVersions(name).byPage({ maxPageSize: 2 })) {
      expect(page.length).toBeLessThanOrEqual(2);
      pages.push(page.map((p) => p.version!));
    }
    expect(pages.length).toBeGreaterThanOrEqual(3);
    expect(pages.flat().sort()).toEqual([...versions].sort());

    const listed = await collect(client().listPropertiesOfKeyVersions(name));
    expect(listed).toHaveLength(5);
    for (const p of listed) expect(p.id).toBe(`${vaultUrl()}/keys/${name}/${p.version}`);
    expect(await collect(client().listPropertiesOfKeyVersions(uniqueName('none')))).toEqual([]); // Azure: an empty list, not 404
  });

  it('beginDeleteKey soft-deletes; the name is then 409; getDeletedKey and listDeletedKeys see it; beginRecoverDeletedKey brings every version back', async () => {
    const name = uniqueName('delete');
    const v1 = await client().createRsaKey(name, { tags: { keep: 'tag' } });
    const v2 = await client().createRsaKey(name);

    const deleted = await deleteAndWait(client(), name);
    expect(deleted.name).toBe(name);
    expect(deleted.id).toBe(v2.id);
    expect(deleted.properties.recoveryId).toBe(`${vaultUrl()}/deletedkeys/${name}`);
    expect(deleted.properties.deletedOn).toBeInstanceOf(Date);
    expect(deleted.properties.scheduledPurgeDate!.getTime() - deleted.properties.deletedOn!.getTime()).toBe(90 * 86_400_000);
    expectNoPrivateMaterial(deleted);

    await expectRestError(client().getKey(name), 404, 'KeyNotFound');
    await expectRestError(client().getKey(name, { version: v1.properties.version! }), 404);
    // Creating a key whose name is deleted but recoverable: 409, whatever the type.
    await expectRestError(client().createRsaKey(name), 409, 'Conflict');
    await expectRestError(client().createEcKey(name), 409, 'Conflict');
    await expectRestError(
      client().importKey(name, toSdkJwk(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }))),
      409,
    );

    const fetched = await client().getDeletedKey(name);
    expect(fetched.name).toBe(name);
    expect(fetched.id).toBe(v2.id);
    expect(fetched.properties.recoveryId).toBe(deleted.properties.recoveryId);
    expect(Buffer.from(fetched.key!.n!)).toEqual(Buffer.from(v2.key!.n!));

    const listedDeleted = await collect(client().listDeletedKeys());
    const entry = listedDeleted.find((d) => d.name === name);
    expect(entry, 'deleted key is listed').toBeDefined();
    expect(entry!.properties.recoveryId).toBe(deleted.properties.recoveryId);
    expect((await collect(client().listPropertiesOfKeys())).some((p) => p.name === name)).toBe(false);

    const recover = await client().beginRecoverDeletedKey(name, FAST_POLL);
    const recovered = await recover.pollUntilDone();
    expect(recovered.name).toBe(name);
    expect((await client().getKey(name)).id).toBe(v2.id);
    const old = await client().getKey(name, { version: v1.properties.version! });
    expect(old.properties.tags).toEqual({ keep: 'tag' });
    await expectRestError(client().getDeletedKey(name), 404, 'KeyNotFound');
    // Recovering a key that is not deleted (raw: the SDK's poller reads the live key and stops there).
    const notDeleted = await vaultRequest(`/deletedkeys/${name}/recover`, { method: 'POST' });
    expect(notDeleted.status, notDeleted.text).toBe(404);
  });

  it('purgeDeletedKey removes a deleted key for good and frees the name', async () => {
    const name = uniqueName('purge');
    await client().createEcKey(name);
    await client().createEcKey(name);
    await expectRestError(client().purgeDeletedKey(name), 404); // live keys are not purged
    await deleteAndWait(client(), name);

    await client().purgeDeletedKey(name);
    await expectRestError(client().getDeletedKey(name), 404);
    await expectRestError(client().getKey(name), 404);
    expect((await collect(client().listDeletedKeys())).some((d) => d.name === name)).toBe(false);
    await expectRestError(client().purgeDeletedKey(name), 404);

    const fresh = await client().createEcKey(name, { curve: 'P-521' });
    expect((await client().getKey(name)).id).toBe(fresh.id);
    expect(await collect(client().listPropertiesOfKeyVersions(name))).toHaveLength(1);
  });

  it('HSM keys survive soft delete and recovery (their token objects stay until purge), and purge frees the name', async () => {
    const name = uniqueName('hsm-lifecycle');
    const key = await client().createEcKey(name, { curve: 'P-256', hsm: true });
    await deleteAndWait(client(), name);
    await (await client().beginRecoverDeletedKey(name, FAST_POLL)).pollUntilDone();

    const message = randomBytes(32);
    const signed = await cryptoClient(key).sign('ES256', sha256(message));
    expect(nodeVerify('sha256', message, { key: nodePublicKey(key.key!), dsaEncoding: 'ieee-p1363' }, signed.result)).toBe(true);

    await deleteAndWait(client(), name);
    await client().purgeDeletedKey(name);
    await expectRestError(client().getDeletedKey(name), 404);
    const again = await client().createEcKey(name, { curve: 'P-256', hsm: true });
    expect(again.properties.version).not.toBe(key.properties.version);
  });

  it('backupKey and restoreKeyBackup: restore into a used name is 409; after purge every version comes back and still works', async () => {
    const name = uniqueName('backup');
    const v1 = await client().createRsaKey(name, { tags: { v: '1' } });
    const v2 = await client().createRsaKey(name, { keyOps: ['sign', 'verify'] });
    const message = randomBytes(100);
    const digest = sha256(message);
    const signedBefore = await cryptoClient(v1).sign('RS256', digest);

    const backup = await client().backupKey(name);
    expect(backup).toBeInstanceOf(Uint8Array);
    expect(backup!.length).toBeGreaterThan(64);
    await expectRestError(client().restoreKeyBackup(backup!), 409);

    await deleteAndWait(client(), name);
    await expectRestError(client().restoreKeyBackup(backup!), 409); // deleted but recoverable still holds the name
    await client().purgeDeletedKey(name);
    await expectRestError(client().getKey(name), 404);

    const restored = await client().restoreKeyBackup(backup!);
    expect(restored.name).toBe(name);
    expect(restored.id).toBe(v2.id);
    expect(sorted(restored.keyOperations)).toEqual(['sign', 'verify']);
    const versions = (await collect(client().listPropertiesOfKeyVersions(name))).map((p) => p.version).sort();
    expect(versions).toEqual([v1.properties.version, v2.properties.version].sort());
    const oldVersion = await client().getKey(name, { version: v1.properties.version! });
    expect(oldVersion.properties.tags).toEqual({ v: '1' });
    expect(Buffer.from(oldVersion.key!.n!)).toEqual(Buffer.from(v1.key!.n!));

    // The private key came back with it: the restored version signs, node verifies.
    const signedAfter = await cryptoClient(oldVersion).sign('RS256', digest);
    expect(nodeVerify('sha256', message, nodePublicKey(v1.key!), signedAfter.result)).toBe(true);
    expect(Buffer.from(signedAfter.result)).toEqual(Buffer.from(signedBefore.result)); // PKCS#1 v1.5 is deterministic

    const tampered = Uint8Array.from(backup!);
    tampered[Math.floor(tampered.length / 2)]! ^= 0x01;
    await deleteAndWait(client(), name);
    await client().purgeDeletedKey(name);
    await expectRestError(client().restoreKeyBackup(tampered), 400);
    await expectRestError(client().backupKey(uniqueName('nobackup')), 404);
  });

  it('backupKey refuses HSM keys with 400, saying that their material never leaves the HSM', async () => {
    for (const key of [
      await client().createEcKey(uniqueName('backup-ec-hsm'), { curve: 'P-256', hsm: true }),
      await client().createOctKey(uniqueName('backup-oct-hsm'), { hsm: true, keySize: 256 }),
    ]) {
      const err = await expectRestError(client().backupKey(key.name), 400, 'BadParameter');
      expect(err.message).toMatch(/HSM/);
      expect(err.message).toMatch(/cannot be backed up/);
    }
    // A key one of whose versions lives in the HSM is refused as a whole.
    const mixed = uniqueName('backup-mixed');
    await client().createEcKey(mixed, { curve: 'P-256' });
    await client().createEcKey(mixed, { curve: 'P-256', hsm: true });
    await expectRestError(client().backupKey(mixed), 400, 'BadParameter');
  });

  it('getRandomBytes returns the bytes asked for (1 to 128) from the HSM; other counts are 400', async () => {
    for (const count of [1, 32, 128]) {
      const bytes = await client().getRandomBytes(count);
      expect(bytes).toBeInstanceOf(Uint8Array);
      expect(bytes).toHaveLength(count);
    }
    const a = await client().getRandomBytes(32);
    const b = await client().getRandomBytes(32);
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false);
    expect(Buffer.from(a).equals(Buffer.alloc(32))).toBe(false);
    await expectRestError(client().getRandomBytes(129), 400);
    await expectRestError(client().getRandomBytes(0), 400);
  });

  it('getCryptographyClient: for the latest version, or a given one', async () => {
    const name = uniqueName('cryptoclient');
    const v1 = await client().createEcKey(name, { curve: 'P-256' });
    const v2 = await client().createEcKey(name, { curve: 'P-256' });
    const message = randomBytes(16);
    const digest = sha256(message);

    const latest = client().getCryptographyClient(name);
    const signed = await latest.sign('ES256', digest);
    expect(signed.keyID).toBe(v2.id);
    expect(nodeVerify('sha256', message, { key: nodePublicKey(v2.key!), dsaEncoding: 'ieee-p1363' }, signed.result)).toBe(true);
    expect((await latest.verify('ES256', digest, signed.result)).result).toBe(true);

    const pinned = client().getCryptographyClient(name, { keyVersion: v1.properties.version! });
    const signedV1 = await pinned.sign('ES256', digest);
    expect(signedV1.keyID).toBe(v1.id);
    expect((await pinned.verify('ES256', digest, signedV1.result)).result).toBe(true);
    // Each version has its own key: v1's signature does not verify under v2.
    expect((await latest.verify('ES256', digest, signedV1.result)).result).toBe(false);
  });
});

describe('key rotation', () => {
  const client = () => keyClient();
  const vaultUrl = () => stackInfo().credentials.vaultUrl;

  it('rotateKey makes a new version of the same type and size; older versions keep working', async () => {
    const name = uniqueName('rotate');
    const original = await client().createRsaKey(name, { keySize: 3072, tags: { rotated: 'no' } });
    const rotated = await client().rotateKey(name);
    expect(rotated.name).toBe(name);
    expect(rotated.properties.version).toMatch(/^[0-9a-f]{32}$/);
    expect(rotated.properties.version).not.toBe(original.properties.version);
    expect(rotated.id).toBe(`${vaultUrl()}/keys/${name}/${rotated.properties.version}`);
    expect(rotated.keyType).toBe('RSA');
    expect(rotated.key!.n).toHaveLength(384);
    expect(Buffer.from(rotated.key!.n!).equals(Buffer.from(original.key!.n!))).toBe(false);
    expect(sorted(rotated.keyOperations)).toEqual(sorted(original.keyOperations));
    expect(rotated.properties.tags).toEqual({ rotated: 'no' });
    expectNoPrivateMaterial(rotated);

    expect((await client().getKey(name)).id).toBe(rotated.id);
    expect(await collect(client().listPropertiesOfKeyVersions(name))).toHaveLength(2);

    const digest = sha256(randomBytes(8));
    const signedOld = await cryptoClient(original).sign('PS256', digest);
    expect((await cryptoClient(original).verify('PS256', digest, signedOld.result)).result).toBe(true);
    const signedNew = await cryptoClient(rotated).sign('PS256', digest);
    expect((await cryptoClient(rotated).verify('PS256', digest, signedNew.result)).result).toBe(true);

    await expectRestError(client().rotateKey(uniqueName('norotate')), 404);
  });

  it('rotateKey works for HSM keys: a new token object, same type and curve', async () => {
    const name = uniqueName('rotate-hsm');
    const original = await client().createEcKey(name, { curve: 'P-384', hsm: true });
    const rotated = await client().rotateKey(name);
    expect(rotated.keyType).toBe('EC-HSM');
    expect(rotated.key!.crv).toBe('P-384');
    expect(rotated.properties.version).not.toBe(original.properties.version);
    expect(Buffer.from(rotated.key!.x!).equals(Buffer.from(original.key!.x!))).toBe(false);
    expectNoPrivateMaterial(rotated);
    const digest = new Uint8Array(createHash('sha384').update('rotate').digest());
    const signed = await cryptoClient(rotated).sign('ES384', digest);
    expect(
      nodeVerify('sha384', Buffer.from('rotate'), { key: nodePublicKey(rotated.key!), dsaEncoding: 'ieee-p1363' }, signed.result),
    ).toBe(true);
  });

  it('updateKeyRotationPolicy and getKeyRotationPolicy store the policy; a rotation applies its expiresIn', async () => {
    const name = uniqueName('policy');
    await client().createEcKey(name, { curve: 'P-256' });
    // A key without a policy of its own answers with Azure's default: notify 30 days before expiry.
    const initial = await client().getKeyRotationPolicy(name);
    expect(initial.lifetimeActions).toEqual([{ action: 'Notify', timeBeforeExpiry: 'P30D', timeAfterCreate: undefined }]);
    expect(initial.expiresIn).toBeUndefined();

    const updated = await client().updateKeyRotationPolicy(name, {
      expiresIn: 'P90D',
      lifetimeActions: [
        { action: 'Rotate', timeBeforeExpiry: 'P30D' },
        { action: 'Notify', timeBeforeExpiry: 'P7D' },
      ],
    });
    expect(updated.id).toBe(`${vaultUrl()}/keys/${name}/rotationpolicy`);
    expect(updated.expiresIn).toBe('P90D');
    expect(updated.lifetimeActions).toEqual([
      { action: 'Rotate', timeBeforeExpiry: 'P30D', timeAfterCreate: undefined },
      { action: 'Notify', timeBeforeExpiry: 'P7D', timeAfterCreate: undefined },
    ]);
    expect(updated.createdOn).toBeInstanceOf(Date);
    expect(updated.updatedOn).toBeInstanceOf(Date);

    const fetched = await client().getKeyRotationPolicy(name);
    expect(fetched.id).toBe(updated.id);
    expect(fetched.expiresIn).toBe('P90D');
    expect(fetched.lifetimeActions).toEqual(updated.lifetimeActions);

    const rotated = await client().rotateKey(name);
    const expected = rotated.properties.createdOn!.getTime() + 90 * 86_400_000;
    expect(Math.abs(rotated.properties.expiresOn!.getTime() - expected)).toBeLessThanOrEqual(2_000);

    // A new policy replaces the old one (and without a Notify of its own, the default one applies).
    const replaced = await client().updateKeyRotationPolicy(name, {
      lifetimeActions: [{ action: 'Rotate', timeAfterCreate: 'P60D' }],
    });
    expect(replaced.expiresIn).toBeUndefined();
    expect(replaced.lifetimeActions).toContainEqual({ action: 'Rotate', timeAfterCreate: 'P60D', timeBeforeExpiry: undefined });
    expect(replaced.lifetimeActions).not.toContainEqual(expect.objectContaining({ timeBeforeExpiry: 'P7D' }));
    expect((await client().getKeyRotationPolicy(name)).lifetimeActions).toEqual(replaced.lifetimeActions);
  });

  it('updateKeyRotationPolicy refuses invalid policies (400) and unknown keys (404)', async () => {
    const name = uniqueName('policy-bad');
    await client().createEcKey(name);
    // Two triggers on one action; an expiry under Azure's minimum of 28 days; not a duration.
    await expectRestError(
      client().updateKeyRotationPolicy(name, {
        lifetimeActions: [{ action: 'Rotate', timeAfterCreate: 'P30D', timeBeforeExpiry: 'P30D' }],
      }),
      400,
    );
    await expectRestError(client().updateKeyRotationPolicy(name, { expiresIn: 'P7D' }), 400);
    await expectRestError(client().updateKeyRotationPolicy(name, { expiresIn: 'ninety days' }), 400);
    await expectRestError(client().getKeyRotationPolicy(uniqueName('nopolicy')), 404);
    await expectRestError(client().updateKeyRotationPolicy(uniqueName('nopolicy'), { expiresIn: 'P90D' }), 404);
  });
});

describe('cryptographic operations the key may not perform', () => {
  const client = () => keyClient();
  const digest32 = () => sha256(randomBytes(32));

  it('key_ops without sign: 403 Forbidden from the vault (the SDK client still holds the old key_ops)', async () => {
    const name = uniqueName('ops-forbidden');
    const key = await client().createRsaKey(name, { keyOps: ['sign', 'verify', 'encrypt', 'decrypt'] });
    const crypto = cryptoClient(key);
    const digest = digest32();
    const signed = await crypto.sign('RS256', digest);

    await client().updateKeyProperties(name, key.properties.version!, { keyOps: ['verify'] });
    const err = await expectRestError(crypto.sign('RS256', digest), 403, 'Forbidden');
    expect(err.message).toMatch(/sign/);
    await expectRestError(crypto.decrypt({ algorithm: 'RSA-OAEP', ciphertext: new Uint8Array(256) }), 403, 'Forbidden');
    expect((await crypto.verify('RS256', digest, signed.result)).result).toBe(true); // still allowed

    // The same refusal without the SDK in the way, and wrapKey was never allowed.
    const raw = await vaultRequest(`/keys/${name}/sign`, {
      method: 'POST',
      body: { alg: 'RS256', value: Buffer.from(digest).toString('base64url') },
    });
    expect(raw.status, raw.text).toBe(403);
    expect(raw.json<{ error: { code: string } }>().error.code).toBe('Forbidden');
    const wrap = await vaultRequest(`/keys/${name}/wrapkey`, {
      method: 'POST',
      body: { alg: 'RSA-OAEP', value: Buffer.alloc(32).toString('base64url') },
    });
    expect(wrap.status, wrap.text).toBe(403);
  });

  it('an algorithm that does not fit the key is 400: RS256 on EC, ES384 on P-256, ES256 on RSA, AES on RSA', async () => {
    const ec = await client().createEcKey(uniqueName('alg-ec'), { curve: 'P-256' });
    const rsa = await client().createRsaKey(uniqueName('alg-rsa'));
    const ecCrypto = cryptoClient(ec);
    const rsaCrypto = cryptoClient(rsa);

    const rs256OnEc = await expectRestError(ecCrypto.sign('RS256', digest32()), 400, 'BadParameter');
    expect(rs256OnEc.message).toMatch(/RS256/);
    const es384OnP256 = await expectRestError(ecCrypto.sign('ES384', sha384(randomBytes(8))), 400, 'BadParameter');
    expect(es384OnP256.message).toMatch(/P-256/);
    await expectRestError(ecCrypto.sign('ES256K', digest32()), 400, 'BadParameter');
    await expectRestError(ecCrypto.verify('PS256', digest32(), new Uint8Array(64)), 400, 'BadParameter');
    await expectRestError(rsaCrypto.sign('ES256', digest32()), 400, 'BadParameter');
    await expectRestError(rsaCrypto.sign('RSA-OAEP' as 'RS256', digest32()), 400, 'BadParameter');
    await expectRestError(rsaCrypto.encrypt({ algorithm: 'A256GCM', plaintext: new Uint8Array(16) }), 400, 'BadParameter');
    await expectRestError(rsaCrypto.wrapKey('A256KW', new Uint8Array(32)), 400, 'BadParameter');
    await expectRestError(rsaCrypto.sign('XS256' as 'RS256', digest32()), 400, 'BadParameter');
  });

  it('a digest of the wrong size is 400 (31 bytes for RS256, 33 for ES256, SHA-256 for RS512)', async () => {
    const rsa = cryptoClient(await client().createRsaKey(uniqueName('digest-rsa')));
    const ec = cryptoClient(await client().createEcKey(uniqueName('digest-ec'), { curve: 'P-256' }));
    const short = await expectRestError(rsa.sign('RS256', randomBytes(31)), 400, 'BadParameter');
    expect(short.message).toMatch(/31/);
    await expectRestError(rsa.sign('RS512', digest32()), 400, 'BadParameter');
    await expectRestError(rsa.sign('PS384', digest32()), 400, 'BadParameter');
    await expectRestError(ec.sign('ES256', randomBytes(33)), 400, 'BadParameter');
    await expectRestError(rsa.verify('RS256', randomBytes(31), new Uint8Array(256)), 400, 'BadParameter');
  });

  it('a disabled key signs, decrypts and verifies nothing: 403', async () => {
    const name = uniqueName('disabled');
    const key = await client().createRsaKey(name);
    const crypto = cryptoClient(key);
    const digest = digest32();
    const signed = await crypto.sign('RS256', digest);
    const encrypted = await crypto.encrypt({ algorithm: 'RSA-OAEP-256', plaintext: Buffer.from('hello') });

    await client().updateKeyProperties(name, { enabled: false });
    await expectRestError(crypto.sign('RS256', digest), 403, 'Forbidden');
    await expectRestError(crypto.decrypt({ algorithm: 'RSA-OAEP-256', ciphertext: encrypted.result }), 403, 'Forbidden');
    await expectRestError(crypto.verify('RS256', digest, signed.result), 403, 'Forbidden');
    await expectRestError(crypto.unwrapKey('RSA-OAEP', new Uint8Array(256)), 403, 'Forbidden');
    // A fresh client, which reads the key first (a disabled key's properties can still be read).
    expect((await client().getKey(name)).properties.enabled).toBe(false);
    await expectRestError(cryptoClient(key.id!).sign('RS256', digest), 403, 'Forbidden');

    await client().updateKeyProperties(name, { enabled: true });
    expect((await crypto.sign('RS256', digest)).result).toHaveLength(256);
  });

  it('an expired key no longer signs or encrypts (403) but still verifies and decrypts, as Azure allows', async () => {
    const name = uniqueName('expired');
    const key = await client().createRsaKey(name);
    const crypto = cryptoClient(key); // holds the key as it was: not expired, so the SDK lets the vault decide
    const digest = digest32();
    const signed = await crypto.sign('PS256', digest);
    const encrypted = await crypto.encrypt({ algorithm: 'RSA-OAEP-256', plaintext: Buffer.from('kept readable') });
    const wrapped = await crypto.wrapKey('RSA-OAEP-256', randomBytes(32));

    await client().updateKeyProperties(name, { expiresOn: secondsFromNow(-60) });
    await expectRestError(crypto.sign('PS256', digest), 403, 'Forbidden');
    await expectRestError(crypto.encrypt({ algorithm: 'RSA-OAEP-256', plaintext: Buffer.from('x') }), 403, 'Forbidden');
    await expectRestError(crypto.wrapKey('RSA-OAEP-256', randomBytes(32)), 403, 'Forbidden');
    expect((await crypto.verify('PS256', digest, signed.result)).result).toBe(true);
    expect(
      Buffer.from((await crypto.decrypt({ algorithm: 'RSA-OAEP-256', ciphertext: encrypted.result })).result).toString(),
    ).toBe('kept readable');
    expect((await crypto.unwrapKey('RSA-OAEP-256', wrapped.result)).result).toHaveLength(32);

    // Not yet valid (nbf in the future): the same rule.
    await client().updateKeyProperties(name, { expiresOn: secondsFromNow(86_400), notBefore: secondsFromNow(3_600) });
    await expectRestError(crypto.sign('PS256', digest), 403, 'Forbidden');
    expect((await crypto.verify('PS256', digest, signed.result)).result).toBe(true);
  });

  it('a deleted key is 404 for every operation; a purged one too', async () => {
    const name = uniqueName('deleted-ops');
    const key = await client().createEcKey(name, { curve: 'P-256' });
    const crypto = cryptoClient(key);
    const digest = digest32();
    const signed = await crypto.sign('ES256', digest);

    await deleteAndWait(client(), name);
    await expectRestError(crypto.sign('ES256', digest), 404, 'KeyNotFound');
    await expectRestError(crypto.verify('ES256', digest, signed.result), 404, 'KeyNotFound');
    await expectRestError(cryptoClient(key.id!).sign('ES256', digest), 404, 'KeyNotFound'); // fetching it fails first
    await client().purgeDeletedKey(name);
    await expectRestError(crypto.sign('ES256', digest), 404, 'KeyNotFound');
  });
});
