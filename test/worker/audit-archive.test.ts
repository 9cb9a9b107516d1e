/**
 * Audit archive to R2 and retention: each closed period archived once and verifiable alone; only
 * archived records pruned.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  archiveClosedPeriods,
  archiveConfig,
  ArchiveConfigError,
  periodOf,
  pruneArchivedRecords,
  type ArchiveConfig,
} from '../../src/audit/archive';
import { chainHash, GENESIS_HASH } from '../../src/audit/canonical';
import {
  CHECKPOINT_KEY_ID,
  ensureCheckpointKey,
  listCheckpoints,
  verifyCheckpointSignature,
  type EcPublicJwk,
} from '../../src/audit/checkpoints';
import type { Checkpoint } from '../../src/audit/verify';
import { BridgeClient } from '../../src/crypto/bridge-client';
import { database } from '../../src/storage/db';
import { auditEvent, batchOf, chainRows, consume, freshVault } from './audit-helpers';
import { APEX, admin, call, env, json, tokenFor } from './helpers';

const db = database(env.DB);
const bridge = new BridgeClient(env.BRIDGE_URL, env.BRIDGE_HMAC_SECRET);
const bucket = env.AUDIT_ARCHIVE!;
const DAY = 86_400_000;
const config: ArchiveConfig = { period: 'day', retentionDays: 30, archiveRetentionDays: null };
const sql = (query: string, ...params: unknown[]) =>
  env.DB.prepare(query)
    .bind(...params)
    .run();

let adminToken: string;
beforeAll(async () => {
  adminToken = await tokenFor(await admin());
  await ensureCheckpointKey(db, bridge);
});

/** Records on two closed days (3 then 2) and 2 of today, appended by the real consumer. */
async function chainOverThreeDays() {
  const vault = freshVault('ar');
  const now = Date.now();
  const day1 = periodOf(now - 3 * DAY, 'day');
  const day2 = periodOf(now - 2 * DAY, 'day');
  const times = [
    day1.start + 3_600_000,
    day1.start + 3_600_001,
    day1.start + 7_200_000,
    day2.start + 60_000,
    day2.start + 120_000,
    now,
    now + 1,
  ];
  const events = times.map((time) => auditEvent({ vault, time }));
  expect((await consume(batchOf(events))).ackedIds.size).toBe(times.length);
  return { vault, chain: `vault:${vault}`, day1, day2, now };
}

async function verifyApi(vault: string): Promise<any> {
  const res = await call('GET', `${APEX}/management/audit/verify?vault=${vault}`, { token: adminToken });
  expect(res.status, await res.clone().text()).toBe(200);
  return json(res);
}

describe('archive', () => {
  it('writes each closed day of a chain once, as NDJSON with the signed checkpoint of its last record', async () => {
    const { chain, day1, day2, now } = await chainOverThreeDays();
    const stored = await chainRows(chain);
    const run = await archiveClosedPeriods(db, bridge, bucket, config, now, [chain]);
    expect(run).toMatchObject({ archived: 2, refused: [], deferred: false });

    const object = await bucket.get(`${chain}/${day1.id}.ndjson`);
    expect(object).not.toBeNull();
    const text = await object!.text();
    expect(text).toBe(
      stored
        .slice(0, 3)
        .map((r) => r.canonical)
        .join('\n') + '\n',
    );
    const meta = object!.customMetadata!;
    expect(meta).toMatchObject({
      chain,
      period: day1.id,
      firstSeq: '1',
      lastSeq: '3',
      prevHash: GENESIS_HASH,
      lastHash: stored[2]!.hash,
    });
    const checkpoint = JSON.parse(meta.checkpoint!) as Checkpoint;
    expect(checkpoint).toMatchObject({ chain, seq: 3, hash: stored[2]!.hash });
    const publicJwk = (await bridge.publicKey(CHECKPOINT_KEY_ID)) as EcPublicJwk;
    expect(await verifyCheckpointSignature(checkpoint, publicJwk)).toBe(true);
    // The archive verifies on its own: its lines re-hash from prevHash to the checkpoint's hash.
    let hash = meta.prevHash!;
    for (const line of text.trim().split('\n')) hash = await chainHash(hash, line);
    expect(hash).toBe(checkpoint.hash);

    const second = await bucket.get(`${chain}/${day2.id}.ndjson`);
    expect(second!.customMetadata).toMatchObject({
      firstSeq: '4',
      lastSeq: '5',
      prevHash: stored[2]!.hash,
      lastHash: stored[4]!.hash,
    });
    expect((await listCheckpoints(db, chain)).map((c) => c.seq)).toEqual([3, 5]);
    // Today is not closed: not archived.
    expect((await bucket.list({ prefix: `${chain}/` })).objects.map((o) => o.key).sort()).toEqual([
      `${chain}/${day1.id}.ndjson`,
      `${chain}/${day2.id}.ndjson`,
    ]);

    // Idempotent: a second run writes nothing, and the objects are the same bytes.
    const etag = object!.etag;
    expect((await archiveClosedPeriods(db, bridge, bucket, config, now, [chain])).archived).toBe(0);
    expect((await bucket.head(`${chain}/${day1.id}.ndjson`))!.etag).toBe(etag);
  });

  it('does not archive a chain whose records do not verify', async () => {
    const { chain, now } = await chainOverThreeDays();
    await sql(
      `update audit_records set canonical = replace(canonical, '"SecretGet"', '"SecretList"') where chain = ? and seq = 2`,
      chain,
    );
    const run = await archiveClosedPeriods(db, bridge, bucket, config, now, [chain]);
    expect(run).toMatchObject({ archived: 0, refused: [chain] });
    expect((await bucket.list({ prefix: `${chain}/` })).objects).toEqual([]);
  });
});

describe('retention', () => {
  it('prunes only archived records past retention, and the chain still verifies as intact', async () => {
    const { vault, chain, now } = await chainOverThreeDays();
    // Nothing archived yet: even far past retention, nothing is pruned.
    const later = now + 31 * DAY;
    expect(await pruneArchivedRecords(db, config, later, [chain])).toEqual({ periods: 0, records: 0 });
    expect(await chainRows(chain)).toHaveLength(7);

    await archiveClosedPeriods(db, bridge, bucket, config, now, [chain]);
    // Within retention: kept.
    expect(await pruneArchivedRecords(db, config, now, [chain])).toEqual({ periods: 0, records: 0 });
    // Past it: the two archived days go, today's unarchived records stay.
    expect(await pruneArchivedRecords(db, config, later, [chain])).toEqual({ periods: 2, records: 5 });
    expect((await chainRows(chain)).map((r) => r.seq)).toEqual([6, 7]);

    const body = await verifyApi(vault);
    expect(body).toMatchObject({ ok: true, through: 7, prunedThrough: 5, checkpoint: { seq: 5 } });
    expect(body.message).toMatch(/^intact through sequence 7 at checkpoint/);

    // Without the signed checkpoint that anchors the pruned records, it no longer verifies.
    await sql('delete from audit_checkpoints where chain = ? and seq = 5', chain);
    expect(await verifyApi(vault)).toMatchObject({ ok: false, kind: 'removed', firstBadSeq: 1 });
  });

  it('refuses retention settings below the minimum rather than prune early', () => {
    expect(() => archiveConfig({ AUDIT_RETENTION_DAYS: '7' })).toThrow(ArchiveConfigError);
    expect(() => archiveConfig({ AUDIT_RETENTION_DAYS: 'soon' })).toThrow(ArchiveConfigError);
    expect(() => archiveConfig({ AUDIT_RETENTION_DAYS: '90', AUDIT_ARCHIVE_RETENTION_DAYS: '60' })).toThrow(ArchiveConfigError);
    expect(() => archiveConfig({ AUDIT_ARCHIVE_PERIOD: 'week' })).toThrow(ArchiveConfigError);
    expect(archiveConfig({})).toEqual({ period: 'day', retentionDays: 365, archiveRetentionDays: null });
    expect(
      archiveConfig({ AUDIT_ARCHIVE_PERIOD: 'hour', AUDIT_RETENTION_DAYS: '30', AUDIT_ARCHIVE_RETENTION_DAYS: '3650' }),
    ).toEqual({
      period: 'hour',
      retentionDays: 30,
      archiveRetentionDays: 3650,
    });
  });
});
