/**
 * dns-01 needs a TXT record `_acme-challenge.{name}` in the name's zone, for names the Worker does
 * not serve (wildcards always). The ACME issuer writes it through this interface; Cloudflare DNS
 * is the implementation provided.
 *
 * Cloudflare setup: an API token with Zone → DNS → Edit on the zone (store it as a Worker secret,
 * e.g. `wrangler secret put ACME_DNS_API_TOKEN`) and the zone id (dashboard, zone overview). The
 * records are created with TTL 60 and deleted once the order is done.
 */
import type { FetchFn } from './client';

export interface DnsProvider {
  /** Creates a TXT record; returns an id that `deleteTxt` accepts. */
  createTxt(name: string, value: string): Promise<string>;
  deleteTxt(id: string): Promise<void>;
}

/** The record name of a dns-01 challenge: a wildcard's is its base name's (RFC 8555 §8.4). */
export function challengeRecordName(dnsName: string): string {
  return `_acme-challenge.${dnsName.replace(/^\*\./, '')}`;
}

export class DnsProviderError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'DnsProviderError';
  }
}

export class CloudflareDns implements DnsProvider {
  private readonly apiBase: string;
  private readonly fetchFn: FetchFn;

  constructor(private readonly opts: { apiToken: string; zoneId: string; apiBase?: string; fetch?: FetchFn; ttl?: number }) {
    this.apiBase = (opts.apiBase ?? 'https://api.cloudflare.com/client/v4').replace(/\/$/, '');
    this.fetchFn = opts.fetch ?? ((input, init) => fetch(input, init));
  }

  async createTxt(name: string, value: string): Promise<string> {
    const body = {
      type: 'TXT',
      name,
      content: `"${value}"`,
      ttl: this.opts.ttl ?? 60,
      comment: 'ACME dns-01 challenge (Edge Key Vault)',
    };
    const result = await this.call('POST', `/zones/${encodeURIComponent(this.opts.zoneId)}/dns_records`, body);
    const id = (result as { id?: unknown } | null)?.id;
    if (typeof id !== 'string') throw new DnsProviderError('Cloudflare DNS answered without a record id');
    return id;
  }

  async deleteTxt(id: string): Promise<void> {
    await this.call('DELETE', `/zones/${encodeURIComponent(this.opts.zoneId)}/dns_records/${encodeURIComponent(id)}`);
  }

  private async call(method: string, path: string, body?: unknown): Promise<unknown> {
    const res = await this.fetchFn(`${this.apiBase}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.opts.apiToken}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(10_000),
    });
    let parsed: { success?: boolean; result?: unknown; errors?: { code?: number; message?: string }[] } = {};
    try {
      parsed = (await res.json()) as typeof parsed;
    } catch {
      // Not JSON: reported by status below.
    }
    if (!res.ok || parsed.success === false) {
      // Cloudflare's error messages describe the request, never the token.
      const first = parsed.errors?.[0];
      throw new DnsProviderError(
        `Cloudflare DNS ${method} failed: HTTP ${res.status}${first ? ` (${first.code ?? ''} ${first.message?.slice(0, 200) ?? ''})` : ''}`,
      );
    }
    return parsed.result ?? null;
  }
}
