/**
 * The once-only markers of expiry notices (table expiry_notices), shared by the two jobs that send
 * them: the expiry job (every kind's NearExpiry/Expired) and key rotation (KeyNearExpiry at the
 * policy's Notify time). A notice is claimed before its event is queued and sent only if the claim
 * took; a send that fails gives the claim back. The claim is what "was it sent?" reads, at once,
 * unlike the events table, which the events consumer fills later.
 */
import { and, eq, or } from 'drizzle-orm';
import type { Database } from './db';
import { expiryNotices } from './schema';

export interface Notice {
  vaultId: string;
  /** 'secret' | 'key' | 'certificate', as the versioned-object engine names the kind. */
  kind: string;
  name: string;
  version: string;
  /** The full event type, e.g. Microsoft.KeyVault.SecretNearExpiry. */
  eventType: string;
}

// D1 binds at most 100 parameters a statement: 6 a marker row, 5 a marker's key.
const ROWS_PER_INSERT = 16;
const KEYS_PER_DELETE = 20;

/** Names compare without case (the name column is NOCASE). */
export const noticeKey = (n: Notice) => `${n.vaultId}\n${n.kind}\n${n.name.toLowerCase()}\n${n.version}\n${n.eventType}`;

/** Claims the notices; returns the keys (noticeKey) of those this call claimed, not anyone before. */
export async function claimNotices(db: Database, notices: Notice[], now: number): Promise<Set<string>> {
  if (notices.length === 0) return new Set();
  const statements = [];
  for (let i = 0; i < notices.length; i += ROWS_PER_INSERT) {
    const rows = notices.slice(i, i + ROWS_PER_INSERT).map((n) => ({ ...n, claimedAt: now }));
    statements.push(db.insert(expiryNotices).values(rows).onConflictDoNothing().returning());
  }
  const results = await db.batch(statements as [(typeof statements)[0], ...typeof statements]);
  return new Set(results.flat().map(noticeKey));
}

/** Gives claims back (their events were not queued), so that a later run sends them. */
export async function releaseNotices(db: Database, notices: Notice[]): Promise<void> {
  for (let i = 0; i < notices.length; i += KEYS_PER_DELETE) {
    const chunk = notices.slice(i, i + KEYS_PER_DELETE);
    await db.delete(expiryNotices).where(or(...chunk.map(isNotice)));
  }
}

/** Whether the notice was claimed (sent, or being sent). */
export async function noticeClaimed(db: Database, notice: Notice): Promise<boolean> {
  return (await db.select({ kind: expiryNotices.kind }).from(expiryNotices).where(isNotice(notice)).get()) !== undefined;
}

const isNotice = (n: Notice) =>
  and(
    eq(expiryNotices.vaultId, n.vaultId),
    eq(expiryNotices.kind, n.kind),
    eq(expiryNotices.name, n.name),
    eq(expiryNotices.version, n.version),
    eq(expiryNotices.eventType, n.eventType),
  );
