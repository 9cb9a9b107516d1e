// The versioned-object engine (src/objects/engine/) through both of its descriptions, secrets and
// keys: what the engine writes once must behave the same for each kind, with each kind's wording.
// Over HTTP where the behaviour is the API's (listing, soft delete, backup refusals), directly on
// the stores where only the engine can be made to meet the case (a vault gone, a well-sealed
// backup whose content is not one).
import { env } from 'cloudflare:workers';
import { and, eq } from 'drizzle-orm';
import { beforeAll, describe, expect, it } from 'vitest';
import { fromBase64Url, toBase64Url, utf8 } from '../../src/core/encoding';
import type { VaultRecord } from '../../src/core/vault';
import { BridgeClient } from '../../src/crypto/bridge-client';
import { dataKeyCache } from '../../src/crypto/services';
import { DataKeyManager } from '../../src/crypto/data-keys';
import { sealBackup } from '../../src/objects/backup';
import { KeyStore } from '../../src/objects/keys';
import { SecretStore } from '../../src/objects/secrets';
import { database } from '../../src/storage/db';
import { dataKeys, keys as keyHeads, keyVersions } from '../../src/storage/schema';
import { findVault } from '../../src/storage/vaults';
import { API, call, json, setupVault } from './helpers';

const db = database(env.DB);
const bridge = new BridgeClient(env.BRIDGE_URL, env.BRIDGE_HMAC_SECRET);
const dataKeyManager = new DataKeyManager(db, bridge, dataKeyCache);
const DOWN = { BRIDGE_URL: 'http://127.0.0.1:9' }; // nothing listens there: the bridge is down
const CORRUPT = 'Backup blob contains invalid or corrupt version.';

let token: string;
let origin: string;
let vaultName: string;

beforeAll(async () => {
  ({ token, origin, vault: vaultName } = await setupVault());
});

/** One kind as the API shows it: how to make a version, and the kind's words. */
interface Kind {
  collection: 'secrets' | 'keys';
  other: 'secrets' | 'keys';
  make: (name: string) => Promise<Response>;
  notFound: string;
  notFoundMessage: (name: string) => string;
  deletedMessage: (name: string) => string;
  conflictMessage: (name: string) => string;
  idOf: (body: any) => string;
}

const url = (path: string, o = origin) => `${o}${path}${path.includes('?') ? '&' : '?'}${API}`;

const KINDS: Kind[] = [
  {
    collection: 'secrets',
    other: 'keys',
    make: (name) => call('PUT', url(`/secrets/${name}`), { token, body: { value: `value of ${name}` } }),
    notFound: 'SecretNotFound',
    notFoundMessage: (name) => `A secret with (name/id) ${name} was not found in this key vault.`,
    deletedMessage: (name) => `Deleted Secret not found: ${name}`,
    conflictMessage: (name) =>
      `Secret ${name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can be recovered or purged.`,
    idOf: (body) => body.id,
  },
  {
    collection: 'keys',
    other: 'secrets',
    make: (name) => call('POST', url(`/keys/${name}/create`), { token, body: { kty: 'EC', crv: 'P-256' } }),
    notFound: 'KeyNotFound',
    notFoundMessage: (name) => `A key with (name/id) ${name} was not found in this key vault.`,
    deletedMessage: (name) => `Deleted Key not found: ${name}`,
    conflictMessage: (name) =>
      `Key ${name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the key can be recovered or purged.`,
    idOf: (body) => body.key.kid,
  },
];

const deletedCollection = (k: Kind) => (k.collection === 'secrets' ? 'deletedsecrets' : 'deletedkeys');

async function made(k: Kind, name: string): Promise<any> {
  const res = await k.make(name);
  if (res.status !== 200) throw new Error(`make ${name}: ${res.status} ${await res.text()}`);
  return json(res);
}

async function backupOf(k: Kind, name: string): Promise<string> {
  await made(k, name);
  const res = await call('POST', url(`/${k.collection}/${name}/backup`), { token });
  expect(res.status).toBe(200);
  return (await json(res)).value as string;
}

/** base64url of a JSON value, as a backup envelope is written. */
const encode = (value: unknown) => toBase64Url(utf8(JSON.stringify(value)));
const envelopeOf = (blob: string) =>
  JSON.parse(new TextDecoder().decode(fromBase64Url(blob))) as { f: string; k: string; c: string };

describe.each(KINDS)('$collection over the engine', (k) => {
  it('lists the versions of a name that never existed as an empty page, as Azure does', async () => {
    const res = await call('GET', url(`/${k.collection}/never-made-${k.collection}/versions`), { token });
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ value: [], nextLink: null });
  });

  it('pages versions oldest first, hides them while deleted, and refuses a forged $skiptoken', async () => {
    const name = `paged-${k.collection}`;
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push(k.idOf(await made(k, name)));
    const first = await json(await call('GET', url(`/${k.collection}/${name}/versions?maxresults=2`), { token }));
    expect(first.value).toHaveLength(2);
    const second = await json(await call('GET', first.nextLink, { token }));
    expect(second.nextLink).toBeNull();
    expect([...first.value, ...second.value].map((i: any) => i.id ?? i.kid).sort()).toEqual([...ids].sort());

    const forged = await call('GET', url(`/${k.collection}/${name}/versions?$skiptoken=not-a-token`), { token });
    expect(forged.status).toBe(400);
    expect((await json(forged)).error.code).toBe('BadParameter');

    expect((await call('DELETE', url(`/${k.collection}/${name}`), { token })).status).toBe(200);
    expect(await json(await call('GET', url(`/${k.collection}/${name}/versions`), { token }))).toEqual({
      value: [],
      nextLink: null,
    });
  });

  it("soft-deletes, refuses the name while deleted, recovers and purges, in the kind's words", async () => {
    const name = `cycle-${k.collection}`;
    await made(k, name);
    const deleted = await call('DELETE', url(`/${k.collection}/${name}`), { token });
    expect(deleted.status).toBe(200);
    expect((await json(deleted)).scheduledPurgeDate).toBeGreaterThan(0);

    const gone = await call('GET', url(`/${k.collection}/${name}`), { token });
    expect(gone.status).toBe(404);
    expect((await json(gone)).error).toEqual({ code: k.notFound, message: k.notFoundMessage(name) });

    const reused = await k.make(name);
    expect(reused.status).toBe(409);
    expect((await json(reused)).error.message).toBe(k.conflictMessage(name));

    expect((await call('GET', url(`/${deletedCollection(k)}/${name}`), { token })).status).toBe(200);
    expect((await call('POST', url(`/${deletedCollection(k)}/${name}/recover`), { token })).status).toBe(200);
    expect((await call('GET', url(`/${k.collection}/${name}`), { token })).status).toBe(200);

    const notDeleted = await call('DELETE', url(`/${deletedCollection(k)}/${name}`), { token });
    expect(notDeleted.status).toBe(404);
    expect((await json(notDeleted)).error).toEqual({ code: k.notFound, message: k.deletedMessage(name) });

    await call('DELETE', url(`/${k.collection}/${name}`), { token });
    expect((await call('DELETE', url(`/${deletedCollection(k)}/${name}`), { token })).status).toBe(204);
    expect((await call('GET', url(`/${deletedCollection(k)}/${name}`), { token })).status).toBe(404);
    // The purged name is free again.
    expect((await k.make(name)).status).toBe(200);
  });

  it('refuses purge in a vault with purge protection, and keeps the object', async () => {
    const protectedVault = await setupVault({ enablePurgeProtection: true });
    const at = (path: string) => url(path, protectedVault.origin);
    const name = `kept-${k.collection}`;
    const res =
      k.collection === 'secrets'
        ? await call('PUT', at(`/secrets/${name}`), { token: protectedVault.token, body: { value: 'x' } })
        : await call('POST', at(`/keys/${name}/create`), { token: protectedVault.token, body: { kty: 'EC' } });
    expect(res.status).toBe(200);
    await call('DELETE', at(`/${k.collection}/${name}`), { token: protectedVault.token });
    const refused = await call('DELETE', at(`/${deletedCollection(k)}/${name}`), { token: protectedVault.token });
    expect(refused.status).toBe(403);
    expect((await json(refused)).error.message).toMatch(/^Operation "purge" is not allowed because purge protection is enabled/);
    expect((await call('GET', at(`/${deletedCollection(k)}/${name}`), { token: protectedVault.token })).status).toBe(200);
  });

  describe('restore refuses a blob it cannot use with 400 BadParameter and writes nothing', () => {
    // One empty vault per kind receives every refused blob: it must stay empty.
    let target: Awaited<ReturnType<typeof setupVault>>;
    beforeAll(async () => {
      target = await setupVault();
    });

    const refusedWith = async (value: string) => {
      const res = await call('POST', url(`/${k.collection}/restore`, target.origin), { token: target.token, body: { value } });
      expect(res.status).toBe(400);
      expect((await json(res)).error).toEqual({ code: 'BadParameter', message: CORRUPT });
      const listed = await json(await call('GET', url(`/${k.collection}`, target.origin), { token: target.token }));
      expect(listed.value).toEqual([]);
    };

    it('not base64url', () => refusedWith('this is *not* base64url!'));

    it('base64url of something that is not an envelope', () => refusedWith(toBase64Url(utf8('plain text, not JSON'))));

    it('an envelope of another format', async () => {
      const blob = await backupOf(k, `format-${k.collection}`);
      await refusedWith(encode({ ...envelopeOf(blob), f: 'ekv-backup-v0' }));
    });

    it('an envelope missing its sealed payload', async () => {
      const blob = await backupOf(k, `nopayload-${k.collection}`);
      const { c: _c, ...rest } = envelopeOf(blob);
      await refusedWith(encode(rest));
    });

    it('sealed by a data key this deployment never issued (another deployment)', async () => {
      const blob = await backupOf(k, `foreign-${k.collection}`);
      await refusedWith(encode({ ...envelopeOf(blob), k: crypto.randomUUID() }));
    });

    it("naming a vault's data key instead of the deployment's backup key", async () => {
      const blob = await backupOf(k, `vaultkey-${k.collection}`);
      const vault = (await findVault(db, vaultName))!;
      const vaultKey = (await db.select().from(dataKeys).where(eq(dataKeys.scope, vault.id)).get())!;
      await refusedWith(encode({ ...envelopeOf(blob), k: vaultKey.id }));
    });

    it('corrupted (one character of the sealed payload changed)', async () => {
      const blob = await backupOf(k, `flipped-${k.collection}`);
      const e = envelopeOf(blob);
      const at = Math.floor(e.c.length / 2);
      await refusedWith(encode({ ...e, c: e.c.slice(0, at) + (e.c[at] === 'A' ? 'B' : 'A') + e.c.slice(at + 1) }));
    });

    it('truncated', async () => {
      const blob = await backupOf(k, `cut-${k.collection}`);
      await refusedWith(blob.slice(0, Math.floor(blob.length / 2)));
    });

    it(`a backup of the other kind (${k.other} given to ${k.collection} restore)`, async () => {
      const other = KINDS.find((o) => o.collection === k.other)!;
      await refusedWith(await backupOf(other, `crossed-${k.collection}`));
    });

    it('well sealed for this kind, but not a backup of it', async () => {
      const kind = k.collection === 'secrets' ? 'secret' : 'key';
      const payloads: unknown[] = [
        'not an object',
        { kind: kind === 'secret' ? 'key' : 'secret', name: 'x', latestVersion: 'a'.repeat(32), versions: [] },
        { kind, name: 'x', latestVersion: 'a'.repeat(32), versions: [] },
        { kind, name: 'not a valid name!', latestVersion: 'a'.repeat(32), versions: [{ version: 'a'.repeat(32) }] },
        {
          kind,
          name: 'x',
          latestVersion: 'b'.repeat(32),
          versions: [{ version: 'a'.repeat(32), value: 'v', kind: 'EC', privateJwk: {} }],
        },
        {
          kind,
          name: 'x',
          latestVersion: 'not-a-version',
          versions: [{ version: 'not-a-version', value: 'v', kind: 'EC', privateJwk: {} }],
        },
        { kind, name: 'x', latestVersion: 'a'.repeat(32), versions: [{ version: 'a'.repeat(32) }] },
      ];
      for (const payload of payloads) await refusedWith(await sealBackup(dataKeyManager, kind, utf8(JSON.stringify(payload))));
    });
  });
});

describe('writes into a vault that disappeared', () => {
  // The vault is deleted through another isolate whose cache had not expired here: the write's
  // foreign key fails, and the engine answers 404 VaultNotFound (not a server error) for each kind.
  const ghost = async (): Promise<VaultRecord> => ({
    ...(await findVault(db, vaultName))!,
    id: crypto.randomUUID(),
    name: `ghost${Date.now()}`,
  });

  it('a secret version', async () => {
    const store = new SecretStore(db, dataKeyManager, await ghost());
    await expect(store.set('orphan', { value: 'x' })).rejects.toMatchObject({ status: 404, code: 'VaultNotFound' });
  });

  it('a key version', async () => {
    const store = new KeyStore(db, dataKeyManager, bridge, await ghost());
    await expect(store.create('orphan', { kty: 'EC' })).rejects.toMatchObject({ status: 404, code: 'VaultNotFound' });
  });
});

describe("the keys description's hooks", () => {
  const headOf = async (name: string) => {
    const vault = (await findVault(db, vaultName))!;
    return (await db
      .select()
      .from(keyHeads)
      .where(and(eq(keyHeads.vaultId, vault.id), eq(keyHeads.name, name)))
      .get())!;
  };

  it('keeps the rotation due time following the latest version: on a new version and an exp change, not on a tags change', async () => {
    const name = 'hooked-schedule';
    await made(KINDS[1]!, name);
    // Default policy: Notify 30 days before expiry; without exp nothing is due.
    expect((await headOf(name)).rotationDueAt).toBeNull();
    const exp = Math.floor(Date.now() / 1000) + 60 * 86400;
    expect((await call('PATCH', url(`/keys/${name}`), { token, body: { attributes: { exp } } })).status).toBe(200);
    expect((await headOf(name)).rotationDueAt).toBe(exp - 30 * 86400);
    // A tags PATCH leaves the head alone (the cron may have moved the due time past a sent Notify).
    await db.update(keyHeads).set({ rotationDueAt: 42 }).where(eq(keyHeads.name, name));
    expect((await call('PATCH', url(`/keys/${name}`), { token, body: { tags: { a: 'b' } } })).status).toBe(200);
    expect((await headOf(name)).rotationDueAt).toBe(42);
    // A new version without exp: nothing due again.
    await made(KINDS[1]!, name);
    expect((await headOf(name)).rotationDueAt).toBeNull();
  });

  it('purge destroys token objects first; with the bridge down nothing is deleted', async () => {
    const name = 'hooked-purge';
    const res = await call('POST', url(`/keys/${name}/create`), { token, body: { kty: 'EC-HSM' } });
    expect(res.status).toBe(200);
    await call('DELETE', url(`/keys/${name}`), { token });
    const down = await call('DELETE', url(`/deletedkeys/${name}`), { token, env: DOWN });
    expect(down.status).toBeGreaterThanOrEqual(500);
    expect((await call('GET', url(`/deletedkeys/${name}`), { token })).status).toBe(200);
    const vault = (await findVault(db, vaultName))!;
    const rows = await db
      .select()
      .from(keyVersions)
      .where(and(eq(keyVersions.vaultId, vault.id), eq(keyVersions.name, name)))
      .all();
    expect(rows).toHaveLength(1);
    expect((await call('DELETE', url(`/deletedkeys/${name}`), { token })).status).toBe(204);
    expect(
      await db
        .select()
        .from(keyVersions)
        .where(and(eq(keyVersions.vaultId, vault.id), eq(keyVersions.name, name)))
        .all(),
    ).toEqual([]);
  });
});
