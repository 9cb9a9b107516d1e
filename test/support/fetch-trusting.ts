/**
 * A web-standard `fetch` (what the issuer modules take) that trusts one extra CA, over node:https:
 * Node's own fetch cannot be given a CA per call, and verification is never turned off.
 */
import { request } from 'node:https';

export function fetchTrusting(caPem: string): (input: string, init?: RequestInit) => Promise<Response> {
  return (input, init = {}) =>
    new Promise<Response>((resolve, reject) => {
      const method = (init.method ?? 'GET').toUpperCase();
      const headers: Record<string, string> = {};
      new Headers(init.headers).forEach((value, name) => (headers[name] = value));
      if (typeof init.body === 'string') headers['content-length'] = String(Buffer.byteLength(init.body));
      const req = request(input, { method, headers, ca: caPem, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('error', reject);
        res.on('end', () => {
          const status = res.statusCode ?? 500;
          const out = new Headers();
          for (const [name, value] of Object.entries(res.headers)) {
            for (const v of Array.isArray(value) ? value : value === undefined ? [] : [value]) out.append(name, v);
          }
          const empty = method === 'HEAD' || status === 204 || status === 304;
          resolve(new Response(empty ? null : Buffer.concat(chunks), { status, headers: out }));
        });
      });
      req.on('error', reject);
      init.signal?.addEventListener('abort', () => req.destroy(new Error('aborted')));
      if (typeof init.body === 'string') req.write(init.body);
      req.end();
    });
}
