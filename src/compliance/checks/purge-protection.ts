/** Check: purge protection is on, so deleted keys and secrets outlive their retention window. */
import { collector, vaultPath, type CheckOutcome } from '../findings';
import type { ComplianceSnapshot } from '../snapshot';

export function purgeProtectionCheck(snapshot: ComplianceSnapshot): CheckOutcome {
  const out = collector();
  for (const v of snapshot.vaults) {
    out.count('vault-purge-protection-disabled');
    if (v.purgeProtection) continue;
    out.add(
      'vault-purge-protection-disabled',
      { type: 'vault', id: vaultPath(v.name), vault: v.name, name: v.name },
      `Vault ${v.name} has purge protection disabled`,
      `Anyone with purge rights can destroy deleted keys and secrets of ${v.name} at once, before the ${v.softDeleteRetentionDays}-day retention ends; data encrypted under a purged key is lost for good.`,
      `PATCH /management/vaults/${v.name} with {"enablePurgeProtection": true} (it cannot be turned off again).`,
    );
  }
  return out;
}
