/**
 * The audit hash chain on real D1 rows: gap-free sequences, hashes computed independently,
 * tampering of every kind detected.
 */
import { describe, expect, it } from 'vitest';
import { canonicalJson, chainHash, GENESIS_HASH } from '../../src/audit/canonical';
import { appendToChain, readChain, readChainHead, type ChainEntry } from '../../src/audit/chain';
import { AUDIT_DLQ_NAME, DLQ_MAX_RETRIES } from '../../src/audit/consumer';
import { DEPLOYMENT_CHAIN, type AuditEvent } from '../../src/audit/event';
import { buildRecord, indexedColumns } from '../../src/audit/record';
import { describeVerification, verifyChain, type Checkpoint, type ChainRow } from '../../src/audit/verify';
import { auditDatabase } from '../../src/storage/db';
import { auditEvent, batchOf, chainRows, consume, freshVault, recordOf, rowOfEvent, type StoredRecord } from './audit-helpers';
import { env } from './helpers';
import { count, rows } from './identity-helpers';

const db = auditDatabase(env.DB);
const sql = (query: string, ...params: unknown[]) =>
  env.DB.prepare(query)
    .bind(...params)
    .run();

/** SHA-256(prev bytes ‖ UTF-8 text), computed here independently of src/audit/canonical.ts. */
async function expectedHash(prevHex: string, canonical: string): Promise<string> {
  const prev = Uint8Array.from(prevHex.match(/../g)!.map((h) => parseInt(h, 16)));
  const text = new TextEncoder().encode(canonical);
  const input = new Uint8Array([...prev, ...text]);
  return [...new Uint8Array(await crypto.subtle.digest('SHA-256', input))].map((b) => b.toString(16).padStart(2, '0')).join('');
}

async function expectGapFree(chain: string, events: AuditEvent[]) {
  const stored = await chainRows(chain);
  expect(stored.map((r) => r.seq)).toEqual(stored.map((_, i) => i + 1));
  expect(stored).toHaveLength(events.length);
  expect(new Set(stored.map((r) => r.event_id))).toEqual(new Set(events.map((e) => e.id)));
  const result = await verifyStored(chain);
  expect(result, describeVerification(result)).toMatchObject({ ok: true, through: events.length });
}

async function verifyStored(chain: string, checkpoints: Checkpoint[] = [], verify?: (cp: Checkpoint) => Promise<boolean>) {
  const head = await readChainHead(db, chain);
  return verifyChain(readChain(db, chain), checkpoints, verify, { chain, head });
}

/** A vault chain of n records, appended by the consumer, ready to be tampered with. */
async function storedChain(n = 8): Promise<{ chain: string; vault: string; rows: StoredRecord[] }> {
  const vault = freshVault('tamper');
  const start = Date.now();
  const events = Array.from({ length: n }, (_, i) =>
    auditEvent({ vault, time: start + i, operation: i % 2 ? 'SecretGet' : 'SecretSet' }),
  );
  expect((await consume(batchOf(events))).ackedIds.size).toBe(n);
  const chain = `vault:${vault}`;
  return { chain, vault, rows: await chainRows(chain) };
}

const checkpointOf = (row: StoredRecord, time = '2026-11-28T12:00:00Z'): Checkpoint => ({
  chain: row.chain,
  seq: row.seq,
  hash: row.hash,
  time,
  alg: 'ES256',
  kid: 'test-key',
  signature: 'sig',
});

describe('appending', () => {
  it('appends a vault’s events in time order, each hash chained to the one before', async () => {
    const vault = freshVault();
    const t = Date.now();
    // Out of order in the batch; two share a time (then ordered by event id).
    const events = [
      auditEvent({ vault, time: t + 30 }),
      auditEvent({ vault, time: t + 10 }),
      auditEvent({ vault, time: t + 20 }),
      auditEvent({ vault, time: t + 20 }),
    ];
    expect((await consume(batchOf(events))).ackedIds.size).toBe(4);
    const stored = await chainRows(`vault:${vault}`);
    const expectedOrder = [...events].sort((a, b) => a.time - b.time || (a.id < b.id ? -1 : 1)).map((e) => e.id);
    expect(stored.map((r) => r.event_id)).toEqual(expectedOrder);
    let prev = GENESIS_HASH;
    for (const [i, row] of stored.entries()) {
      expect(row.seq).toBe(i + 1);
      expect(row.prev_hash).toBe(prev);
      expect(row.hash).toBe(await expectedHash(prev, row.canonical));
      const record = recordOf(row);
      expect(row.canonical).toBe(canonicalJson(record));
      expect(record).toMatchObject({ chain: `vault:${vault}`, sequence: i + 1, eventId: row.event_id });
      prev = row.hash;
    }
    // The canonical text: sorted keys, no whitespace.
    expect(stored[0]!.canonical.startsWith('{"callerIpAddress":"203.0.113.7","category":"AuditEvent","chain":')).toBe(true);
    expect(stored[0]!.canonical).not.toMatch(/":\s|,\s/);
    expect(await readChainHead(db, `vault:${vault}`)).toEqual({ seq: 4, hash: prev });

    // A later batch continues the chain.
    const more = [auditEvent({ vault, time: t - 1000 })];
    await consume(batchOf(more));
    const after = await chainRows(`vault:${vault}`);
    expect(after).toHaveLength(5);
    expect(after[4]).toMatchObject({ seq: 5, event_id: more[0]!.id, prev_hash: prev });
    await expectGapFree(`vault:${vault}`, [...events, ...more]);
  });

  it('keeps the apex and unknown hosts in the deployment chain, and each vault in its own', async () => {
    const a = auditEvent({ vault: freshVault() });
    const b = auditEvent({ vault: a.vault!.toUpperCase() });
    const apex = auditEvent({ vault: null });
    await consume(batchOf([a, b, apex]));
    expect((await rowOfEvent(a.id))!.chain).toBe(`vault:${a.vault}`);
    expect((await rowOfEvent(b.id))!.chain).toBe(`vault:${a.vault}`);
    expect((await rowOfEvent(apex.id))!.chain).toBe(DEPLOYMENT_CHAIN);
  });

  it('adds nothing when messages are redelivered, alone or mixed with new ones', async () => {
    const vault = freshVault();
    const events = Array.from({ length: 5 }, () => auditEvent({ vault }));
    await consume(batchOf(events));
    const before = await chainRows(`vault:${vault}`);
    for (let i = 0; i < 3; i++) expect((await consume(batchOf(events))).ackedIds.size).toBe(5);
    expect(await chainRows(`vault:${vault}`)).toEqual(before);
    const fresh = auditEvent({ vault });
    expect((await consume(batchOf([events[3], fresh, events[1], fresh]))).ackedIds.size).toBe(4);
    await expectGapFree(`vault:${vault}`, [...events, fresh]);
  });

  it('ends two concurrent consumer batches for one vault with one gap-free chain holding each event once', async () => {
    const vault = freshVault();
    const a = Array.from({ length: 30 }, () => auditEvent({ vault }));
    const b = Array.from({ length: 30 }, () => auditEvent({ vault }));
    // The second batch also carries a few of the first's events (a redelivery racing the original).
    const [ra, rb] = await Promise.all([consume(batchOf(a)), consume(batchOf([...b, ...a.slice(0, 5)]))]);
    expect(ra.ackedIds.size).toBe(30);
    expect(rb.ackedIds.size).toBe(35);
    await expectGapFree(`vault:${vault}`, [...a, ...b]);
  });

  it('re-reads the chain and retries when another append got there first', async () => {
    const vault = freshVault();
    const chain = `vault:${vault}`;
    const entriesOf = (events: AuditEvent[]): ChainEntry[] =>
      events.map((e) => ({ eventId: e.id, time: e.time, build: (place) => buildRecord(e, place, null) }));
    const groups = [0, 1, 2].map(() => Array.from({ length: 8 }, () => auditEvent({ vault })));
    const results = await Promise.all(groups.map((g) => appendToChain(db, chain, entriesOf(g))));
    expect(results.map((r) => r.appended)).toEqual([8, 8, 8]);
    // They started together: all but the first had to read the new end and try again.
    expect(Math.max(...results.map((r) => r.rounds))).toBeGreaterThan(1);
    await expectGapFree(chain, groups.flat());
  });
});

describe('failures half-way through a batch', () => {
  it('acknowledges the chains it stored and retries only the messages of the chain that failed', async () => {
    const [good1, poisoned, good2] = [freshVault('ok'), freshVault('poison'), freshVault('ok')];
    const trigger = `poison_${poisoned}`;
    await sql(
      `CREATE TRIGGER ${trigger} BEFORE INSERT ON audit_records WHEN NEW.chain = 'vault:${poisoned}' BEGIN SELECT RAISE(ABORT, 'poisoned'); END`,
    );
    const events = [
      auditEvent({ vault: good1 }),
      auditEvent({ vault: poisoned }),
      auditEvent({ vault: good2 }),
      auditEvent({ vault: poisoned }),
      auditEvent({ vault: good1 }),
    ];
    try {
      const batch = batchOf(events);
      const result = await consume(batch);
      const ids = batch.messages.map((m) => m.id);
      expect(result.ackedIds).toEqual(new Set([ids[0], ids[2], ids[4]]));
      expect(result.retriedIds).toEqual(new Set([ids[1], ids[3]]));
      expect(result.retryBatch.retry).toBe(false);
      expect(await count('audit_records', 'chain = ?', `vault:${poisoned}`)).toBe(0);
      await expectGapFree(`vault:${good1}`, [events[0]!, events[4]!]);
      await expectGapFree(`vault:${good2}`, [events[2]!]);
    } finally {
      await sql(`DROP TRIGGER IF EXISTS ${trigger}`);
    }
    // Redelivery (of the retried messages, and of the whole batch) completes every chain once.
    expect((await consume(batchOf([events[1], events[3]]))).ackedIds.size).toBe(2);
    expect((await consume(batchOf(events))).ackedIds.size).toBe(5);
    await expectGapFree(`vault:${poisoned}`, [events[1]!, events[3]!]);
    await expectGapFree(`vault:${good1}`, [events[0]!, events[4]!]);
  });

  it('writes none of a chain’s group when one of its inserts fails, and completes it on redelivery', async () => {
    const vault = freshVault('half');
    const events = Array.from({ length: 40 }, (_, i) => auditEvent({ vault, time: Date.now() + i }));
    const failing = events[25]!.id;
    const trigger = `half_${vault}`;
    await sql(
      `CREATE TRIGGER ${trigger} BEFORE INSERT ON audit_records WHEN NEW.event_id = '${failing}' BEGIN SELECT RAISE(ABORT, 'half-way'); END`,
    );
    try {
      const result = await consume(batchOf(events));
      expect(result.ackedIds.size).toBe(0);
      expect(result.retriedIds.size).toBe(40);
      // Rows 1..25 went into the same transaction as the failing 26th: none of them stayed.
      expect(await count('audit_records', 'chain = ?', `vault:${vault}`)).toBe(0);
      expect(await readChainHead(db, `vault:${vault}`)).toBeNull();
    } finally {
      await sql(`DROP TRIGGER IF EXISTS ${trigger}`);
    }
    expect((await consume(batchOf(events))).ackedIds.size).toBe(40);
    await expectGapFree(`vault:${vault}`, events);
  });
});

describe('dead-letter queue', () => {
  it('persists dead letters the same way, malformed bodies included', async () => {
    const vault = freshVault('dlq');
    const events = [auditEvent({ vault }), auditEvent({ vault })];
    const batch = batchOf([...events, { not: 'an event' }], AUDIT_DLQ_NAME, 2);
    const result = await consume(batch);
    expect(result.ackedIds.size).toBe(3);
    await expectGapFree(`vault:${vault}`, events);
    const malformed = (await rowOfEvent(`malformed:${AUDIT_DLQ_NAME}:${batch.messages[2]!.id}`))!;
    expect(malformed).toMatchObject({ chain: DEPLOYMENT_CHAIN, operation: 'MalformedAuditEvent' });
    expect(recordOf(malformed).properties).toMatchObject({
      queue: AUDIT_DLQ_NAME,
      bodyType: 'object',
      bodyDigest: expect.stringMatching(/^sha256:/),
    });
    expect(malformed.canonical).not.toContain('an event');
    // Redelivered dead letters add nothing.
    expect((await consume(batch)).ackedIds.size).toBe(3);
    await expectGapFree(`vault:${vault}`, events);
  });

  it('retries a dead letter its chain refuses, and on its last attempts records it in the deployment chain', async () => {
    const vault = freshVault('stuck');
    const trigger = `stuck_${vault}`;
    await sql(
      `CREATE TRIGGER ${trigger} BEFORE INSERT ON audit_records WHEN NEW.chain = 'vault:${vault}' BEGIN SELECT RAISE(ABORT, 'stuck'); END`,
    );
    const event = auditEvent({ vault, operation: 'KeySign', status: 200 });
    try {
      const early = await consume(batchOf([event], AUDIT_DLQ_NAME, 1));
      expect(early.retriedIds.size).toBe(1);
      expect(await count('audit_records', 'event_id = ?', `unappendable:${event.id}`)).toBe(0);
      const last = await consume(batchOf([event], AUDIT_DLQ_NAME, DLQ_MAX_RETRIES));
      expect(last.ackedIds.size).toBe(1);
    } finally {
      await sql(`DROP TRIGGER IF EXISTS ${trigger}`);
    }
    const row = (await rowOfEvent(`unappendable:${event.id}`))!;
    expect(row).toMatchObject({ chain: DEPLOYMENT_CHAIN, operation: 'UnappendableAuditEvent', status: 200 });
    expect(recordOf(row).properties).toMatchObject({
      originalEventId: event.id,
      intendedChain: `vault:${vault}`,
      originalOperationName: 'KeySign',
      bodyDigest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
    });
  });
});

describe('verification', () => {
  it('reports an untouched chain intact, through its last record and latest checkpoint', async () => {
    const { chain, rows: stored } = await storedChain(8);
    const plain = await verifyStored(chain);
    expect(plain).toEqual({ ok: true, through: 8, checkpoint: null });
    expect(describeVerification(plain)).toBe('intact through sequence 8 (no checkpoint)');
    const seen: number[] = [];
    const withCheckpoints = await verifyStored(
      chain,
      [checkpointOf(stored[5]!, 'T6'), checkpointOf(stored[2]!, 'T3')],
      async (cp) => {
        seen.push(cp.seq);
        return true;
      },
    );
    expect(withCheckpoints).toEqual({ ok: true, through: 8, checkpoint: { seq: 6, time: 'T6' } });
    expect(describeVerification(withCheckpoints)).toBe('intact through sequence 8 at checkpoint T6 (seq 6)');
    expect(seen.sort()).toEqual([3, 6]);
    // The same rows, read back as a plain array (what an offline verifier would hold), verify too.
    const array: ChainRow[] = [];
    for await (const r of readChain(db, chain, 3)) array.push(r);
    expect(await verifyChain(array)).toEqual({ ok: true, through: 8, checkpoint: null });
  });

  it('pinpoints a record whose text was edited', async () => {
    const { chain, rows: stored } = await storedChain();
    const edited = stored[2]!.canonical.replace('"operationName":"SecretSet"', '"operationName":"SecretGet"');
    expect(edited).not.toBe(stored[2]!.canonical);
    await sql('update audit_records set canonical = ? where chain = ? and seq = 3', edited, chain);
    expect(await verifyStored(chain)).toMatchObject({ ok: false, kind: 'altered', firstBadSeq: 3, intactThrough: 2 });
  });

  it('pinpoints a record edited and re-hashed (its successor still holds the old hash)', async () => {
    const { chain, rows: stored } = await storedChain();
    const row = stored[5]!;
    const edited = row.canonical.replace('"callerIpAddress":"203.0.113.7"', '"callerIpAddress":"198.51.100.1"');
    await sql(
      'update audit_records set canonical = ?, hash = ? where chain = ? and seq = 6',
      edited,
      await chainHash(row.prev_hash, edited),
      chain,
    );
    const result = await verifyStored(chain);
    expect(result).toMatchObject({ ok: false, kind: 'altered', firstBadSeq: 6 });
  });

  it('pinpoints a query column changed behind the record’s back', async () => {
    const { chain } = await storedChain();
    await sql("update audit_records set operation = 'SecretList' where chain = ? and seq = 4", chain);
    expect(await verifyStored(chain)).toMatchObject({ ok: false, kind: 'altered', firstBadSeq: 4 });
  });

  it('pinpoints a deleted record, whether or not the rest were renumbered', async () => {
    const gap = await storedChain();
    await sql('delete from audit_records where chain = ? and seq = 4', gap.chain);
    const r1 = await verifyStored(gap.chain);
    expect(r1).toMatchObject({ ok: false, kind: 'removed', firstBadSeq: 4 });
    expect(describeVerification(r1)).toMatch(/^removed at sequence 4: record 4 is missing/);

    const renumbered = await storedChain();
    await sql('delete from audit_records where chain = ? and seq in (4, 5)', renumbered.chain);
    for (let seq = 6; seq <= 8; seq++)
      await sql('update audit_records set seq = ? where chain = ? and seq = ?', seq - 2, renumbered.chain, seq);
    await sql('update audit_chain_heads set seq = 6 where chain = ?', renumbered.chain);
    expect(await verifyStored(renumbered.chain)).toMatchObject({ ok: false, kind: 'removed', firstBadSeq: 4 });
  });

  it('pinpoints deleted records at the end of the chain, by the stored head or a checkpoint', async () => {
    const { chain, rows: stored } = await storedChain();
    const cp = checkpointOf(stored[7]!);
    await sql('delete from audit_records where chain = ? and seq >= 7', chain);
    expect(await verifyStored(chain)).toMatchObject({ ok: false, kind: 'removed', firstBadSeq: 7 });
    await sql('delete from audit_chain_heads where chain = ?', chain);
    expect(await verifyStored(chain)).toEqual({ ok: true, through: 6, checkpoint: null });
    expect(await verifyStored(chain, [cp])).toMatchObject({ ok: false, kind: 'removed', firstBadSeq: 7 });
    // With the head gone too, the next append continues from the last row as seq 7: the checkpoint
    // still shows that the chain once reached seq 8 (a checkpoint at 7 would also expose the new 7).
    await consume(batchOf([auditEvent({ vault: chain.slice('vault:'.length) })]));
    expect(await verifyStored(chain, [cp])).toMatchObject({ ok: false, kind: 'removed', firstBadSeq: 8 });
    expect(await verifyStored(chain, [checkpointOf(stored[6]!)])).toMatchObject({ ok: false, kind: 'altered', firstBadSeq: 1 });
  });

  it('pinpoints a forged record inserted between two others', async () => {
    const { chain, vault, rows: stored } = await storedChain();
    // A careful forger: shifts the later rows up, and chains a well-formed record to record 4.
    await sql('update audit_records set seq = -(seq + 1) where chain = ? and seq >= 5', chain);
    await sql('update audit_records set seq = -seq where chain = ? and seq < 0', chain);
    const forged = buildRecord(auditEvent({ vault, operation: 'SecretPurge' }), { chain, sequence: 5 }, null);
    const canonical = canonicalJson(forged);
    const hash = await chainHash(stored[3]!.hash, canonical);
    const c = indexedColumns(forged);
    await sql(
      `insert into audit_records (chain, seq, event_id, canonical, prev_hash, hash, time, operation, caller_appid, caller_oid, object_id, status, result, error_code, correlation_id, client_ip)
       values (?, 5, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      chain,
      forged.eventId,
      canonical,
      stored[3]!.hash,
      hash,
      c.time,
      c.operation,
      c.callerAppId,
      c.callerObjectId,
      c.objectId,
      c.status,
      c.result,
      c.errorCode,
      c.correlationId,
      c.clientIp,
    );
    expect(await verifyStored(chain)).toMatchObject({ ok: false, kind: 'inserted', firstBadSeq: 5 });

    // A careless one slots a row in with a fractional seq.
    const other = await storedChain();
    await sql(
      `insert into audit_records (chain, seq, event_id, canonical, prev_hash, hash, time, operation, status, result)
       values (?, 2.5, ?, ?, ?, ?, 0, 'SecretGet', 200, 'success')`,
      other.chain,
      crypto.randomUUID(),
      '{}',
      other.rows[1]!.hash,
      GENESIS_HASH,
    );
    expect(await verifyStored(other.chain)).toMatchObject({ ok: false, kind: 'inserted', firstBadSeq: 3 });
  });

  it('pinpoints swapped records, adjacent or not', async () => {
    for (const [a, b] of [
      [2, 6],
      [3, 4],
    ] as const) {
      const { chain } = await storedChain();
      await sql('update audit_records set seq = -1 where chain = ? and seq = ?', chain, a);
      await sql('update audit_records set seq = ? where chain = ? and seq = ?', a, chain, b);
      await sql('update audit_records set seq = ? where chain = ? and seq = -1', b, chain);
      const result = await verifyStored(chain);
      expect(result, `${a}<->${b}`).toMatchObject({ ok: false, kind: 'reordered', firstBadSeq: a });
    }
  });

  it('catches a chain rewritten and re-hashed from some record on only at the next checkpoint, and says what it cannot tell', async () => {
    const { chain, rows: stored } = await storedChain();
    const checkpoints = [checkpointOf(stored[1]!, 'T2'), checkpointOf(stored[6]!, 'T7')];
    // Rewrite record 4 and re-hash everything after it.
    let prev = stored[2]!.hash;
    for (const row of stored.slice(3)) {
      const canonical =
        row.seq === 4 ? row.canonical.replace('"resultSignature":"OK"', '"resultSignature":"Forbidden"') : row.canonical;
      const hash = await chainHash(prev, canonical);
      await sql(
        'update audit_records set canonical = ?, prev_hash = ?, hash = ? where chain = ? and seq = ?',
        canonical,
        prev,
        hash,
        chain,
        row.seq,
      );
      await sql('update audit_chain_heads set hash = ? where chain = ?', hash, chain);
      prev = hash;
    }
    expect(await verifyStored(chain)).toMatchObject({ ok: true, through: 8 });
    const result = await verifyStored(chain, checkpoints);
    expect(result).toMatchObject({ ok: false, kind: 'altered', firstBadSeq: 3 });
    expect(describeVerification(result)).toContain('does not show which');
  });

  it('refuses a checkpoint whose signature does not verify', async () => {
    const { chain, rows: stored } = await storedChain(4);
    const result = await verifyStored(chain, [checkpointOf(stored[2]!)], async () => false);
    expect(result).toMatchObject({ ok: false, kind: 'checkpoint', firstBadSeq: 3 });
  });

  it('reads a whole chain across pages', async () => {
    const { chain } = await storedChain(12);
    const seen: number[] = [];
    for await (const r of readChain(db, chain, 5)) seen.push(r.seq);
    expect(seen).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(await rows('select 1 from audit_records where chain = ?', chain)).toHaveLength(12);
  });
});
