/**
 * HSM-signed audit checkpoints: made by the cron, verified against the key the HSM publishes,
 * forgeries refused.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { chainHash } from '../../src/audit/canonical';
import {
  CHECKPOINT_KEY_ID,
  CHECKPOINT_KEY_SETTING,
  checkpointMovedChains,
  checkpointPayload,
  ensureCheckpointKey,
  jwkThumbprint,
  listCheckpoints,
  verifyCheckpointSignature,
  type EcPublicJwk,
} from '../../src/audit/checkpoints';
import type { Checkpoint } from '../../src/audit/verify';
import { BridgeClient } from '../../src/crypto/bridge-client';
import { fromBase64Url, toBase64Url } from '../../src/core/encoding';
import { runAuditJobs } from '../../src/jobs/audit';
import { database } from '../../src/storage/db';
import { auditEvent, batchOf, chainRows, consume, freshVault } from './audit-helpers';
import { APEX, API, admin, call, env, json, newVault, tokenFor, vaultOrigin } from './helpers';
import { rows } from './identity-helpers';

const db = database(env.DB);
const bridge = new BridgeClient(env.BRIDGE_URL, env.BRIDGE_HMAC_SECRET);
const DOWN = { ...env, BRIDGE_URL: 'http://127.0.0.1:9' }; // nothing listens there
const sql = (query: string, ...params: unknown[]) =>
  env.DB.prepare(query)
    .bind(...params)
    .run();

let adminToken: string;

beforeAll(async () => {
  adminToken = await tokenFor(await admin());
  await ensureCheckpointKey(db, bridge);
});

/** A chain of n records appended by the real consumer, for a vault name nothing else uses. */
async function newChain(n = 6, vault = freshVault('cp')): Promise<{ vault: string; chain: string }> {
  await appendEvents(vault, n);
  return { vault, chain: `vault:${vault}` };
}

async function appendEvents(vault: string, n: number): Promise<void> {
  const start = Date.now();
  const events = Array.from({ length: n }, (_, i) => auditEvent({ vault, time: start + i }));
  expect((await consume(batchOf(events))).ackedIds.size).toBe(n);
}

const checkpoint = (chain: string) => checkpointMovedChains(db, bridge, Date.now(), [chain]);

/** The administrators' verification of a chain (the deployment's audit goes elsewhere). */
async function verifyApi(vault: string): Promise<any> {
  const res = await call('GET', `${APEX}/management/audit/verify?vault=${vault}`, { token: adminToken });
  expect(res.status, await res.clone().text()).toBe(200);
  return json(res);
}

/** A P-256 key of the attacker's own, and checkpoints signed with it. */
async function attackerKey() {
  const pair = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ])) as CryptoKeyPair;
  const jwk = (await crypto.subtle.exportKey('jwk', pair.publicKey)) as JsonWebKey;
  const publicJwk: EcPublicJwk = { kty: 'EC', crv: 'P-256', x: jwk.x!, y: jwk.y! };
  const kid = await jwkThumbprint(publicJwk);
  const sign = async (cp: Omit<Checkpoint, 'alg' | 'kid' | 'signature'>): Promise<Checkpoint> => {
    const sig = await crypto.subtle.sign(
      { name: 'ECDSA', hash: 'SHA-256' },
      pair.privateKey,
      new TextEncoder().encode(checkpointPayload(cp)),
    );
    return { ...cp, alg: 'ES256', kid, signature: toBase64Url(new Uint8Array(sig)) };
  };
  return { publicJwk, kid, sign };
}

const insertCheckpoint = (cp: Checkpoint) =>
  sql(
    'insert into audit_checkpoints (chain, seq, hash, time, alg, kid, signature) values (?, ?, ?, ?, ?, ?, ?)',
    cp.chain,
    cp.seq,
    cp.hash,
    cp.time,
    cp.alg,
    cp.kid,
    cp.signature,
  );

describe('checkpoints', () => {
  it('are made for a chain whose head moved, once, and again when it moves on', async () => {
    const { vault, chain } = await newChain(5);
    expect((await checkpoint(chain)).created).toBe(1);
    expect((await checkpoint(chain)).created).toBe(0);
    let stored = await listCheckpoints(db, chain);
    expect(stored.map((c) => c.seq)).toEqual([5]);
    const head = (await chainRows(chain))[4]!;
    expect(stored[0]).toMatchObject({ chain, seq: 5, hash: head.hash, alg: 'ES256' });

    await appendEvents(vault, 3);
    expect((await checkpoint(chain)).created).toBe(1);
    stored = await listCheckpoints(db, chain);
    expect(stored.map((c) => c.seq)).toEqual([5, 8]);
  });

  it('are signed by the HSM key whose public half the bridge reads from the token, and published', async () => {
    const { chain } = await newChain(3);
    await checkpoint(chain);
    const [cp] = await listCheckpoints(db, chain);
    const publicJwk = (await bridge.publicKey(CHECKPOINT_KEY_ID)) as EcPublicJwk;
    expect(cp!.kid).toBe(await jwkThumbprint(publicJwk));
    // Checked here with WebCrypto directly, not through the module under test.
    const key = await crypto.subtle.importKey('jwk', { ...publicJwk, ext: true }, { name: 'ECDSA', namedCurve: 'P-256' }, false, [
      'verify',
    ]);
    const payload = JSON.stringify({ chain: cp!.chain, hash: cp!.hash, seq: cp!.seq, time: cp!.time });
    expect(
      await crypto.subtle.verify(
        { name: 'ECDSA', hash: 'SHA-256' },
        key,
        fromBase64Url(cp!.signature),
        new TextEncoder().encode(payload),
      ),
    ).toBe(true);
    expect(await verifyCheckpointSignature(cp!, publicJwk, cp!.kid)).toBe(true);
    expect(await verifyCheckpointSignature({ ...cp!, seq: cp!.seq + 1 }, publicJwk, cp!.kid)).toBe(false);

    // The JWKS on the apex, without authentication.
    const res = await call('GET', `${APEX}/audit/checkpoint-keys`);
    expect(res.status).toBe(200);
    const jwks = await json(res);
    expect(jwks.keys).toEqual([{ ...publicJwk, kid: cp!.kid, alg: 'ES256', use: 'sig' }]);
  });

  it('are not made over records that do not verify since the last checkpoint', async () => {
    const { chain } = await newChain(4);
    await sql(
      `update audit_records set canonical = replace(canonical, '"SecretGet"', '"SecretList"') where chain = ? and seq = 2`,
      chain,
    );
    const run = await checkpoint(chain);
    expect(run).toMatchObject({ created: 0, refused: [chain] });
    expect(await listCheckpoints(db, chain)).toEqual([]);
  });

  it('are deferred while the bridge is down, with nothing half-written; the next run makes them', async () => {
    const { chain } = await newChain(3);
    const down = new BridgeClient(DOWN.BRIDGE_URL, env.BRIDGE_HMAC_SECRET);
    const run = await checkpointMovedChains(db, down, Date.now(), [chain]);
    expect(run).toMatchObject({ created: 0, deferred: 1 });
    expect(await listCheckpoints(db, chain)).toEqual([]);
    // The whole cron job too: it reports the deferral instead of failing.
    expect((await runAuditJobs(DOWN)).deferred).toBe(true);
    expect(await listCheckpoints(db, chain)).toEqual([]);
    expect((await checkpoint(chain)).created).toBe(1);
  });
});

describe('the verification API', () => {
  it('says the chain is intact through its last record at its checkpoint', async () => {
    const { vault, chain } = await newChain(6);
    await checkpoint(chain);
    const [cp] = await listCheckpoints(db, chain);
    const body = await verifyApi(vault);
    expect(body).toMatchObject({
      chain,
      ok: true,
      through: 6,
      checkpoint: { seq: 6, time: cp!.time },
      checkpoints: 1,
      prunedThrough: 0,
    });
    expect(body.message).toBe(`intact through sequence 6 at checkpoint ${cp!.time} (seq 6)`);
    expect(body.key.storedCopyMatches).toBe(true);
  });

  it('rejects a checkpoint signed by another key', async () => {
    const { vault, chain } = await newChain(6);
    await checkpoint(chain);
    const row = (await chainRows(chain))[2]!;
    const attacker = await attackerKey();
    await insertCheckpoint(await attacker.sign({ chain, seq: 3, hash: row.hash, time: new Date().toISOString() }));
    const body = await verifyApi(vault);
    expect(body).toMatchObject({ ok: false, kind: 'checkpoint', firstBadSeq: 3 });
    expect(body.message).toMatch(/signature of the checkpoint at seq 3 .* does not verify/);
  });

  it('rejects a checkpoint moved to another seq and hash with its old signature', async () => {
    const { vault, chain } = await newChain(6);
    await checkpoint(chain);
    const row = (await chainRows(chain))[3]!;
    await sql('update audit_checkpoints set seq = 4, hash = ? where chain = ? and seq = 6', row.hash, chain);
    expect(await verifyApi(vault)).toMatchObject({ ok: false, kind: 'checkpoint', firstBadSeq: 4 });
  });

  it('rejects checkpoints signed by a key swapped into D1, and says D1’s copy of the key changed', async () => {
    const { vault, chain } = await newChain(5);
    const [setting] = await rows<{ value: string }>('select value from settings where key = ?', CHECKPOINT_KEY_SETTING);
    const attacker = await attackerKey();
    try {
      await sql(
        'update settings set value = ? where key = ?',
        JSON.stringify({ handle: CHECKPOINT_KEY_ID, kid: attacker.kid, publicJwk: attacker.publicJwk }),
        CHECKPOINT_KEY_SETTING,
      );
      // The administrator rewrites record 2 and re-hashes the chain, then vouches for it.
      const stored = await chainRows(chain);
      let prev = stored[0]!.hash;
      for (const r of stored.slice(1)) {
        const canonical = r.seq === 2 ? r.canonical.replace('"SecretGet"', '"SecretList"') : r.canonical;
        const hash = await chainHash(prev, canonical);
        await sql(
          'update audit_records set canonical = ?, prev_hash = ?, hash = ?, operation = ? where chain = ? and seq = ?',
          canonical,
          prev,
          hash,
          r.seq === 2 ? 'SecretList' : r.operation,
          chain,
          r.seq,
        );
        await sql('update audit_chain_heads set hash = ? where chain = ? and seq = ?', hash, chain, r.seq);
        prev = hash;
      }
      await insertCheckpoint(await attacker.sign({ chain, seq: 5, hash: prev, time: new Date().toISOString() }));
      const body = await verifyApi(vault);
      expect(body).toMatchObject({ ok: false, kind: 'checkpoint', firstBadSeq: 5, key: { storedCopyMatches: false } });
    } finally {
      await sql('update settings set value = ? where key = ?', setting!.value, CHECKPOINT_KEY_SETTING);
    }
  });

  it('reports a record edited after its checkpoint, and a re-hashed rewrite the checkpoint catches', async () => {
    const { vault, chain } = await newChain(6);
    await checkpoint(chain);
    await sql(
      `update audit_records set canonical = replace(canonical, '"SecretGet"', '"SecretList"') where chain = ? and seq = 3`,
      chain,
    );
    expect(await verifyApi(vault)).toMatchObject({ ok: false, kind: 'altered', firstBadSeq: 3 });

    const other = await newChain(6);
    await checkpoint(other.chain);
    const stored = await chainRows(other.chain);
    let prev = stored[1]!.hash;
    for (const r of stored.slice(2)) {
      const canonical = r.seq === 3 ? r.canonical.replace('"SecretGet"', '"SecretList"') : r.canonical;
      const hash = await chainHash(prev, canonical);
      await sql(
        'update audit_records set canonical = ?, prev_hash = ?, hash = ?, operation = ? where chain = ? and seq = ?',
        canonical,
        prev,
        hash,
        r.seq === 3 ? 'SecretList' : r.operation,
        other.chain,
        r.seq,
      );
      prev = hash;
    }
    await sql('update audit_chain_heads set hash = ? where chain = ?', prev, other.chain);
    const body = await verifyApi(other.vault);
    expect(body).toMatchObject({ ok: false, kind: 'altered', firstBadSeq: 1 });
    expect(body.message).toMatch(/differs from the checkpoint/);
  });

  it('is served on the vault to holders of the audit action, and refused to others', async () => {
    const vault = await newVault(adminToken);
    const res = await call('GET', `${vaultOrigin(vault)}/audit/verify?${API}`, { token: adminToken });
    expect(res.status, await res.clone().text()).toBe(200);
    // The vault's chain is named by its id, not its name.
    const { id } = (await env.DB.prepare('select id from vaults where name = ?').bind(vault).first<{ id: string }>())!;
    expect(await json(res)).toMatchObject({ chain: `vault:${id}`, ok: true });

    const created = await json(
      await call('POST', `${APEX}/management/applications`, { token: adminToken, body: { displayName: 'no audit role' } }),
    );
    const outsider = await tokenFor({
      tenantId: (await admin()).tenantId,
      clientId: created.clientId,
      clientSecret: created.clientSecret,
    });
    const refused = await call('GET', `${vaultOrigin(vault)}/audit/verify?${API}`, { token: outsider });
    expect(refused.status).toBe(403);
    expect((await call('GET', `${APEX}/management/audit/verify?vault=${vault}`, { token: outsider })).status).toBe(403);
  });

  it('exports the raw chain as NDJSON, page by page, with the checkpoints', async () => {
    const { vault, chain } = await newChain(7);
    await checkpoint(chain);
    const first = await call('GET', `${APEX}/management/audit/chain?vault=${vault}&limit=4`, { token: adminToken });
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toContain('application/x-ndjson');
    expect(first.headers.get('x-ekv-next-from')).toBe('4');
    const lines = (await first.text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.seq)).toEqual([1, 2, 3, 4]);
    const stored = await chainRows(chain);
    expect(lines[0]).toEqual({
      seq: 1,
      eventId: stored[0]!.event_id,
      canonical: stored[0]!.canonical,
      prevHash: stored[0]!.prev_hash,
      hash: stored[0]!.hash,
    });
    const rest = await call('GET', `${APEX}/management/audit/chain?vault=${vault}&from=4&limit=4`, { token: adminToken });
    expect(
      (await rest.text())
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).seq),
    ).toEqual([5, 6, 7]);
    const cps = await json(await call('GET', `${APEX}/management/audit/checkpoints?vault=${vault}`, { token: adminToken }));
    expect(cps).toMatchObject({ chain, head: { seq: 7 }, prunedThrough: null, checkpoints: [{ seq: 7, alg: 'ES256' }] });
  });
});
