import { and, asc, eq } from 'drizzle-orm';
import { randomBytes, sha256Hex, timingSafeEqual, toBase64Url } from '../crypto/encoding';
import type { Database } from '../storage/db';
import { LookupCache } from '../storage/lookup-cache';
import { applications, clientSecrets } from '../storage/schema';
import { badParameter, notFound } from '../vault/errors';

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

async function secretRow(clientId: string, secret: string, expiresInDays?: number): Promise<ClientSecretRow> {
  const createdAt = Math.floor(Date.now() / 1000);
  if (expiresInDays !== undefined && (!Number.isInteger(expiresInDays) || expiresInDays < 1 || expiresInDays > MAX_SECRET_LIFETIME_DAYS)) {
    throw badParameter(`expiresInDays must be an integer from 1 to ${MAX_SECRET_LIFETIME_DAYS}.`);
  }
  return {
    id: crypto.randomUUID(),
    clientId,
    digest: await sha256Hex(secret),
    hint: secret.slice(4, 7),
    createdAt,
    expiresAt: expiresInDays ? createdAt + expiresInDays * 86400 : null,
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
  const row = await secretRow(app.clientId, clientSecret, input.expiresInDays);
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

export async function listApplications(db: Database): Promise<Application[]> {
  return db.select().from(applications).orderBy(asc(applications.createdAt), asc(applications.clientId)).all();
}

export async function deleteApplication(db: Database, clientId: string): Promise<void> {
  const removed = await db.delete(applications).where(eq(applications.clientId, clientId)).returning();
  existing.forget(clientId);
  if (removed.length === 0) throw applicationNotFound(clientId);
}

// Every authenticated request asks whether its application still exists; each isolate remembers
// a yes for a minute, so warm requests ask D1 nothing. Deletion here forgets it at once.
const existing = new LookupCache<true>(60_000);

export async function applicationExists(db: Database, clientId: string): Promise<boolean> {
  const found = await existing.get(clientId, async () =>
    (await db.select({ id: applications.clientId }).from(applications).where(eq(applications.clientId, clientId)).get()) ? true : undefined,
  );
  return found === true;
}

export async function listClientSecrets(db: Database, clientId: string): Promise<ClientSecretInfo[]> {
  const rows = await db.select().from(clientSecrets).where(eq(clientSecrets.clientId, clientId)).orderBy(asc(clientSecrets.createdAt)).all();
  return rows.map(info);
}

export async function addClientSecret(
  db: Database,
  clientId: string,
  expiresInDays?: number,
): Promise<{ clientSecret: string; secret: ClientSecretInfo }> {
  if (!(await getApplication(db, clientId))) throw applicationNotFound(clientId);
  const clientSecret = newClientSecret();
  const row = await secretRow(clientId, clientSecret, expiresInDays);
  await db.insert(clientSecrets).values(row);
  return { clientSecret, secret: info(row) };
}

export async function removeClientSecret(db: Database, clientId: string, secretId: string): Promise<void> {
  const removed = await db
    .delete(clientSecrets)
    .where(and(eq(clientSecrets.clientId, clientId), eq(clientSecrets.id, secretId)))
    .returning();
  if (removed.length === 0) throw notFound('NotFound', `Client secret ${secretId} was not found.`);
}

/**
 * Checks a presented client secret against every live secret of the application, comparing
 * digests in constant time and without stopping at the first match.
 */
export async function verifyClientSecret(db: Database, clientId: string, presented: string): Promise<Application | undefined> {
  const rows = await db
    .select({ app: applications, secret: clientSecrets })
    .from(applications)
    .innerJoin(clientSecrets, eq(clientSecrets.clientId, applications.clientId))
    .where(eq(applications.clientId, clientId))
    .all();
  const digest = hexBytes(await sha256Hex(presented));
  const t = Math.floor(Date.now() / 1000);
  let match = false;
  for (const row of rows) {
    const live = row.secret.expiresAt === null || row.secret.expiresAt > t;
    match = (timingSafeEqual(digest, hexBytes(row.secret.digest)) && live) || match;
  }
  return match ? rows[0]!.app : undefined;
}

function hexBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

const info = (row: ClientSecretRow): ClientSecretInfo => ({
  id: row.id,
  hint: row.hint,
  createdAt: row.createdAt,
  expiresAt: row.expiresAt,
});

const applicationNotFound = (clientId: string) => notFound('NotFound', `Application ${clientId} was not found.`);

