/**
 * Rotation without downtime, against the real bridge and D1: the KEK (new wraps under the new one,
 * data keys re-wrapped by the cron step, the old one refused for destruction while used), the
 * token-signing key (published before it signs, the old one published until its tokens expire)
 * and the audit checkpoint key's verification by kid. Rotating the checkpoint key itself, and
 * destroying an old KEK, are in test/e2e/backup-restore.e2e.test.ts, on a stack of their own: the
 * bridge here is shared with every Worker test file.
 */
import { env } from 'cloudflare:workers';
import { eq, sql } from 'drizzle-orm';
import { decodeProtectedHeader } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { DataKeyCache, DataKeyManager, wrapContext } from '../../src/crypto/data-keys';
import { services } from '../../src/crypto/services';
import { IntegrityError } from '../../src/core/errors';
import { runKekRewrap } from '../../src/jobs/kek';
import {
  CHECKPOINT_KEY_ID,
  checkpointJwks,
  checkpointKeyId,
  checkpointPayload,
  jwkThumbprint,
  signCheckpoint,
  verifyWithPublishedKeys,
} from '../../src/audit/checkpoints';
import { BridgeClient } from '../../src/crypto/bridge-client';
import { toBase64Url } from '../../src/core/encoding';
import { database } from '../../src/storage/db';
import { dataKeys, signingKeys } from '../../src/storage/schema';
import {
  MAX_TOKEN_LIFETIME_SECONDS,
  PUBLISH_LEAD_SECONDS,
  RETIRE_AFTER_SECONDS,
  pruneSigningKeys,
  rotateSigningKey,
  signingKeySchedule,
  signingKeySchedules,
} from '../../src/identity/signing-keys';
import { API, APEX, call, json, setupVault, tokenFor, vaultOrigin, newVault } from './helpers';

const db = database(env.DB);
let token: string;
let creds: { tenantId: string; clientId: string; clientSecret: string };
let vault: string;

beforeAll(async () => {
  ({ token, creds, vault } = await setupVault());
});

interface KekStatus {
  current: string;
  keks: Array<{ label: string; current: boolean; dataKeys: number }>;
  pending: number;
}

const kek = async () => json<KekStatus>(await call('GET', `${APEX}/management/kek`, { token }));
const putSecret = (v: string, name: string, value: string) =>
  call('PUT', `${vaultOrigin(v)}/secrets/${name}?${API}`, { token, body: { value } });
const getSecret = async (v: string, name: string) =>
  (await json<{ value: string }>(await call('GET', `${vaultOrigin(v)}/secrets/${name}?${API}`, { token }))).value;

describe('KEK rotation', () => {
  it('moves new wraps to the new KEK at once and old data keys in bounded cron batches, with reads served throughout', async () => {
    expect((await putSecret(vault, 'before', 'sealed-before-rotation')).status).toBe(200);
    const before = await kek();
    const old = before.current;
    expect(before.keks.find((k) => k.label === old)?.dataKeys).toBeGreaterThan(0);

    const rotated = await call('POST', `${APEX}/management/kek/rotate`, { token });
    expect(rotated.status).toBe(201);
    const after = await json<KekStatus>(rotated);
    expect(after.current).not.toBe(old);
    expect(after.keks.find((k) => k.label === after.current)).toMatchObject({ current: true });
    expect(after.pending).toBeGreaterThan(0);

    // A new vault's first data key is wrapped under the new KEK; the old secret still reads.
    const fresh = await newVault(token);
    expect((await putSecret(fresh, 'after', 'sealed-after-rotation')).status).toBe(200);
    const freshKeys = await db.select().from(dataKeys).where(eq(dataKeys.kekLabel, after.current)).all();
    expect(freshKeys.length).toBeGreaterThan(0);
    expect(await getSecret(vault, 'before')).toBe('sealed-before-rotation');

    // The old KEK cannot be destroyed while any data key names it, nor can the current one.
    const refused = await call('DELETE', `${APEX}/management/kek/${old}`, { token });
    expect(refused.status).toBe(409);
    expect((await json(refused)).error.message).toMatch(/still wrapped under KEK/);
    expect((await call('DELETE', `${APEX}/management/kek/${after.current}`, { token })).status).toBe(409);

    // One bounded batch, then the rest; progress shows in GET /management/kek.
    const first = await runKekRewrap(env as never, 1);
    expect(first).toMatchObject({ current: after.current, rewrapped: 1, failed: [], raced: 0 });
    expect((await kek()).pending).toBe(after.pending - 1);
    for (let i = 0; i < 20 && (await kek()).pending > 0; i++) await runKekRewrap(env as never, 50);
    const done = await kek();
    expect(done.pending).toBe(0);
    expect(done.keks.find((k) => k.label === old)?.dataKeys ?? 0).toBe(0);
    expect(await runKekRewrap(env as never)).toMatchObject({ rewrapped: 0 });

    // Cold caches: every data key is unwrapped again, now under the new KEK.
    expect((await call('DELETE', `${APEX}/management/caches`, { token })).status).toBe(204);
    expect(await getSecret(vault, 'before')).toBe('sealed-before-rotation');
    expect(await getSecret(fresh, 'after')).toBe('sealed-after-rotation');
    // New tokens still issue (the signing key's data key was re-wrapped too).
    expect(await tokenFor(creds)).toMatch(/^ey/);
  });

  it('leaves a data key that does not unwrap as it is, and reports it', async () => {
    const { current } = await kek();
    const id = crypto.randomUUID();
    // A row claiming an older generation, with bytes that no KEK wrapped.
    await db.insert(dataKeys).values({
      id,
      scope: 'rotation-test',
      wrapped: 'AQ' + 'A'.repeat(80),
      kekLabel: `${current.split('.')[0]}`,
      createdAt: 1,
      encryptions: 0,
    });
    try {
      const run = await runKekRewrap(env as never);
      expect(run?.failed).toContain(id);
      expect((await db.select().from(dataKeys).where(eq(dataKeys.id, id)).get())?.wrapped).toBe('AQ' + 'A'.repeat(80));
    } finally {
      await db.delete(dataKeys).where(eq(dataKeys.id, id));
    }
  });

  it('reads a data key from D1 again when the wrapped copy at hand no longer unwraps (re-wrapped since), and only then', async () => {
    const { db: sdb, bridge } = services(env as never);
    const fresh = () => new DataKeyManager(sdb, bridge, new DataKeyCache({ cacheTtlMs: 60_000, cacheSize: 8 }));
    const { id } = await fresh().create('rotation-fallback');
    const stored = (await db.select().from(dataKeys).where(eq(dataKeys.id, id)).get())!;
    // A copy read before a re-wrap whose old KEK has gone: it does not unwrap under the label it names.
    const stale = {
      wrapped: (await bridge.wrap(new Uint8Array(32).fill(7), wrapContext('other', id))).wrapped,
      kekLabel: stored.kekLabel,
    };
    try {
      const key = await fresh().forRead(id, 'rotation-fallback', stale);
      const expected = await fresh().forRead(id, 'rotation-fallback');
      const iv = new Uint8Array(12);
      const probe = async (k: CryptoKey) =>
        new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv }, k, new Uint8Array(4)));
      expect(await probe(key)).toEqual(await probe(expected));
      // When D1 holds the very copy that fails, the failure stands.
      await db.update(dataKeys).set({ wrapped: stale.wrapped }).where(eq(dataKeys.id, id));
      await expect(fresh().forRead(id, 'rotation-fallback', stale)).rejects.toBeInstanceOf(IntegrityError);
    } finally {
      await db.delete(dataKeys).where(eq(dataKeys.id, id));
    }
  });

  it('answers 404 for a KEK the HSM does not have', async () => {
    const res = await call('DELETE', `${APEX}/management/kek/no-such-kek`, { token });
    expect(res.status).toBe(404);
    expect((await json(res)).error.code).toBe('KekNotFound');
  });
});

describe('token-signing key rotation', () => {
  it('schedules publication before use and retirement after the last token expires', () => {
    const t = 1_800_000_000;
    const rows = [
      { kid: 'a', createdAt: t - 10_000 },
      { kid: 'b', createdAt: t },
    ];
    const at = (now: number) => Object.fromEntries(signingKeySchedule(rows, now).map((k) => [k.kid, k.state]));
    expect(at(t)).toEqual({ a: 'active', b: 'staged' });
    expect(at(t + PUBLISH_LEAD_SECONDS - 1)).toEqual({ a: 'active', b: 'staged' });
    expect(at(t + PUBLISH_LEAD_SECONDS)).toEqual({ a: 'retiring', b: 'active' });
    expect(at(t + PUBLISH_LEAD_SECONDS + RETIRE_AFTER_SECONDS - 1)).toEqual({ a: 'retiring', b: 'active' });
    expect(at(t + PUBLISH_LEAD_SECONDS + RETIRE_AFTER_SECONDS)).toEqual({ a: 'unpublished', b: 'active' });
    expect(RETIRE_AFTER_SECONDS).toBeGreaterThan(MAX_TOKEN_LIFETIME_SECONDS);
    // The only key signs, however young.
    expect(signingKeySchedule([{ kid: 'c', createdAt: t }], t - 5)[0]!.state).toBe('active');
  });

  it('publishes a new kid before signing with it; old tokens stay valid; the old kid leaves the JWKS only after its tokens expired', async () => {
    const jwks = async () =>
      (await json<{ keys: Array<{ kid: string }> }>(await call('GET', `${APEX}/${creds.tenantId}/discovery/v2.0/keys`))).keys.map(
        (k) => k.kid,
      );
    const kidOf = (t: string) => decodeProtectedHeader(t).kid!;
    const oldToken = await tokenFor(creds);
    const oldKid = kidOf(oldToken);

    const rotated = await call('POST', `${APEX}/management/signing-keys/rotate`, { token });
    expect(rotated.status).toBe(201);
    const staged = await json<{ kid: string; state: string; activatesAt: number; createdAt: number }>(rotated);
    expect(staged).toMatchObject({ state: 'staged', activatesAt: staged.createdAt + PUBLISH_LEAD_SECONDS });
    expect((await call('POST', `${APEX}/management/signing-keys/rotate`, { token })).status).toBe(409);

    // Published at once, not yet signing.
    expect(await jwks()).toEqual(expect.arrayContaining([oldKid, staged.kid]));
    expect(kidOf(await tokenFor(creds))).toBe(oldKid);

    // The publish lead passes: every key's creation moved back in D1 rather than waited for, to the
    // staged key's activation (a rotation in the bootstrap's second dates the new key a second on).
    const lead = staged.activatesAt - Math.floor(Date.now() / 1000);
    await db.update(signingKeys).set({ createdAt: sql`${signingKeys.createdAt} - ${lead}` });
    const newToken = await tokenFor(creds);
    expect(kidOf(newToken)).toBe(staged.kid);
    expect(await jwks()).toEqual(expect.arrayContaining([oldKid, staged.kid]));
    for (const t of [oldToken, newToken]) expect((await call('GET', `${APEX}/management/vaults`, { token: t })).status).toBe(200);
    const schedule = (
      await json<{ value: Array<{ kid: string; state: string; unpublishAt: number | null }> }>(
        await call('GET', `${APEX}/management/signing-keys`, { token }),
      )
    ).value;
    const retiring = schedule.find((k) => k.kid === oldKid)!;
    expect(retiring.state).toBe('retiring');

    // The cron deletes the old key only once every token it signed has expired.
    expect(await pruneSigningKeys(db, retiring.unpublishAt! - 1)).toEqual([]);
    expect(await pruneSigningKeys(db, retiring.unpublishAt!)).toContain(oldKid);
    expect(await jwks()).not.toContain(oldKid);
    expect(await jwks()).toContain(staged.kid);
    expect((await call('GET', `${APEX}/management/vaults`, { token: newToken })).status).toBe(200);
  });

  it('stages a key rotated in the very second its predecessor was created, whatever its random kid', async () => {
    const { db: sdb, keys } = services(env as never);
    // The one key left (the test above retired the other) made in this second, as by a bootstrap.
    const second = Math.floor(Date.now() / 1000);
    await db.update(signingKeys).set({ createdAt: second });
    const [current] = await signingKeySchedules(sdb, second);
    expect(current).toMatchObject({ state: 'active', createdAt: second });
    const rotated = await rotateSigningKey(sdb, keys, second);
    try {
      // Ordered after its predecessor by creation time, not by a coin toss over the kids.
      expect(rotated.createdAt).toBeGreaterThan(second);
      expect(rotated).toMatchObject({ state: 'staged', activatesAt: rotated.createdAt + PUBLISH_LEAD_SECONDS });
      expect((await signingKeySchedules(sdb, second)).find((k) => k.kid === current!.kid)?.state).toBe('active');
      expect(decodeProtectedHeader(await tokenFor(creds)).kid).toBe(current!.kid);
    } finally {
      // Never signed: removing it leaves the deployment as the test above left it.
      await db.delete(signingKeys).where(eq(signingKeys.kid, rotated.kid));
    }
  });

  it('stages one key when two rotations run at once: the other is refused with 409, not a second staged key', async () => {
    const { db: sdb, keys } = services(env as never);
    const before = new Set((await signingKeySchedules(sdb)).map((k) => k.kid));
    const outcomes = await Promise.allSettled([rotateSigningKey(sdb, keys), rotateSigningKey(sdb, keys)]);
    const made = (await signingKeySchedules(sdb)).filter((k) => !before.has(k.kid));
    try {
      expect(outcomes.map((o) => o.status).sort()).toEqual(['fulfilled', 'rejected']);
      const refused = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected')!.reason;
      expect(refused).toMatchObject({ status: 409, code: 'Conflict' });
      expect(made).toHaveLength(1);
      expect(made[0]!.state).toBe('staged');
    } finally {
      // Never signed: removing them leaves the deployment as the tests above left it.
      for (const k of made) await db.delete(signingKeys).where(eq(signingKeys.kid, k.kid));
    }
  });
});

describe('audit checkpoint key rotation (checks that leave the shared HSM key as it is)', () => {
  const bridge = () => new BridgeClient(env.BRIDGE_URL, env.BRIDGE_HMAC_SECRET);

  async function foreignKey() {
    const pair = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'sign',
      'verify',
    ])) as CryptoKeyPair;
    const jwk = (await crypto.subtle.exportKey('jwk', pair.publicKey)) as JsonWebKey;
    const kid = await jwkThumbprint({ kty: 'EC', crv: 'P-256', x: jwk.x!, y: jwk.y! });
    return async (cp: { chain: string; seq: number; hash: string; time: string }, asKid = kid) => {
      const sig = await crypto.subtle.sign(
        { name: 'ECDSA', hash: 'SHA-256' },
        pair.privateKey,
        new TextEncoder().encode(checkpointPayload(cp)),
      );
      return { ...cp, alg: 'ES256', kid: asKid, signature: toBase64Url(new Uint8Array(sig)) };
    };
  }

  it('derives rotated keys’ HSM ids from their generation, never from D1', async () => {
    expect(await checkpointKeyId(1)).toBe(CHECKPOINT_KEY_ID);
    const second = await checkpointKeyId(2);
    expect(second).toMatch(/^[0-9a-f]{32}$/);
    expect(second).not.toBe(CHECKPOINT_KEY_ID);
    expect(await checkpointKeyId(2)).toBe(second);
    expect(await checkpointKeyId(3)).not.toBe(second);
  });

  it('verifies a checkpoint with the published key its kid names, and refuses one signed by a key the HSM does not publish', async () => {
    const b = bridge();
    const head = { chain: 'rotation-test', seq: 1, hash: 'A'.repeat(43), time: new Date().toISOString() };
    const signed = await signCheckpoint(b, head, Date.parse(head.time));
    expect(await verifyWithPublishedKeys(b, signed)).toBe(true);
    const published = (await checkpointJwks(b)).keys.map((k) => k.kid);
    expect(published).toContain(signed.kid);

    const forge = await foreignKey();
    expect(await verifyWithPublishedKeys(b, await forge(head))).toBe(false);
    // Naming a published kid does not help a foreign signature.
    expect(await verifyWithPublishedKeys(b, await forge(head, signed.kid))).toBe(false);
  });

  it('rotates only away from the current key: the request names it (400 without, 409 when stale)', async () => {
    const url = `${APEX}/management/audit/checkpoint-keys/rotate`;
    // A fresh token: the suite's first one was signed by the key the test above retired.
    const token = await tokenFor(creds);
    const missing = await call('POST', url, { token, body: {} });
    expect(missing.status).toBe(400);
    const stale = await call('POST', url, { token, body: { currentKid: 'not-the-current-kid' } });
    expect(stale.status).toBe(409);
    expect((await json(stale)).error.message).toMatch(/not the current checkpoint key/);
  });
});
