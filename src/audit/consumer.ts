/**
 * The audit queues' consumer (ekv-audit, and its dead-letter queue ekv-audit-dlq, drained the
 * same way). A batch is grouped by chain (one per vault, by its id: src/audit/chains.ts; one for
 * the deployment) and each group is
 * appended in one D1 transaction (src/audit/chain.ts); the messages of a group are acknowledged
 * one by one once it is stored, and only the messages of a group that failed are retried. So a
 * failure half-way through a batch neither loses nor repeats a record, and redelivery adds
 * nothing (records are unique by event id).
 *
 * Nothing disappears silently:
 *  - a body that is not an audit event is recorded, in the deployment's chain, as a
 *    `MalformedAuditEvent` carrying a digest of the body (never the body);
 *  - an event that keeps failing goes, after ekv-audit's retries, to the dead-letter queue; if it
 *    still cannot be appended to its chain there by its last attempts, an
 *    `UnappendableAuditEvent` record of it goes to the deployment's chain instead;
 *  - every failure is logged (names and counts only).
 */
import { and, eq, isNull, lt, or } from 'drizzle-orm';
import type { Env } from '../core/env';
import { auditDatabase, type Database } from '../storage/db';
import { describeError } from '../storage/errors';
import { roleAssignments, settings } from '../storage/schema';
import { appendToChain, type ChainEntry } from './chain';
import { chainsOfEvents } from './chains';
import { DEPLOYMENT_CHAIN, parseAuditEvent, type AuditEvent } from './event';
import { bodyDigest, buildRecord, malformedRecord, unappendableRecord } from './record';

export const AUDIT_QUEUE_NAME = 'ekv-audit';
export const AUDIT_DLQ_NAME = 'ekv-audit-dlq';
/**
 * `max_retries` of the ekv-audit-dlq consumer in wrangler.toml. From this attempt on, a dead
 * letter that still cannot join its chain is recorded in the deployment's chain instead.
 */
export const DLQ_MAX_RETRIES = 10;

interface Group {
  entries: ChainEntry[];
  messages: Message<unknown>[];
  events: AuditEvent[];
}

// The deployment's tenant (for resourceId) never changes once bootstrapped: read once per isolate.
let tenantCache: string | undefined;
async function deploymentTenant(db: Database): Promise<string | null> {
  if (tenantCache) return tenantCache;
  const row = await db.select().from(settings).where(eq(settings.key, 'tenant_id')).get();
  tenantCache = row?.value;
  return tenantCache ?? null;
}

export interface PersistOutcome {
  /** Messages acknowledged (their records are stored). */
  acked: number;
  /** Messages left for redelivery. */
  retried: number;
}

export async function persistAuditBatch(batch: MessageBatch<unknown>, env: Env): Promise<PersistOutcome> {
  const deadLetter = batch.queue === AUDIT_DLQ_NAME;
  const db = auditDatabase(env.DB);
  let acked = 0;
  let retried = 0;
  const ack = (m: Message<unknown>) => (m.ack(), acked++);
  const retry = (m: Message<unknown>) => (m.retry(), retried++);

  let tenant: string | null = null;
  const groups = new Map<string, Group>();
  try {
    const events = batch.messages.map((m) => parseAuditEvent(m.body));
    if (events.some((e) => !e || !e.tenantId)) tenant = await deploymentTenant(db);
    const parsed = events.filter((e): e is AuditEvent => e !== null);
    const chainOf = new Map((await chainsOfEvents(db, parsed)).map((chain, i) => [parsed[i]!, chain]));
    for (const [i, message] of batch.messages.entries()) {
      const event = events[i];
      let chain: string;
      let entry: ChainEntry;
      if (event) {
        chain = chainOf.get(event)!;
        entry = { eventId: event.id, time: event.time, build: (place) => buildRecord(event, place, tenant) };
      } else {
        chain = DEPLOYMENT_CHAIN;
        const digest = await bodyDigest(message.body);
        const malformed = {
          eventId: `malformed:${batch.queue}:${message.id}`,
          time: message.timestamp.getTime(),
          queue: batch.queue,
          messageId: message.id,
          body: null,
        };
        entry = {
          eventId: malformed.eventId,
          time: malformed.time,
          build: (place) => malformedRecord(malformed, digest, place, tenant),
        };
      }
      const group = groups.get(chain) ?? { entries: [], messages: [], events: [] };
      group.entries.push(entry);
      group.messages.push(message);
      if (event) group.events.push(event);
      groups.set(chain, group);
    }
  } catch (err) {
    console.error(`audit batch of ${batch.messages.length} not read; retrying: ${describeError(err)}`);
    for (const m of batch.messages) retry(m);
    return { acked, retried };
  }

  const chains = [...groups.entries()];
  const results = await Promise.allSettled(chains.map(([chain, group]) => appendToChain(db, chain, group.entries)));
  const stored: AuditEvent[] = [];
  const lastResort: { message: Message<unknown>; event: AuditEvent | null; chain: string }[] = [];
  for (const [i, result] of results.entries()) {
    const [chain, group] = chains[i]!;
    if (result.status === 'fulfilled') {
      for (const m of group.messages) ack(m);
      stored.push(...group.events);
      continue;
    }
    console.error(
      `audit chain ${chain.startsWith('vault:') ? 'of a vault' : chain}: ${group.messages.length} events not appended` +
        `${deadLetter ? ' (dead letters)' : ''}; retrying: ${describeError(result.reason)}`,
    );
    for (const m of group.messages) {
      if (deadLetter && m.attempts >= DLQ_MAX_RETRIES) lastResort.push({ message: m, event: parseAuditEvent(m.body), chain });
      else retry(m);
    }
  }

  if (lastResort.length > 0) {
    // Dead letters about to be dropped: record what they were in the deployment's chain.
    const entries: ChainEntry[] = lastResort.map(({ message, event, chain }) =>
      event
        ? {
            eventId: `unappendable:${event.id}`,
            time: event.time,
            build: (place) => unappendableRecord(event, chain, place, `unappendable:${event.id}`, tenant),
          }
        : {
            // Only malformed bodies go to the deployment chain itself; this one failed there.
            eventId: `malformed:${batch.queue}:${message.id}`,
            time: message.timestamp.getTime(),
            build: async (place) =>
              malformedRecord(
                {
                  eventId: `malformed:${batch.queue}:${message.id}`,
                  time: message.timestamp.getTime(),
                  queue: batch.queue,
                  messageId: message.id,
                  body: null,
                },
                await bodyDigest(message.body),
                place,
                tenant,
              ),
          },
    );
    try {
      await appendToChain(db, DEPLOYMENT_CHAIN, entries);
      for (const { message } of lastResort) ack(message);
    } catch (err) {
      console.error(`audit: ${lastResort.length} dead letters could not be recorded anywhere; retrying: ${describeError(err)}`);
      for (const { message } of lastResort) retry(message);
    }
  }

  await recordAssignmentUse(db, stored);
  return { acked, retried };
}

/**
 * role_assignments.last_used_at from the decisions just recorded (Unix seconds, only ever moved
 * forward). Best effort: the records are stored whatever happens here.
 */
async function recordAssignmentUse(db: Database, events: AuditEvent[]): Promise<void> {
  const latest = new Map<string, number>();
  for (const e of events) {
    if (e.authorization?.by !== 'rbac') continue;
    const t = Math.floor(e.time / 1000);
    latest.set(e.authorization.assignmentId, Math.max(latest.get(e.authorization.assignmentId) ?? 0, t));
  }
  if (latest.size === 0) return;
  const updates = [...latest].map(([id, t]) =>
    db
      .update(roleAssignments)
      .set({ lastUsedAt: t })
      .where(and(eq(roleAssignments.id, id), or(isNull(roleAssignments.lastUsedAt), lt(roleAssignments.lastUsedAt, t)))),
  );
  try {
    await db.batch(updates as unknown as [(typeof updates)[0]]);
  } catch (err) {
    console.error(`audit: role assignment last use not recorded: ${describeError(err)}`);
  }
}
