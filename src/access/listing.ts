/** Paging and `$filter` parsing shared by the role assignment and role definition lists. */
import { badParameter } from '../core/errors';
import { decodePageToken, encodePageToken, type Page } from '../core/paging';

export const DEFAULT_PAGE_SIZE = 100;

/** `maxresults` (this service's extension; Azure pages these lists at its own size): 1–100. */
export function parsePageSize(raw: string | null | undefined): number {
  if (raw === undefined || raw === null || raw === '') return DEFAULT_PAGE_SIZE;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > DEFAULT_PAGE_SIZE)
    throw badParameter(`maxresults must be an integer from 1 to ${DEFAULT_PAGE_SIZE}.`);
  return n;
}

/** One page of `items` (sorted by id here), after the id a `$skiptoken` names. */
export function pageById<T extends { id: string }>(items: T[], max: number, skipToken: string | null | undefined): Page<T> {
  const sorted = [...items].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const after = skipToken ? decodePageToken(skipToken, 'after').after : undefined;
  const rest = after === undefined ? sorted : sorted.filter((i) => i.id > after);
  const page = rest.slice(0, max);
  return { items: page, next: rest.length > max ? encodePageToken({ after: page[page.length - 1]!.id }) : null };
}

/** The request URL with `$skiptoken` replaced: every other parameter ($filter, api-version) kept. */
export function nextLinkFor(requestUrl: string, next: string | null): string | null {
  if (!next) return null;
  const url = new URL(requestUrl);
  const params = new URLSearchParams(url.search);
  params.delete('$skiptoken');
  params.set('$skiptoken', next);
  url.search = params.toString();
  return url.toString();
}

export interface FilterTerm {
  /** `atScope()` → ['atScope']; `principalId eq 'x'` → ['principalId', 'x']. */
  name: string;
  value?: string;
}

/**
 * Parses the simple OData `$filter` these lists accept: terms joined by `and`, each a function
 * call without arguments (`atScope()`) or `{property} eq '{value}'`. Names compare without case.
 */
export function parseFilter(
  raw: string | null | undefined,
  allowed: { functions: string[]; properties: string[] },
): FilterTerm[] {
  if (raw === undefined || raw === null || raw.trim() === '') return [];
  if (raw.length > 512) throw badParameter('The $filter is too long.');
  const terms: FilterTerm[] = [];
  for (const part of raw.trim().split(/\s+and\s+/i)) {
    const call = /^([A-Za-z]+)\(\s*\)$/.exec(part.trim());
    const fn = call && allowed.functions.find((f) => f.toLowerCase() === call[1]!.toLowerCase());
    if (fn) {
      terms.push({ name: fn });
      continue;
    }
    const eq = /^([A-Za-z]+)\s+eq\s+(?:'((?:[^']|'')*)'|"([^"]*)")$/i.exec(part.trim());
    const property = eq && allowed.properties.find((p) => p.toLowerCase() === eq[1]!.toLowerCase());
    if (property) {
      terms.push({ name: property, value: eq[2] !== undefined ? eq[2].replace(/''/g, "'") : eq[3]! });
      continue;
    }
    const supported = [...allowed.functions.map((f) => `${f}()`), ...allowed.properties.map((p) => `${p} eq '{value}'`)].join(
      ', ',
    );
    throw badParameter(`The $filter '${raw.slice(0, 100)}' is not supported here; use ${supported} (joined with 'and').`);
  }
  return terms;
}
