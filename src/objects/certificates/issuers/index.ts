/**
 * Issuer providers by name: the built-in `Self` and `Unknown` (policies name them directly) and the
 * providers a configured issuer (IssuerBundle `provider`) may name: `EdgeKeyVaultCA`, the vault's
 * internal CA (key in the HSM), and `ACME`, any RFC 8555 CA. Names are case-insensitive, as on Azure.
 */
import { badParameter } from '../../../core/errors';
import { acmeProvider } from './acme/provider';
import type { IssuerProvider } from './contract';
import { InternalCa } from './internal-ca';
import { selfIssuer } from './self';
import { unknownIssuer } from './unknown';

const internalCaProvider: IssuerProvider = {
  backend: ({ services, vault }) => new InternalCa(services.db, services.bridge, vault),
};

const PROVIDERS: Record<string, IssuerProvider> = { edgekeyvaultca: internalCaProvider, acme: acmeProvider };

/** The built-in issuers, by the names policies use for them. */
export function builtInIssuer(name: string): IssuerProvider | undefined {
  const n = name.toLowerCase();
  return n === 'self' ? selfIssuer : n === 'unknown' ? unknownIssuer : undefined;
}

export function issuerForProvider(provider: string, issuerName: string): IssuerProvider {
  const found = PROVIDERS[provider.toLowerCase()];
  if (!found)
    throw badParameter(
      `The issuer ${issuerName} uses provider '${provider.slice(0, 64)}', which this vault cannot issue with. Providers: EdgeKeyVaultCA, ACME.`,
    );
  return found;
}
