/**
 * Verification of an audit chain. Pure, web-standard code (crypto.subtle, no D1, no Workers
 * APIs), so the Worker and an offline verifier in Node run the same checks over the same rows.
 *
 * A chain is intact when, walking its rows in `seq` order, row p (1-based position):
 *  - has `seq` = p, and its canonical record claims `sequence` = p, `eventId` = the row's event id
 *    (and `chain` = the expected chain, if given);
 *  - is canonical JSON (re-serialising the parsed record gives the same text);
 *  - has prevHash = row p-1's hash (64 zeros for p = 1) and hash = SHA-256(prevHash ‖ canonical);
 *  - has the query columns derived from its record, when the caller passes them;
 * and every checkpoint (seq, hash) matches the row at its seq, and the stored chain head, when
 * given, matches the last row.
 *
 * The first row that breaks a rule is classified from the evidence around it (rows read ahead
 * of it, up to `lookahead`):
 *  - altered: the row is where it belongs (its seq and claimed sequence agree with its position)
 *    but its text no longer hashes to its stored hash while its successor still links to that
 *    stored hash (content edited after hashing); or its stored columns or event id disagree with
 *    its record; or it is self-consistent but does not link to its predecessor while its
 *    successor links to it, in which case the predecessor is the one that was rewritten and
 *    re-hashed and is reported (its successor recorded a different hash for it).
 *  - removed: a seq is missing (a gap), or the rows after a position were renumbered to close the
 *    gap (the row at p claims a later sequence and no row claiming p follows), or the chain ends
 *    before a checkpoint or the stored head.
 *  - inserted: a row sits between two rows that link to each other directly (its successor's
 *    prevHash is its predecessor's hash), or the rows after it were renumbered to make room (the
 *    next row claims this position and links to the row before it), or it has a non-integer seq,
 *    belongs to another chain, or lies past the stored head.
 *  - reordered: the row at p claims another sequence q and the row claiming p is found at q's
 *    place further on (rows swapped or moved).
 * A chain rewritten and re-hashed consistently from some row on is only caught by a checkpoint:
 * the data then proves that something between the previous checkpoint and that one was changed,
 * not which row, and the report says so (firstBadSeq is the first row after the last matching
 * checkpoint).
 */
import { canonicalJson, chainHash, GENESIS_HASH, isHash } from './canonical';
import { indexedColumns, type AuditRecord, type IndexedColumns } from './record';

export interface ChainRow {
  seq: number;
  eventId: string;
  canonical: string;
  prevHash: string;
  hash: string;
  /** The query columns stored beside the record, if the caller has them (checked when given). */
  columns?: Partial<IndexedColumns>;
}

/** A signed statement that a chain's record `seq` had hash `hash` at `time` (signed elsewhere). */
export interface Checkpoint {
  chain: string;
  seq: number;
  hash: string;
  /** When the checkpoint was made (Unix milliseconds or ISO 8601, as the signer wrote it). */
  time: number | string;
  /** Signature algorithm and key id (e.g. an HSM key), and the signature, verified by the caller. */
  alg: string;
  kid: string;
  signature: string;
}

export type TamperKind = 'altered' | 'removed' | 'inserted' | 'reordered' | 'checkpoint';

export type VerifyResult =
  | { ok: true; through: number; checkpoint: { seq: number; time: number | string } | null }
  | { ok: false; firstBadSeq: number; kind: TamperKind; detail: string; intactThrough: number };

export interface VerifyOptions {
  /** The chain every record must claim. */
  chain?: string;
  /** The stored chain head ({seq, hash} of the last append), if any. */
  head?: { seq: number; hash: string } | null;
  /** How many rows past the first inconsistency are read to classify it (default 10,000). */
  lookahead?: number;
  /**
   * Where the rows start when the chain's first records were pruned (archived, then deleted):
   * `records` begin at `from.seq + 1` and the first links to `from.hash`. The caller vouches for
   * the anchor (e.g. a signed checkpoint at that seq); a checkpoint at `from.seq` must agree with
   * it, and checkpoints before it only have their signatures checked.
   */
  from?: { seq: number; hash: string } | null;
}

interface Claims {
  record: AuditRecord | null;
  sequence: number | null;
  eventId: string | null;
  chain: string | null;
  canonicalOk: boolean;
}

function claimsOf(row: ChainRow): Claims {
  try {
    const record = JSON.parse(row.canonical) as AuditRecord;
    if (typeof record !== 'object' || record === null || Array.isArray(record)) throw new Error('not an object');
    return {
      record,
      sequence: typeof record.sequence === 'number' ? record.sequence : null,
      eventId: typeof record.eventId === 'string' ? record.eventId : null,
      chain: typeof record.chain === 'string' ? record.chain : null,
      canonicalOk: canonicalJson(record) === row.canonical,
    };
  } catch {
    return { record: null, sequence: null, eventId: null, chain: null, canonicalOk: false };
  }
}

async function selfValid(row: ChainRow): Promise<boolean> {
  if (!isHash(row.prevHash) || !isHash(row.hash)) return false;
  return (await chainHash(row.prevHash, row.canonical)) === row.hash;
}

function columnsDiffer(row: ChainRow, record: AuditRecord | null): string | null {
  if (!row.columns || !record) return null;
  let derived: IndexedColumns;
  try {
    derived = indexedColumns(record);
  } catch {
    return 'columns';
  }
  for (const [key, value] of Object.entries(row.columns)) {
    if (value === undefined) continue;
    if (derived[key as keyof IndexedColumns] !== value) return key;
  }
  return null;
}

function iteratorOf<T>(source: Iterable<T> | AsyncIterable<T>): { next(): Promise<IteratorResult<T>> } {
  if (Symbol.asyncIterator in source) return (source as AsyncIterable<T>)[Symbol.asyncIterator]();
  const it = (source as Iterable<T>)[Symbol.iterator]();
  return { next: async () => it.next() };
}

const label = (row: ChainRow) => `seq ${row.seq} (event ${row.eventId})`;

export async function verifyChain(
  records: Iterable<ChainRow> | AsyncIterable<ChainRow>,
  checkpoints: readonly Checkpoint[] = [],
  verifyCheckpoint?: (checkpoint: Checkpoint) => Promise<boolean>,
  options: VerifyOptions = {},
): Promise<VerifyResult> {
  const fail = (firstBadSeq: number, kind: TamperKind, detail: string): VerifyResult => ({
    ok: false,
    firstBadSeq,
    kind,
    detail,
    intactThrough: Math.max(0, firstBadSeq - 1),
  });

  // Checkpoints first: a forged or malformed one is itself evidence of tampering.
  const sorted = [...checkpoints].sort((a, b) => a.seq - b.seq);
  for (const cp of sorted) {
    if (!Number.isSafeInteger(cp.seq) || cp.seq < 1 || !isHash(cp.hash) || (options.chain && cp.chain !== options.chain)) {
      return fail(
        Math.max(1, Math.floor(cp.seq) || 1),
        'checkpoint',
        `checkpoint at seq ${cp.seq} is malformed or for another chain`,
      );
    }
    if (verifyCheckpoint && !(await verifyCheckpoint(cp))) {
      return fail(
        cp.seq,
        'checkpoint',
        `the signature of the checkpoint at seq ${cp.seq} (${cp.time}, ${cp.alg} ${cp.kid}) does not verify`,
      );
    }
  }

  const it = iteratorOf(records);
  const lookaheadLimit = options.lookahead ?? 10_000;
  let position = options.from?.seq ?? 0;
  let prevHash = options.from?.hash ?? GENESIS_HASH;
  let prevPrevHash: string | null = null;
  let cpIndex = 0;
  let lastCheckpoint: Checkpoint | null = null;
  if (options.from && (!Number.isSafeInteger(position) || position < 0 || !isHash(prevHash))) {
    return fail(1, 'removed', 'the anchor of the pruned records is malformed');
  }
  // Checkpoints over pruned records: only the one at the anchor is compared (with the anchor).
  while (cpIndex < sorted.length && sorted[cpIndex]!.seq <= position) {
    const cp = sorted[cpIndex]!;
    if (cp.seq === position) {
      if (cp.hash !== prevHash) {
        return fail(
          position,
          'altered',
          `the pruned records end at seq ${position} with a hash other than the checkpoint signed at ${cp.time}`,
        );
      }
      lastCheckpoint = cp;
    }
    cpIndex++;
  }

  const readAhead = async (): Promise<ChainRow[]> => {
    const rows: ChainRow[] = [];
    while (rows.length < lookaheadLimit) {
      const next = await it.next();
      if (next.done) break;
      rows.push(next.value);
    }
    return rows;
  };

  for (;;) {
    const next = await it.next();
    if (next.done) break;
    const row = next.value;
    const p = position + 1;
    const claims = claimsOf(row);
    const valid = await selfValid(row);
    const linked = row.prevHash === prevHash;
    const inPlace = row.seq === p && claims.sequence === p;
    const consistent =
      inPlace &&
      valid &&
      linked &&
      claims.canonicalOk &&
      claims.eventId === row.eventId &&
      (!options.chain || claims.chain === options.chain) &&
      columnsDiffer(row, claims.record) === null;

    if (!consistent) {
      const ahead = await readAhead();
      return classify(row, p, claims, valid, linked, ahead);
    }

    if (options.head && p > options.head.seq) {
      return fail(p, 'inserted', `${label(row)} lies past the stored chain head (seq ${options.head.seq})`);
    }
    while (cpIndex < sorted.length && sorted[cpIndex]!.seq === p) {
      const cp = sorted[cpIndex]!;
      if (cp.hash !== row.hash) {
        const from = (lastCheckpoint?.seq ?? 0) + 1;
        return fail(
          from,
          'altered',
          `records ${from}..${p} are consistent with each other, but record ${p}'s hash differs from the checkpoint signed at ${cp.time}: ` +
            `some record in that range was rewritten and the chain re-hashed after it; the data alone does not show which`,
        );
      }
      lastCheckpoint = cp;
      cpIndex++;
    }
    position = p;
    prevPrevHash = prevHash;
    prevHash = row.hash;
  }

  const n = position;
  if (cpIndex < sorted.length) {
    const cp = sorted[cpIndex]!;
    return fail(n + 1, 'removed', `the chain ends at seq ${n} but the checkpoint signed at ${cp.time} covers seq ${cp.seq}`);
  }
  if (options.head) {
    if (options.head.seq > n)
      return fail(n + 1, 'removed', `the chain ends at seq ${n} but its stored head is seq ${options.head.seq}`);
    if (options.head.seq === n && n > 0 && options.head.hash !== prevHash) {
      return fail(n, 'altered', `record ${n}'s hash differs from the stored chain head's`);
    }
  }
  return { ok: true, through: n, checkpoint: lastCheckpoint ? { seq: lastCheckpoint.seq, time: lastCheckpoint.time } : null };

  /** Names what happened at position p from the row, its claims and the rows after it. */
  async function classify(
    row: ChainRow,
    p: number,
    claims: Claims,
    valid: boolean,
    linked: boolean,
    ahead: ChainRow[],
  ): Promise<VerifyResult> {
    const successor = ahead[0];
    const findClaiming = async (seq: number): Promise<number> => {
      for (let i = 0; i < ahead.length; i++) {
        const other = ahead[i]!;
        if (claimsOf(other).sequence === seq && (await selfValid(other))) return p + 1 + i;
      }
      return -1;
    };

    // A seq column that is not a whole number only exists to slot a row between two others.
    if (!Number.isSafeInteger(row.seq)) {
      return fail(p, 'inserted', `${label(row)} has a non-integer seq, placed after record ${p - 1}`);
    }
    if (options.chain && claims.chain !== null && claims.chain !== options.chain) {
      return fail(p, 'inserted', `${label(row)} is a record of chain '${claims.chain}', not '${options.chain}'`);
    }
    const genuineElsewhere = valid && claims.canonicalOk && claims.sequence !== null && claims.sequence !== p;
    if (genuineElsewhere && claims.sequence === p - 1 && prevPrevHash !== null && row.prevHash === prevPrevHash) {
      // The rows were renumbered to make room for record p-1, which does not belong.
      return fail(
        p - 1,
        'inserted',
        `the record at seq ${p - 1} is not part of the chain: the record now at seq ${p} (event ${row.eventId}) claims seq ${p - 1} and follows record ${p - 2} directly`,
      );
    }
    if (genuineElsewhere && claims.sequence! > p && claims.sequence! <= p + ahead.length) {
      // Record q sits at p, record p sits further on, and nothing else claims q: moved, not forged.
      const found = await findClaiming(p);
      const claimed = claims.sequence!;
      const duplicate = ahead.some((other) => claimsOf(other).sequence === claimed);
      if (found > 0 && !duplicate) {
        return fail(
          p,
          'reordered',
          `the record at seq ${p} (event ${row.eventId}) is record ${claimed}; record ${p} was found at position ${found}`,
        );
      }
    }
    // Its successor links straight to its predecessor: this row is not part of the chain.
    if (successor && successor.prevHash === prevHash && (await selfValid(successor))) {
      return fail(
        p,
        'inserted',
        `${label(row)} sits between record ${p - 1} and the record that directly follows it (event ${successor.eventId})`,
      );
    }
    if (row.seq > p) {
      // A gap in seq: the missing records were deleted (moves were recognised above).
      const missing = row.seq - p === 1 ? `record ${p} is` : `records ${p}..${row.seq - 1} are`;
      return fail(p, 'removed', `${missing} missing: seq ${p - 1} is followed by ${label(row)}`);
    }
    if (genuineElsewhere) {
      const claimed = claims.sequence!;
      if (claimed > p) {
        const count = claimed - p;
        return fail(
          p,
          'removed',
          `${count === 1 ? `record ${p} is` : `records ${p}..${claimed - 1} are`} missing and the records after were renumbered: the record at seq ${p} claims seq ${claimed}`,
        );
      }
      return fail(p, 'inserted', `the record at seq ${p} (event ${row.eventId}) is a copy of record ${claimed}, replayed here`);
    }
    // The row is where it belongs; something about it was changed.
    if (!claims.record || !claims.canonicalOk) {
      return fail(p, 'altered', `record ${p}'s text was edited: it is no longer the canonical JSON of a record`);
    }
    if (!valid) {
      if (!isHash(row.prevHash) || !linked) return fail(p, 'altered', `record ${p}'s link to record ${p - 1} was edited`);
      const trusted = successor && successor.prevHash === row.hash ? '; the next record still links to its stored hash' : '';
      return fail(p, 'altered', `record ${p}'s content no longer matches its hash${trusted}`);
    }
    if (claims.eventId !== row.eventId) return fail(p, 'altered', `record ${p}'s event id column differs from its record's`);
    const column = columnsDiffer(row, claims.record);
    if (column) return fail(p, 'altered', `record ${p}'s stored ${column} column differs from its record`);
    if (!linked) {
      if (p === 1) return fail(1, 'altered', 'record 1 does not start from the genesis hash');
      // Self-consistent and in place, but its predecessor's stored hash is not what it recorded:
      // the predecessor was rewritten and re-hashed (or this record replaced with a forgery).
      const successorTrusts = successor ? successor.prevHash === row.hash : true;
      return fail(
        p - 1,
        'altered',
        `record ${p - 1}'s hash differs from the one record ${p} recorded for it: record ${p - 1} was rewritten and re-hashed` +
          (successorTrusts ? '' : ` (or record ${p} was replaced)`),
      );
    }
    return fail(p, 'altered', `record ${p} is inconsistent`);
  }
}

/** "intact through sequence N at checkpoint T", or what was found and where. */
export function describeVerification(result: VerifyResult): string {
  if (result.ok) {
    const at = result.checkpoint ? ` at checkpoint ${result.checkpoint.time} (seq ${result.checkpoint.seq})` : ' (no checkpoint)';
    return `intact through sequence ${result.through}${at}`;
  }
  return `${result.kind} at sequence ${result.firstBadSeq}: ${result.detail}`;
}
