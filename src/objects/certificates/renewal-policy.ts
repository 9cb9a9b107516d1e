// When a certificate version's lifetime actions are due, from its policy: pure functions (no
// database, no clock), so the store (which keeps certificates.renewal_due_at current), the
// renewal job and the tests agree on one answer. Azure's triggers: `lifetime_percentage` of the
// validity (nbf → exp) has passed, or `days_before_expiry` remain.
import type { Policy } from './policy';

const DAY = 86_400;

/** The notice EmailContacts raises; its expiry_notices marker says the action is done. */
export const NEAR_EXPIRY_EVENT = 'Microsoft.KeyVault.CertificateNearExpiry';

/** What the maths needs of a version (its validity; certificates always carry nbf and exp). */
export interface Validity {
  nbf: number | null;
  exp: number | null;
  created: number;
}

type Action = Policy['lifetime_actions'][number];

/** When one action falls due for the version; null when the version never expires. */
export function actionDueAt(action: Action, v: Validity): number | null {
  if (v.exp == null) return null;
  const { lifetime_percentage: pct, days_before_expiry: days } = action.trigger;
  if (days != null) return v.exp - days * DAY;
  if (pct != null) {
    const start = v.nbf ?? v.created;
    return start + Math.floor(((v.exp - start) * pct) / 100);
  }
  return null;
}

export interface DueActions {
  renew: boolean;
  notify: boolean;
}

/**
 * The actions due at `now` for the latest version. `notified`: its near-expiry notice went out
 * already (EmailContacts is then done for this version); AutoRenew is done once a newer version
 * exists, which the caller knows by the version no longer being the latest.
 */
export function dueActions(policy: Policy, v: Validity, now: number, done: { notified: boolean }): DueActions {
  const due = (type: Action['action']['action_type']) =>
    policy.lifetime_actions.some((a) => {
      if (a.action.action_type !== type) return false;
      const at = actionDueAt(a, v);
      return at != null && at <= now;
    });
  return { renew: due('AutoRenew'), notify: !done.notified && due('EmailContacts') };
}

/** When the job should next look at the version: its earliest action not yet done; null for none. */
export function nextRenewalDue(policy: Policy, v: Validity, done: { notified: boolean }): number | null {
  let next: number | null = null;
  for (const a of policy.lifetime_actions) {
    if (a.action.action_type === 'EmailContacts' && done.notified) continue;
    const at = actionDueAt(a, v);
    if (at != null && (next === null || at < next)) next = at;
  }
  return next;
}
