/**
 * Event subscriptions in D1 (table event_subscriptions). Signing secrets are sealed like secret
 * values: AES-GCM under the vault's current data key, the additional data binding them to the
 * vault, the kind `eventSubscription`, the subscription's name and id, so a row copied to another
 * vault or subscription does not open.
 */
import { and, eq, inArray, sql } from 'drizzle-orm';
import { fromUtf8, utf8 } from '../core/encoding';
import { IntegrityError } from '../core/errors';
import type { DataKeyManager } from '../crypto/data-keys';
import { objectAad, open, seal } from '../crypto/envelope';
import type { Database } from '../storage/db';
import { eventSubscriptions, vaults } from '../storage/schema';
import type { VaultEventType } from './event';
import type { DeliverySchema } from './shapes';
import type { Subscription, SubscriptionSettings } from './subscription';

type Row = typeof eventSubscriptions.$inferSelect;

const aad = (vaultId: string, name: string, id: string) => objectAad(vaultId, 'eventSubscription', name, id);

export function subscriptionOf(row: Row): Subscription {
  return {
    id: row.id,
    vaultId: row.vaultId,
    name: row.name,
    endpointUrl: row.endpointUrl,
    includedEventTypes: row.includedEventTypes ? (JSON.parse(row.includedEventTypes) as VaultEventType[]) : null,
    subjectBeginsWith: row.subjectBeginsWith,
    subjectEndsWith: row.subjectEndsWith,
    deliverySchema: row.deliverySchema as DeliverySchema,
    maxEventsPerBatch: row.maxEventsPerBatch,
    maxDeliveryAttempts: row.maxDeliveryAttempts,
    eventTimeToLiveMinutes: row.eventTimeToLiveMinutes,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
    previousSecretExpiresAt: row.previousSecretExpiresAt,
    delivered: row.delivered,
    failed: row.failed,
    deadLettered: row.deadLettered,
    lastError: row.lastError,
    lastErrorAt: row.lastErrorAt,
    lastSuccessAt: row.lastSuccessAt,
  };
}

const settingColumns = (s: SubscriptionSettings) => ({
  endpointUrl: s.endpointUrl,
  includedEventTypes: s.includedEventTypes ? JSON.stringify(s.includedEventTypes) : null,
  subjectBeginsWith: s.subjectBeginsWith,
  subjectEndsWith: s.subjectEndsWith,
  deliverySchema: s.deliverySchema,
  maxEventsPerBatch: s.maxEventsPerBatch,
  maxDeliveryAttempts: s.maxDeliveryAttempts,
  eventTimeToLiveMinutes: s.eventTimeToLiveMinutes,
});

const now = () => Math.floor(Date.now() / 1000);

export class SubscriptionStore {
  constructor(
    private readonly db: Database,
    private readonly keys: DataKeyManager,
  ) {}

  async list(vaultId: string): Promise<Subscription[]> {
    const rows = await this.db
      .select()
      .from(eventSubscriptions)
      .where(eq(eventSubscriptions.vaultId, vaultId))
      .orderBy(eventSubscriptions.name)
      .all();
    return rows.map(subscriptionOf);
  }

  async get(vaultId: string, name: string): Promise<Subscription | undefined> {
    const row = await this.row(vaultId, name);
    return row && subscriptionOf(row);
  }

  private row(vaultId: string, name: string): Promise<Row | undefined> {
    return this.db
      .select()
      .from(eventSubscriptions)
      .where(and(eq(eventSubscriptions.vaultId, vaultId), eq(eventSubscriptions.name, name)))
      .get();
  }

  /** A new subscription with its signing secret (sealed here; the caller shows it once). */
  async create(vaultId: string, name: string, settings: SubscriptionSettings, secret: string): Promise<Subscription> {
    const id = crypto.randomUUID();
    const dataKey = await this.keys.forWrite(vaultId);
    const t = now();
    const row = {
      id,
      vaultId,
      name,
      ...settingColumns(settings),
      secretCiphertext: await seal(dataKey.key, utf8(secret), aad(vaultId, name, id)),
      secretDataKeyId: dataKey.id,
      createdAt: t,
      updatedAt: t,
    };
    await this.db.batch([this.db.insert(eventSubscriptions).values(row), this.keys.countEncryption(dataKey.id)]);
    return (await this.get(vaultId, name))!;
  }

  /** Replaces the settings (endpoint, filters, schema, retry policy); the secrets stay. */
  async update(existing: Subscription, settings: SubscriptionSettings): Promise<Subscription> {
    await this.db
      .update(eventSubscriptions)
      .set({ ...settingColumns(settings), updatedAt: now() })
      .where(eq(eventSubscriptions.id, existing.id));
    return subscriptionOf((await this.row(existing.vaultId, existing.name))!);
  }

  async delete(vaultId: string, name: string): Promise<boolean> {
    const gone = await this.db
      .delete(eventSubscriptions)
      .where(and(eq(eventSubscriptions.vaultId, vaultId), eq(eventSubscriptions.name, name)))
      .returning({ id: eventSubscriptions.id });
    return gone.length > 0;
  }

  /**
   * A new signing secret; the current one becomes the previous one and keeps signing for
   * `overlapMinutes` (0: stops now). A previous secret still in its overlap is dropped.
   */
  async rotateSecret(s: Subscription, secret: string, overlapMinutes: number): Promise<Subscription> {
    const row = (await this.row(s.vaultId, s.name))!;
    const dataKey = await this.keys.forWrite(s.vaultId);
    const t = now();
    await this.db.batch([
      this.db
        .update(eventSubscriptions)
        .set({
          secretCiphertext: await seal(dataKey.key, utf8(secret), aad(s.vaultId, row.name, row.id)),
          secretDataKeyId: dataKey.id,
          previousSecretCiphertext: overlapMinutes > 0 ? row.secretCiphertext : null,
          previousSecretDataKeyId: overlapMinutes > 0 ? row.secretDataKeyId : null,
          previousSecretExpiresAt: overlapMinutes > 0 ? t + overlapMinutes * 60 : null,
          updatedAt: t,
        })
        .where(eq(eventSubscriptions.id, row.id)),
      this.keys.countEncryption(dataKey.id),
    ]);
    return subscriptionOf((await this.row(s.vaultId, s.name))!);
  }

  /** The subscription (by id) and the secrets that sign for it now: current first. */
  async forDelivery(id: string): Promise<{ subscription: Subscription; secrets: string[] } | undefined> {
    const row = await this.db.select().from(eventSubscriptions).where(eq(eventSubscriptions.id, id)).get();
    if (!row) return undefined;
    const secrets = [await this.openSecret(row, row.secretCiphertext, row.secretDataKeyId)];
    if (row.previousSecretCiphertext && row.previousSecretDataKeyId && (row.previousSecretExpiresAt ?? 0) > now()) {
      secrets.push(await this.openSecret(row, row.previousSecretCiphertext, row.previousSecretDataKeyId));
    }
    return { subscription: subscriptionOf(row), secrets };
  }

  /** The current secret of a subscription (to sign its handshake). */
  async currentSecret(s: Subscription): Promise<string> {
    const row = (await this.row(s.vaultId, s.name))!;
    return this.openSecret(row, row.secretCiphertext, row.secretDataKeyId);
  }

  private async openSecret(row: Row, ciphertext: string, dataKeyId: string): Promise<string> {
    const key = await this.keys.forRead(dataKeyId, row.vaultId);
    const plain = await open(key, ciphertext, aad(row.vaultId, row.name, row.id));
    if (!plain) throw new IntegrityError('event subscription signing secret');
    return fromUtf8(plain);
  }
}

/** Every subscription of the named vaults, for the fan-out. */
export async function subscriptionsOfVaults(
  db: Database,
  vaultNames: string[],
): Promise<(Subscription & { vaultName: string })[]> {
  if (vaultNames.length === 0) return [];
  const rows = await db
    .select({ s: eventSubscriptions, vaultName: vaults.name })
    .from(eventSubscriptions)
    .innerJoin(vaults, eq(vaults.id, eventSubscriptions.vaultId))
    .where(inArray(vaults.name, vaultNames))
    .all();
  return rows.map((r) => ({ ...subscriptionOf(r.s), vaultName: r.vaultName }));
}

export type DeliveryOutcome = { ok: true; events: number } | { ok: false; error: string; deadLettered?: number };

/** Counts one delivery attempt's outcome on the subscription. */
export async function recordOutcome(db: Database, id: string, outcome: DeliveryOutcome): Promise<void> {
  const t = now();
  const set = outcome.ok
    ? { delivered: sql`${eventSubscriptions.delivered} + ${outcome.events}`, lastSuccessAt: t }
    : {
        failed: sql`${eventSubscriptions.failed} + 1`,
        deadLettered: sql`${eventSubscriptions.deadLettered} + ${outcome.deadLettered ?? 0}`,
        lastError: outcome.error.slice(0, 300),
        lastErrorAt: t,
      };
  await db.update(eventSubscriptions).set(set).where(eq(eventSubscriptions.id, id));
}
