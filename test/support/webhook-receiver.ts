/**
 * Webhook receivers for the event-delivery tests: a Node HTTP server on 127.0.0.1 whose hooks
 * (`/hook/{id}`) answer as a test configures them over HTTP (the tests run inside workerd):
 *   PUT  /control/hooks/{id}      {validation, allowOrigin, status, retryAfter, hang, location}
 *   GET  /control/hooks/{id}/requests   what the hook received (method, headers, body), in order
 *   PUT  /control/dns/{name}      addresses the stub resolver (`/dns-query`, DNS-over-HTTPS JSON)
 *                                 answers for a name; unknown names answer NXDOMAIN
 * By default a hook passes both handshakes (echoes the Event Grid validationCode, allows any
 * CloudEvents origin) and answers notifications 200. Control calls need the bearer token.
 * It also serves the ACME dns-01 tests' stand-in for Cloudflare's DNS API (cloudflare-dns-fake.ts).
 */
import { timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { cloudflareDnsFake } from './cloudflare-dns-fake.js';

export interface HookConfig {
  /** Event Grid handshake: echo the code (default), answer a wrong one, or answer this status. */
  validation?: 'echo' | 'wrong' | number;
  /** CloudEvents handshake: allow the origin (default) or not. */
  allowOrigin?: boolean;
  /** Status for notifications (default 200). */
  status?: number;
  retryAfter?: string;
  /** Never answer notifications (the sender's timeout must fire). */
  hang?: boolean;
  /** Location for a 3xx status, on notifications and (with validation 3xx) the handshake. */
  location?: string;
}

interface Received {
  method: string;
  headers: Record<string, string>;
  body: string;
  at: number;
}

export interface ReceiverHost {
  baseUrl: string;
  close(): Promise<void>;
}

export async function startWebhookReceiver(opts: { controlToken: string }): Promise<ReceiverHost> {
  const hooks = new Map<string, { config: HookConfig; received: Received[] }>();
  const dns = new Map<string, string[]>();
  const hanging = new Set<http.ServerResponse>();
  const cloudflare = cloudflareDnsFake();
  const hook = (id: string) => {
    let h = hooks.get(id);
    if (!h) hooks.set(id, (h = { config: {}, received: [] }));
    return h;
  };
  const authorized = (req: http.IncomingMessage) => {
    const given = Buffer.from(req.headers.authorization ?? '');
    const wanted = Buffer.from(`Bearer ${opts.controlToken}`);
    return given.length === wanted.length && timingSafeEqual(given, wanted);
  };

  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const send = (status: number, payload?: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { ...(payload === undefined ? {} : { 'content-type': 'application/json' }), ...headers });
      res.end(payload === undefined ? undefined : JSON.stringify(payload));
    };

    if (url.pathname.startsWith('/control/')) {
      if (!authorized(req)) return send(401, { error: 'unauthorized' });
      const cf = cloudflare.control(req.method ?? '', url.pathname, body);
      if (cf) return send(cf.status, cf.payload);
      const m = /^\/control\/hooks\/([\w-]+)(\/requests)?$/.exec(url.pathname);
      if (m && req.method === 'PUT' && !m[2]) {
        hook(m[1]!).config = JSON.parse(body || '{}') as HookConfig;
        return send(204);
      }
      if (m && req.method === 'GET' && m[2]) return send(200, hook(m[1]!).received);
      const d = /^\/control\/dns\/([\w.-]+)$/.exec(url.pathname);
      if (d && req.method === 'PUT') {
        dns.set(d[1]!.toLowerCase(), JSON.parse(body) as string[]);
        return send(204);
      }
      return send(404, { error: 'no such control' });
    }

    if (url.pathname === '/dns-query') {
      const name = (url.searchParams.get('name') ?? '').toLowerCase();
      const type = url.searchParams.get('type');
      const addresses = dns.get(name);
      if (!addresses) return send(200, { Status: 3 }, { 'content-type': 'application/dns-json' });
      const want = type === 'AAAA' ? 28 : 1;
      const answer = addresses
        .filter((a) => (a.includes(':') ? 28 : 1) === want)
        .map((data) => ({ name, type: want, TTL: 60, data }));
      return send(200, { Status: 0, Answer: answer }, { 'content-type': 'application/dns-json' });
    }

    const cf = cloudflare.api(req.method ?? '', url.pathname, req.headers.authorization ?? '', body);
    if (cf) return send(cf.status, cf.payload);

    const m = /^\/hook\/([\w-]+)$/.exec(url.pathname);
    if (!m) return send(404);
    const h = hook(m[1]!);
    h.received.push({ method: req.method ?? '', headers: req.headers as Record<string, string>, body, at: Date.now() });
    const c = h.config;
    if (req.method === 'OPTIONS') {
      const origin = req.headers['webhook-request-origin'];
      return send(
        200,
        undefined,
        c.allowOrigin === false || typeof origin !== 'string' ? {} : { 'WebHook-Allowed-Origin': origin },
      );
    }
    if (req.headers['aeg-event-type'] === 'SubscriptionValidation') {
      if (typeof c.validation === 'number') return send(c.validation, undefined, c.location ? { location: c.location } : {});
      const code = (JSON.parse(body) as { data: { validationCode: string } }[])[0]!.data.validationCode;
      return send(200, { validationResponse: c.validation === 'wrong' ? `${code}-not` : code });
    }
    if (c.hang) {
      hanging.add(res);
      return;
    }
    const headers: Record<string, string> = {};
    if (c.retryAfter) headers['retry-after'] = c.retryAfter;
    if (c.location) headers.location = c.location;
    return send(c.status ?? 200, undefined, headers);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of hanging) res.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A loopback URL nothing listens on (a receiver that is down). */
export async function deadUrl(): Promise<string> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}/hook/down`;
}
