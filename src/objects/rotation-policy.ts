// Key rotation policy maths, apart from the rotation service (rotation.ts) and the store: parsing
// and checking a policy as Azure does, ISO 8601 durations, and when a key's Rotate and Notify
// actions are due. Pure functions (no database, no clock): KeyStore uses them to keep
// keys.rotation_due_at current, the cron and the compliance report to decide and to explain.
import * as z from 'zod';
import { sha256Hex } from '../core/encoding';
import { badParameter } from '../core/errors';

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
  return (d.years * YEAR_DAYS + d.months * MONTH_DAYS + d.weeks * 7 + d.days) * DAY + d.hours * 3600 + d.minutes * 60 + d.seconds;
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
        action: z
          .object({ type: z.string().max(16) })
          .nullable()
          .optional(),
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
        throw badParameter(
          `${field} must leave at least 7 days between a version's creation, its rotation and its expiry (expiryTime).`,
        );
      }
    } else if (expiry && length >= nominalSeconds(expiry)) {
      throw badParameter(`${field} must be shorter than expiryTime.`);
    }
    actions.push({
      trigger: present(afterCreate) ? { timeAfterCreate: afterCreate } : { timeBeforeExpiry: text },
      action: { type },
    });
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
  return dueTime(
    effectiveActions(policy).find((a) => a.action.type === 'Rotate'),
    latest,
  );
}

/** When the Notify action (KeyNearExpiry) is due for this (latest) version; null: never. */
export function notifyDueTime(policy: RotationPolicy | null, latest: ScheduledVersion): number | null {
  return dueTime(
    effectiveActions(policy).find((a) => a.action.type === 'Notify'),
    latest,
  );
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

/**
 * The lifetime actions the cron carries out for a key now: its Notify (once per version: not when
 * `notified`) and its Rotate, each when its due time has come.
 */
export function dueActions(
  policy: RotationPolicy | null,
  latest: ScheduledVersion,
  now: number,
  options: { notified: boolean },
): { notify: boolean; rotate: boolean } {
  const notifyAt = notifyDueTime(policy, latest);
  const rotateAt = rotationDueTime(policy, latest);
  return { notify: !options.notified && notifyAt !== null && notifyAt <= now, rotate: rotateAt !== null && rotateAt <= now };
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
