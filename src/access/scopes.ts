/**
 * Scopes of one vault, as Azure's data-plane RBAC names them: the vault (`/`), a collection
 * (`/secrets`, `/keys`, `/certificates`) or one object (`/secrets/{name}`, …). An assignment at a
 * scope covers that scope and everything under it; object names compare without case, as vault
 * object names do.
 */
import { badParameter } from '../core/errors';

export const COLLECTIONS = ['secrets', 'keys', 'certificates'] as const;
export type Collection = (typeof COLLECTIONS)[number];

/** A scope, or what a request touches, broken into its parts (lowercased for comparison). */
export interface ScopeParts {
  /** null: the whole vault. */
  collection: string | null;
  /** null: the whole collection. */
  name: string | null;
}

const OBJECT_NAME = /^[0-9a-zA-Z-]{1,127}$/;

/** Soft-deleted objects are the same objects: `/deletedsecrets/x` is covered by `/secrets/x`. */
const ALIASES: Record<string, string> = { deletedsecrets: 'secrets', deletedkeys: 'keys', deletedcertificates: 'certificates' };

/**
 * What a request path (as operation.ts passes it: `/secrets`, `/keys/{name}`, `/rng`, `/`) names.
 * Paths deeper than an object (`/certificates/{name}/pending`) name that object; a path outside
 * the collections (`/rng`) is covered by the vault scope only.
 */
export function pathParts(path: string): ScopeParts {
  const segments = path.split('/').filter((s) => s !== '');
  if (segments.length === 0) return { collection: null, name: null };
  const first = segments[0]!.toLowerCase();
  const collection = ALIASES[first] ?? first;
  return { collection, name: segments[1] ? segments[1].toLowerCase() : null };
}

/** Whether an assignment at `scope` covers a request to `path`. */
export function scopeCovers(scope: string, path: string): boolean {
  const s = pathParts(scope);
  if (s.collection === null) return true;
  const p = pathParts(path);
  if (s.collection !== p.collection) return false;
  return s.name === null || s.name === p.name;
}

/**
 * Validates a scope a client names (in a URL or an assignable-scopes list) and returns it in
 * canonical form: the collection lowercased, the object name as given. Throws 400 otherwise.
 */
export function parseScope(raw: string): string {
  const segments = raw.split('/').filter((s) => s !== '');
  if (segments.length === 0) return '/';
  const collection = segments[0]!.toLowerCase();
  if (segments.length > 2 || !(COLLECTIONS as readonly string[]).includes(collection)) {
    throw badParameter(
      `The scope '${raw.slice(0, 200)}' is not valid: use '/', '/secrets', '/keys', '/certificates', or one object such as '/secrets/{name}'.`,
    );
  }
  if (segments.length === 1) return `/${collection}`;
  const name = segments[1]!;
  if (!OBJECT_NAME.test(name)) throw badParameter(`The scope '${raw.slice(0, 200)}' names an object that cannot exist.`);
  return `/${collection}/${name}`;
}

/** Scopes compare without case (names are case-insensitive; the collection is canonical already). */
export const sameScope = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();
