/**
 * Checks: role assignments past their expiresOn are removed, and live ones were used (or made)
 * within the review period; lastUsedAt is kept from the audit trail's authorization decisions.
 */
import { Thresholds as T } from '../controls';
import { collector, DAY, days, iso, vaultPath, type CheckOutcome } from '../findings';
import { principalLabel, roleOf, vaultNameOf, type ComplianceSnapshot } from '../snapshot';

export function staleAssignmentsCheck(snapshot: ComplianceSnapshot, now: number): CheckOutcome {
  const out = collector();
  for (const a of snapshot.assignments) {
    const v = vaultNameOf(snapshot, a.vaultId);
    out.count('assignment-expired');
    const role = roleOf(snapshot, a.roleDefinitionId, a.vaultId);
    const resource = {
      type: 'roleAssignment' as const,
      id: `${vaultPath(v)}/providers/Microsoft.Authorization/roleAssignments/${a.id}`,
      vault: v,
      name: a.id,
    };
    const what = `${role?.roleName ?? `role ${a.roleDefinitionId}`} for ${principalLabel(snapshot, a.principalId)} at ${a.scope} in ${v}`;
    if (a.expiresAt !== null && a.expiresAt <= now) {
      out.add(
        'assignment-expired',
        resource,
        `Expired assignment: ${what}`,
        `Expired ${iso(a.expiresAt)}; it grants nothing but is still listed.`,
        `Delete it (DELETE /management/vaults/${v}/providers/Microsoft.Authorization/roleAssignments/${a.id}).`,
      );
      continue;
    }
    out.count('assignment-unused');
    const last = a.lastUsedAt ?? a.createdAt;
    if (now - last > T.staleDays * DAY) {
      out.add(
        'assignment-unused',
        resource,
        `Unused for ${days(now - last)} days: ${what}`,
        a.lastUsedAt !== null
          ? `Last used ${iso(a.lastUsedAt)} (as the audit trail records decisions), more than ${T.staleDays} days ago.`
          : `Never used since it was created ${iso(a.createdAt)}, more than ${T.staleDays} days ago.`,
        `Delete it if the access is no longer needed (DELETE /management/vaults/${v}/providers/Microsoft.Authorization/roleAssignments/${a.id}); otherwise record the review.`,
      );
    }
  }
  return out;
}
