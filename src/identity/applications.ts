/**
 * Applications (service principals) of the tenant and their client secrets: created, listed,
 * verified in constant time, revoked.
 */
import { and, asc, eq, or } from 'drizzle-orm';
import { fromHex, randomBytes, sha256Hex, timingSafeEqual, toBase64Url } from '../core/encoding';
import type { Database } from '../storage/db';
import { IsolateCache } from '../core/cache';
import { applications, clientSecrets } from '../storage/schema';
import { badParameter, notFound } from '../core/errors';
import { anotherUsableAdministrator, credentialRemovable, lastAdministrator } from './admin-guard';

export type Application = typeof applications.$inferSelect;
type ClientSecretRow = typeof clientSecrets.$inferSelect;

/** What a client secret looks like to its owner, without the secret. */
export interface ClientSecretInfo {
  id: string;
  hint: string;
  createdAt: number;
  expiresAt: number | null;
}

const MAX_SECRET_LIFETIME_DAYS = 730;

/**
 * A client secret is 256 random bits (base64url) behind a short prefix. That entropy is why a
 * single SHA-256 digest is enough to store it: there is nothing to brute-force.
 */
function newClientSecret(): string {
  return `ekv~${toBase64Url(randomBytes(32))}`;
}

/** When a new client secret expires: `expiresInDays` (1-730) or `endDateTime` (ISO 8601, within 730 days), or never. */
export interface SecretExpiry {
  expiresInDays?: number;
  endDateTime?: string;
}

function expiryOf(createdAt: number, expiry: SecretExpiry): number | null {
  const { expiresInDays, endDateTime } = expiry;
  if (expiresInDays !== undefined && endDateTime !== undefined)
    throw badParameter('Give either expiresInDays or endDateTime, not both.');
  if (expiresInDays !== undefined) {
    if (!Number.isInteger(expiresInDays) || expiresInDays < 1 || expiresInDays > MAX_SECRET_LIFETIME_DAYS) {
      throw badParameter(`expiresInDays must be an integer from 1 to ${MAX_SECRET_LIFETIME_DAYS}.`);
    }
    return createdAt + expiresInDays * 86400;
  }
  if (endDateTime !== undefined) {
    const ms = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(endDateTime)
      ? Date.parse(endDateTime)
      : NaN;
    if (!Number.isFinite(ms))
      throw badParameter('endDateTime must be an ISO 8601 date and time with a time zone, e.g. 2027-01-31T00:00:00Z.');
    const at = Math.floor(ms / 1000);
    if (at <= createdAt) throw badParameter('endDateTime must be in the future.');
    if (at > createdAt + MAX_SECRET_LIFETIME_DAYS * 86400)
      throw badParameter(`endDateTime must be within ${MAX_SECRET_LIFETIME_DAYS} days.`);
    return at;
  }
  return null;
}

async function secretRow(clientId: string, secret: string, expiry: SecretExpiry = {}): Promise<ClientSecretRow> {
  const createdAt = Math.floor(Date.now() / 1000);
  return {
    id: crypto.randomUUID(),
    clientId,
    digest: await sha256Hex(secret),
    hint: secret.slice(4, 7),
    createdAt,
    expiresAt: expiryOf(createdAt, expiry),
  };
}

export interface NewApplication {
  app: Application;
  clientSecret: string;
  secret: ClientSecretInfo;
}

/** Statements that create an application with one client secret (for batching), and the result. */
export async function prepareApplication(
  db: Database,
  tenantId: string,
  input: { displayName: string; isAdmin?: boolean; expiresInDays?: number },
): Promise<{ statements: [ReturnType<typeof insertApp>, ReturnType<typeof insertSecret>]; created: NewApplication }> {
  const app: Application = {
    clientId: crypto.randomUUID(),
    objectId: crypto.randomUUID(),
    tenantId,
    displayName: input.displayName,
    isAdmin: input.isAdmin ?? false,
    createdAt: Math.floor(Date.now() / 1000),
  };
  const clientSecret = newClientSecret();
  const row = await secretRow(app.clientId, clientSecret, { expiresInDays: input.expiresInDays });
  return {
    statements: [insertApp(db, app), insertSecret(db, row)],
    created: { app, clientSecret, secret: info(row) },
  };
}

const insertApp = (db: Database, app: Application) => db.insert(applications).values(app);
const insertSecret = (db: Database, row: ClientSecretRow) => db.insert(clientSecrets).values(row);

export async function createApplication(
  db: Database,
  tenantId: string,
  input: { displayName: string; isAdmin?: boolean; expiresInDays?: number },
): Promise<NewApplication> {
  const { statements, created } = await prepareApplication(db, tenantId, input);
  await db.batch(statements);
  return created;
}

export async function getApplication(db: Database, clientId: string): Promise<Application | undefined> {
  return db.select().from(applications).where(eq(applications.clientId, clientId)).get();
}

/**
 * The principal a role assignment names: here every principal is an application of the tenant,
 * known by its object id. Also says whether `id` is an application's client id instead, the
 * usual mistake, so the refusal can say so.
 */
export async function findPrincipal(
  db: Database,
  tenantId: string,
  id: string,
): Promise<{ found: true } | { found: false; isClientId: boolean }> {
  const [byObject, byClient] = await db.batch([
    db.select({ tenantId: applications.tenantId }).from(applications).where(eq(applications.objectId, id)),
    db.select({ tenantId: applications.tenantId }).from(applications).where(eq(applications.clientId, id)),
  ]);
  if (byObject.some((a) => a.tenantId === tenantId)) return { found: true };
  return { found: false, isClientId: byClient.some((a) => a.tenantId === tenantId) };
}

export async function listApplications(db: Database): Promise<Application[]> {
  return db.select().from(applications).orderBy(asc(applications.createdAt), asc(applications.clientId)).all();
}

/** Deletes an application; 409 when it is the last administrator holding a usable credential. */
export async function deleteApplication(db: Database, clientId: string): Promise<void> {
  const removed = await db
    .delete(applications)
    .where(
      and(eq(applications.clientId, clientId), or(eq(applications.isAdmin, false), anotherUsableAdministrator({ clientId }))),
    )
    .returning({ clientId: applications.clientId });
  existing.forget(clientId);
  if (removed.length > 0) return;
  if (await getApplication(db, clientId)) throw lastAdministrator();
  throw applicationNotFound(clientId);
}

// Every authenticated request asks whether its application still exists (and a service-binding
// caller, which it is); each isolate remembers the answer for at most a minute, or the vault's
// read-cache bound when the caller passes one, so warm requests ask D1 nothing and a deleted
// application is refused everywhere within that bound. Deletion here forgets it at once. Past
// half its bound an answer is renewed in the background (core/cache.ts): a warm request never
// waits for it, and a deletion seen by the renewal drops the answer at once.
const existing = new IsolateCache<Application>({ name: 'applications', ttlMs: 60_000, maxEntries: 10_000, refreshAhead: true });

/** The application with this client id, from this isolate's cache when younger than `maxAgeMs`. */
export function cachedApplication(db: Database, clientId: string, maxAgeMs?: number): Promise<Application | undefined> {
  return existing.load(clientId, () => getApplication(db, clientId), { maxAgeMs });
}

export async function applicationExists(db: Database, clientId: string, maxAgeMs?: number): Promise<boolean> {
  return (await cachedApplication(db, clientId, maxAgeMs)) !== undefined;
}

export async function listClientSecrets(db: Database, clientId: string): Promise<ClientSecretInfo[]> {
  const rows = await db
    .select()
    .from(clientSecrets)
    .where(eq(clientSecrets.clientId, clientId))
    .orderBy(asc(clientSecrets.createdAt))
    .all();
  return rows.map(info);
}

export async function addClientSecret(
  db: Database,
  clientId: string,
  expiry: number | SecretExpiry = {},
): Promise<{ clientSecret: string; secret: ClientSecretInfo }> {
  if (!(await getApplication(db, clientId))) throw applicationNotFound(clientId);
  const clientSecret = newClientSecret();
  const row = await secretRow(clientId, clientSecret, typeof expiry === 'number' ? { expiresInDays: expiry } : expiry);
  await db.insert(clientSecrets).values(row);
  return { clientSecret, secret: info(row) };
}

export async function removeClientSecret(db: Database, clientId: string, secretId: string): Promise<void> {
  const which = and(eq(clientSecrets.clientId, clientId), eq(clientSecrets.id, secretId));
  const removed = await db
    .delete(clientSecrets)
    .where(and(which, credentialRemovable(clientId, secretId)))
    .returning({ id: clientSecrets.id });
  if (removed.length > 0) return;
  if (await db.select({ id: clientSecrets.id }).from(clientSecrets).where(which).get()) throw lastAdministrator();
  throw notFound('NotFound', `Client secret ${secretId} was not found.`);
}

/**
 * Checks a presented client secret against every secret of the application, comparing digests in
 * constant time and without stopping at the first match. A match with an expired secret is told
 * apart (Entra answers AADSTS7000222 then); no match and no application look the same.
 */
export async function authenticateClientSecret(
  db: Database,
  clientId: string,
  presented: string,
): Promise<{ app: Application } | { refused: 'invalid' | 'expired' }> {
  const rows = await db
    .select({ app: applications, secret: clientSecrets })
    .from(applications)
    .innerJoin(clientSecrets, eq(clientSecrets.clientId, applications.clientId))
    .where(eq(applications.clientId, clientId))
    .all();
  const digest = fromHex(await sha256Hex(presented));
  const t = Math.floor(Date.now() / 1000);
  let live = false;
  let expired = false;
  for (const row of rows) {
    const same = timingSafeEqual(digest, fromHex(row.secret.digest));
    const current = row.secret.expiresAt === null || row.secret.expiresAt > t;
    live = (same && current) || live;
    expired = (same && !current) || expired;
  }
  if (live) return { app: rows[0]!.app };
  return { refused: expired ? 'expired' : 'invalid' };
}

export async function verifyClientSecret(db: Database, clientId: string, presented: string): Promise<Application | undefined> {
  const result = await authenticateClientSecret(db, clientId, presented);
  return 'app' in result ? result.app : undefined;
}

const info = (row: ClientSecretRow): ClientSecretInfo => ({
  id: row.id,
  hint: row.hint,
  createdAt: row.createdAt,
  expiresAt: row.expiresAt,
});

const applicationNotFound = (clientId: string) => notFound('NotFound', `Application ${clientId} was not found.`);
