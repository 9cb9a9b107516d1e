/**
 * Reading one audit chain back: the filters of the query API (src/http/routes/audit-query.ts),
 * pages of records in chain order, and the NDJSON export.
 *
 * Records come back in chain order, ascending by sequence number (oldest appended first): the
 * order the hash chain fixes, so a page or an export can be checked against the chain, and a
 * continuation never skips or repeats a record however many are appended meanwhile (new records
 * always get higher sequence numbers). The filters use the query columns stored beside each
 * record (src/audit/record.ts indexedColumns) and the indexes on them (src/storage/schema.ts):
 * (chain, seq) for order and paging, (chain, time), (chain, operation, time), (chain, object_id,
 * time) and (caller_appid, time).
 *
 * What is served is the stored canonical record, verbatim: the JSON objects of a page are parsed
 * from it, and an export line is it, byte for byte (so a line hashes as the chain says).
 */
import { and, asc, eq, gt, gte, inArray, lt, lte, or, sql, type SQL } from 'drizzle-orm';
import type { Database } from '../storage/db';
import { auditRecords } from '../storage/schema';
import { badParameter } from '../core/errors';
import { decodePageToken, encodePageToken } from '../core/paging';
import type { AuditRecord, IndexedColumns } from './record';

export type ResultClass = IndexedColumns['result'];
const RESULT_CLASSES: readonly ResultClass[] = ['success', 'denied', 'failed', 'error'];

/** What a query selects, beyond its chain. Every field narrows; absent fields do not. */
export interface AuditFilter {
  /** Unix milliseconds, inclusive. */
  from?: number;
  /** Unix milliseconds, exclusive (so consecutive windows neither overlap nor leave gaps). */
  to?: number;
  /** Azure operation names, exact (SecretGet, KeySign, …); any of them. */
  operations?: string[];
  /** An application id or an object id: records whose caller has either. */
  caller?: string;
  /** The object's path (`/secrets/x`), compared without case. */
  objectId?: string;
  results?: ResultClass[];
  statuses?: number[];
}

/** Query parameters the API reads; any other is refused (a mistyped filter must not match everything). */
export const AUDIT_QUERY_PARAMETERS = [
  'api-version',
  'maxresults',
  '$skiptoken',
  'format',
  'from',
  'to',
  'operation',
  'caller',
  'objectId',
  'result',
  'status',
] as const;

export const PAGE_SIZE = 25;
/** Records one export request streams at most; a longer export continues with the token it is given. */
export const EXPORT_MAX = 100_000;
/** Rows read from D1 per round trip while exporting. */
const EXPORT_BATCH = 500;

const MAX_LIST = 20;

function list(raw: string, what: string): string[] {
  const items = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (items.length === 0) throw badParameter(`The ${what} filter is empty.`);
  if (items.length > MAX_LIST) throw badParameter(`The ${what} filter takes at most ${MAX_LIST} values.`);
  return [...new Set(items)];
}

/** `from`/`to`: ISO 8601 (with a date, e.g. 2026-04-01 or 2026-04-01T12:00:00Z) or Unix seconds. */
export function parseInstant(raw: string, name: string): number {
  const text = raw.trim();
  let ms: number;
  if (/^\d{1,11}(\.\d{1,3})?$/.test(text)) ms = Math.round(Number(text) * 1000);
  else if (/^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$/i.test(text)) ms = Date.parse(text);
  else ms = Number.NaN;
  if (!Number.isFinite(ms)) {
    throw badParameter(`The ${name} parameter must be an ISO 8601 date-time (e.g. 2026-04-01T00:00:00Z) or Unix seconds.`);
  }
  return ms;
}

/** The filter of a query string; 400 BadParameter for anything not understood. */
export function parseAuditFilter(params: URLSearchParams): AuditFilter {
  const allowed = new Set<string>(AUDIT_QUERY_PARAMETERS);
  for (const name of new Set(params.keys())) {
    if (!allowed.has(name)) {
      throw badParameter(
        `Unknown query parameter '${name.slice(0, 64)}'. Filters: from, to, operation, caller, objectId, result, status.`,
      );
    }
    if (name !== 'operation' && params.getAll(name).length > 1)
      throw badParameter(`The ${name.slice(0, 64)} parameter is given more than once.`);
  }
  const filter: AuditFilter = {};
  const from = params.get('from');
  const to = params.get('to');
  if (from !== null) filter.from = parseInstant(from, 'from');
  if (to !== null) filter.to = parseInstant(to, 'to');
  if (filter.from !== undefined && filter.to !== undefined && filter.from > filter.to)
    throw badParameter('from must not be later than to.');

  const operations = params.getAll('operation');
  if (operations.length > 0) {
    const names = list(operations.join(','), 'operation');
    for (const n of names)
      if (!/^[A-Za-z][A-Za-z0-9]{0,63}$/.test(n))
        throw badParameter(`'${n.slice(0, 64)}' is not an operation name (e.g. SecretGet).`);
    filter.operations = names;
  }

  const caller = params.get('caller');
  if (caller !== null) {
    const c = caller.trim();
    if (!/^[A-Za-z0-9._-]{1,128}$/.test(c)) throw badParameter('The caller filter must be an application id or an object id.');
    filter.caller = c;
  }

  const objectId = params.get('objectId');
  if (objectId !== null) {
    let path = objectId.trim();
    // properties.id is a URL; accept it as given and filter on its path.
    if (/^https?:\/\//i.test(path)) {
      try {
        path = new URL(path).pathname;
      } catch {
        throw badParameter('The objectId filter is not a valid URL or path.');
      }
    }
    if (!path.startsWith('/') || path.length > 1024)
      throw badParameter("The objectId filter must be an object's path, e.g. /secrets/name.");
    if (path.length > 1) path = path.replace(/\/+$/, '');
    filter.objectId = path;
  }

  const result = params.get('result');
  if (result !== null) {
    const values = list(result.toLowerCase(), 'result');
    for (const v of values) {
      if (!RESULT_CLASSES.includes(v as ResultClass)) throw badParameter(`The result filter takes ${RESULT_CLASSES.join(', ')}.`);
    }
    filter.results = values as ResultClass[];
  }

  const status = params.get('status');
  if (status !== null) {
    const values = list(status, 'status').map(Number);
    for (const v of values)
      if (!Number.isInteger(v) || v < 100 || v > 599) throw badParameter('The status filter takes HTTP status codes (100-599).');
    filter.statuses = values;
  }
  return filter;
}

/** `maxresults`: 1–25 for a page (default 25), 1–EXPORT_MAX for an export (default EXPORT_MAX). */
export function parseLimit(raw: string | null | undefined, exporting: boolean): number {
  const max = exporting ? EXPORT_MAX : PAGE_SIZE;
  if (raw === undefined || raw === null || raw === '') return max;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isInteger(n) || n < 1 || n > max)
    throw badParameter(`maxresults must be an integer from 1 to ${max}.`);
  return n;
}

/** The sequence number a `$skiptoken` continues after (0: from the start). */
export function parseSkipToken(raw: string | null | undefined): number {
  if (!raw) return 0;
  const { after } = decodePageToken(raw, 'after');
  const seq = Number(after);
  if (!Number.isSafeInteger(seq) || seq < 0) throw badParameter('The $skiptoken is invalid.');
  return seq;
}

export const skipTokenAfter = (seq: number): string => encodePageToken({ after: String(seq) });

function conditions(chain: string, filter: AuditFilter, after: number, through?: number): SQL {
  const parts: (SQL | undefined)[] = [eq(auditRecords.chain, chain)];
  if (after > 0) parts.push(gt(auditRecords.seq, after));
  if (through !== undefined) parts.push(lte(auditRecords.seq, through));
  if (filter.from !== undefined) parts.push(gte(auditRecords.time, filter.from));
  if (filter.to !== undefined) parts.push(lt(auditRecords.time, filter.to));
  if (filter.operations) parts.push(inArray(auditRecords.operation, filter.operations));
  if (filter.caller) parts.push(or(eq(auditRecords.callerAppId, filter.caller), eq(auditRecords.callerObjectId, filter.caller)));
  // object_id is COLLATE NOCASE: the comparison is without case, and uses (chain, object_id, time).
  if (filter.objectId) parts.push(eq(auditRecords.objectId, filter.objectId));
  if (filter.results) parts.push(inArray(auditRecords.result, filter.results));
  if (filter.statuses) parts.push(inArray(auditRecords.status, filter.statuses));
  return and(...parts)!;
}

export interface AuditPage {
  records: AuditRecord[];
  /** The `$skiptoken` of the next page, or null on the last. */
  next: string | null;
}

/** One page of a chain's matching records, in chain order, after the sequence number `after`. */
export async function queryAuditPage(
  db: Database,
  chain: string,
  filter: AuditFilter,
  max: number,
  after: number,
): Promise<AuditPage> {
  const rows = await db
    .select({ seq: auditRecords.seq, canonical: auditRecords.canonical })
    .from(auditRecords)
    .where(conditions(chain, filter, after))
    .orderBy(asc(auditRecords.seq))
    .limit(max + 1)
    .all();
  const page = rows.slice(0, max);
  return {
    records: page.map((r) => JSON.parse(r.canonical) as AuditRecord),
    next: rows.length > max ? skipTokenAfter(page[page.length - 1]!.seq) : null,
  };
}

export interface AuditExport {
  /** The canonical records, one a line (`\n`-terminated). */
  body: ReadableStream<Uint8Array>;
  /** The chain's last sequence number when the export began: nothing after it is included. */
  through: number;
  /** The `$skiptoken` that continues the export, when it stopped at its limit; null when complete. */
  next: string | null;
}

/**
 * Every matching record after `after`, up to `limit`, streamed: read EXPORT_BATCH rows at a time
 * as the client consumes them. The export is a snapshot of the chain up to its last record when
 * it began (`through`); whether it stops short of the end is known before the first byte (one
 * query for the row after the limit), so the continuation can go in a header.
 */
export async function exportAudit(
  db: Database,
  chain: string,
  filter: AuditFilter,
  limit: number,
  after: number,
): Promise<AuditExport> {
  const last = await db
    .select({ seq: sql<number | null>`max(${auditRecords.seq})` })
    .from(auditRecords)
    .where(eq(auditRecords.chain, chain))
    .get();
  const through = last?.seq ?? 0;
  // The first record beyond the limit, if any: the export stops before it.
  const beyond = await db
    .select({ seq: auditRecords.seq })
    .from(auditRecords)
    .where(conditions(chain, filter, after, through))
    .orderBy(asc(auditRecords.seq))
    .limit(1)
    .offset(limit)
    .get();
  const stop = beyond ? beyond.seq - 1 : through;
  const encoder = new TextEncoder();
  let position = after;
  let done = false;
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (done) return;
        const rows = await db
          .select({ seq: auditRecords.seq, canonical: auditRecords.canonical })
          .from(auditRecords)
          .where(conditions(chain, filter, position, stop))
          .orderBy(asc(auditRecords.seq))
          .limit(EXPORT_BATCH)
          .all();
        if (rows.length > 0) {
          position = rows[rows.length - 1]!.seq;
          controller.enqueue(encoder.encode(rows.map((r) => `${r.canonical}\n`).join('')));
        }
        if (rows.length < EXPORT_BATCH || position >= stop) {
          done = true;
          controller.close();
        }
      },
    },
    { highWaterMark: 0 },
  );
  return { body, through, next: beyond ? skipTokenAfter(stop) : null };
}
