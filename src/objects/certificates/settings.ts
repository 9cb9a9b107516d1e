// A vault's certificate settings: its contacts (who hears about expiring certificates) and its
// configured issuers (IssuerBundle). An issuer's account password is sealed like a secret value,
// bound to the vault and the issuer's name; it is opened only for an issuer module, never shown.
// So is an ACME issuer's dns-01 API token (`dns_01`, a field of ours: Azure's bundle has none).
// A bundle naming a registered provider (issuers/index.ts) is checked by it before it is stored.
import { and, asc, eq, gt, sql } from 'drizzle-orm';
import * as z from 'zod';
import { now } from '../../core/clock';
import { fromUtf8, utf8 } from '../../core/encoding';
import { badParameter, IntegrityError, notFound } from '../../core/errors';
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
  /** ACME dns-01 through a DNS provider's API; null removes it (PATCH). The token is write-only. */
  dns_01: z
    .object({
      provider: z.enum(['Cloudflare']),
      zone_id: z.string().regex(/^[0-9a-f]{32}$/, 'must be the zone id: 32 lowercase hex characters'),
      api_token: z.string().min(1).max(1024).nullish(),
    })
    .nullish(),
};
export const setIssuerBody = z.object({ provider: z.string().min(1).max(64), ...issuerFields });
export const updateIssuerBody = z.object({ provider: z.string().min(1).max(64).nullish(), ...issuerFields });
export type SetIssuerInput = z.infer<typeof updateIssuerBody>;

export interface IssuerRecord {
  name: string;
  provider: string;
  accountId: string | null;
  orgDetails: unknown;
  /** dns-01 settings without the token. */
  dns01: Dns01Settings | null;
  enabled: boolean;
  created: number;
  updated: number;
}

export interface Dns01Settings {
  provider: 'Cloudflare';
  zone_id: string;
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
    const provider = input.provider ?? existing!.provider;
    const name_ = existing?.name ?? name;
    // dns_01: absent keeps it (PATCH), null removes it; a new zone alone keeps the stored token.
    const dns01: Dns01Settings | null =
      input.dns_01 === undefined
        ? replace || !existing!.dns01
          ? null
          : (JSON.parse(existing!.dns01) as Dns01Settings)
        : input.dns_01 && { provider: input.dns_01.provider, zone_id: input.dns_01.zone_id };
    if (dns01 && provider.toLowerCase() !== 'acme')
      throw badParameter(`The issuer ${name_} sets dns_01, which only ACME issuers use.`);
    const keptPwd = pwd ?? (replace || !existing ? null : await this.password(existing));
    const dnsToken = !dns01 ? null : (input.dns_01?.api_token ?? (replace || !existing ? null : await this.dnsToken(existing)));
    // Both sealed under one data key: whenever either changes, both are sealed again under the current one.
    let sealed: { ciphertext: string | null; dnsToken: string | null; dataKeyId: string | null } = {
      ciphertext: existing?.passwordCiphertext ?? null,
      dnsToken: dns01 ? (existing?.dnsTokenCiphertext ?? null) : null,
      dataKeyId: existing?.dataKeyId ?? null,
    };
    const tokenChanged = (input.dns_01?.api_token ?? null) !== null || (existing?.dnsTokenCiphertext != null && !dns01);
    if (pwd != null || tokenChanged || replace) {
      if (keptPwd == null && dnsToken == null) sealed = { ciphertext: null, dnsToken: null, dataKeyId: null };
      else {
        const key = await this.keys.forWrite(this.vault.id);
        sealed = {
          ciphertext: keptPwd == null ? null : await seal(key.key, utf8(keptPwd), this.aad(name_)),
          dnsToken: dnsToken == null ? null : await seal(key.key, utf8(dnsToken), this.aad(name_, 'dns-01-token')),
          dataKeyId: key.id,
        };
      }
    }
    const accountId = input.credentials?.account_id ?? (replace ? null : existing!.accountId);
    const orgDetails = input.org_details ?? (replace || !existing!.orgDetails ? null : JSON.parse(existing!.orgDetails));
    await this.check({
      name: name_,
      provider,
      accountId,
      password: keptPwd,
      orgDetails,
      dns01: dns01 && { provider: dns01.provider, zoneId: dns01.zone_id, apiToken: dnsToken },
      enabled: true,
    });
    const row = {
      vaultId: this.vault.id,
      name: name_,
      provider,
      accountId,
      passwordCiphertext: sealed.ciphertext,
      dataKeyId: sealed.dataKeyId,
      orgDetails: orgDetails ? JSON.stringify(orgDetails) : null,
      dns01: dns01 ? JSON.stringify(dns01) : null,
      dnsTokenCiphertext: sealed.dnsToken,
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
      dns01: dns01Config(row, await this.dnsToken(row, dataKey)),
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

  private async dnsToken(row: IssuerRow, known?: JoinedDataKey): Promise<string | null> {
    if (!row.dnsTokenCiphertext || !row.dataKeyId) return null;
    const key = await this.keys.forRead(row.dataKeyId, this.vault.id, known);
    const plain = await open(key, row.dnsTokenCiphertext, this.aad(row.name, 'dns-01-token'));
    if (!plain) throw new IntegrityError('issuer dns-01 token');
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

  private aad(name: string, what: 'credentials' | 'dns-01-token' = 'credentials'): string {
    return objectAad(this.vault.id, 'certificate-issuer', name.toLowerCase(), what);
  }
}

function dns01Config(row: IssuerRow, apiToken: string | null): IssuerConfig['dns01'] {
  if (!row.dns01) return null;
  const d = JSON.parse(row.dns01) as Dns01Settings;
  return { provider: d.provider, zoneId: d.zone_id, apiToken };
}

function toIssuer(row: IssuerRow): IssuerRecord {
  return {
    name: row.name,
    provider: row.provider,
    accountId: row.accountId,
    orgDetails: row.orgDetails ? JSON.parse(row.orgDetails) : null,
    dns01: row.dns01 ? (JSON.parse(row.dns01) as Dns01Settings) : null,
    enabled: row.enabled,
    created: row.created,
    updated: row.updated,
  };
}
