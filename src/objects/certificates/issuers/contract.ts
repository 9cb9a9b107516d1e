/**
 * The Certificates API side of issuance: a create hands its CSR to the issuer its policy names,
 * by provider. The issuer back ends (types.ts) plug in behind it.
 */
import type { VaultRecord } from '../../../core/vault';
import type { Policy } from '../policy';
import type { Signer } from '../x509';

// The extension point for issuers: a certificate's create makes its key and a CSR, then hands the
// CSR to the issuer its policy names. `Self` and `Unknown` are built in (self.ts, unknown.ts);
// other issuers (an internal CA, ACME) are modules of this folder registered in index.ts under the
// provider name an IssuerBundle gives (`PUT /certificates/issuers/{name}` {provider}).

/** A configured issuer (IssuerBundle) as an issuer module sees it; the password is opened. */
export interface IssuerConfig {
  name: string;
  provider: string;
  accountId: string | null;
  password: string | null;
  orgDetails: unknown;
}

export interface IssueContext {
  vault: VaultRecord;
  /** The certificate's name and the version being made. */
  name: string;
  version: string;
  /** Unix seconds: the issuance time (notBefore of a certificate made now). */
  now: number;
  /** Signs with the certificate's own key (what a self-signed certificate needs). */
  signer: Signer;
  /** The configured issuer; null for the built-in Self and Unknown. */
  issuer: IssuerConfig | null;
}

export interface CertificateIssuer {
  /**
   * Issues a certificate for the CSR (base64-free DER). Answers the chain, leaf first, when it is
   * issued at once; null when issuance continues elsewhere (the operation stays inProgress until a
   * merge, or until the module completes it).
   */
  issue(csrDer: Uint8Array, policy: Policy, ctx: IssueContext): Promise<Uint8Array[] | null>;
}
