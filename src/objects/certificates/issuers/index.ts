/**
 * Issuer modules by provider name (an IssuerBundle's `provider`). Register the internal CA and
 * ACME modules here; until then a configured issuer of another provider is refused at create.
 */
import { badParameter } from '../../../core/errors';
import { selfIssuer } from './self';
import type { CertificateIssuer } from './contract';
import { unknownIssuer } from './unknown';

const PROVIDERS: Record<string, CertificateIssuer> = {};

/** The built-in issuers, by the names policies use for them (case-insensitive, as on Azure). */
export function builtInIssuer(name: string): CertificateIssuer | undefined {
  const n = name.toLowerCase();
  return n === 'self' ? selfIssuer : n === 'unknown' ? unknownIssuer : undefined;
}

export function issuerForProvider(provider: string, issuerName: string): CertificateIssuer {
  const module = PROVIDERS[provider.toLowerCase()];
  if (!module)
    throw badParameter(
      `The issuer ${issuerName} uses provider '${provider.slice(0, 64)}', which this vault cannot issue with yet.`,
    );
  return module;
}
