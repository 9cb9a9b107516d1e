/**
 * Bench-only Worker (not part of the product): the audit consumer's throughput. It is bundled by
 * bench/lib/workerd-audit.ts with esbuild, together with the product's own consumer
 * (src/audit/consumer.ts, unchanged), and runs in workerd through wrangler's Miniflare with a local
 * D1 that has the project's migrations applied.
 *
 *   POST /migrate                       body: JSON array of SQL statements, run one by one
 *   POST /run?batches=N&size=S&chains=K N batches of S well-formed audit events, events spread
 *                                       round-robin over K vault chains; each batch is handed to
 *                                       persistAuditBatch as the queue would hand it, one after
 *                                       the other → { events, acked, retried, elapsedMs, statements }
 *   GET  /count                         records stored and chain heads
 *
 * The events are built before the clock starts; the time is workerd's (it moves with I/O, and
 * every batch is D1 I/O). Statements are the consumer's own count (d1Stats.auditStatements).
 */
import { persistAuditBatch } from '../../src/audit/consumer';
import { AUDIT_EVENT_VERSION } from '../../src/audit/event';
import { d1Stats } from '../../src/storage/db';

const TENANT = '00000000-0000-4000-8000-00000000beef';
const APP = '00000000-0000-4000-8000-0000000000a1';
const ASSIGNMENT = '00000000-0000-4000-8000-0000000000b1';
let sequence = 0;

/** An event as the audit middleware sends for a warm secret GET by an RBAC-authorized application. */
function secretGetEvent(vault, time) {
  return {
    v: AUDIT_EVENT_VERSION,
    id: crypto.randomUUID(),
    time,
    vault,
    tenantId: TENANT,
    operation: 'SecretGet',
    apiVersion: '2026-04-01',
    caller: { tid: TENANT, oid: APP, appid: APP },
    objectId: '/secrets/bench-secret',
    requestUri: `https://${vault}.vault.localhost/secrets/bench-secret/?api-version=2026-04-01`,
    status: 200,
    errorCode: null,
    durationMs: 3,
    clientIp: '127.0.0.1',
    correlationId: crypto.randomUUID(),
    clientInfo: 'bench (audit consumer)',
    authorization: {
      by: 'rbac',
      assignmentId: ASSIGNMENT,
      roleDefinitionId: '/providers/Microsoft.Authorization/roleDefinitions/4633458b-17de-408a-b874-0445c86b69e6',
    },
    authorizationModel: 'rbac',
  };
}

function batchOf(size, chains, now) {
  const messages = [];
  for (let i = 0; i < size; i++) {
    const n = sequence++;
    const body = secretGetEvent(`bench-audit-${i % chains}`, now + i);
    messages.push({
      id: `bench-${n}`,
      timestamp: new Date(now),
      body,
      attempts: 1,
      ack() {},
      retry() {},
    });
  }
  return { queue: 'ekv-audit', messages, ackAll() {}, retryAll() {} };
}

const json = (value, status = 200) =>
  new Response(JSON.stringify(value), { status, headers: { 'content-type': 'application/json' } });

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === '/migrate' && request.method === 'POST') {
      const statements = await request.json();
      for (const sql of statements) await env.DB.prepare(sql).run();
      return json({ statements: statements.length });
    }
    if (url.pathname === '/count') {
      const records = await env.DB.prepare('SELECT count(*) AS n FROM audit_records').first('n');
      const heads = await env.DB.prepare('SELECT count(*) AS n, coalesce(sum(seq), 0) AS seqs FROM audit_chain_heads').first();
      return json({ records, heads: heads.n, headSeqs: heads.seqs });
    }
    if (url.pathname === '/run' && request.method === 'POST') {
      const batches = Number(url.searchParams.get('batches'));
      const size = Number(url.searchParams.get('size'));
      const chains = Number(url.searchParams.get('chains'));
      const now = Date.now();
      const work = [];
      for (let b = 0; b < batches; b++) work.push(batchOf(size, chains, now + b * size));
      const statementsBefore = d1Stats.auditStatements;
      let acked = 0;
      let retried = 0;
      const t0 = Date.now();
      for (const batch of work) {
        const outcome = await persistAuditBatch(batch, env);
        acked += outcome.acked;
        retried += outcome.retried;
      }
      const elapsedMs = Date.now() - t0;
      return json({ events: batches * size, acked, retried, elapsedMs, statements: d1Stats.auditStatements - statementsBefore });
    }
    return json({ error: 'not found' }, 404);
  },
};
