/**
 * Paging as Azure lists it: pages of `maxresults`, an opaque `$skiptoken`, and the cut of one page
 * from a query of `maxresults + 1` rows.
 */
import { fromBase64Url, fromUtf8, toBase64Url, utf8 } from './encoding';
import { badParameter } from './errors';

export interface Page<T> {
  items: T[];
  /** Opaque continuation token for the next page, or null on the last page. */
  next: string | null;
}

export function encodePageToken(position: Record<string, string>): string {
  return toBase64Url(utf8(JSON.stringify(position)));
}

/** Decodes a continuation token, insisting on the fields this listing uses. */
export function decodePageToken<K extends string>(token: string, ...fields: K[]): Record<K, string> {
  try {
    const parsed = JSON.parse(fromUtf8(fromBase64Url(token))) as Record<string, unknown>;
    if (fields.every((f) => typeof parsed[f] === 'string')) return parsed as Record<K, string>;
  } catch {
    // fall through
  }
  throw badParameter('The $skiptoken is invalid.');
}

/** Cuts one page from `maxResults + 1` rows; the extra row only says that another page exists. */
export function page<T>(rows: T[], maxResults: number, tokenOf: (last: T) => Record<string, string>): Page<T> {
  const items = rows.slice(0, maxResults);
  return { items, next: rows.length > maxResults ? encodePageToken(tokenOf(items[items.length - 1]!)) : null };
}
