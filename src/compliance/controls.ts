/**
 * The control catalogue of the compliance report: every check the report runs, how severe a
 * finding of it is, and the controls of PCI DSS v4.0, HIPAA (45 CFR §164.312, the technical
 * safeguards), ISO/IEC 27001:2022 Annex A and NIST SP 800-57 Part 1 Rev. 5 it supports.
 *
 * Citations name the requirement a finding gives evidence against, not every requirement that
 * touches the topic. Titles are short paraphrases, not the standards' text. The thresholds are
 * here too, so the report can state them and the checks use the same numbers.
 */

export type Severity = 'high' | 'medium' | 'low';

export const SEVERITIES: readonly Severity[] = ['high', 'medium', 'low'];

export interface ControlRef {
  framework: 'PCI DSS 4.0' | 'HIPAA' | 'ISO/IEC 27001:2022' | 'NIST SP 800-57 Pt 1 Rev. 5';
  id: string;
  title: string;
}

const pci = (id: string, title: string): ControlRef => ({ framework: 'PCI DSS 4.0', id, title });
const hipaa = (id: string, title: string): ControlRef => ({ framework: 'HIPAA', id, title });
const iso = (id: string, title: string): ControlRef => ({ framework: 'ISO/IEC 27001:2022', id, title });
const nist = (id: string, title: string): ControlRef => ({ framework: 'NIST SP 800-57 Pt 1 Rev. 5', id, title });

/** The controls, once each, so a citation is spelt the same everywhere. */
export const Controls = {
  pci361: pci('3.6.1', 'Keys protected against disclosure and misuse'),
  pci371: pci('3.7.1', 'Generation of strong cryptographic keys'),
  pci374: pci('3.7.4', 'Key changes at the end of the cryptoperiod'),
  pci421: pci('4.2.1', 'Certificates confirmed valid and not expired'),
  pci722: pci('7.2.2', 'Access by least privilege, privileged users included'),
  pci724: pci('7.2.4', 'User accounts and access privileges reviewed'),
  pci725: pci('7.2.5', 'Application and system accounts: least privilege'),
  pci7251: pci('7.2.5.1', 'Application and system account access reviewed'),
  pci826: pci('8.2.6', 'Inactive accounts removed or disabled within 90 days'),
  pci863: pci('8.6.3', 'Application/system account credentials changed periodically'),
  pci1034: pci('10.3.4', 'Change detection on audit logs'),
  hipaaAccess: hipaa('§164.312(a)(1)', 'Access control'),
  hipaaEncryption: hipaa('§164.312(a)(2)(iv)', 'Encryption and decryption'),
  hipaaAudit: hipaa('§164.312(b)', 'Audit controls'),
  hipaaIntegrity: hipaa('§164.312(c)(1)', 'Integrity'),
  hipaaAuthentication: hipaa('§164.312(d)', 'Person or entity authentication'),
  isoAccessControl: iso('A.5.15', 'Access control'),
  isoAuthInfo: iso('A.5.17', 'Authentication information'),
  isoAccessRights: iso('A.5.18', 'Access rights'),
  isoPrivileged: iso('A.8.2', 'Privileged access rights'),
  isoBackup: iso('A.8.13', 'Information backup'),
  isoLogging: iso('A.8.15', 'Logging'),
  isoCrypto: iso('A.8.24', 'Use of cryptography'),
  nistCryptoperiods: nist('§5.3', 'Cryptoperiods'),
  nistStrength: nist('§5.6.1', 'Comparable algorithm strengths (112-bit minimum)'),
} as const;

/** Thresholds the checks use; stated in every report. */
export const Thresholds = {
  /** Credentials and unused assignments older than this are findings (PCI DSS 8.2.6's 90 days). */
  staleDays: 90,
  /** Credentials and certificates expiring within this many days are findings. */
  expiringWithinDays: 30,
  /** Soft-delete retention below this is a finding: Azure's default, and its maximum (7-90). */
  minRetentionDays: 90,
  /** RSA keys below this size are findings: 112-bit security (NIST SP 800-57 Pt 1 Table 2). */
  minRsaBits: 2048,
  /**
   * A rotation is overdue when its due time passed more than this long ago: the cron runs every
   * 5 minutes, so an hour is twelve missed runs, not a schedule that is merely about to run.
   */
  rotationGraceSeconds: 3600,
} as const;

export type CheckId =
  | 'key-rotation-policy-missing'
  | 'key-rotation-overdue'
  | 'key-size-weak'
  | 'key-no-expiry'
  | 'secret-no-expiry'
  | 'certificate-expiring'
  | 'certificate-no-auto-renew'
  | 'certificate-key-weak'
  | 'certificate-self-signed'
  | 'vault-purge-protection-disabled'
  | 'vault-retention-short'
  | 'privileged-principal'
  | 'credential-old'
  | 'credential-expiring'
  | 'credential-expired'
  | 'assignment-unused'
  | 'assignment-expired';

export interface CheckDefinition {
  id: CheckId;
  title: string;
  severity: Severity;
  controls: readonly ControlRef[];
  /** What it takes to pass, stated in the report. */
  criterion: string;
}

const C = Controls;
const T = Thresholds;

/** Every check, in the order the report lists them. */
export const CHECKS: readonly CheckDefinition[] = [
  {
    id: 'key-rotation-policy-missing',
    title: 'Key without automatic rotation',
    severity: 'medium',
    controls: [C.pci374, C.isoCrypto, C.nistCryptoperiods],
    criterion: 'Every live key has a rotation policy with a Rotate action (the default policy only notifies).',
  },
  {
    id: 'key-rotation-overdue',
    title: 'Key rotation overdue',
    severity: 'high',
    controls: [C.pci374, C.isoCrypto, C.nistCryptoperiods],
    criterion: `No key's Rotate action, nor its scheduled rotation time, is more than ${T.rotationGraceSeconds / 3600} h past due.`,
  },
  {
    id: 'key-size-weak',
    title: `RSA key below ${T.minRsaBits} bits`,
    severity: 'high',
    controls: [C.pci371, C.isoCrypto, C.hipaaEncryption, C.nistStrength],
    criterion: `Every RSA key version in use (the latest) is at least ${T.minRsaBits} bits.`,
  },
  {
    id: 'key-no-expiry',
    title: 'Key without expiry',
    severity: 'low',
    controls: [C.pci374, C.isoCrypto, C.nistCryptoperiods],
    criterion: 'The latest version of every live key has an expiry (exp): a defined cryptoperiod.',
  },
  {
    id: 'secret-no-expiry',
    title: 'Secret without expiry',
    severity: 'low',
    controls: [C.pci863, C.isoAuthInfo],
    criterion: 'The latest version of every live secret has an expiry (exp).',
  },
  {
    id: 'certificate-expiring',
    title: `Certificate expiring within ${T.expiringWithinDays} days`,
    severity: 'high',
    controls: [C.pci421, C.isoCrypto],
    criterion: `No certificate expires within ${T.expiringWithinDays} days or has expired.`,
  },
  {
    id: 'certificate-no-auto-renew',
    title: 'Certificate without auto-renew',
    severity: 'medium',
    controls: [C.pci421, C.isoCrypto],
    criterion: 'Every certificate has an AutoRenew lifetime action.',
  },
  {
    id: 'certificate-key-weak',
    title: `Certificate with an RSA key below ${T.minRsaBits} bits`,
    severity: 'high',
    controls: [C.pci371, C.pci421, C.isoCrypto, C.nistStrength],
    criterion: `The key of every certificate in use (the latest version) is at least RSA ${T.minRsaBits} (or EC).`,
  },
  {
    id: 'certificate-self-signed',
    title: 'Self-signed certificate in use',
    severity: 'low',
    controls: [C.pci421, C.isoCrypto],
    criterion:
      'No certificate in use (the latest version) is self-signed: each chains to a CA that relying parties can check and revoke.',
  },
  {
    id: 'vault-purge-protection-disabled',
    title: 'Purge protection disabled',
    severity: 'medium',
    controls: [C.pci361, C.isoCrypto, C.hipaaIntegrity],
    criterion: 'Purge protection is on: deleted keys and secrets cannot be destroyed before their retention ends.',
  },
  {
    id: 'vault-retention-short',
    title: `Soft-delete retention below ${T.minRetentionDays} days`,
    severity: 'low',
    controls: [C.isoBackup, C.hipaaIntegrity],
    criterion: `Soft-delete retention is at least ${T.minRetentionDays} days (Azure's default and maximum).`,
  },
  {
    id: 'privileged-principal',
    title: 'Principal with administrator rights',
    severity: 'medium',
    controls: [C.pci722, C.pci725, C.isoPrivileged, C.isoAccessControl, C.hipaaAccess],
    criterion:
      'No principal holds Key Vault Administrator (or a custom role granting every data action); under access policies, ' +
      "none holds 'all' on keys, secrets and certificates, or a purge permission; on the deployment, administrator applications are listed.",
  },
  {
    id: 'credential-old',
    title: `Credential older than ${T.staleDays} days`,
    severity: 'medium',
    controls: [C.pci863, C.isoAuthInfo, C.hipaaAuthentication],
    criterion: `No client secret, certificate credential or federated credential was created more than ${T.staleDays} days ago.`,
  },
  {
    id: 'credential-expiring',
    title: `Credential expiring within ${T.expiringWithinDays} days`,
    severity: 'medium',
    controls: [C.pci863, C.isoAuthInfo, C.hipaaAuthentication],
    criterion: `No client secret or certificate credential expires within ${T.expiringWithinDays} days.`,
  },
  {
    id: 'credential-expired',
    title: 'Expired credential still stored',
    severity: 'low',
    controls: [C.isoAuthInfo, C.isoAccessRights],
    criterion: 'Expired client secrets and certificate credentials are removed.',
  },
  {
    id: 'assignment-unused',
    title: `Role assignment unused for ${T.staleDays} days`,
    severity: 'medium',
    controls: [C.pci826, C.pci724, C.pci7251, C.isoAccessRights, C.hipaaAccess],
    criterion: `Every role assignment was used (or created) within the last ${T.staleDays} days.`,
  },
  {
    id: 'assignment-expired',
    title: 'Expired role assignment still stored',
    severity: 'low',
    controls: [C.pci724, C.isoAccessRights],
    criterion: 'Role assignments past their expiresOn are removed.',
  },
];

const byId = new Map(CHECKS.map((c) => [c.id, c]));

export function check(id: CheckId): CheckDefinition {
  return byId.get(id)!;
}

/** The controls the report's anchor in the audit trail supports. */
export const AUDIT_ANCHOR_CONTROLS: readonly ControlRef[] = [C.hipaaAudit, C.isoLogging, C.pci1034];
