import { and, eq, isNull, sql } from 'drizzle-orm';
import { z } from 'zod';
import { sha256Hex } from '../core/encoding';
import { eventId } from '../storage/event-ids';
import type { Database } from '../storage/db';
import { events, keys } from '../storage/schema';
import { badParameter, conflict, notFound, VaultError } from '../core/errors';
import type { KeyRecord, KeySpec, KeyStore, NewMaterial, VersionFields } from './keys';
import { now as nowSeconds } from '../core/clock';
import { assertObjectName } from '../core/validation';

// Key rotation as Azure Key Vault does it: a per-key rotation policy (lifetime actions Rotate and
// Notify, and the expiry of the versions rotation makes), rotation on demand, and the schedule the
// cron follows (keys.rotation_due_at). Independent of HTTP.

// ---------------------------------------------------------------------------------------------
// ISO 8601 durations, as the policy carries them: P1Y2M10D, P3W, PT48H, P1YT12H …
// ---------------------------------------------------------------------------------------------

export interface Duration {
  years: number;
  months: number;
  weeks: number;
  days: number;
  hours: number;
  minutes: number;
  seconds: number;
}

const DURATION =
  /^P(?!$)(?:(\d{1,6})Y)?(?:(\d{1,6})M)?(?:(\d{1,6})W)?(?:(\d{1,6})D)?(?:T(?=\d)(?:(\d{1,6})H)?(?:(\d{1,6})M)?(?:(\d{1,6})S)?)?$/;
const DAY = 86_400;
/** Nominal lengths, to compare durations that mix calendar and clock units (Gregorian averages). */
const YEAR_DAYS = 365.2425;
const MONTH_DAYS = YEAR_DAYS / 12;
/** Durations beyond this are refused: they would only overflow dates. */
const MAX_DURATION_SECONDS = 100 * YEAR_DAYS * DAY;

/** Parses an ISO 8601 duration; undefined when the text is not one. */
export function parseDuration(text: string): Duration | undefined {
  const m = DURATION.exec(text);
  if (!m) return undefined;
  const n = (i: number) => (m[i] ? Number(m[i]) : 0);
  const d = { years: n(1), months: n(2), weeks: n(3), days: n(4), hours: n(5), minutes: n(6), seconds: n(7) };
  return nominalSeconds(d) > MAX_DURATION_SECONDS ? undefined : d;
}

export function nominalSeconds(d: Duration): number {
  return (
    (d.years * YEAR_DAYS + d.months * MONTH_DAYS + d.weeks * 7 + d.days) * DAY + d.hours * 3600 + d.minutes * 60 + d.seconds
  );
}

const daysInMonth = (year: number, month: number) => new Date(Date.UTC(year, month + 1, 0)).getUTCDate();

/**
 * `at` (Unix seconds) moved by the duration, forwards (sign 1) or backwards (-1), on the UTC
 * calendar: years and months move the date (the 31st becomes the last day of a shorter month),
 * weeks, days and clock units are added as elapsed time.
 */
export function shiftByDuration(at: number, d: Duration, sign: 1 | -1 = 1): number {
  const date = new Date(at * 1000);
  const monthIndex = date.getUTCFullYear() * 12 + date.getUTCMonth() + sign * (d.years * 12 + d.months);
  const year = Math.floor(monthIndex / 12);
  const month = monthIndex - year * 12;
  const day = Math.min(date.getUTCDate(), daysInMonth(year, month));
  const moved = Date.UTC(year, month, day, date.getUTCHours(), date.getUTCMinutes(), date.getUTCSeconds()) / 1000;
  return moved + sign * ((d.weeks * 7 + d.days) * DAY + d.hours * 3600 + d.minutes * 60 + d.seconds);
}

// ---------------------------------------------------------------------------------------------
// The policy
// ---------------------------------------------------------------------------------------------

export type LifetimeActionType = 'Rotate' | 'Notify';

/** One lifetime action, exactly as the API carries it (and as it is stored). */
export interface LifetimeAction {
  trigger: { timeAfterCreate?: string; timeBeforeExpiry?: string };
  action: { type: LifetimeActionType };
}

/** What keys.rotation_policy stores (JSON). */
export interface RotationPolicy {
  lifetimeActions: LifetimeAction[];
  expiryTime?: string;
}

/** Every key has this action unless its policy names a Notify of its own (Azure's default). */
export const DEFAULT_NOTIFY: LifetimeAction = { trigger: { timeBeforeExpiry: 'P30D' }, action: { type: 'Notify' } };

const MIN_EXPIRY = 28 * DAY;
const MIN_ROTATION_GAP = 7 * DAY;

const durationText = z.string().max(64).nullable().optional();

/** PUT /keys/{name}/rotationpolicy. Read-only fields the GET answers with (id, created, updated) are ignored. */
export const rotationPolicyBody = z.object({
  lifetimeActions: z
    .array(
      z.object({
        trigger: z.object({ timeAfterCreate: durationText, timeBeforeExpiry: durationText }).nullable().optional(),
        action: z.object({ type: z.string().max(16) }).nullable().optional(),
      }),
    )
    .max(16)
    .nullable()
    .optional(),
  attributes: z.object({ expiryTime: durationText }).nullable().optional(),
});
export type RotationPolicyInput = z.infer<typeof rotationPolicyBody>;

function duration(text: string, field: string): Duration {
  const d = parseDuration(text);
  if (!d) {
    throw badParameter(`${field} '${text.slice(0, 32)}' is not an ISO 8601 duration such as P90D, P3M, P1Y or PT48H.`);
  }
  if (nominalSeconds(d) <= 0) throw badParameter(`${field} must be longer than zero.`);
  return d;
}

const present = (text: string | null | undefined): text is string => typeof text === 'string' && text !== '';

/**
 * Checks a policy as Azure Key Vault does and returns what is stored. The request replaces the
 * key's policy; no (or empty) lifetimeActions restores the default (Notify 30 days before expiry).
 */
export function parseRotationPolicy(input: RotationPolicyInput): RotationPolicy {
  const expiryText = input.attributes?.expiryTime;
  const expiry = present(expiryText) ? duration(expiryText, 'expiryTime') : undefined;
  if (expiry && nominalSeconds(expiry) < MIN_EXPIRY) {
    throw badParameter('expiryTime must be at least 28 days (P28D).');
  }
  const actions: LifetimeAction[] = [];
  const seen = new Set<LifetimeActionType>();
  for (const [i, item] of (input.lifetimeActions ?? []).entries()) {
    const where = `lifetimeActions[${i}]`;
    const type = actionType(item.action?.type);
    if (!type) throw badParameter(`${where}.action.type must be Rotate or Notify.`);
    if (seen.has(type)) throw badParameter(`A rotation policy has at most one ${type} action.`);
    seen.add(type);
    const afterCreate = item.trigger?.timeAfterCreate;
    const beforeExpiry = item.trigger?.timeBeforeExpiry;
    if (present(afterCreate) === present(beforeExpiry)) {
      throw badParameter(`${where}.trigger must have exactly one of timeAfterCreate and timeBeforeExpiry.`);
    }
    if (type === 'Notify' && present(afterCreate)) {
      throw badParameter('A Notify action is triggered by timeBeforeExpiry only; timeAfterCreate applies to Rotate.');
    }
    const field = present(afterCreate) ? `${where}.trigger.timeAfterCreate` : `${where}.trigger.timeBeforeExpiry`;
    const text = present(afterCreate) ? afterCreate : (beforeExpiry as string);
    const length = nominalSeconds(duration(text, field));
    if (type === 'Rotate') {
      if (length < MIN_ROTATION_GAP) throw badParameter(`${field} must be at least 7 days (P7D).`);
      if (present(beforeExpiry) && !expiry) {
        throw badParameter('Rotation by timeBeforeExpiry needs attributes.expiryTime: the versions it makes must expire.');
      }
      if (expiry && length > nominalSeconds(expiry) - MIN_ROTATION_GAP) {
        throw badParameter(`${field} must leave at least 7 days between a version's creation, its rotation and its expiry (expiryTime).`);
      }
    } else if (expiry && length >= nominalSeconds(expiry)) {
      throw badParameter(`${field} must be shorter than expiryTime.`);
    }
    actions.push({ trigger: present(afterCreate) ? { timeAfterCreate: afterCreate } : { timeBeforeExpiry: text }, action: { type } });
  }
  return { lifetimeActions: actions, ...(expiry ? { expiryTime: expiryText as string } : {}) };
}

/** Action types compare without case, as Azure's do. */
function actionType(text: string | undefined): LifetimeActionType | undefined {
  const t = text?.toLowerCase();
  return t === 'rotate' ? 'Rotate' : t === 'notify' ? 'Notify' : undefined;
}

/** A stored policy (keys.rotation_policy); null when none is set. */
export function storedPolicy(json: string | null | undefined): RotationPolicy | null {
  if (json == null) return null;
  try {
    const p = JSON.parse(json) as RotationPolicy;
    return Array.isArray(p?.lifetimeActions) ? p : null;
  } catch {
    return null;
  }
}

/** The actions that apply to a key: its policy's, and the default Notify unless it has its own. */
export function effectiveActions(policy: RotationPolicy | null): LifetimeAction[] {
  const actions = policy?.lifetimeActions ?? [];
  return actions.some((a) => a.action.type === 'Notify') ? actions : [...actions, DEFAULT_NOTIFY];
}

/** What a version needs for scheduling. */
export interface ScheduledVersion {
  created: number;
  exp: number | null;
}

/** When the Rotate action of the policy is due for this (latest) version; null: never. */
export function rotationDueTime(policy: RotationPolicy | null, latest: ScheduledVersion): number | null {
  return dueTime(effectiveActions(policy).find((a) => a.action.type === 'Rotate'), latest);
}

/** When the Notify action (KeyNearExpiry) is due for this (latest) version; null: never. */
export function notifyDueTime(policy: RotationPolicy | null, latest: ScheduledVersion): number | null {
  return dueTime(effectiveActions(policy).find((a) => a.action.type === 'Notify'), latest);
}

function dueTime(action: LifetimeAction | undefined, latest: ScheduledVersion): number | null {
  if (!action) return null;
  const { timeAfterCreate, timeBeforeExpiry } = action.trigger;
  const after = timeAfterCreate ? parseDuration(timeAfterCreate) : undefined;
  if (after) return shiftByDuration(latest.created, after, 1);
  const before = timeBeforeExpiry ? parseDuration(timeBeforeExpiry) : undefined;
  if (before && latest.exp != null) return shiftByDuration(latest.exp, before, -1);
  return null;
}

/**
 * The value of keys.rotation_due_at for a key whose latest version is `latest`: the earliest of
 * its Rotate time and its Notify time (unless that version's KeyNearExpiry was already sent);
 * null when nothing is scheduled. `policy` is the keys.rotation_policy column (or its parse).
 *
 * KeyStore keeps the column current with it: whenever a new version becomes the latest (create,
 * import, restore) and whenever the latest version's exp changes.
 */
export function nextRotationDue(
  policy: string | RotationPolicy | null | undefined,
  latest: ScheduledVersion,
  options: { notified?: boolean } = {},
): number | null {
  const p = typeof policy === 'string' ? storedPolicy(policy) : (policy ?? null);
  const times = [rotationDueTime(p, latest), options.notified ? null : notifyDueTime(p, latest)];
  const due = times.filter((t): t is number => t !== null);
  return due.length ? Math.min(...due) : null;
}

/** The exp of a version rotation makes now: now + expiryTime, or none without one. */
export function rotatedExpiry(policy: RotationPolicy | null, now: number): number | null {
  const d = policy?.expiryTime ? parseDuration(policy.expiryTime) : undefined;
  return d ? shiftByDuration(now, d, 1) : null;
}

/**
 * The version id the cron gives the successor of `previous`. Derived, so that a run that died
 * after generating a token object under it and the run that finishes its work agree on the id:
 * the later run finds (and destroys) the orphan instead of leaving it behind.
 */
export async function rotationVersionId(vaultId: string, name: string, previous: string): Promise<string> {
  return (await sha256Hex(`rotate\n${vaultId}\n${name.toLowerCase()}\n${previous.toLowerCase()}`)).slice(0, 32);
}

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
  const record = await store.addVersion(latest.name, spec, options.material ? options.material(spec, generate) : generate, fields, {
    expectLatest: latest.version,
    ...(options.version ? { version: options.version } : {}),
  });
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

/** Whether this version's KeyNearExpiry is already stored (its id is derived, so one look). */
export async function nearExpirySent(db: Database, vaultId: string, version: { name: string; version: string }): Promise<boolean> {
  const id = await eventId(vaultId, 'Microsoft.KeyVault.KeyNearExpiry', version.name, version.version);
  return (await db.select({ id: events.id }).from(events).where(eq(events.id, id)).get()) !== undefined;
}
