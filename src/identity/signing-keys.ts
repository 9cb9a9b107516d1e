/**
 * The token service's ES256 signing keys: made, sealed under a system data key, and read for
 * signing and for the published JWKS.
 */
import { desc } from 'drizzle-orm';
import { exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import { SYSTEM_SCOPE, type DataKey, type DataKeyManager } from '../crypto/data-keys';
import { fromUtf8, newVersionId, utf8 } from '../core/encoding';
import { objectAad, open, seal } from '../crypto/envelope';
import type { Database } from '../storage/db';
import { signingKeys } from '../storage/schema';
import { IntegrityError } from '../core/errors';

export const TOKEN_ALG = 'ES256';

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
  const rows = await db.select({ kid: signingKeys.kid, publicJwk: signingKeys.publicJwk }).from(signingKeys).all();
  const next = new Map<string, { jwk: JWK; key: CryptoKey }>();
  for (const row of rows) {
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

/** The newest signing key, unsealed (needs the bridge only when its data key is not cached). */
export async function activeSigningKey(db: Database, keys: DataKeyManager): Promise<{ kid: string; key: CryptoKey }> {
  const row = await db.select().from(signingKeys).orderBy(desc(signingKeys.createdAt)).limit(1).get();
  if (!row) throw new IntegrityError('token signing key (none exists; bootstrap first)');
  if (activeKey?.kid === row.kid) return activeKey;
  const dataKey = await keys.forRead(row.dataKeyId, SYSTEM_SCOPE);
  const plaintext = await open(dataKey, row.privateCiphertext, aad(row.kid));
  if (!plaintext) throw new IntegrityError('token signing key');
  const key = (await importJWK(JSON.parse(fromUtf8(plaintext)) as JWK, TOKEN_ALG)) as CryptoKey;
  activeKey = { kid: row.kid, key };
  return activeKey;
}
