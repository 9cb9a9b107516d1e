/**
 * The token service's ES256 signing keys (private JWK sealed under a system data key), read for
 * signing and for the published JWKS, and their rotation schedule. A rotation adds a *staged* key
 * that is published in the JWKS at once but signs only after PUBLISH_LEAD_SECONDS, so relying
 * parties that cache the JWKS have it before they meet a token naming it; the key it replaces
 * stays published RETIRE_AFTER_SECONDS more (the longest a token it signed lives, plus clock
 * skew), and the cron then deletes it. The schedule is derived from creation times alone, so
 * every isolate agrees on it without coordination.
 */
import { eq, inArray, sql } from 'drizzle-orm';
import { exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import { SYSTEM_SCOPE, type DataKey, type DataKeyManager } from '../crypto/data-keys';
import { fromUtf8, newVersionId, utf8 } from '../core/encoding';
import { objectAad, open, seal } from '../crypto/envelope';
import type { Database } from '../storage/db';
import { signingKeys } from '../storage/schema';
import { IntegrityError, conflict } from '../core/errors';

export const TOKEN_ALG = 'ES256';
/** Lifetime of every access token (tokens.ts); a retired key is published this long and more. */
export const MAX_TOKEN_LIFETIME_SECONDS = 3600;
/**
 * A staged key is published this long before it signs. The Worker's own verifiers refetch on an
 * unknown kid; other relying parties commonly cache a JWKS for up to an hour.
 */
export const PUBLISH_LEAD_SECONDS = 3600;
/** After a newer key takes over, the old one stays published: token lifetime, skew, margin. */
export const RETIRE_AFTER_SECONDS = MAX_TOKEN_LIFETIME_SECONDS + 60 + 240;

export type SigningKeyState = 'staged' | 'active' | 'retiring' | 'unpublished';

export interface SigningKeySchedule {
  kid: string;
  createdAt: number;
  /** When it signs (or signed) its first token. */
  activatesAt: number;
  /** When a newer key took (or takes) over; null while none is scheduled. */
  retiresAt: number | null;
  /** When it leaves the JWKS and the cron deletes it; null while no newer key is scheduled. */
  unpublishAt: number | null;
  state: SigningKeyState;
}

/**
 * The schedule of the given keys at `now` (Unix seconds). The oldest key signs from its creation
 * (the bootstrap key, or the survivor of earlier rotations); every newer one PUBLISH_LEAD_SECONDS
 * after its creation, until the next one does.
 */
export function signingKeySchedule(rows: ReadonlyArray<{ kid: string; createdAt: number }>, now: number): SigningKeySchedule[] {
  const sorted = [...rows].sort((a, b) => a.createdAt - b.createdAt || a.kid.localeCompare(b.kid));
  const activates = sorted.map((r, i) => (i === 0 ? r.createdAt : r.createdAt + PUBLISH_LEAD_SECONDS));
  let active = 0;
  for (let i = 1; i < sorted.length; i++) if (activates[i]! <= now) active = i;
  return sorted.map((r, i) => {
    const retiresAt = i + 1 < sorted.length ? activates[i + 1]! : null;
    const unpublishAt = retiresAt === null ? null : retiresAt + RETIRE_AFTER_SECONDS;
    const state: SigningKeyState =
      i === active ? 'active' : i > active ? 'staged' : unpublishAt !== null && unpublishAt <= now ? 'unpublished' : 'retiring';
    return { kid: r.kid, createdAt: r.createdAt, activatesAt: activates[i]!, retiresAt, unpublishAt, state };
  });
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

export async function signingKeySchedules(db: Database, now = nowSeconds()): Promise<SigningKeySchedule[]> {
  return signingKeySchedule(
    await db.select({ kid: signingKeys.kid, createdAt: signingKeys.createdAt }).from(signingKeys).all(),
    now,
  );
}

/**
 * Stages a new signing key (POST /management/signing-keys/rotate). One at a time: while a staged
 * key waits to sign, another rotation is refused (409) rather than pushing it further out.
 */
export async function rotateSigningKey(db: Database, keys: DataKeyManager, now = nowSeconds()): Promise<SigningKeySchedule> {
  const schedule = await signingKeySchedules(db, now);
  const staged = schedule.find((k) => k.state === 'staged');
  if (staged)
    throw conflict(
      `A new signing key (${staged.kid}) is already staged; it signs from ${new Date(staged.activatesAt * 1000).toISOString()}.`,
    );
  const row = await prepareSigningKey(await keys.forWrite(SYSTEM_SCOPE));
  // The schedule orders keys by createdAt, in whole seconds, and breaks ties by the random kid: a
  // rotation within the second its predecessor was created would, half the time, make a key that
  // sorts first and signs at once, before any verifier has it (an isolate refetches unknown kids
  // at most every few seconds). Strictly after the newest key keeps the order they were made in.
  const newest = Math.max(-1, ...schedule.map((k) => k.createdAt));
  row.createdAt = Math.max(now, newest + 1);
  // Stored only if no key newer than the schedule read above appeared meanwhile: two rotations
  // at once both pass the staged check, and the second would stage a key of its own.
  const [stored] = await db.all<{ kid: string }>(sql`
    insert into ${signingKeys} (kid, public_jwk, private_ciphertext, data_key_id, created_at)
    select ${row.kid}, ${row.publicJwk}, ${row.privateCiphertext}, ${row.dataKeyId}, ${row.createdAt}
    where not exists (select 1 from ${signingKeys} where created_at > ${newest})
    returning kid`);
  if (!stored) throw conflict('Another rotation staged a new signing key meanwhile.');
  return (await signingKeySchedules(db, now)).find((k) => k.kid === row.kid)!;
}

/** The cron step: deletes keys whose every token has expired (they left the JWKS). */
export async function pruneSigningKeys(db: Database, now = nowSeconds()): Promise<string[]> {
  const gone = (await signingKeySchedules(db, now)).filter((k) => k.state === 'unpublished').map((k) => k.kid);
  if (gone.length > 0) await db.delete(signingKeys).where(inArray(signingKeys.kid, gone));
  return gone;
}

type SigningKeyRow = typeof signingKeys.$inferSelect;

const aad = (kid: string) => objectAad(SYSTEM_SCOPE, 'signing-key', kid, '1');

/** A new ES256 token-signing key: its private JWK sealed under a system data key. */
export async function prepareSigningKey(dataKey: DataKey): Promise<SigningKeyRow> {
  const { publicKey, privateKey } = await generateKeyPair(TOKEN_ALG, { extractable: true });
  const kid = newVersionId();
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: TOKEN_ALG, use: 'sig' };
  const privateCiphertext = await seal(dataKey.key, utf8(JSON.stringify(await exportJWK(privateKey))), aad(kid));
  return {
    kid,
    publicJwk: JSON.stringify(publicJwk),
    privateCiphertext,
    dataKeyId: dataKey.id,
    createdAt: Math.floor(Date.now() / 1000),
  };
}

// Public keys verify every request: kept per isolate, refreshed when an unknown kid shows up
// (at most every few seconds, so forged kids cannot turn into a D1 query each).
let publicKeys = new Map<string, { jwk: JWK; key: CryptoKey }>();
let lastRefresh = 0;
const REFRESH_INTERVAL_MS = 5_000;

async function refreshPublicKeys(db: Database): Promise<void> {
  const rows = await db
    .select({ kid: signingKeys.kid, publicJwk: signingKeys.publicJwk, createdAt: signingKeys.createdAt })
    .from(signingKeys)
    .all();
  const published = new Set(
    signingKeySchedule(rows, nowSeconds())
      .filter((k) => k.state !== 'unpublished')
      .map((k) => k.kid),
  );
  const next = new Map<string, { jwk: JWK; key: CryptoKey }>();
  for (const row of rows) {
    if (!published.has(row.kid)) continue;
    const jwk = JSON.parse(row.publicJwk) as JWK;
    next.set(row.kid, { jwk, key: (await importJWK(jwk, TOKEN_ALG)) as CryptoKey });
  }
  publicKeys = next;
  lastRefresh = Date.now();
}

export async function publicKeyFor(db: Database, kid: string): Promise<CryptoKey | undefined> {
  if (!publicKeys.has(kid) && Date.now() - lastRefresh > REFRESH_INTERVAL_MS) await refreshPublicKeys(db);
  return publicKeys.get(kid)?.key;
}

export async function publicJwks(db: Database): Promise<JWK[]> {
  await refreshPublicKeys(db);
  return [...publicKeys.values()].map((k) => k.jwk);
}

let activeKey: { kid: string; key: CryptoKey } | undefined;

/** The key that signs now (a staged one not yet), unsealed (the bridge only when its data key is not cached). */
export async function activeSigningKey(db: Database, keys: DataKeyManager): Promise<{ kid: string; key: CryptoKey }> {
  const active = (await signingKeySchedules(db)).find((k) => k.state === 'active');
  if (!active) throw new IntegrityError('token signing key (none exists; bootstrap first)');
  if (activeKey?.kid === active.kid) return activeKey;
  const row = await db.select().from(signingKeys).where(eq(signingKeys.kid, active.kid)).get();
  if (!row) throw new IntegrityError('token signing key');
  const dataKey = await keys.forRead(row.dataKeyId, SYSTEM_SCOPE);
  const plaintext = await open(dataKey, row.privateCiphertext, aad(row.kid));
  if (!plaintext) throw new IntegrityError('token signing key');
  const key = (await importJWK(JSON.parse(fromUtf8(plaintext)) as JWK, TOKEN_ALG)) as CryptoKey;
  activeKey = { kid: row.kid, key };
  return activeKey;
}
