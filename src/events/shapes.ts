/**
 * What a webhook receives. Event Grid schema: always a JSON array of events, as Event Grid posts
 * them (the shape of src/events/event.ts). CloudEvents 1.0, JSON structured mode: one event as
 * `application/cloudevents+json` when a batch holds one event at most (maxEventsPerBatch 1), else
 * a JSON array as `application/cloudevents-batch+json`; `source` is the vault's resource id (Event
 * Grid's topic) and the attributes map as Event Grid maps them (type ← eventType, time ←
 * eventTime, data as is).
 */
import type { VaultEvent } from './event';

export const DELIVERY_SCHEMAS = ['EventGridSchema', 'CloudEventSchemaV1_0'] as const;
export type DeliverySchema = (typeof DELIVERY_SCHEMAS)[number];

export interface CloudEvent {
  specversion: '1.0';
  type: string;
  source: string;
  id: string;
  time: string;
  subject: string;
  datacontenttype: 'application/json';
  data: unknown;
}

export function toCloudEvent(e: VaultEvent): CloudEvent {
  return {
    specversion: '1.0',
    type: e.eventType,
    source: e.topic,
    id: e.id,
    time: e.eventTime,
    subject: e.subject,
    datacontenttype: 'application/json',
    data: e.data,
  };
}

/** The body and content type of one delivery of `events` in `schema`. */
export function renderDelivery(
  schema: DeliverySchema,
  events: VaultEvent[],
  batched: boolean,
): { body: string; contentType: string } {
  if (schema === 'EventGridSchema') return { body: JSON.stringify(events), contentType: 'application/json' };
  if (!batched && events.length === 1)
    return { body: JSON.stringify(toCloudEvent(events[0]!)), contentType: 'application/cloudevents+json; charset=utf-8' };
  return { body: JSON.stringify(events.map(toCloudEvent)), contentType: 'application/cloudevents-batch+json; charset=utf-8' };
}
