/**
 * Rows inserted as one JSON parameter (src/storage/bulk-insert.ts) are stored exactly as a plain
 * insert stores them: text (quotes, backslashes, non-ASCII), integers and nulls, in order, in the
 * batch's transaction; and a value json_extract could not give back unchanged is refused.
 */
import { asc, eq, sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { insertRowsAsJson, jsonValues } from '../../src/storage/bulk-insert';
import { database } from '../../src/storage/db';
import { auditRecords } from '../../src/storage/schema';
import { env } from './helpers';

const db = database(env.DB);

function row(chain: string, seq: number, overrides: Partial<typeof auditRecords.$inferInsert> = {}) {
  return {
    chain,
    seq,
    eventId: `${chain}-${seq}`,
    canonical: `{"q":"\\"quoted\\" \\\\ back","u":"ünïcode ✓ 𝄞","n":${seq}}`,
    prevHash: '0'.repeat(64),
    hash: String(seq).padStart(64, 'a'),
    time: 1_764_800_000_000 + seq,
    operation: 'SecretGet',
    callerAppId: seq % 2 ? null : `app-${seq}`,
    callerObjectId: null,
    objectId: `/secrets/Name'${seq}`,
    status: 200 + seq,
    result: 'success',
    errorCode: null,
    correlationId: seq % 3 ? `c-${seq}` : null,
    clientIp: null,
    ...overrides,
  };
}

describe('insertRowsAsJson', () => {
  it('stores every column as a plain insert would, in order', async () => {
    const chain = `bulk-${crypto.randomUUID()}`;
    const rows = Array.from({ length: 150 }, (_, i) => row(chain, i + 1));
    await db.batch([insertRowsAsJson(db, auditRecords, rows)]);
    const stored = await db.select().from(auditRecords).where(eq(auditRecords.chain, chain)).orderBy(asc(auditRecords.seq)).all();
    expect(stored).toEqual(rows);
    const types = await db.all<{ t: string; s: string }>(
      sql`select typeof(time) as t, typeof(status) as s from audit_records where chain = ${chain} limit 1`,
    );
    expect(types).toEqual([{ t: 'integer', s: 'integer' }]);
  });

  it('is part of the batch transaction: a failing row stores none of them', async () => {
    const chain = `bulk-${crypto.randomUUID()}`;
    const rows = [row(chain, 1), row(chain, 2), row(chain, 2, { eventId: `${chain}-dup` })];
    await expect(db.batch([insertRowsAsJson(db, auditRecords, rows)])).rejects.toThrow(/UNIQUE/);
    expect(await db.select().from(auditRecords).where(eq(auditRecords.chain, chain)).all()).toEqual([]);
  });

  it('refuses values it cannot carry unchanged (booleans, dates, bytes)', () => {
    const chain = 'never-written';
    expect(() => insertRowsAsJson(db, auditRecords, [row(chain, 1, { status: true as unknown as number })])).toThrow(TypeError);
    expect(() => insertRowsAsJson(db, auditRecords, [row(chain, 1, { time: new Date() as unknown as number })])).toThrow(
      TypeError,
    );
  });

  it('jsonValues matches any number of values in one parameter', async () => {
    const chain = `bulk-${crypto.randomUUID()}`;
    await db.batch([
      insertRowsAsJson(
        db,
        auditRecords,
        Array.from({ length: 120 }, (_, i) => row(chain, i + 1)),
      ),
    ]);
    const wanted = Array.from({ length: 120 }, (_, i) => `${chain}-${i + 1}`).filter((_, i) => i % 2 === 0);
    const found = await db
      .select({ eventId: auditRecords.eventId })
      .from(auditRecords)
      .where(sql`${auditRecords.eventId} in ${jsonValues([...wanted, 'absent'])}`)
      .all();
    expect(found.map((r) => r.eventId).sort()).toEqual([...wanted].sort());
  });
});
