// Inbound webhook receivers of a vault: who may ask the vault to renew which certificates. A
// receiver's Standard Webhooks signing secret is made here, shown once by the caller, and kept
// sealed like a secret value (AES-GCM under the vault's data key, bound to the vault, the name and
// the receiver's id, so a row copied elsewhere does not open). A rotation keeps the previous secret
// valid for an overlap, because the sender's configuration changes on its own schedule.
import { and, asc, eq } from 'drizzle-orm';
import * as z from 'zod';
import { now } from '../../../core/clock';
import { fromUtf8, randomBytes, toBase64, utf8 } from '../../../core/encoding';
import { badParameter, conflict, IntegrityError, notFound } from '../../../core/errors';
import { assertObjectName } from '../../../core/validation';
import type { VaultRecord } from '../../../core/vault';
import type { DataKeyManager, JoinedDataKey } from '../../../crypto/data-keys';
import { objectAad, open, seal } from '../../../crypto/envelope';
import type { Database } from '../../../storage/db';
import { violatedConstraint } from '../../../storage/errors';
import { certificateWebhooks, dataKeys } from '../../../storage/schema';

/** At most this many certificates per named scope, and per renewal request. */
export const MAX_CERTIFICATES = 25;
/** Default and longest overlap of a rotation, in minutes (a day; a week). */
export const DEFAULT_OVERLAP_MINUTES = 1440;
export const MAX_OVERLAP_MINUTES = 10080;

const OBJECT_NAME = /^[0-9a-zA-Z-]{1,127}$/;

export const receiverBody = z.object({
  scope: z
    .object({
      certificates: z
        .array(z.string().regex(OBJECT_NAME, 'certificate names are 1-127 letters, digits and hyphens'))
        .min(1)
        .max(MAX_CERTIFICATES)
        .optional(),
      issuer: z.string().regex(OBJECT_NAME, 'issuer names are 1-127 letters, digits and hyphens').optional(),
    })
    .strict()
    .refine((s) => (s.certificates === undefined) !== (s.issuer === undefined), {
      message: 'the scope names either certificates or one issuer',
    })
    .transform((s): ReceiverScope => (s.issuer !== undefined ? { issuer: s.issuer } : { certificates: s.certificates! })),
});
export const rotateBody = z.object({ overlapMinutes: z.number().int().min(0).max(MAX_OVERLAP_MINUTES).optional() }).strict();

/** Named certificates (case-insensitive, as certificate names are), or every certificate of one issuer. */
export type ReceiverScope = { certificates: string[] } | { issuer: string };

export interface Receiver {
  id: string;
  vaultId: string;
  name: string;
  scope: ReceiverScope;
  /** When the previous secret stops being accepted; null when there is none. */
  previousSecretExpires: number | null;
  created: number;
  updated: number;
}

type Row = typeof certificateWebhooks.$inferSelect;

export const receiverNotFound = (name: string) =>
  notFound('CertificateWebhookNotFound', `Certificate webhook receiver not found: ${name.slice(0, 127)}`);

/** A new Standard Webhooks secret: `whsec_` and 32 random bytes in base64 (the spec allows 24-64). */
export function newReceiverSecret(): string {
  return `whsec_${toBase64(randomBytes(32))}`;
}

function scopeColumns(scope: ReceiverScope) {
  if ('issuer' in scope) return { scopeCertificates: null, scopeIssuer: scope.issuer };
  // Names compare without case: one entry per certificate.
  const seen = new Set<string>();
  const names = scope.certificates.filter((n) => !seen.has(n.toLowerCase()) && seen.add(n.toLowerCase()));
  return { scopeCertificates: JSON.stringify(names), scopeIssuer: null };
}

function toReceiver(row: Row): Receiver {
  const t = now();
  return {
    id: row.id,
    vaultId: row.vaultId,
    name: row.name,
    scope:
      row.scopeIssuer != null ? { issuer: row.scopeIssuer } : { certificates: JSON.parse(row.scopeCertificates!) as string[] },
    previousSecretExpires:
      row.previousSecretCiphertext && row.previousSecretExpiresAt != null && row.previousSecretExpiresAt > t
        ? row.previousSecretExpiresAt
        : null,
    created: row.created,
    updated: row.updated,
  };
}

export class ReceiverStore {
  constructor(
    private readonly db: Database,
    private readonly keys: DataKeyManager,
    private readonly vault: VaultRecord,
  ) {}

  async list(): Promise<Receiver[]> {
    const rows = await this.db
      .select()
      .from(certificateWebhooks)
      .where(eq(certificateWebhooks.vaultId, this.vault.id))
      .orderBy(asc(certificateWebhooks.name))
      .all();
    return rows.map(toReceiver);
  }

  async get(name: string): Promise<Receiver> {
    return toReceiver(await this.row(name));
  }

  /**
   * Creates a receiver with a new secret (returned once, never readable again), or replaces an
   * existing receiver's scope, keeping its secrets.
   */
  async put(name: string, scope: ReceiverScope): Promise<{ receiver: Receiver; created: boolean; secret?: string }> {
    assertObjectName(name, 'webhook receiver');
    const existing = await this.find(name);
    const t = now();
    if (existing) {
      await this.db
        .update(certificateWebhooks)
        .set({ ...scopeColumns(scope), updated: t })
        .where(eq(certificateWebhooks.id, existing.id));
      return { receiver: await this.get(name), created: false };
    }
    const id = crypto.randomUUID();
    const secret = newReceiverSecret();
    const dataKey = await this.keys.forWrite(this.vault.id);
    try {
      await this.db.batch([
        this.db.insert(certificateWebhooks).values({
          id,
          vaultId: this.vault.id,
          name,
          ...scopeColumns(scope),
          secretCiphertext: await seal(dataKey.key, utf8(secret), this.aad(name, id)),
          secretDataKeyId: dataKey.id,
          created: t,
          updated: t,
        }),
        this.keys.countEncryption(dataKey.id),
      ]);
    } catch (err) {
      if (violatedConstraint(err) === 'unique') throw conflict(`Certificate webhook receiver ${name} was created concurrently.`);
      throw err;
    }
    return { receiver: await this.get(name), created: true, secret };
  }

  async delete(name: string): Promise<Receiver> {
    assertObjectName(name, 'webhook receiver');
    const [row] = await this.db
      .delete(certificateWebhooks)
      .where(and(eq(certificateWebhooks.vaultId, this.vault.id), eq(certificateWebhooks.name, name)))
      .returning();
    if (!row) throw receiverNotFound(name);
    return toReceiver(row);
  }

  /**
   * A new secret; the current one stays accepted for `overlapMinutes` (0: refused at once). A
   * previous secret still in its overlap is dropped: at most two are ever accepted.
   */
  async rotate(name: string, overlapMinutes = DEFAULT_OVERLAP_MINUTES): Promise<{ receiver: Receiver; secret: string }> {
    if (!Number.isInteger(overlapMinutes) || overlapMinutes < 0 || overlapMinutes > MAX_OVERLAP_MINUTES)
      throw badParameter(`overlapMinutes must be an integer from 0 to ${MAX_OVERLAP_MINUTES}.`);
    const row = await this.row(name);
    const secret = newReceiverSecret();
    const dataKey = await this.keys.forWrite(this.vault.id);
    const t = now();
    const keep = overlapMinutes > 0;
    await this.db.batch([
      this.db
        .update(certificateWebhooks)
        .set({
          secretCiphertext: await seal(dataKey.key, utf8(secret), this.aad(row.name, row.id)),
          secretDataKeyId: dataKey.id,
          previousSecretCiphertext: keep ? row.secretCiphertext : null,
          previousSecretDataKeyId: keep ? row.secretDataKeyId : null,
          previousSecretExpiresAt: keep ? t + overlapMinutes * 60 : null,
          updated: t,
        })
        .where(eq(certificateWebhooks.id, row.id)),
      this.keys.countEncryption(dataKey.id),
    ]);
    return { receiver: await this.get(row.name), secret };
  }

  /** The receiver and the secrets it accepts now (current first), for verifying one request. */
  async forVerification(name: string): Promise<{ receiver: Receiver; secrets: string[] }> {
    assertObjectName(name, 'webhook receiver');
    const found = await this.db
      .select({ row: certificateWebhooks, wrapped: dataKeys.wrapped, kekLabel: dataKeys.kekLabel })
      .from(certificateWebhooks)
      .leftJoin(dataKeys, eq(dataKeys.id, certificateWebhooks.secretDataKeyId))
      .where(and(eq(certificateWebhooks.vaultId, this.vault.id), eq(certificateWebhooks.name, name)))
      .get();
    if (!found) throw receiverNotFound(name);
    const { row, wrapped, kekLabel } = found;
    const receiver = toReceiver(row);
    const secrets = [await this.openSecret(row, row.secretCiphertext, row.secretDataKeyId, { wrapped, kekLabel })];
    if (receiver.previousSecretExpires !== null)
      secrets.push(await this.openSecret(row, row.previousSecretCiphertext!, row.previousSecretDataKeyId!));
    return { receiver, secrets };
  }

  private async openSecret(row: Row, ciphertext: string, dataKeyId: string, known?: JoinedDataKey): Promise<string> {
    const key = await this.keys.forRead(dataKeyId, this.vault.id, known);
    const plain = await open(key, ciphertext, this.aad(row.name, row.id));
    if (!plain) throw new IntegrityError('certificate webhook signing secret');
    return fromUtf8(plain);
  }

  private find(name: string): Promise<Row | undefined> {
    return this.db
      .select()
      .from(certificateWebhooks)
      .where(and(eq(certificateWebhooks.vaultId, this.vault.id), eq(certificateWebhooks.name, name)))
      .get();
  }

  private async row(name: string): Promise<Row> {
    assertObjectName(name, 'webhook receiver');
    const row = await this.find(name);
    if (!row) throw receiverNotFound(name);
    return row;
  }

  // Lower-cased: names compare without case, so a lookup in another case still opens the secret.
  private aad(name: string, id: string): string {
    return objectAad(this.vault.id, 'certificateWebhook', name.toLowerCase(), id);
  }
}
