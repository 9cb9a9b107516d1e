/** Compliance checks of the vault certificates in use: expiry, auto-renewal, key strength, self-signed. */
import { Thresholds } from '../controls';
import { collector, DAY, days, iso, vaultPath, type CheckOutcome } from '../findings';
import type { ComplianceSnapshot } from '../snapshot';

const NOT_APPLICABLE =
  'Not applicable: no certificates in scope (the vault certificates API holds none); application certificate credentials are covered by the credential checks.';
const CHECK_IDS = [
  'certificate-expiring',
  'certificate-no-auto-renew',
  'certificate-key-weak',
  'certificate-self-signed',
] as const;

/**
 * Checks of the vault certificates in use (latest versions of live ones): none expires within the
 * threshold, each renews itself, none has a weak RSA key, none is self-signed. With no
 * certificates in scope every one of them reports itself not applicable.
 */
export function certificatesCheck(snapshot: ComplianceSnapshot, now: number): CheckOutcome {
  const out = collector();
  if (!snapshot.certificates?.length) {
    for (const id of CHECK_IDS) out.notes.set(id, { status: 'not_applicable', note: NOT_APPLICABLE });
    return out;
  }
  for (const cert of snapshot.certificates) {
    const resource = {
      type: 'certificate' as const,
      id: `${vaultPath(cert.vault)}/certificates/${cert.name}`,
      vault: cert.vault,
      name: cert.name,
    };
    for (const id of CHECK_IDS) out.count(id);
    if (cert.notAfter - now <= Thresholds.expiringWithinDays * DAY) {
      out.add(
        'certificate-expiring',
        resource,
        cert.notAfter <= now
          ? `Certificate ${cert.name} in ${cert.vault} has expired`
          : `Certificate ${cert.name} in ${cert.vault} expires in ${days(cert.notAfter - now)} days`,
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
    if (cert.kty.startsWith('RSA') && cert.keySize !== null && cert.keySize < Thresholds.minRsaBits) {
      out.add(
        'certificate-key-weak',
        resource,
        `Certificate ${cert.name} in ${cert.vault} has an RSA ${cert.keySize}-bit key`,
        `RSA ${cert.keySize} gives less than 112 bits of security; NIST has disallowed RSA below ${Thresholds.minRsaBits} bits since 2014.`,
        `Create a new version with key_props.key_size of at least ${Thresholds.minRsaBits} (3072 for use beyond 2030) and deploy it.`,
      );
    }
    if (cert.selfSigned) {
      out.add(
        'certificate-self-signed',
        resource,
        `Certificate ${cert.name} in ${cert.vault} is self-signed`,
        'Relying parties can only trust it by pinning it: no CA vouches for it and it cannot be revoked.',
        'Issue it from a CA (a configured issuer, or issuer Unknown and merge the CA-signed certificate), or restrict it to test use.',
      );
    }
  }
  return out;
}
