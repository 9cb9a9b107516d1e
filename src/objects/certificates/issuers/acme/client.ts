/**
 * A small RFC 8555 client on web-standard APIs only (fetch, WebCrypto, jose), so it runs in
 * workerd and in Node alike: directory, nonces (Replay-Nonce, with the badNonce retry §6.5
 * demands), accounts (with External Account Binding), orders, authorizations, challenges,
 * finalization and certificate download. It keeps no state beyond one nonce and the directory:
 * where an order stands is the CA's to say, read back on every resume.
 */
import { toBase64Url } from '../../../../core/encoding';
import { externalAccountBinding, signRequest, type AccountKey } from './jws';

export type FetchFn = (input: string, init?: RequestInit) => Promise<Response>;

export interface Directory {
  newNonce: string;
  newAccount: string;
  newOrder: string;
  meta?: { externalAccountRequired?: boolean; termsOfService?: string };
}

export interface AcmeOrder {
  status: 'pending' | 'ready' | 'processing' | 'valid' | 'invalid';
  identifiers: { type: string; value: string }[];
  authorizations: string[];
  finalize: string;
  certificate?: string;
  error?: Problem;
}

export interface AcmeChallenge {
  type: string;
  url: string;
  token: string;
  status: 'pending' | 'processing' | 'valid' | 'invalid';
  error?: Problem;
}

export interface AcmeAuthorization {
  status: 'pending' | 'valid' | 'invalid' | 'deactivated' | 'expired' | 'revoked';
  identifier: { type: string; value: string };
  challenges: AcmeChallenge[];
  wildcard?: boolean;
}

export interface Problem {
  type?: string;
  detail?: string;
  subproblems?: Problem[];
}

/** The CA answered with a problem document (RFC 7807) or something that is not ACME at all. */
export class AcmeError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Problem,
  ) {
    super(
      `ACME server: ${problem.type?.replace('urn:ietf:params:acme:error:', '') ?? `HTTP ${status}`}${problem.detail ? ` (${problem.detail.slice(0, 300)})` : ''}`,
    );
    this.name = 'AcmeError';
  }

  get type(): string {
    return this.problem.type?.replace('urn:ietf:params:acme:error:', '') ?? '';
  }
}

const BAD_NONCE_RETRIES = 5;
const TIMEOUT_MS = 15_000;

export class AcmeClient {
  private directoryCache?: Promise<Directory>;
  private nonce?: string;
  /** How many badNonce answers were retried (visible to tests). */
  badNonceRetries = 0;

  constructor(
    readonly directoryUrl: string,
    private readonly key: AccountKey,
    /** The account URL once known: requests then carry `kid` instead of the JWK. */
    public accountUrl: string | null = null,
    private readonly fetchFn: FetchFn = (input, init) => fetch(input, init),
  ) {}

  directory(): Promise<Directory> {
    this.directoryCache ??= this.fetchJson<Directory>(this.directoryUrl).catch((err) => {
      this.directoryCache = undefined;
      throw err;
    });
    return this.directoryCache;
  }

  /** Creates the account (or finds the existing one for this key) and returns its URL. */
  async newAccount(eab?: { kid: string; hmacKey: Uint8Array }): Promise<string> {
    const dir = await this.directory();
    const payload: Record<string, unknown> = { termsOfServiceAgreed: true };
    if (eab) payload.externalAccountBinding = await externalAccountBinding(this.key, eab, dir.newAccount);
    const res = await this.post(dir.newAccount, payload, { useJwk: true });
    const location = res.headers.get('location');
    if (!location) throw new AcmeError(res.status, { detail: 'newAccount answered without a Location' });
    this.accountUrl = location;
    return location;
  }

  async newOrder(dnsNames: string[]): Promise<{ url: string; order: AcmeOrder }> {
    const dir = await this.directory();
    const res = await this.post(dir.newOrder, { identifiers: dnsNames.map((value) => ({ type: 'dns', value })) });
    const url = res.headers.get('location');
    if (!url) throw new AcmeError(res.status, { detail: 'newOrder answered without a Location' });
    return { url, order: (await res.json()) as AcmeOrder };
  }

  async order(url: string): Promise<{ order: AcmeOrder; retryAfter: number | null }> {
    const res = await this.post(url, undefined);
    return { order: (await res.json()) as AcmeOrder, retryAfter: retryAfter(res) };
  }

  async authorization(url: string): Promise<AcmeAuthorization> {
    return (await (await this.post(url, undefined)).json()) as AcmeAuthorization;
  }

  /** Tells the CA the challenge is ready to be checked (§7.5.1: an empty JSON object). */
  async respond(challengeUrl: string): Promise<AcmeChallenge> {
    return (await (await this.post(challengeUrl, {})).json()) as AcmeChallenge;
  }

  async finalize(finalizeUrl: string, csrDer: Uint8Array): Promise<AcmeOrder> {
    return (await (await this.post(finalizeUrl, { csr: toBase64Url(csrDer) })).json()) as AcmeOrder;
  }

  /** The certificate chain as the CA sends it (application/pem-certificate-chain). */
  async certificate(url: string): Promise<string> {
    // Decoded by hand: workerd warns on .text() of a body whose type is not text/*.
    const res = await this.post(url, undefined, { accept: 'application/pem-certificate-chain' });
    return new TextDecoder().decode(await res.arrayBuffer());
  }

  /** A signed POST (POST-as-GET when payload is undefined); retries badNonce with the fresh nonce. */
  private async post(url: string, payload: unknown, opts: { useJwk?: boolean; accept?: string } = {}): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      const nonce = await this.takeNonce();
      const kid = opts.useJwk ? undefined : (this.accountUrl ?? undefined);
      if (!opts.useJwk && !kid) throw new Error('ACME request before the account exists');
      const jws = await signRequest(this.key, payload, { url, nonce, ...(kid ? { kid } : {}) });
      const res = await this.fetchFn(url, {
        method: 'POST',
        headers: { 'content-type': 'application/jose+json', ...(opts.accept ? { accept: opts.accept } : {}) },
        body: JSON.stringify(jws),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
      this.keepNonce(res);
      if (res.ok) return res;
      const problem = await problemOf(res);
      if (problem.type === 'urn:ietf:params:acme:error:badNonce' && attempt < BAD_NONCE_RETRIES) {
        this.badNonceRetries++;
        continue;
      }
      throw new AcmeError(res.status, problem);
    }
  }

  private async takeNonce(): Promise<string> {
    const kept = this.nonce;
    this.nonce = undefined;
    if (kept) return kept;
    const dir = await this.directory();
    const res = await this.fetchFn(dir.newNonce, { method: 'HEAD', signal: AbortSignal.timeout(TIMEOUT_MS) });
    const nonce = res.headers.get('replay-nonce');
    if (!nonce) throw new AcmeError(res.status, { detail: 'newNonce answered without a Replay-Nonce' });
    return nonce;
  }

  private keepNonce(res: Response): void {
    const nonce = res.headers.get('replay-nonce');
    if (nonce) this.nonce = nonce;
  }

  private async fetchJson<T>(url: string): Promise<T> {
    const res = await this.fetchFn(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    if (!res.ok) throw new AcmeError(res.status, await problemOf(res));
    return (await res.json()) as T;
  }
}

async function problemOf(res: Response): Promise<Problem> {
  try {
    const body = (await res.json()) as Problem;
    return typeof body === 'object' && body !== null ? body : {};
  } catch {
    return {};
  }
}

/** Retry-After in seconds (delta form; an HTTP date is converted), or null. */
export function retryAfter(res: Response): number | null {
  const value = res.headers.get('retry-after');
  if (!value) return null;
  if (/^\d+$/.test(value)) return Number(value);
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

/** DER certificates of a PEM chain, in the order given (leaf first, per §7.4.2). */
export function pemChainToDer(pem: string): Uint8Array[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((block) => {
    const b64 = block.replace(/-----(BEGIN|END) CERTIFICATE-----|\s/g, '');
    return Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
  });
}
