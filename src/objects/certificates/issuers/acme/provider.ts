/**
 * The `ACME` provider: an IssuerBundle mapped onto the ACME issuer. Azure's bundle has no field for
 * a directory URL, so the organization is the CA: `org_details.id` holds the directory URL. The
 * External Account Binding the CA hands out is the account's credentials: `credentials.account_id`
 * the EAB key id, `credentials.pwd` the HMAC key (base64url, as CAs print it), sealed like any
 * issuer password and never shown. Challenges are http-01, answered by this Worker.
 */
import { fromBase64Url } from '../../../../core/encoding';
import { badParameter } from '../../../../core/errors';
import type { IssuerConfig, IssuerProvider } from '../contract';
import { AcmeIssuer } from './issuer';
import type { AcmeAccountStore } from './ports';
import { D1AcmeAccounts, D1Http01Store } from './stores';

export const acmeProvider: IssuerProvider = {
  check(config) {
    directoryOf(config);
    bindingOf(config);
  },
  backend({ issuer, vault, services }) {
    const config = issuer!;
    const directoryUrl = directoryOf(config);
    const accounts = new D1AcmeAccounts(services.db, services.keys, vault.id, directoryUrl);
    const binding = bindingOf(config);
    return new AcmeIssuer({
      directoryUrl,
      accounts: binding ? boundTo(accounts, binding) : accounts,
      challenge: 'http-01',
      http01: new D1Http01Store(services.db, vault.id),
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
