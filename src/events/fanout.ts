/**
 * From stored events to deliveries: one queue message per subscription that takes them (at most
 * maxEventsPerBatch events a message), so each endpoint is called, retried and dead-lettered on
 * its own and a slow one holds up no other. At least once: a fan-out that fails is retried with
 * its events batch, and receivers deduplicate by `webhook-id`.
 */
import type { Database } from '../storage/db';
import type { VaultEvent } from './event';
import { subscriptionsOfVaults } from './subscription-store';
import { matches } from './subscription';

export const DELIVERY_QUEUE_NAME = 'ekv-event-delivery';

export interface DeliveryMessage {
  subscriptionId: string;
  vaultId: string;
  events: VaultEvent[];
  /** Unix ms when this delivery was first queued: the time to live runs from here. */
  enqueuedAt: number;
}

export async function fanOut(db: Database, queue: Queue<unknown>, events: VaultEvent[], now = Date.now()): Promise<number> {
  const subscriptions = await subscriptionsOfVaults(db, [...new Set(events.map((e) => e.data.VaultName))]);
  const messages: DeliveryMessage[] = [];
  for (const s of subscriptions) {
    const taken = events.filter((e) => e.data.VaultName.toLowerCase() === s.vaultName.toLowerCase() && matches(s, e));
    for (let i = 0; i < taken.length; i += s.maxEventsPerBatch) {
      messages.push({
        subscriptionId: s.id,
        vaultId: s.vaultId,
        events: taken.slice(i, i + s.maxEventsPerBatch),
        enqueuedAt: now,
      });
    }
  }
  // sendBatch takes at most 100 messages.
  for (let i = 0; i < messages.length; i += 100) await queue.sendBatch(messages.slice(i, i + 100).map((body) => ({ body })));
  return messages.length;
}

export function isDeliveryMessage(body: unknown): body is DeliveryMessage {
  const m = body as DeliveryMessage;
  return (
    typeof m?.subscriptionId === 'string' &&
    typeof m.vaultId === 'string' &&
    Array.isArray(m.events) &&
    m.events.length > 0 &&
    typeof m.enqueuedAt === 'number'
  );
}
