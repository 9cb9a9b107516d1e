// A vault's certificate settings: its contacts (who hears about expiring certificates) and its
// configured issuers (IssuerBundle). An issuer's account password is sealed like a secret value,
// bound to the vault and the issuer's name; it is opened only for an issuer module, never shown.
// A bundle naming a registered provider (issuers/index.ts) is checked by it before it is stored.
import { and, asc, eq, gt, sql } from 'drizzle-orm';
import * as z from 'zod';
import { now } from '../../core/clock';
import { fromUtf8, utf8 } from '../../core/encoding';
import { IntegrityError, notFound } from '../../core/errors';
import { decodePageToken, page, type Page } from '../../core/paging';
import { assertObjectName } from '../../core/validation';
import type { VaultRecord } from '../../core/vault';
import type { DataKeyManager, JoinedDataKey } from '../../crypto/data-keys';
import { objectAad, open, seal } from '../../crypto/envelope';
import type { Database } from '../../storage/db';
import { certificateContacts, certificateIssuers, dataKeys } from '../../storage/schema';
import { issuerForProvider } from './issuers';
import type { IssuerConfig } from './issuers/contract';

const contact = z.object({
  email: z.string().max(256).nullish(),
  name: z.string().max(256).nullish(),
  phone: z.string().max(64).nullish(),
});
export const contactsBody = z.object({ id: z.string().nullish(), contacts: z.array(contact).min(1).max(20) });
export type Contact = z.infer<typeof contact>;

const adminDetails = z.object({
  first_name: z.string().max(128).nullish(),
  last_name: z.string().max(128).nullish(),
  email: z.string().max(256).nullish(),
  phone: z.string().max(64).nullish(),
});
const issuerFields = {
  credentials: z.object({ account_id: z.string().max(256).nullish(), pwd: z.string().max(1024).nullish() }).nullish(),
  org_details: z.object({ id: z.string().max(256).nullish(), admin_details: z.array(adminDetails).max(10).nullish() }).nullish(),
  attributes: z.object({ enabled: z.boolean().nullish() }).passthrough().nullish(),
};
export const setIssuerBody = z.object({ provider: z.string().min(1).max(64), ...issuerFields });
export const updateIssuerBody = z.object({ provider: z.string().min(1).max(64).nullish(), ...issuerFields });
export type SetIssuerInput = z.infer<typeof updateIssuerBody>;

export interface IssuerRecord {
  name: string;
  provider: string;
  accountId: string | null;
  orgDetails: unknown;
  enabled: boolean;
  created: number;
  updated: number;
}

type IssuerRow = typeof certificateIssuers.$inferSelect;

const issuerNotFound = (name: string) => notFound('CertificateIssuerNotFound', `Issuer not found: ${name}`);
const contactsNotFound = () => notFound('ContactsNotFound', 'Contacts not found');

export class CertificateSettings {
  constructor(
    private readonly db: Database,
    private readonly keys: DataKeyManager,
    private readonly vault: VaultRecord,
  ) {}

  async contacts(): Promise<Contact[]> {
    const row = await this.db.select().from(certificateContacts).where(eq(certificateContacts.vaultId, this.vault.id)).get();
    if (!row) throw contactsNotFound();
    return JSON.parse(row.contacts) as Contact[];
  }

  async setContacts(contacts: Contact[]): Promise<Contact[]> {
    const value = JSON.stringify(contacts);
    await this.db
      .insert(certificateContacts)
      .values({ vaultId: this.vault.id, contacts: value, updated: now() })
      .onConflictDoUpdate({ target: certificateContacts.vaultId, set: { contacts: value, updated: now() } });
    return contacts;
  }

  async deleteContacts(): Promise<Contact[]> {
    const [row] = await this.db.delete(certificateContacts).where(eq(certificateContacts.vaultId, this.vault.id)).returning();
    if (!row) throw contactsNotFound();
    return JSON.parse(row.contacts) as Contact[];
  }

  async issuer(name: string): Promise<IssuerRecord> {
    return toIssuer(await this.issuerRow(name));
  }

  async listIssuers(maxResults: number, skipToken?: string): Promise<Page<IssuerRecord>> {
    const after = skipToken ? decodePageToken(skipToken, 'n') : undefined;
    const rows = await this.db
      .select()
      .from(certificateIssuers)
      .where(and(eq(certificateIssuers.vaultId, this.vault.id), after ? gt(certificateIssuers.name, after.n) : undefined))
      .orderBy(asc(certificateIssuers.name))
      .limit(maxResults + 1)
      .all();
    return page(rows.map(toIssuer), maxResults, (last) => ({ n: last.name }));
  }

  /** PUT (replace) when `replace`, PATCH (merge over the existing one) otherwise. */
  async setIssuer(name: string, input: SetIssuerInput, replace: boolean): Promise<IssuerRecord> {
    assertObjectName(name, 'issuer');
    const existing = replace ? undefined : await this.issuerRow(name);
    const t = now();
    const pwd = input.credentials?.pwd;
    let sealed: { ciphertext: string | null; dataKeyId: string | null } = {
      ciphertext: existing?.passwordCiphertext ?? null,
      dataKeyId: existing?.dataKeyId ?? null,
    };
    if (pwd != null) {
      const key = await this.keys.forWrite(this.vault.id);
      sealed = { ciphertext: await seal(key.key, utf8(pwd), this.aad(existing?.name ?? name)), dataKeyId: key.id };
    } else if (replace) sealed = { ciphertext: null, dataKeyId: null };
    const provider = input.provider ?? existing!.provider;
    const accountId = input.credentials?.account_id ?? (replace ? null : existing!.accountId);
    const orgDetails = input.org_details ?? (replace || !existing!.orgDetails ? null : JSON.parse(existing!.orgDetails));
    await this.check({
      name: existing?.name ?? name,
      provider,
      accountId,
      password: pwd ?? (existing && sealed.ciphertext ? await this.password(existing) : null),
      orgDetails,
      enabled: true,
    });
    const row = {
      vaultId: this.vault.id,
      name: existing?.name ?? name,
      provider,
      accountId,
      passwordCiphertext: sealed.ciphertext,
      dataKeyId: sealed.dataKeyId,
      orgDetails: orgDetails ? JSON.stringify(orgDetails) : null,
      enabled: input.attributes?.enabled ?? (replace ? true : existing!.enabled),
      created: existing?.created ?? t,
      updated: t,
    };
    const [stored] = await this.db
      .insert(certificateIssuers)
      .values(row)
      .onConflictDoUpdate({
        target: [certificateIssuers.vaultId, certificateIssuers.name],
        set: { ...row, name: sql`${certificateIssuers.name}`, created: sql`${certificateIssuers.created}` },
      })
      .returning();
    return toIssuer(stored!);
  }

  async deleteIssuer(name: string): Promise<IssuerRecord> {
    assertObjectName(name, 'issuer');
    const [row] = await this.db
      .delete(certificateIssuers)
      .where(and(eq(certificateIssuers.vaultId, this.vault.id), eq(certificateIssuers.name, name)))
      .returning();
    if (!row) throw issuerNotFound(name);
    return toIssuer(row);
  }

  /** The issuer with its password opened, for an issuer module; undefined when none is configured. */
  async issuerConfig(name: string): Promise<IssuerConfig | undefined> {
    const found = await this.db
      .select({ row: certificateIssuers, wrapped: dataKeys.wrapped, kekLabel: dataKeys.kekLabel })
      .from(certificateIssuers)
      .leftJoin(dataKeys, eq(dataKeys.id, certificateIssuers.dataKeyId))
      .where(and(eq(certificateIssuers.vaultId, this.vault.id), eq(certificateIssuers.name, name)))
      .get();
    if (!found) return undefined;
    const { row, ...dataKey } = found;
    return {
      name: row.name,
      provider: row.provider,
      accountId: row.accountId,
      password: await this.password(row, dataKey),
      orgDetails: row.orgDetails ? JSON.parse(row.orgDetails) : null,
      enabled: row.enabled,
    };
  }

  /** A provider's own rules for its bundle (e.g. ACME's directory URL); other providers pass. */
  async check(config: IssuerConfig): Promise<void> {
    let provider;
    try {
      provider = issuerForProvider(config.provider, config.name);
    } catch {
      return; // not one this vault issues with: stored as given, refused at create
    }
    provider.check?.(config);
  }

  private async password(row: IssuerRow, known?: JoinedDataKey): Promise<string | null> {
    if (!row.passwordCiphertext || !row.dataKeyId) return null;
    const key = await this.keys.forRead(row.dataKeyId, this.vault.id, known);
    const plain = await open(key, row.passwordCiphertext, this.aad(row.name));
    if (!plain) throw new IntegrityError('issuer credentials');
    return fromUtf8(plain);
  }

  private async issuerRow(name: string): Promise<IssuerRow> {
    assertObjectName(name, 'issuer');
    const row = await this.db
      .select()
      .from(certificateIssuers)
      .where(and(eq(certificateIssuers.vaultId, this.vault.id), eq(certificateIssuers.name, name)))
      .get();
    if (!row) throw issuerNotFound(name);
    return row;
  }

  private aad(name: string): string {
    return objectAad(this.vault.id, 'certificate-issuer', name.toLowerCase(), 'credentials');
  }
}

function toIssuer(row: IssuerRow): IssuerRecord {
  return {
    name: row.name,
    provider: row.provider,
    accountId: row.accountId,
    orgDetails: row.orgDetails ? JSON.parse(row.orgDetails) : null,
    enabled: row.enabled,
    created: row.created,
    updated: row.updated,
  };
}
