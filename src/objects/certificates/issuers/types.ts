/**
 * The one issuer contract: the Certificates API makes the key and the CSR, an issuer turns the
 * CSR into a chain. ACME can take minutes, so an issuer may answer 'pending' with a token the
 * store keeps with the operation and hands back to `resume` later (from the cron), and `Unknown`
 * answers 'merge': the caller brings the chain. Portable on purpose (no D1, no policy): the issuers
 * suite runs these back ends in Node against openssl and pebble.
 */

/** What an issuer needs to issue one certificate. */
export interface IssueRequest {
  csrDer: Uint8Array;
  subject: string;
  dnsNames: string[];
  validityMonths: number;
  keyUsage?: string[];
  ekus?: string[];
}
/** The issued chain, leaf first, DER each. */
export interface IssueResult {
  chainDer: Uint8Array[];
}
export type IssueOutcome =
  | { status: 'issued'; result: IssueResult }
  | { status: 'pending'; resume: string; retryAfterSeconds: number }
  /** Nothing to do here: the operation waits for a merge of the chain a CA made elsewhere. */
  | { status: 'merge' }
  | { status: 'failed'; error: string };
export interface IssuerBackend {
  issue(req: IssueRequest): Promise<IssueOutcome>;
  resume?(resume: string): Promise<IssueOutcome>;
  /** Undoes what a pending issuance left outside the vault (ACME: challenge answers, TXT records) once it will not be resumed. */
  abandon?(resume: string): Promise<void>;
}
