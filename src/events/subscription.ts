/**
 * An event subscription as the API takes and shows it: Azure Event Grid's event subscription
 * resource shape (properties.destination / filter / eventDeliverySchema / retryPolicy), webhook
 * destinations only. The endpoint URL is write-only, as on Azure (it may carry a credential in its
 * query string): reads show `endpointBaseUrl`. Which events a subscription takes is `matches`.
 */
import * as z from 'zod';
import { badParameter } from '../core/errors';
import { VAULT_EVENT_TYPES, type VaultEvent, type VaultEventType } from './event';
import { DELIVERY_SCHEMAS, type DeliverySchema } from './shapes';

export const DEFAULT_MAX_DELIVERY_ATTEMPTS = 30;
export const DEFAULT_TTL_MINUTES = 1440;

export interface SubscriptionSettings {
  endpointUrl: string;
  includedEventTypes: VaultEventType[] | null;
  subjectBeginsWith: string | null;
  subjectEndsWith: string | null;
  deliverySchema: DeliverySchema;
  maxEventsPerBatch: number;
  maxDeliveryAttempts: number;
  eventTimeToLiveMinutes: number;
}

/** A stored subscription without its secrets. */
export interface Subscription extends SubscriptionSettings {
  id: string;
  vaultId: string;
  name: string;
  createdAt: number;
  updatedAt: number;
  previousSecretExpiresAt: number | null;
  delivered: number;
  failed: number;
  deadLettered: number;
  lastError: string | null;
  lastErrorAt: number | null;
  lastSuccessAt: number | null;
}

const NAME = /^[A-Za-z0-9-]{3,64}$/;

export function assertSubscriptionName(name: string): void {
  if (!NAME.test(name)) throw badParameter('An event subscription name is 3–64 letters, digits and hyphens.');
}

const body = z
  .object({
    properties: z
      .object({
        destination: z
          .object({
            endpointType: z.literal('WebHook'),
            properties: z
              .object({
                endpointUrl: z.string().min(1).max(2048),
                maxEventsPerBatch: z.number().int().min(1).max(5000).optional(),
              })
              .strict(),
          })
          .strict(),
        filter: z
          .object({
            includedEventTypes: z.array(z.string()).max(VAULT_EVENT_TYPES.length).nullable().optional(),
            subjectBeginsWith: z.string().max(1024).optional(),
            subjectEndsWith: z.string().max(1024).optional(),
          })
          .strict()
          .optional(),
        eventDeliverySchema: z.enum(DELIVERY_SCHEMAS).optional(),
        retryPolicy: z
          .object({
            maxDeliveryAttempts: z.number().int().min(1).max(30).optional(),
            eventTimeToLiveInMinutes: z.number().int().min(1).max(1440).optional(),
          })
          .strict()
          .optional(),
      })
      .strict(),
  })
  .strict();
export const subscriptionBody = body;

/** `KeyNearExpiry` or `Microsoft.KeyVault.KeyNearExpiry`, any case, to the full name. */
function eventTypeOf(text: string): VaultEventType {
  const wanted = text.toLowerCase().replace(/^microsoft\.keyvault\./, '');
  const found = VAULT_EVENT_TYPES.find((t) => t.toLowerCase() === `microsoft.keyvault.${wanted}`);
  if (!found) throw badParameter(`Unknown event type '${text.slice(0, 80)}'. Known: ${VAULT_EVENT_TYPES.join(', ')}.`);
  return found;
}

export function settingsOf(parsed: z.infer<typeof body>): SubscriptionSettings {
  const p = parsed.properties;
  const types = p.filter?.includedEventTypes;
  return {
    endpointUrl: p.destination.properties.endpointUrl,
    includedEventTypes: types && types.length > 0 ? [...new Set(types.map(eventTypeOf))] : null,
    subjectBeginsWith: p.filter?.subjectBeginsWith || null,
    subjectEndsWith: p.filter?.subjectEndsWith || null,
    deliverySchema: p.eventDeliverySchema ?? 'EventGridSchema',
    maxEventsPerBatch: p.destination.properties.maxEventsPerBatch ?? 1,
    maxDeliveryAttempts: p.retryPolicy?.maxDeliveryAttempts ?? DEFAULT_MAX_DELIVERY_ATTEMPTS,
    eventTimeToLiveMinutes: p.retryPolicy?.eventTimeToLiveInMinutes ?? DEFAULT_TTL_MINUTES,
  };
}

/** Whether a subscription takes an event. Subjects compare without case, as Event Grid's default. */
export function matches(s: SubscriptionSettings, e: VaultEvent): boolean {
  if (s.includedEventTypes && !s.includedEventTypes.includes(e.eventType)) return false;
  const subject = e.subject.toLowerCase();
  if (s.subjectBeginsWith && !subject.startsWith(s.subjectBeginsWith.toLowerCase())) return false;
  if (s.subjectEndsWith && !subject.endsWith(s.subjectEndsWith.toLowerCase())) return false;
  return true;
}

const iso = (t: number | null) => (t === null ? null : new Date(t * 1000).toISOString());

/** The endpoint without query string or fragment (Azure's endpointBaseUrl). */
export function endpointBaseUrl(url: string): string {
  const u = new URL(url);
  return `${u.origin}${u.pathname}`;
}

/** The subscription as the API shows it: never a secret, never the endpoint's query string. */
export function subscriptionShape(s: Subscription, vaultResourceId: string) {
  return {
    id: `${vaultResourceId}/providers/Microsoft.EventGrid/eventSubscriptions/${s.name}`,
    name: s.name,
    type: 'Microsoft.EventGrid/eventSubscriptions',
    properties: {
      provisioningState: 'Succeeded',
      topic: vaultResourceId,
      destination: {
        endpointType: 'WebHook',
        properties: { endpointBaseUrl: endpointBaseUrl(s.endpointUrl), maxEventsPerBatch: s.maxEventsPerBatch },
      },
      filter: {
        includedEventTypes: s.includedEventTypes,
        subjectBeginsWith: s.subjectBeginsWith ?? '',
        subjectEndsWith: s.subjectEndsWith ?? '',
      },
      eventDeliverySchema: s.deliverySchema,
      retryPolicy: { maxDeliveryAttempts: s.maxDeliveryAttempts, eventTimeToLiveInMinutes: s.eventTimeToLiveMinutes },
      signingSecretOverlapUntil: iso(
        s.previousSecretExpiresAt !== null && s.previousSecretExpiresAt > Date.now() / 1000 ? s.previousSecretExpiresAt : null,
      ),
      deliveryStatus: {
        delivered: s.delivered,
        failed: s.failed,
        deadLettered: s.deadLettered,
        lastError: s.lastError,
        lastErrorTime: iso(s.lastErrorAt),
        lastSuccessTime: iso(s.lastSuccessAt),
      },
      createdAt: iso(s.createdAt),
      updatedAt: iso(s.updatedAt),
    },
  };
}

/** The vault as a resource path, as its events' `topic` names it. */
export const vaultResourceId = (vault: { tenantId: string; name: string }) =>
  `/tenants/${vault.tenantId}/providers/Microsoft.KeyVault/vaults/${vault.name}`;
