// Key rotation as Azure Key Vault does it, as a service over KeyStore: a key's rotation policy
// read and replaced, rotation on demand, and the rotation the cron performs (rotateKey). The
// policy maths (durations, validation, due times) are in rotation-policy.ts. Independent of HTTP.
import { and, eq, isNull, sql } from 'drizzle-orm';
import { noticeClaimed, type Notice } from '../storage/expiry-notices';
import type { Database } from '../storage/db';
import { keys } from '../storage/schema';
import { conflict, notFound, VaultError } from '../core/errors';
import type { KeyRecord, KeySpec, KeyStore, NewMaterial, VersionFields } from './keys';
import { now as nowSeconds } from '../core/clock';
import { assertObjectName } from '../core/validation';
import {
  effectiveActions,
  nextRotationDue,
  parseRotationPolicy,
  rotatedExpiry,
  storedPolicy,
  type LifetimeAction,
  type RotationPolicyInput,
} from './rotation-policy';

// Existing importers (the cron, the compliance report, tests) name the maths through this module.
export * from './rotation-policy';

// ---------------------------------------------------------------------------------------------
// The API
// ---------------------------------------------------------------------------------------------

/** A key's rotation policy as the API answers it. */
export interface RotationPolicyView {
  /** The key's name as stored. */
  name: string;
  /** False for a key without a policy of its own: Azure then answers with the defaults only. */
  explicit: boolean;
  /** Effective actions (with the default Notify). */
  lifetimeActions: LifetimeAction[];
  expiryTime: string | null;
  created: number | null;
  updated: number | null;
}

type HeadRow = typeof keys.$inferSelect;

const keyNotFound = (name: string) => notFound('KeyNotFound', `A key with (name/id) ${name} was not found in this key vault.`);

function viewOf(head: HeadRow): RotationPolicyView {
  const policy = storedPolicy(head.rotationPolicy);
  return {
    name: head.name,
    explicit: policy !== null,
    lifetimeActions: effectiveActions(policy),
    expiryTime: policy?.expiryTime ?? null,
    created: policy ? head.rotationPolicyCreated : null,
    updated: policy ? head.rotationPolicyUpdated : null,
  };
}

/** Rotation policies and rotation on demand for the keys of one vault. */
export class KeyRotation {
  constructor(
    private readonly db: Database,
    private readonly store: KeyStore,
  ) {}

  async getPolicy(name: string): Promise<RotationPolicyView> {
    assertObjectName(name, 'key');
    const head = await this.store.head(name);
    if (!head || head.deletedAt != null) throw keyNotFound(name);
    return viewOf(head);
  }

  /** Replaces a live key's policy and reschedules it; refused input writes nothing. */
  async setPolicy(name: string, input: RotationPolicyInput, now = nowSeconds()): Promise<RotationPolicyView> {
    assertObjectName(name, 'key');
    const policy = parseRotationPolicy(input);
    const json = JSON.stringify(policy);
    for (let attempt = 0; attempt < 3; attempt++) {
      const latest = await this.store.get(name); // 404 for unknown or deleted keys
      const notified = await nearExpirySent(this.db, this.store.vault.id, latest);
      const [head] = await this.db
        .update(keys)
        .set({
          rotationPolicy: json,
          rotationPolicyCreated: sql`coalesce(${keys.rotationPolicyCreated}, ${now})`,
          rotationPolicyUpdated: now,
          rotationDueAt: nextRotationDue(policy, latest, { notified }),
        })
        // The schedule is computed from this latest version: write it only while it is the latest.
        .where(and(this.keyIs(name), isNull(keys.deletedAt), eq(keys.latestVersion, latest.version)))
        .returning();
      if (head) return viewOf(head);
    }
    throw conflict(`Key ${name} kept changing while its rotation policy was being set; retry.`);
  }

  /** POST /keys/{name}/rotate: a new version like the latest, whatever the policy's schedule. */
  async rotate(name: string, now = nowSeconds()): Promise<KeyRecord> {
    assertObjectName(name, 'key');
    for (let attempt = 0; ; attempt++) {
      const head = await this.store.head(name);
      if (!head || head.deletedAt != null) throw keyNotFound(name);
      const latest = await this.store.get(head.name, head.latestVersion);
      try {
        return await rotateKey(this.db, this.store, head, latest, now);
      } catch (err) {
        // Rotated, re-created or deleted meanwhile: start again from what is there now.
        if (err instanceof VaultError && err.status === 409 && attempt < 2) continue;
        throw err;
      }
    }
  }

  private keyIs(name: string) {
    return and(eq(keys.vaultId, this.store.vault.id), eq(keys.name, name));
  }
}

/** How a rotation makes its version: the cron names the version and wraps the generator. */
export interface RotationOptions {
  version?: string;
  material?: (spec: KeySpec, generate: (id: string) => Promise<NewMaterial>) => (id: string) => Promise<NewMaterial>;
}

/**
 * Makes the successor of `latest`: same type and size or curve, same key_ops and tags, exp from
 * the policy's expiryTime. The head moves only if it still points at `latest` (else 409, and
 * nothing is left behind); then the key's schedule restarts from the new version.
 */
export async function rotateKey(
  db: Database,
  store: KeyStore,
  head: HeadRow,
  latest: KeyRecord,
  now: number,
  options: RotationOptions = {},
): Promise<KeyRecord> {
  const policy = storedPolicy(head.rotationPolicy);
  const spec: KeySpec = {
    kind: latest.kind,
    ...(latest.size !== undefined ? { size: latest.size } : {}),
    ...(latest.crv !== undefined ? { crv: latest.crv } : {}),
  };
  const fields: VersionFields = { keyOps: latest.keyOps, tags: latest.tags, exp: rotatedExpiry(policy, now) };
  const generate = store.generator(spec);
  const record = await store.addVersion(
    latest.name,
    spec,
    options.material ? options.material(spec, generate) : generate,
    fields,
    {
      expectLatest: latest.version,
      ...(options.version ? { version: options.version } : {}),
    },
  );
  // KeyStore may have set it already; this is the same value. Guarded, so that a policy set in
  // between (which computed its own schedule from this version) is not overwritten.
  await db
    .update(keys)
    .set({ rotationDueAt: nextRotationDue(policy, record) })
    .where(
      and(
        eq(keys.vaultId, store.vault.id),
        eq(keys.name, record.name),
        eq(keys.latestVersion, record.version),
        head.rotationPolicy === null ? isNull(keys.rotationPolicy) : eq(keys.rotationPolicy, head.rotationPolicy),
      ),
    );
  return record;
}

/** Whether this version's KeyNearExpiry was claimed (sent, or being sent): its marker, one look. */
export function nearExpirySent(db: Database, vaultId: string, version: { name: string; version: string }): Promise<boolean> {
  return noticeClaimed(db, nearExpiryNotice(vaultId, version));
}

/** The once-only marker of a key version's KeyNearExpiry (src/storage/expiry-notices.ts). */
export const nearExpiryNotice = (vaultId: string, version: { name: string; version: string }): Notice => ({
  vaultId,
  kind: 'key',
  name: version.name,
  version: version.version,
  eventType: 'Microsoft.KeyVault.KeyNearExpiry',
});
