/**
 * The contract between the Certificates API and its issuers (internal CA, ACME): the API builds
 * the key and CSR, an issuer turns the CSR into a chain. ACME can take minutes, so an issuer may
 * answer 'pending' with a token the caller stores and hands back to `resume` later.
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
/** Long-running issuance (ACME) returns 'pending' with a resume token the caller stores; the caller calls `resume` later (from a queue or cron) until done. */
export type IssueOutcome =
  | { status: 'issued'; result: IssueResult }
  | { status: 'pending'; resume: string; retryAfterSeconds: number }
  | { status: 'failed'; error: string };
export interface IssuerBackend {
  issue(req: IssueRequest): Promise<IssueOutcome>;
  resume?(resume: string): Promise<IssueOutcome>;
}
