/**
 * How the Worker's BridgeClient talks to the bridge when Node runs it (the edge bench, the unwrap
 * probe, the bridge's client tests): node:http over one keep-alive agent, passed to BridgeClient as
 * its transport. Node's global fetch is undici's WHATWG layer (Request and Response objects, web
 * streams for both bodies, an abort listener per call), which cost a coalesced batch of 8 unwraps
 * more client CPU than the bridge spent answering it; the Worker sends with workerd's native fetch,
 * which has no such cost, so measuring the client over undici measured undici. The answer is read
 * whole (a bridge answer is at most tens of kilobytes) and handed over as the members of a Response
 * that BridgeClient reads. Only plain-http URLs; anything else goes to the global fetch.
 */
import http from 'node:http';

/** The members of a fetch Response that BridgeClient reads (src/crypto/bridge-client.ts, BridgeAnswer). */
export interface NodeBridgeAnswer {
  readonly status: number;
  readonly ok: boolean;
  json(): Promise<unknown>;
  readonly body: { cancel(): Promise<void> } | null;
}

export type NodeBridgeTransport = (input: URL, init: RequestInit) => Promise<NodeBridgeAnswer | Response>;

const decoder = new TextDecoder();

/** A fetch-like over node:http with one keep-alive agent (the bridge keeps idle connections for 120 s). */
export function nodeBridgeTransport(): NodeBridgeTransport {
  const agent = new http.Agent({ keepAlive: true });
  return (input, init) => {
    if (input.protocol !== 'http:') return fetch(input, init);
    const body = typeof init.body === 'string' ? init.body : undefined;
    const headers: Record<string, string> = { ...(init.headers as Record<string, string> | undefined) };
    if (body !== undefined) headers['content-length'] = String(new TextEncoder().encode(body).length);
    const signal = init.signal ?? undefined;
    return new Promise<NodeBridgeAnswer>((resolve, reject) => {
      // An abort (the deadline) fails the call with the signal's reason, as fetch does.
      const fail = (err: unknown) => reject(signal?.aborted ? signal.reason : err);
      const req = http.request(input, { method: init.method ?? 'GET', agent, headers, ...(signal ? { signal } : {}) }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', fail);
        res.on('aborted', () => fail(new Error('connection closed before the answer was complete')));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const text = decoder.decode(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
          resolve({
            status,
            ok: status >= 200 && status < 300,
            json: async () => JSON.parse(text) as unknown,
            body: { cancel: async () => undefined },
          });
        });
      });
      req.on('error', fail);
      req.end(body);
    });
  };
}
