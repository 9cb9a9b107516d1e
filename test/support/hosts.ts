/**
 * Maps `localhost` and `*.localhost` to 127.0.0.1 inside this process.
 *
 * Vaults are told apart by hostname (`{vault}.vault.localhost`), and Node's resolver, unlike
 * curl's or Chromium's, does not send `*.localhost` to loopback. Rather than edit /etc/hosts on
 * the test machine, the e2e tests patch `dns.lookup` (which node:net, hence node:https and the
 * Azure SDK's HTTP client, calls for every connection) for those names only. Every other name
 * resolves as before; the real hostname still drives SNI, certificate checks and the Host header.
 */
import dns from 'node:dns';
import { isLoopbackName } from '../../scripts/lib/https-client.js';

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void;

const PATCHED = Symbol.for('edge-key-vault.loopback-lookup');

function answer(options: dns.LookupOptions): { all: dns.LookupAddress[]; one: [string, number] } | null {
  if (options.family === 6 || options.family === 'IPv6') return null; // wrangler dev listens on 127.0.0.1 only
  return { all: [{ address: '127.0.0.1', family: 4 }], one: ['127.0.0.1', 4] };
}

function notFound(hostname: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname });
}

export function installLoopbackResolver(): void {
  const target = dns as typeof dns & { [PATCHED]?: true };
  if (target[PATCHED]) return;
  target[PATCHED] = true;

  const originalLookup = dns.lookup;
  const lookup = function (hostname: string, options: unknown, callback?: unknown) {
    const cb = (typeof options === 'function' ? options : callback) as LookupCallback;
    const opts: dns.LookupOptions =
      typeof options === 'number'
        ? { family: options }
        : typeof options === 'object' && options
          ? (options as dns.LookupOptions)
          : {};
    if (!isLoopbackName(hostname))
      return (originalLookup as (...args: unknown[]) => unknown).call(dns, hostname, options, callback);
    const result = answer(opts);
    process.nextTick(() => {
      if (!result) cb(notFound(hostname), '');
      else if (opts.all) cb(null, result.all);
      else cb(null, ...result.one);
    });
  };
  dns.lookup = lookup as typeof dns.lookup;

  const originalPromise = dns.promises.lookup;
  dns.promises.lookup = (async (hostname: string, options?: number | dns.LookupOptions) => {
    const opts: dns.LookupOptions = typeof options === 'number' ? { family: options } : (options ?? {});
    if (!isLoopbackName(hostname))
      return (originalPromise as (...args: unknown[]) => unknown).call(dns.promises, hostname, options);
    const result = answer(opts);
    if (!result) throw notFound(hostname);
    return opts.all ? result.all : { address: result.one[0], family: result.one[1] };
  }) as typeof dns.promises.lookup;
}
