/**
 * How the Certificates API finds the issuer back end (types.ts) for a certificate: `Self` and
 * `Unknown` are built in; configured issuers (IssuerBundle, `PUT /certificates/issuers/{name}`)
 * name a provider registered in index.ts, which builds its back end from the bundle and the
 * vault's services. Built per use (a create, a resume from the cron), never cached: a bundle can
 * change between the two.
 */
import type { VaultRecord } from '../../../core/vault';
import type { BridgeClient } from '../../../crypto/bridge-client';
import type { DataKeyManager } from '../../../crypto/data-keys';
import type { Database } from '../../../storage/db';
import type { Policy } from '../policy';
import type { Signer } from '../x509';
import type { FetchFn } from './acme/client';
import type { IssuerBackend } from './types';

/** A configured issuer (IssuerBundle) as a provider sees it; the password is opened. */
export interface IssuerConfig {
  name: string;
  provider: string;
  accountId: string | null;
  password: string | null;
  orgDetails: unknown;
  /** ACME dns-01 through a DNS provider's API, its token opened (null when none is stored). */
  dns01: { provider: 'Cloudflare'; zoneId: string; apiToken: string | null } | null;
  enabled: boolean;
}

/** What issuer back ends may reach, and the deployment's rules for them. */
export interface IssuerServices {
  db: Database;
  keys: DataKeyManager;
  bridge: BridgeClient;
  fetch?: FetchFn;
  /** The Cloudflare API's base URL for dns-01 (env ACME_DNS_API_BASE); the public API by default. */
  dnsApiBase?: string;
}

export interface IssueContext {
  vault: VaultRecord;
  services: IssuerServices;
  policy: Policy;
  /** Unix seconds: the issuance time (notBefore of a certificate made now). */
  now: number;
  /** Signs with the certificate's own key (Self); null on a resume, which needs none. */
  signer: Signer | null;
  /** The configured issuer; null for the built-in Self and Unknown. */
  issuer: IssuerConfig | null;
}

export interface IssuerProvider {
  /** Refuses a bundle this provider cannot issue with (BadParameter), at PUT/PATCH and at create. */
  check?(config: IssuerConfig): void;
  backend(ctx: IssueContext): IssuerBackend;
}
