/**
 * The D1 side of the ACME issuer's stores (ports.ts): the vault's account at a directory (its key
 * and the External Account Binding, sealed under the vault's data key as secret values are) and
 * the http-01 answers the Worker serves at /.well-known/acme-challenge/{token}.
 */
import { and, eq, lt } from 'drizzle-orm';
import type { JWK } from 'jose';
import { fromBase64Url, fromUtf8, utf8 } from '../../../../core/encoding';
import { IntegrityError } from '../../../../core/errors';
import type { DataKeyManager } from '../../../../crypto/data-keys';
import { objectAad, open, seal } from '../../../../crypto/envelope';
import type { Database } from '../../../../storage/db';
import { acmeAccounts, acmeChallenges } from '../../../../storage/schema';
import { generateAccountKey, importAccountKey } from './jws';
import type { AcmeAccount, AcmeAccountStore, Http01Store } from './ports';

export type { AcmeAccount, AcmeAccountStore, ExternalAccountBinding, Http01Store } from './ports';

const KIND = 'acme-account';

/** The vault's account at one ACME directory, in D1. */
export class D1AcmeAccounts implements AcmeAccountStore {
  constructor(
    private readonly db: Database,
    private readonly keys: DataKeyManager,
    private readonly vaultId: string,
    private readonly directoryUrl: string,
  ) {}

  /**
   * Sets (or replaces) the External Account Binding the CA handed out; the HMAC key is given
   * base64url-encoded, as CAs print it. Replacing it forgets the account URL: the next issuance
   * registers again, bound to the new credentials.
   */
  async setExternalAccountBinding(kid: string, hmacKeyB64Url: string): Promise<void> {
    const hmacKey = fromBase64Url(hmacKeyB64Url);
    if (!kid || hmacKey.length < 16)
      throw new Error('an External Account Binding needs a key id and an HMAC key of at least 16 bytes');
    const row = await this.ensureRow();
    const key = await this.keys.forWrite(this.vaultId);
    // The key's seal must stay under its own data key: re-seal it when the vault's key rotated.
    const privateJwk = await this.openText(row.keySealed, row.dataKeyId, 'key');
    await this.db.batch([
      this.db
        .update(acmeAccounts)
        .set({
          eabKid: kid,
          eabHmacSealed: await seal(key.key, hmacKey, this.aad('eab')),
          keySealed: await seal(key.key, utf8(privateJwk), this.aad('key')),
          dataKeyId: key.id,
          accountUrl: null,
        })
        .where(this.where()),
      this.keys.countEncryption(key.id),
      this.keys.countEncryption(key.id),
    ]);
  }

  async load(): Promise<AcmeAccount> {
    const row = await this.ensureRow();
    const key = await importAccountKey(JSON.parse(await this.openText(row.keySealed, row.dataKeyId, 'key')) as JWK);
    const eab =
      row.eabKid && row.eabHmacSealed
        ? { kid: row.eabKid, hmacKey: await this.openBytes(row.eabHmacSealed, row.dataKeyId, 'eab') }
        : null;
    return { key, accountUrl: row.accountUrl, eab };
  }

  async saveAccountUrl(url: string): Promise<void> {
    await this.db.update(acmeAccounts).set({ accountUrl: url }).where(this.where());
  }

  private async ensureRow() {
    const existing = await this.db.select().from(acmeAccounts).where(this.where()).get();
    if (existing) return existing;
    const { privateJwk } = await generateAccountKey();
    const key = await this.keys.forWrite(this.vaultId);
    const row = {
      vaultId: this.vaultId,
      directoryUrl: this.directoryUrl,
      accountUrl: null,
      keySealed: await seal(key.key, utf8(JSON.stringify(privateJwk)), this.aad('key')),
      eabKid: null,
      eabHmacSealed: null,
      dataKeyId: key.id,
      createdAt: Math.floor(Date.now() / 1000),
    };
    // Two first uses may race: one row wins and both go on with it.
    await this.db.batch([this.db.insert(acmeAccounts).values(row).onConflictDoNothing(), this.keys.countEncryption(key.id)]);
    return (await this.db.select().from(acmeAccounts).where(this.where()).get())!;
  }

  private where() {
    return and(eq(acmeAccounts.vaultId, this.vaultId), eq(acmeAccounts.directoryUrl, this.directoryUrl));
  }

  /** Binds each sealed field to this vault, this directory and its role. */
  private aad(field: 'key' | 'eab'): string {
    return objectAad(this.vaultId, KIND, this.directoryUrl, field);
  }

  private async openBytes(sealed: string, dataKeyId: string, field: 'key' | 'eab'): Promise<Uint8Array> {
    const key = await this.keys.forRead(dataKeyId, this.vaultId);
    const plaintext = await open(key, sealed, this.aad(field));
    if (!plaintext) throw new IntegrityError('ACME account');
    return plaintext;
  }

  private async openText(sealed: string, dataKeyId: string, field: 'key' | 'eab'): Promise<string> {
    return fromUtf8(await this.openBytes(sealed, dataKeyId, field));
  }
}

/** http-01 answers in D1, served by the challenge route. */
export class D1Http01Store implements Http01Store {
  constructor(
    private readonly db: Database,
    private readonly vaultId: string,
  ) {}

  async put(token: string, keyAuthorization: string, expiresAt: number): Promise<void> {
    await this.db
      .insert(acmeChallenges)
      .values({ token, keyAuthorization, vaultId: this.vaultId, expiresAt })
      .onConflictDoUpdate({ target: acmeChallenges.token, set: { keyAuthorization, vaultId: this.vaultId, expiresAt } });
  }

  async remove(token: string): Promise<void> {
    await this.db.delete(acmeChallenges).where(and(eq(acmeChallenges.token, token), eq(acmeChallenges.vaultId, this.vaultId)));
  }
}

/** The key authorization to serve for `token`, if one is live. */
export async function http01Answer(
  db: Database,
  token: string,
  nowSeconds = Math.floor(Date.now() / 1000),
): Promise<{ keyAuthorization: string; vaultId: string } | undefined> {
  const row = await db.select().from(acmeChallenges).where(eq(acmeChallenges.token, token)).get();
  return row && row.expiresAt > nowSeconds ? { keyAuthorization: row.keyAuthorization, vaultId: row.vaultId } : undefined;
}

/** Drops answers past their expiry (for the cron). */
export async function purgeExpiredHttp01(db: Database, nowSeconds = Math.floor(Date.now() / 1000)): Promise<void> {
  await db.delete(acmeChallenges).where(lt(acmeChallenges.expiresAt, nowSeconds));
}
