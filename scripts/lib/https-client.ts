/**
 * A small HTTPS client for the local stack: it trusts exactly the development CA it is given and
 * resolves `localhost` and `*.localhost` to 127.0.0.1 itself (Node's resolver does not), while
 * keeping the real hostname for SNI, certificate checks and the Host header.
 */
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import dns from 'node:dns';

export function isLoopbackName(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/\.$/, '');
  return h === 'localhost' || h.endsWith('.localhost');
}

/** A `lookup` for net/tls/http options: *.localhost → 127.0.0.1, everything else via DNS. */
export const loopbackLookup: LookupFunction = (hostname, options, callback) => {
  if (!isLoopbackName(hostname)) return dns.lookup(hostname, options, callback);
  if (options.all) return (callback as (e: null, a: dns.LookupAddress[]) => void)(null, [{ address: '127.0.0.1', family: 4 }]);
  return callback(null, '127.0.0.1', 4);
};

export interface HttpsResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json<T = unknown>(): T;
}

export interface HttpsRequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  /** PEM of the CA to trust (replaces the default roots for this request). */
  ca: string;
  timeoutMs?: number;
}

export function httpsRequest(url: string | URL, opts: HttpsRequestOptions): Promise<HttpsResponse> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = https.request(
      target,
      {
        method: opts.method ?? 'GET',
        headers: {
          ...(opts.body !== undefined ? { 'content-length': String(Buffer.byteLength(opts.body)) } : {}),
          ...opts.headers,
        },
        ca: opts.ca,
        lookup: loopbackLookup,
        agent: false, // no pooled sockets: a stopped stack must not leave keep-alive connections
        timeout: opts.timeoutMs ?? 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text,
            json<T>() {
              return JSON.parse(text) as T;
            },
          });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () =>
      req.destroy(
        new Error(`timeout after ${opts.timeoutMs ?? 10_000} ms: ${opts.method ?? 'GET'} ${target.origin}${target.pathname}`),
      ),
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}
