/**
 * A stand-in for Cloudflare's DNS records API (`/client/v4/zones/{zone}/dns_records`), served by
 * the worker suite's webhook receiver (webhook-receiver.ts) under `/cloudflare/client/v4`, which
 * the suite's Worker has as ACME_DNS_API_BASE (vitest.config.ts): the real API cannot be reached
 * from the test machine, and the Worker in workerd can only reach servers the suite starts in
 * Node. It answers as Cloudflare does (the `{success, errors, result}` envelope) and records every
 * call, so the ACME dns-01 tests can assert the records written and removed. Each zone id has its
 * own records and calls (a test uses a zone of its own); a control call makes a zone refuse (403).
 *   PUT /control/cloudflare/zones/{zone}        {refuse: true}: every API call answers 403
 *   GET /control/cloudflare/zones/{zone}/calls    [{method, path, authorization, body}] in order
 *   GET /control/cloudflare/zones/{zone}/records  the records that exist now
 */
import { randomBytes } from 'node:crypto';

export interface CloudflareCall {
  method: string;
  path: string;
  authorization: string;
  body: unknown;
}

interface Zone {
  refuse: boolean;
  calls: CloudflareCall[];
  records: Map<string, unknown>;
}

type Answer = { status: number; payload?: unknown };

export function cloudflareDnsFake() {
  const zones = new Map<string, Zone>();
  const zone = (id: string) => {
    let z = zones.get(id);
    if (!z) zones.set(id, (z = { refuse: false, calls: [], records: new Map() }));
    return z;
  };
  const fail = (status: number, code: number, message: string): Answer => ({
    status,
    payload: { success: false, errors: [{ code, message }], messages: [], result: null },
  });
  return {
    /** A `/control/cloudflare/…` call, already authorized; undefined when the path is not one. */
    control(method: string, path: string, body: string): Answer | undefined {
      const m = /^\/control\/cloudflare\/zones\/([\w-]+)(\/calls|\/records)?$/.exec(path);
      if (!m) return undefined;
      if (method === 'PUT' && !m[2]) {
        zone(m[1]!).refuse = (JSON.parse(body || '{}') as { refuse?: boolean }).refuse === true;
        return { status: 204 };
      }
      if (method === 'GET' && m[2] === '/calls') return { status: 200, payload: zone(m[1]!).calls };
      if (method === 'GET' && m[2] === '/records') return { status: 200, payload: [...zone(m[1]!).records.values()] };
      return { status: 404, payload: { error: 'no such control' } };
    },

    /** An API call under `/cloudflare/client/v4`; undefined when the path is not one. */
    api(method: string, path: string, authorization: string, body: string): Answer | undefined {
      if (!path.startsWith('/cloudflare/')) return undefined;
      const apiPath = path.slice('/cloudflare'.length);
      const m = /^\/client\/v4\/zones\/([\w-]+)\/dns_records(?:\/([\w-]+))?$/.exec(apiPath);
      if (!m) return fail(404, 7003, 'Could not route to this path, perhaps your object identifier is invalid?');
      const z = zone(m[1]!);
      z.calls.push({ method, path: apiPath, authorization, body: body ? JSON.parse(body) : null });
      if (z.refuse) return fail(403, 10000, 'Authentication error');
      const recordId = m[2];
      if (method === 'POST' && !recordId) {
        const id = randomBytes(16).toString('hex');
        const record = { id, zone_id: m[1], ...(JSON.parse(body) as object) };
        z.records.set(id, record);
        return { status: 200, payload: { success: true, errors: [], messages: [], result: record } };
      }
      if (method === 'DELETE' && recordId) {
        if (!z.records.delete(recordId)) return fail(404, 81044, 'Record does not exist.');
        return { status: 200, payload: { success: true, errors: [], messages: [], result: { id: recordId } } };
      }
      return fail(405, 10405, 'Method not allowed for this route');
    },
  };
}
