import { Thresholds } from '../controls';
import { collector, DAY, days, iso, vaultPath, type CheckOutcome } from '../findings';
import type { ComplianceSnapshot } from '../snapshot';

const NOT_APPLICABLE =
  'Not applicable: no certificates. This deployment has no certificates API yet, so vaults hold none; application certificate credentials are covered by the credential checks.';

/**
 * Checks: no vault certificate expires within the threshold, and each renews itself. Generic over
 * whatever certificates the snapshot holds; while the deployment has no certificates API the
 * snapshot holds none (null) and both checks report themselves not applicable.
 */
export function certificatesCheck(snapshot: ComplianceSnapshot, now: number): CheckOutcome {
  const out = collector();
  if (snapshot.certificates === null) {
    out.notes.set('certificate-expiring', { status: 'not_applicable', note: NOT_APPLICABLE });
    out.notes.set('certificate-no-auto-renew', { status: 'not_applicable', note: NOT_APPLICABLE });
    return out;
  }
  for (const cert of snapshot.certificates) {
    const resource = { type: 'certificate' as const, id: `${vaultPath(cert.vault)}/certificates/${cert.name}`, vault: cert.vault, name: cert.name };
    out.count('certificate-expiring');
    out.count('certificate-no-auto-renew');
    if (cert.notAfter - now <= Thresholds.expiringWithinDays * DAY) {
      out.add(
        'certificate-expiring',
        resource,
        cert.notAfter <= now ? `Certificate ${cert.name} in ${cert.vault} has expired` : `Certificate ${cert.name} in ${cert.vault} expires in ${days(cert.notAfter - now)} days`,
        `Not valid after ${iso(cert.notAfter)}.`,
        'Renew it now and deploy the new version.',
      );
    }
    if (!cert.autoRenew) {
      out.add(
        'certificate-no-auto-renew',
        resource,
        `Certificate ${cert.name} in ${cert.vault} does not renew itself`,
        'Its policy has no AutoRenew lifetime action.',
        'Add an AutoRenew lifetime action (e.g. daysBeforeExpiry 30) to its policy.',
      );
    }
  }
  return out;
}
