/**
 * Audit events of requests served at the same moment leave the isolate in one sendBatch
 * (src/audit/send.ts): each event exactly once, in batches Queues accept, retried when a send
 * fails, and always from a waitUntil of a request that added to the batch.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { AuditEvent } from '../../src/audit/event';
import { BATCH_WINDOW_MS, queueAuditEvent } from '../../src/audit/send';
import { auditEvent } from './audit-helpers';
import { APEX, call } from './helpers';

/** A queue that records every operation made on it; `failures` operations fail first. */
function recordingQueue(failures = 0) {
  const operations: AuditEvent[][] = [];
  let failed = 0;
  const fail = () => {
    if (failed < failures) {
      failed++;
      throw new Error('transient queue failure');
    }
  };
  const queue = {
    async send(body: AuditEvent) {
      fail();
      operations.push([structuredClone(body)]);
    },
    async sendBatch(messages: Iterable<{ body: AuditEvent }>) {
      fail();
      operations.push([...messages].map((m) => structuredClone(m.body)));
    },
  } as unknown as Queue<AuditEvent>;
  return { queue, operations, events: () => operations.flat() };
}

/** An execution context that keeps what it is asked to wait for. */
function context() {
  const waits: Promise<unknown>[] = [];
  return { ctx: { waitUntil: (p: Promise<unknown>) => void waits.push(p) }, waits, settled: () => Promise.all(waits) };
}

afterEach(() => vi.restoreAllMocks());

describe('audit events are batched per isolate', () => {
  it("sends concurrent requests' events together, each exactly once", async () => {
    const { queue, operations, events } = recordingQueue();
    const responses = await Promise.all(
      Array.from({ length: 12 }, () => call('GET', `${APEX}/healthz`, { env: { AUDIT_QUEUE: queue } })),
    );
    expect(responses.map((r) => r.status)).toEqual(Array(12).fill(200));
    const ids = events().map((e) => e.id);
    expect(ids).toHaveLength(12);
    expect(new Set(ids).size).toBe(12);
    // Fewer Queues operations than requests: the point of the batching.
    expect(operations.length).toBeLessThan(12);
  });

  it('asks only the request that opens a window to wait, and sends that window once', async () => {
    const { queue, operations } = recordingQueue();
    const first = context();
    const second = context();
    queueAuditEvent(first.ctx, queue, auditEvent());
    queueAuditEvent(second.ctx, queue, auditEvent());
    expect(first.waits).toHaveLength(1);
    expect(second.waits).toHaveLength(0);
    await first.settled();
    expect(operations.map((o) => o.length)).toEqual([2]);
    // After the window closed, the next event opens a new one in its own request.
    const third = context();
    queueAuditEvent(third.ctx, queue, auditEvent());
    expect(third.waits).toHaveLength(1);
    await third.settled();
    expect(operations.map((o) => o.length)).toEqual([2, 1]);
  });

  it('keeps every batch within what sendBatch accepts (100 messages, 256 KB)', async () => {
    const { queue, operations, events } = recordingQueue();
    const { ctx, settled } = context();
    const small = Array.from({ length: 250 }, () => auditEvent());
    // The largest events a request can make: its URI and object id at their cut sizes.
    const large = Array.from({ length: 100 }, () =>
      auditEvent({ requestUri: `https://x/${'u'.repeat(2040)}`, objectId: `/secrets/${'o'.repeat(1014)}` }),
    );
    // Non-ASCII is 2-3 bytes a character in UTF-8: the limit is in bytes, not characters.
    const wide = Array.from({ length: 100 }, () =>
      auditEvent({
        requestUri: `https://x/${'u'.repeat(2040)}`,
        objectId: `/secrets/${'€'.repeat(1014)}`,
        clientInfo: 'é'.repeat(256),
      }),
    );
    const all = [...small, ...large, ...wide];
    for (const e of all) queueAuditEvent(ctx, queue, e);
    await settled();
    expect(events().map((e) => e.id)).toEqual(all.map((e) => e.id));
    for (const batch of operations) {
      expect(batch.length).toBeLessThanOrEqual(100);
      const bytes = batch.reduce((n, e) => n + new TextEncoder().encode(JSON.stringify(e)).length, 0);
      expect(bytes).toBeLessThan(256 * 1024);
    }
    expect(operations.length).toBeGreaterThanOrEqual(4);
  });

  it('sends a full batch at once, from the request that filled it, without waiting for the window', async () => {
    const { queue, operations } = recordingQueue();
    const opener = context();
    const others = context();
    queueAuditEvent(opener.ctx, queue, auditEvent());
    for (let i = 0; i < 98; i++) queueAuditEvent(others.ctx, queue, auditEvent());
    expect(others.waits).toHaveLength(0);
    queueAuditEvent(others.ctx, queue, auditEvent());
    expect(others.waits).toHaveLength(1);
    await others.settled();
    expect(operations.map((o) => o.length)).toEqual([100]);
    // The window's own drain finds nothing left, and the next event opens a new window.
    await opener.settled();
    expect(operations.map((o) => o.length)).toEqual([100]);
  });

  it('tries a failed batch again instead of losing its events', async () => {
    const { queue, events } = recordingQueue(2);
    const { ctx, settled } = context();
    const sent = [auditEvent(), auditEvent(), auditEvent()];
    for (const e of sent) queueAuditEvent(ctx, queue, e);
    await settled();
    expect(events().map((e) => e.id)).toEqual(sent.map((e) => e.id));
  });

  it('gives up after its attempts and logs how many events, never their content', async () => {
    const lines: string[] = [];
    vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => void lines.push(args.join(' ')));
    const { queue, events } = recordingQueue(Infinity);
    const { ctx, settled } = context();
    const secretish = auditEvent({ objectId: '/secrets/do-not-log-me' });
    queueAuditEvent(ctx, queue, secretish);
    queueAuditEvent(ctx, queue, auditEvent());
    await settled();
    expect(events()).toHaveLength(0);
    expect(lines).toEqual([expect.stringContaining('audit event not queued (2)')]);
    expect(lines.join('\n')).not.toContain('do-not-log-me');
  });

  it('never mixes the events of two queue bindings', async () => {
    const a = recordingQueue();
    const b = recordingQueue();
    const { ctx, settled } = context();
    const ea = auditEvent();
    const eb = auditEvent();
    queueAuditEvent(ctx, a.queue, ea);
    queueAuditEvent(ctx, b.queue, eb);
    await settled();
    expect(a.events().map((e) => e.id)).toEqual([ea.id]);
    expect(b.events().map((e) => e.id)).toEqual([eb.id]);
  });

  it('holds an event no longer than the window before sending it', async () => {
    const { queue, operations } = recordingQueue();
    const { ctx, settled } = context();
    const started = Date.now();
    queueAuditEvent(ctx, queue, auditEvent());
    expect(operations).toHaveLength(0);
    await settled();
    expect(operations).toHaveLength(1);
    expect(Date.now() - started).toBeLessThan(BATCH_WINDOW_MS + 1_000);
  });
});
