/** Check: soft-delete retention is long enough to notice and undo a deletion. */
import { Thresholds as T } from '../controls';
import { collector, vaultPath, type CheckOutcome } from '../findings';
import type { ComplianceSnapshot } from '../snapshot';

export function retentionCheck(snapshot: ComplianceSnapshot): CheckOutcome {
  const out = collector();
  for (const v of snapshot.vaults) {
    out.count('vault-retention-short');
    if (v.softDeleteRetentionDays >= T.minRetentionDays) continue;
    out.add(
      'vault-retention-short',
      { type: 'vault', id: vaultPath(v.name), vault: v.name, name: v.name },
      `Vault ${v.name} keeps deleted objects for ${v.softDeleteRetentionDays} days`,
      `Soft-delete retention is ${v.softDeleteRetentionDays} days, below ${T.minRetentionDays} days, Azure's default and the longest it allows: a deletion (accidental or malicious) can be noticed and recovered only within that window.`,
      `Retention is fixed at creation here: create a vault with softDeleteRetentionInDays ${T.minRetentionDays}, move the keys and secrets (backup/restore) and retire this one.`,
    );
  }
  return out;
}
