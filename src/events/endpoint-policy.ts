/**
 * Which webhook endpoints the vault will call (SSRF defence). An endpoint must be https, and its
 * host must not be, or resolve to, an address in a private, loopback, link-local, CGNAT,
 * multicast, unspecified, documentation or metadata range (IPv4 and IPv6, IPv4-mapped and NAT64
 * included). Loopback, over http too, only when ALLOW_LOOPBACK_HTTP_ISSUERS is "true" (tests and
 * the local stack).
 *
 * Residual risk, stated plainly: Workers' fetch resolves the name again itself and cannot be
 * pinned to the address checked here, so a hostile DNS server can answer the check with a public
 * address and the fetch with a private one (DNS rebinding). The check runs on creation and again
 * before every delivery, which narrows that window but does not close it; Cloudflare's egress does
 * not reach the deployment's private networks, which is the real backstop. Redirects are never
 * followed, so a public endpoint cannot bounce a delivery elsewhere.
 */
import { parseIp, parseRange, rangeContains, type IpAddress, type IpRange } from '../access/cidr';

export class EndpointRefused extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'EndpointRefused';
  }
}

/** Resolves a host name to its addresses (A and AAAA). Injected: workerd has no DNS API. */
export interface HostResolver {
  resolve(host: string): Promise<string[]>;
}

export interface EndpointPolicy {
  allowLoopback: boolean;
  resolver: HostResolver;
}

const BLOCKED = [
  '0.0.0.0/8', // "this network", unspecified
  '10.0.0.0/8',
  '100.64.0.0/10', // CGNAT
  '127.0.0.0/8',
  '169.254.0.0/16', // link-local, cloud metadata (169.254.169.254)
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.0.2.0/24',
  '192.88.99.0/24',
  '192.168.0.0/16',
  '198.18.0.0/15',
  '198.51.100.0/24',
  '203.0.113.0/24',
  '224.0.0.0/4', // multicast
  '240.0.0.0/4', // reserved, broadcast
  '::/128',
  '::1/128',
  '100::/64', // discard
  '2001::/32', // Teredo: tunnels to an IPv4 address
  '2001:db8::/32',
  '2002::/16', // 6to4: embeds an IPv4 address
  'fc00::/7', // unique local, incl. fd00:ec2::254 (EC2 metadata over IPv6)
  'fe80::/10',
  'fec0::/10',
  'ff00::/8',
].map((r) => {
  const parsed = parseRange(r);
  if (!parsed.ok) throw new Error(`bad built-in range ${r}`);
  return parsed.range;
});
const LOOPBACK = ['127.0.0.0/8', '::1/128'].map((r) => (parseRange(r) as { ok: true; range: IpRange }).range);
const NAT64 = (parseRange('64:ff9b::/96') as { ok: true; range: IpRange }).range;

/** The IPv4 address a NAT64 address carries, so it is judged as that address. */
function unwrap(address: IpAddress): IpAddress {
  if (address.version === 6 && rangeContains(NAT64, address)) return { version: 4, words: [address.words[3]!] };
  return address;
}

export const isLoopback = (address: IpAddress) => LOOPBACK.some((r) => rangeContains(r, unwrap(address)));

/** Why an address may not be called, or null when it may. */
export function addressRefusal(text: string, allowLoopback: boolean): string | null {
  const parsed = parseIp(text);
  if (!parsed) return 'the endpoint address is not a valid IP address';
  const address = unwrap(parsed);
  if (allowLoopback && isLoopback(address)) return null;
  if (BLOCKED.some((r) => rangeContains(r, address)))
    return 'the endpoint resolves to a private, loopback, link-local or reserved address';
  return null;
}

/** The host of a URL without IPv6 brackets. */
const bareHost = (url: URL) => url.hostname.replace(/^\[|\]$/g, '');

/**
 * Checks an endpoint URL; throws EndpointRefused with a reason that names no address (the
 * reason is shown to callers and stored as the last error).
 */
export async function checkEndpoint(raw: string, policy: EndpointPolicy): Promise<URL> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new EndpointRefused('the endpoint is not a valid absolute URL');
  }
  if (url.username || url.password) throw new EndpointRefused('the endpoint URL may not carry credentials in its authority');
  const host = bareHost(url).toLowerCase();
  const literal = parseIp(host);
  const loopbackName = host === 'localhost' || host.endsWith('.localhost');
  const loopback = literal ? isLoopback(literal) : loopbackName;
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && policy.allowLoopback && loopback)) {
    throw new EndpointRefused('the endpoint must use https');
  }
  if (literal) {
    const refusal = addressRefusal(host, policy.allowLoopback);
    if (refusal) throw new EndpointRefused(refusal);
    return url;
  }
  if (loopbackName) {
    if (!policy.allowLoopback)
      throw new EndpointRefused('the endpoint resolves to a private, loopback, link-local or reserved address');
    return url;
  }
  let addresses: string[];
  try {
    addresses = await policy.resolver.resolve(host);
  } catch {
    throw new EndpointRefused('the endpoint host name could not be resolved');
  }
  if (addresses.length === 0) throw new EndpointRefused('the endpoint host name could not be resolved');
  for (const a of addresses) {
    const refusal = addressRefusal(a, policy.allowLoopback);
    if (refusal) throw new EndpointRefused(refusal);
  }
  return url;
}

/**
 * DNS over HTTPS, JSON API (RFC 8484's JSON flavour as Cloudflare and Google serve it): A and
 * AAAA. Fails closed: an error or a non-NOERROR answer refuses the endpoint.
 */
export function dohResolver(endpoint: string): HostResolver {
  return {
    async resolve(host) {
      const out: string[] = [];
      for (const type of ['A', 'AAAA']) {
        const url = `${endpoint}?name=${encodeURIComponent(host)}&type=${type}`;
        const res = await fetch(url, {
          headers: { accept: 'application/dns-json' },
          redirect: 'manual',
          signal: AbortSignal.timeout(5000),
        });
        if (!res.ok) throw new Error(`resolver answered ${res.status}`);
        const body = (await res.json()) as { Status?: number; Answer?: { type: number; data: string }[] };
        if (body.Status !== 0 && body.Status !== 3) throw new Error(`resolver status ${body.Status}`);
        for (const a of body.Answer ?? []) if (a.type === 1 || a.type === 28) out.push(a.data);
      }
      return out;
    },
  };
}

export const DEFAULT_DOH_URL = 'https://cloudflare-dns.com/dns-query';

export function endpointPolicyOf(env: { ALLOW_LOOPBACK_HTTP_ISSUERS?: string; EVENTS_DOH_URL?: string }): EndpointPolicy {
  return {
    allowLoopback: env.ALLOW_LOOPBACK_HTTP_ISSUERS === 'true',
    resolver: dohResolver(env.EVENTS_DOH_URL || DEFAULT_DOH_URL),
  };
}
