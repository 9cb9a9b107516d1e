/**
 * The `ACME` provider: an IssuerBundle mapped onto the ACME issuer. Azure's bundle has no field for
 * a directory URL, so the organization is the CA: `org_details.id` holds the directory URL. The
 * External Account Binding the CA hands out is the account's credentials: `credentials.account_id`
 * the EAB key id, `credentials.pwd` the HMAC key (base64url, as CAs print it), sealed like any
 * issuer password and never shown. Challenges are http-01, answered by this Worker, unless the
 * bundle has `dns_01` (a field of ours, settings.ts): then dns-01, the TXT records written through
 * that DNS provider's API with the bundle's API token (sealed like the password, never shown) and
 * removed once the order is done or has failed. dns-01 is what wildcards and names this Worker
 * does not serve need.
 */
import { fromBase64Url } from '../../../../core/encoding';
import { badParameter } from '../../../../core/errors';
import type { IssuerConfig, IssuerProvider, IssuerServices } from '../contract';
import { CloudflareDns, type DnsProvider } from './dns';
import { AcmeIssuer } from './issuer';
import type { AcmeAccountStore } from './ports';
import { D1AcmeAccounts, D1Http01Store } from './stores';

export const acmeProvider: IssuerProvider = {
  check(config) {
    directoryOf(config);
    bindingOf(config);
    dnsOf(config);
  },
  backend({ issuer, vault, services }) {
    const config = issuer!;
    const directoryUrl = directoryOf(config);
    const accounts = new D1AcmeAccounts(services.db, services.keys, vault.id, directoryUrl);
    const binding = bindingOf(config);
    const dns = dnsOf(config, services.dnsApiBase, services.fetch);
    return new AcmeIssuer({
      directoryUrl,
      accounts: binding ? boundTo(accounts, binding) : accounts,
      ...(dns ? { challenge: 'dns-01', dns } : { challenge: 'http-01', http01: new D1Http01Store(services.db, vault.id) }),
      ...(services.fetch ? { fetch: services.fetch } : {}),
    });
  },
};

function directoryOf(config: IssuerConfig): string {
  const id = (config.orgDetails as { id?: unknown } | null)?.id;
  const refuse = () => badParameter(`The ACME issuer ${config.name} needs its directory URL (https) in org_details.id.`);
  if (typeof id !== 'string') throw refuse();
  let url: URL;
  try {
    url = new URL(id);
  } catch {
    throw refuse();
  }
  if (url.protocol !== 'https:' || url.username || url.password) throw refuse();
  return url.href;
}

/** The bundle's DNS provider for dns-01, or null for http-01. */
function dnsOf(config: IssuerConfig, apiBase?: string, fetch?: IssuerServices['fetch']): DnsProvider | null {
  const d = config.dns01;
  if (!d) return null;
  if (!d.apiToken)
    throw badParameter(`The ACME issuer ${config.name} needs dns_01.api_token (a Cloudflare API token with Zone DNS Edit).`);
  return new CloudflareDns({
    apiToken: d.apiToken,
    zoneId: d.zoneId,
    ...(apiBase ? { apiBase } : {}),
    ...(fetch ? { fetch } : {}),
  });
}

interface Binding {
  kid: string;
  hmacB64: string;
  hmacKey: Uint8Array;
}

function bindingOf(config: IssuerConfig): Binding | null {
  const { accountId: kid, password: hmacB64 } = config;
  if (!kid && !hmacB64) return null;
  const refuse = () =>
    badParameter(
      `The ACME issuer ${config.name} needs both credentials.account_id (the EAB key id) and credentials.pwd (its HMAC key, base64url, at least 16 bytes), or neither.`,
    );
  if (!kid || !hmacB64 || !/^[A-Za-z0-9_-]+$/.test(hmacB64)) throw refuse();
  const hmacKey = fromBase64Url(hmacB64);
  if (hmacKey.length < 16) throw refuse();
  return { kid, hmacB64, hmacKey };
}

/** The vault's account at the directory, re-registered when the bundle's EAB credentials changed. */
function boundTo(accounts: D1AcmeAccounts, binding: Binding): AcmeAccountStore {
  return {
    async load() {
      const account = await accounts.load();
      if (account.eab?.kid === binding.kid && sameBytes(account.eab.hmacKey, binding.hmacKey)) return account;
      await accounts.setExternalAccountBinding(binding.kid, binding.hmacB64);
      return accounts.load();
    },
    saveAccountUrl: (url) => accounts.saveAccountUrl(url),
  };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
