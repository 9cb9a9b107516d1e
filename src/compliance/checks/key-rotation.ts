/**
 * Checks: every live key rotates automatically (a Rotate action, not only Notify), and no rotation
 * is overdue, by its policy or by the time the scheduler recorded. The rotation maths come from
 * the object layer (two functions, the only ones this file needs).
 */
import { rotationDueTime, storedPolicy } from '../../objects/rotation';
import { Thresholds as T } from '../controls';
import { collector, iso, vaultPath, type CheckOutcome } from '../findings';
import { vaultNameOf, type ComplianceSnapshot } from '../snapshot';

export function keyRotationCheck(snapshot: ComplianceSnapshot, now: number): CheckOutcome {
  const out = collector();
  for (const k of snapshot.keys) {
    const v = vaultNameOf(snapshot, k.vaultId);
    const resource = { type: 'key' as const, id: `${vaultPath(v)}/keys/${k.name}`, vault: v, name: k.name };
    const policy = storedPolicy(k.rotationPolicy);
    const rotate = policy?.lifetimeActions.find((a) => a.action.type === 'Rotate');
    out.count('key-rotation-policy-missing');
    out.count('key-rotation-overdue');
    if (!rotate) {
      out.add(
        'key-rotation-policy-missing',
        resource,
        `Key ${k.name} in ${v} is never rotated automatically`,
        policy
          ? 'Its rotation policy has no Rotate action (only Notify): nothing ends its cryptoperiod.'
          : 'It has no rotation policy (the default only notifies 30 days before expiry): nothing ends its cryptoperiod.',
        `PUT /keys/${k.name}/rotationpolicy with a Rotate action (timeAfterCreate, e.g. P90D, or timeBeforeExpiry) and an expiryTime.`,
      );
      continue;
    }
    const due = rotationDueTime(policy, { created: k.created, exp: k.exp });
    const late: string[] = [];
    if (due !== null && now > due + T.rotationGraceSeconds) {
      late.push(
        `its Rotate action (${rotate.trigger.timeAfterCreate ? `timeAfterCreate ${rotate.trigger.timeAfterCreate}` : `timeBeforeExpiry ${rotate.trigger.timeBeforeExpiry}`}) was due ${iso(due)}`,
      );
    }
    if (k.rotationDueAt !== null && now > k.rotationDueAt + T.rotationGraceSeconds) {
      late.push(`its scheduled rotation time ${iso(k.rotationDueAt)} has passed without the cron acting on it`);
    }
    if (late.length) {
      out.add(
        'key-rotation-overdue',
        resource,
        `Key ${k.name} in ${v} is overdue for rotation`,
        `The latest version (created ${iso(k.created)}) is still current: ${late.join('; ')}. The rotation job (every 5 minutes) should have made a new version.`,
        `POST /keys/${k.name}/rotate now, and check that the scheduled job runs (its logs, the keys_rotation_due index).`,
      );
    }
  }
  return out;
}
