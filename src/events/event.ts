// What a vault event is (Event Grid shape), how one is made, and how it is queued.
import { type VaultRecord } from '../core/vault';

// Key Vault's Event Grid events, in the Event Grid event schema Azure Key Vault publishes
// (https://learn.microsoft.com/azure/event-grid/event-schema-key-vault). They name an object
// version and its nbf/exp, never key material.

export const EVENTS_QUEUE_NAME = 'ekv-events';

/** Every Key Vault event type Azure publishes; subscriptions filter on these. */
export const VAULT_EVENT_TYPES = [
  'Microsoft.KeyVault.SecretNewVersionCreated',
  'Microsoft.KeyVault.SecretNearExpiry',
  'Microsoft.KeyVault.SecretExpired',
  'Microsoft.KeyVault.KeyNewVersionCreated',
  'Microsoft.KeyVault.KeyNearExpiry',
  'Microsoft.KeyVault.KeyExpired',
  'Microsoft.KeyVault.CertificateNewVersionCreated',
  'Microsoft.KeyVault.CertificateNearExpiry',
  'Microsoft.KeyVault.CertificateExpired',
  'Microsoft.KeyVault.VaultAccessPolicyChanged',
] as const;

export type VaultEventType = (typeof VAULT_EVENT_TYPES)[number];

export interface VaultEventData {
  /** The versioned object id, e.g. https://{vault}.{zone}/keys/{name}/{version}. */
  Id: string;
  VaultName: string;
  ObjectType: 'Key' | 'Secret' | 'Certificate' | 'Vault';
  ObjectName: string;
  /** Null for VaultAccessPolicyChanged (no object version). */
  Version: string | null;
  /** Unix seconds, or null when the version has none. */
  NBF: number | null;
  EXP: number | null;
}

export interface VaultEvent {
  /** Derived from (vault, event type, object, version): sending an event twice stores it once. */
  id: string;
  /** The vault as a resource path (Event Grid's `topic`). */
  topic: string;
  /** The object's name. */
  subject: string;
  eventType: VaultEventType;
  /** ISO 8601, UTC. */
  eventTime: string;
  data: VaultEventData;
  dataVersion: '1';
  metadataVersion: '1';
}

/** What an event needs of an object version (every kind's record has all of it). */
export interface VersionFacts {
  name: string;
  version: string;
  nbf: number | null;
  exp: number | null;
  created: number;
}

/** The versioned object kinds, as Event Grid names them (data.ObjectType, and the event types). */
export type ObjectType = 'Secret' | 'Key' | 'Certificate';

/** What happened to a version: each kind has the three (e.g. SecretNearExpiry). */
export type VersionStage = 'NewVersionCreated' | 'NearExpiry' | 'Expired';

/** The object's collection in its id (https://{vault}.{zone}/secrets/{name}/{version}). */
const COLLECTIONS: Record<ObjectType, string> = { Secret: 'secrets', Key: 'keys', Certificate: 'certificates' };

import { eventId } from '../storage/event-ids';

export { eventId };

/** The vault host's origin as events name it when no request is at hand (the cron). */
export const vaultOriginFor = (zone: string, vault: VaultRecord) => `https://${vault.name}.${zone.toLowerCase()}`;

export const versionEventType = (objectType: ObjectType, stage: VersionStage) =>
  `Microsoft.KeyVault.${objectType}${stage}` as VaultEventType;

/** An event about one version of a secret, key or certificate, at `time` (Unix seconds). */
export async function versionEvent(
  objectType: ObjectType,
  stage: VersionStage,
  origin: string,
  vault: VaultRecord,
  r: VersionFacts,
  time: number,
): Promise<VaultEvent> {
  const type = versionEventType(objectType, stage);
  return {
    id: await eventId(vault.id, type, r.name, r.version),
    topic: `/tenants/${vault.tenantId}/providers/Microsoft.KeyVault/vaults/${vault.name}`,
    subject: r.name,
    eventType: type,
    eventTime: new Date(time * 1000).toISOString(),
    data: {
      Id: `${origin}/${COLLECTIONS[objectType]}/${r.name}/${r.version}`,
      VaultName: vault.name,
      ObjectType: objectType,
      ObjectName: r.name,
      Version: r.version,
      NBF: r.nbf,
      EXP: r.exp,
    },
    dataVersion: '1',
    metadataVersion: '1',
  };
}

/** {Key,Secret,Certificate}NewVersionCreated: a new object, or a new version (create, import, rotate, set, restore). */
export function newVersionEvent(
  origin: string,
  vault: VaultRecord,
  record: VersionFacts,
  objectType: ObjectType = 'Key',
): Promise<VaultEvent> {
  return versionEvent(objectType, 'NewVersionCreated', origin, vault, record, record.created);
}

/** Microsoft.KeyVault.KeyNearExpiry: the current version reached its policy's Notify time. */
export function nearExpiryEvent(origin: string, vault: VaultRecord, record: VersionFacts, at: number): Promise<VaultEvent> {
  return versionEvent('Key', 'NearExpiry', origin, vault, record, at);
}

/**
 * Microsoft.KeyVault.VaultAccessPolicyChanged: the vault's access policies were changed (set,
 * replaced, added to, removed). Each change is its own event, so its id is derived from a fresh
 * change id rather than from an object version.
 */
export async function accessPolicyChangedEvent(origin: string, vault: VaultRecord, time: number): Promise<VaultEvent> {
  const type = 'Microsoft.KeyVault.VaultAccessPolicyChanged';
  return {
    id: await eventId(vault.id, type, vault.name, crypto.randomUUID()),
    topic: `/tenants/${vault.tenantId}/providers/Microsoft.KeyVault/vaults/${vault.name}`,
    subject: vault.name,
    eventType: type,
    eventTime: new Date(time * 1000).toISOString(),
    data: { Id: origin, VaultName: vault.name, ObjectType: 'Vault', ObjectName: vault.name, Version: null, NBF: null, EXP: null },
    dataVersion: '1',
    metadataVersion: '1',
  };
}

/**
 * Queues events for the events consumer. Never throws: a send that still fails after a retry is
 * logged (event types and ids only) and reported as false, so callers may run it in waitUntil.
 */
export async function emitEvents(queue: Queue<VaultEvent>, events: VaultEvent[]): Promise<boolean> {
  if (events.length === 0) return true;
  for (let attempt = 1; ; attempt++) {
    try {
      await queue.sendBatch(events.map((body) => ({ body })));
      return true;
    } catch (err) {
      if (attempt < 2) continue;
      const what = events.map((e) => `${e.eventType.replace('Microsoft.KeyVault.', '')} ${e.id}`).join(', ');
      console.error(`events not queued (${err instanceof Error ? err.name : 'error'}): ${what}`);
      return false;
    }
  }
}
