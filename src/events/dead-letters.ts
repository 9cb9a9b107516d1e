/**
 * Events whose delivery gave up, in R2 (EVENT_DEADLETTER): one JSON object an event, keyed
 * `{vault id}/{subscription id}/{event id}.json`, holding the event, why it gave up and after how
 * many attempts. The reason and attempts ride in the object's custom metadata too, so a listing
 * reads no bodies. Redelivery queues the event again as a fresh delivery and removes the object.
 */
import type { VaultEvent } from './event';

export interface DeadLetter {
  event: VaultEvent;
  subscriptionId: string;
  subscriptionName: string;
  reason: string;
  lastError: string | null;
  attempts: number;
  deadLetteredAt: string;
}

const prefixOf = (vaultId: string, subscriptionId: string) => `${vaultId}/${subscriptionId}/`;
export const deadLetterKey = (vaultId: string, subscriptionId: string, eventId: string) =>
  `${prefixOf(vaultId, subscriptionId)}${eventId}.json`;

export async function putDeadLetter(bucket: R2Bucket, vaultId: string, letter: DeadLetter): Promise<void> {
  await bucket.put(deadLetterKey(vaultId, letter.subscriptionId, letter.event.id), JSON.stringify(letter), {
    httpMetadata: { contentType: 'application/json' },
    customMetadata: {
      reason: letter.reason,
      attempts: String(letter.attempts),
      eventType: letter.event.eventType,
      subject: letter.event.subject,
      deadLetteredAt: letter.deadLetteredAt,
    },
  });
}

export interface DeadLetterSummary {
  eventId: string;
  eventType: string;
  subject: string;
  reason: string;
  attempts: number;
  deadLetteredAt: string;
}

/** One page of a subscription's dead letters (R2's own cursor continues it). */
export async function listDeadLetters(
  bucket: R2Bucket,
  vaultId: string,
  subscriptionId: string,
  limit: number,
  cursor?: string,
): Promise<{ items: DeadLetterSummary[]; cursor: string | null }> {
  const prefix = prefixOf(vaultId, subscriptionId);
  const page = await bucket.list({ prefix, limit, cursor, include: ['customMetadata'] });
  const items = page.objects.map((o) => ({
    eventId: o.key.slice(prefix.length).replace(/\.json$/, ''),
    eventType: o.customMetadata?.eventType ?? '',
    subject: o.customMetadata?.subject ?? '',
    reason: o.customMetadata?.reason ?? '',
    attempts: Number(o.customMetadata?.attempts ?? 0),
    deadLetteredAt: o.customMetadata?.deadLetteredAt ?? o.uploaded.toISOString(),
  }));
  return { items, cursor: page.truncated ? page.cursor : null };
}

export async function getDeadLetter(
  bucket: R2Bucket,
  vaultId: string,
  subscriptionId: string,
  eventId: string,
): Promise<DeadLetter | null> {
  const object = await bucket.get(deadLetterKey(vaultId, subscriptionId, eventId));
  return object ? ((await object.json()) as DeadLetter) : null;
}

export async function deleteDeadLetter(
  bucket: R2Bucket,
  vaultId: string,
  subscriptionId: string,
  eventId: string,
): Promise<void> {
  await bucket.delete(deadLetterKey(vaultId, subscriptionId, eventId));
}
