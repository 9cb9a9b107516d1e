/**
 * The ACME issuer (RFC 8555): `issue` registers the vault's account if needed, places the order,
 * provisions one challenge per authorization (http-01 answered by this Worker, or dns-01 through
 * a DnsProvider), tells the CA to check (for dns-01 on the first resume, once the records have
 * had time to reach the name servers), and answers 'pending'. `resume` (from the caller's queue
 * or cron) reads the order back and moves it on: finalize with the CSR once ready, download the
 * chain once valid. The resume token holds only public facts (order URL, CSR, what to clean up):
 * the answers and TXT records go once the order is done, has failed, or is abandoned (cancelled).
 */
import { fromBase64Url, fromUtf8, toBase64Url, utf8 } from '../../../../core/encoding';
import type { IssueOutcome, IssueRequest, IssuerBackend } from '../types';
import { AcmeClient, AcmeError, pemChainToDer, type AcmeOrder, type FetchFn } from './client';
import { DnsProviderError, challengeRecordName, type DnsProvider } from './dns';
import { dnsTxtValue, keyAuthorization, type AccountKey } from './jws';
import type { AcmeAccountStore, Http01Store } from './ports';

export interface AcmeIssuerOptions {
  directoryUrl: string;
  accounts: AcmeAccountStore;
  challenge: 'http-01' | 'dns-01';
  http01?: Http01Store;
  dns?: DnsProvider;
  fetch?: FetchFn;
}

interface ResumeState {
  v: 1;
  order: string;
  csr: string;
  http: string[];
  dns: string[];
  /** dns-01 challenges whose records are written but the CA not told yet (told on the first resume). */
  respond?: string[];
}

/** How long an http-01 answer is served: authorizations rarely live longer than a week. */
const HTTP01_LIFETIME_SECONDS = 7 * 86_400;
const POLL_SECONDS = 5;
/**
 * A new TXT record takes seconds to reach all of the zone's name servers, and a CA that looks it
 * up before then fails the authorization for good: the CA is told only on the first resume.
 */
const DNS_PROPAGATION_SECONDS = 30;

/** A final answer about this request, as opposed to an outage worth retrying. */
class Refused extends Error {}

export class AcmeIssuer implements IssuerBackend {
  /** The client of the last call (tests read its badNonce count). */
  lastClient?: AcmeClient;

  constructor(private readonly opts: AcmeIssuerOptions) {
    if (opts.challenge === 'http-01' && !opts.http01) throw new Error('http-01 needs a store for the answers');
    if (opts.challenge === 'dns-01' && !opts.dns) throw new Error('dns-01 needs a DNS provider');
  }

  async issue(req: IssueRequest): Promise<IssueOutcome> {
    if (req.dnsNames.length === 0) return { status: 'failed', error: 'An ACME certificate needs at least one DNS name.' };
    const state: ResumeState = { v: 1, order: '', csr: toBase64Url(req.csrDer), http: [], dns: [] };
    try {
      const { client, key } = await this.client();
      const { url, order } = await client.newOrder(req.dnsNames.map((n) => n.toLowerCase()));
      state.order = url;
      await this.prepareChallenges(client, key, order, state);
      return pending(state, state.respond?.length ? DNS_PROPAGATION_SECONDS : POLL_SECONDS);
    } catch (err) {
      try {
        return await this.failure(err, state);
      } catch (thrown) {
        // The create fails outright (the CA or the DNS API unreachable): no resume will come to clean up.
        await this.cleanup(state);
        throw thrown;
      }
    }
  }

  /** A pending order that will not be resumed (cancelled, past its deadline): its answers and records go. */
  async abandon(resume: string): Promise<void> {
    const state = decodeState(resume);
    if (state) await this.cleanup(state);
  }

  async resume(resume: string): Promise<IssueOutcome> {
    const state = decodeState(resume);
    if (!state) return { status: 'failed', error: 'The ACME resume token is not valid.' };
    try {
      const { client } = await this.client();
      return await this.advance(client, state);
    } catch (err) {
      return this.failure(err, state);
    }
  }

  private async advance(client: AcmeClient, state: ResumeState): Promise<IssueOutcome> {
    if (state.respond?.length) {
      for (const url of state.respond) await client.respond(url);
      delete state.respond;
      return pending(state, POLL_SECONDS);
    }
    // eslint-disable-next-line prefer-const -- order is reassigned below, retryAfter is not
    let { order, retryAfter } = await client.order(state.order);
    if (order.status === 'ready') order = await client.finalize(order.finalize, fromBase64Url(state.csr));
    switch (order.status) {
      case 'valid': {
        if (!order.certificate) return pending(state, retryAfter ?? POLL_SECONDS);
        const chainDer = pemChainToDer(await client.certificate(order.certificate));
        if (chainDer.length === 0) throw new Refused('The ACME server sent no certificate.');
        await this.cleanup(state);
        return { status: 'issued', result: { chainDer } };
      }
      case 'invalid':
        throw new Refused(await this.whyInvalid(client, order));
      case 'pending': {
        // An authorization that failed validation leaves the order pending on some servers.
        for (const url of order.authorizations) {
          const authz = await client.authorization(url);
          if (authz.status === 'invalid') throw new Refused(await this.whyInvalid(client, order));
        }
        return pending(state, retryAfter ?? POLL_SECONDS);
      }
      default:
        return pending(state, retryAfter ?? POLL_SECONDS);
    }
  }

  private async prepareChallenges(client: AcmeClient, key: AccountKey, order: AcmeOrder, state: ResumeState): Promise<void> {
    for (const url of order.authorizations) {
      const authz = await client.authorization(url);
      if (authz.status === 'valid') continue;
      if (authz.status !== 'pending') throw new Refused(`The authorization for ${authz.identifier.value} is ${authz.status}.`);
      const challenge = authz.challenges.find((c) => c.type === this.opts.challenge);
      if (!challenge)
        throw new Refused(
          `The ACME server offers no ${this.opts.challenge} challenge for ${authz.identifier.value}${authz.wildcard ? ' (wildcards need dns-01)' : ''}.`,
        );
      const keyAuth = await keyAuthorization(key, challenge.token);
      if (this.opts.challenge === 'http-01') {
        await this.opts.http01!.put(challenge.token, keyAuth, Math.floor(Date.now() / 1000) + HTTP01_LIFETIME_SECONDS);
        state.http.push(challenge.token);
      } else {
        state.dns.push(await this.opts.dns!.createTxt(challengeRecordName(authz.identifier.value), await dnsTxtValue(keyAuth)));
        (state.respond ??= []).push(challenge.url);
        continue;
      }
      await client.respond(challenge.url);
    }
  }

  private async client(): Promise<{ client: AcmeClient; key: AccountKey }> {
    const account = await this.opts.accounts.load();
    const client = new AcmeClient(this.opts.directoryUrl, account.key, account.accountUrl, this.opts.fetch);
    this.lastClient = client;
    if (!account.accountUrl) {
      const dir = await client.directory();
      if (dir.meta?.externalAccountRequired && !account.eab)
        throw new Refused('The ACME server requires External Account Binding; configure its key id and HMAC key.');
      await this.opts.accounts.saveAccountUrl(await client.newAccount(account.eab ?? undefined));
    }
    return { client, key: account.key };
  }

  private async whyInvalid(client: AcmeClient, order: AcmeOrder): Promise<string> {
    for (const url of order.authorizations) {
      const authz = await client.authorization(url).catch(() => undefined);
      const failed = authz?.challenges.find((c) => c.status === 'invalid' && c.error);
      if (failed)
        return `Validation of ${authz!.identifier.value} failed: ${failed.error!.detail ?? failed.error!.type ?? 'no detail'}`.slice(
          0,
          500,
        );
    }
    return `The ACME order is invalid${order.error?.detail ? `: ${order.error.detail.slice(0, 300)}` : '.'}`;
  }

  private async failure(err: unknown, state: ResumeState): Promise<IssueOutcome> {
    if (err instanceof AcmeError && (err.type === 'rateLimited' || err.status >= 500) && state.order) return pending(state, 60);
    if (err instanceof Refused || err instanceof AcmeError || err instanceof DnsProviderError) {
      await this.cleanup(state);
      return { status: 'failed', error: err.message };
    }
    throw err;
  }

  private async cleanup(state: ResumeState): Promise<void> {
    // Best effort: a leftover answer expires, a leftover TXT record is harmless.
    for (const token of state.http) await this.opts.http01?.remove(token).catch(() => undefined);
    for (const id of state.dns) await this.opts.dns?.deleteTxt(id).catch(() => undefined);
  }
}

function pending(state: ResumeState, retryAfterSeconds: number): IssueOutcome {
  return { status: 'pending', resume: toBase64Url(utf8(JSON.stringify(state))), retryAfterSeconds };
}

function decodeState(resume: string): ResumeState | null {
  try {
    const s = JSON.parse(fromUtf8(fromBase64Url(resume))) as ResumeState;
    const strings = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'string');
    return s.v === 1 &&
      typeof s.order === 'string' &&
      s.order &&
      typeof s.csr === 'string' &&
      strings(s.http) &&
      strings(s.dns) &&
      (s.respond === undefined || strings(s.respond))
      ? s
      : null;
  } catch {
    return null;
  }
}
