/**
 * The compliance report: what the deployment's (or one vault's) stored state says about key
 * management, access and credentials, as findings that each name the controls they give evidence
 * against (src/compliance/controls.ts). This file only assembles: the snapshot loader reads D1
 * once (snapshot.ts), each check is a pure function of that snapshot and the time (checks/), and
 * the anchor places the report in the audit trail (anchor.ts). `now` (Unix seconds) is a
 * parameter so that tests, and anyone asking "what will be wrong in a month", can move the clock.
 */
import { chainOfVault } from '../audit/chains';
import { DEPLOYMENT_CHAIN } from '../audit/event';
import type { Database } from '../storage/db';
import { auditAnchor, type AuditAnchor } from './anchor';
import { adminPrincipalsCheck } from './checks/admin-principals';
import { certificatesCheck } from './checks/certificates';
import { credentialsCheck } from './checks/credentials';
import { expiryCheck } from './checks/expiry';
import { keyRotationCheck } from './checks/key-rotation';
import { purgeProtectionCheck } from './checks/purge-protection';
import { retentionCheck } from './checks/retention';
import { staleAssignmentsCheck } from './checks/stale-assignments';
import { weakKeysCheck } from './checks/weak-keys';
import { CHECKS, SEVERITIES, Thresholds, type CheckId, type Severity } from './controls';
import { iso, type CheckOutcome, type CheckResult, type CheckStatus, type Finding } from './findings';
import { loadSnapshot, type ComplianceSnapshot, type ReportTarget } from './snapshot';

export type { AuditAnchor, ChainAnchor } from './anchor';
export { auditAnchor } from './anchor';
export type { CheckResult, CheckStatus, Finding, ResourceType } from './findings';
export { VaultNotFoundForReport, type ReportTarget, type VaultCertificate } from './snapshot';
export { SEVERITIES };

export type ReportScope = { kind: 'vault'; vault: string; vaultId: string } | { kind: 'deployment'; vaults: number };

export interface ComplianceReport {
  format: 'ekv-compliance-report/1';
  generatedAt: string;
  /** The time the report was evaluated at, Unix seconds (its `now`). */
  asOf: number;
  scope: ReportScope;
  auditCheckpoint: AuditAnchor;
  thresholds: typeof Thresholds;
  summary: { total: number } & Record<Severity, number>;
  checks: CheckResult[];
  findings: Finding[];
}

export interface ReportOptions {
  /** Unix seconds; defaults to the current time. */
  now?: number;
}

/** Every check module; each covers one or more CheckIds of the catalogue. */
const CHECK_MODULES: readonly ((snapshot: ComplianceSnapshot, now: number) => CheckOutcome)[] = [
  purgeProtectionCheck,
  retentionCheck,
  keyRotationCheck,
  expiryCheck,
  weakKeysCheck,
  certificatesCheck,
  adminPrincipalsCheck,
  credentialsCheck,
  staleAssignmentsCheck,
];

/** Builds the report for one vault (by name) or the whole deployment. */
export async function buildComplianceReport(
  db: Database,
  target: ReportTarget,
  options: ReportOptions = {},
): Promise<ComplianceReport> {
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const snapshot = await loadSnapshot(db, target);
  const anchor = await auditAnchor(
    db,
    target.kind === 'vault' ? [await chainOfVault(db, snapshot.vaults[0]!), DEPLOYMENT_CHAIN] : null,
  );
  return assembleReport(snapshot, anchor, now);
}

/** The report from a snapshot, its audit anchor and the time: runs every check, orders, counts. */
export function assembleReport(snapshot: ComplianceSnapshot, auditCheckpoint: AuditAnchor, now: number): ComplianceReport {
  const findings: Finding[] = [];
  const examined = new Map<CheckId, number>();
  const notes = new Map<CheckId, { status?: CheckStatus; note: string }>();
  for (const run of CHECK_MODULES) {
    const outcome = run(snapshot, now);
    findings.push(...outcome.findings);
    for (const [id, n] of outcome.examined) examined.set(id, (examined.get(id) ?? 0) + n);
    for (const [id, note] of outcome.notes) notes.set(id, note);
  }

  const order: Record<Severity, number> = { high: 0, medium: 1, low: 2 };
  const checkOrder = new Map(CHECKS.map((c, i) => [c.id, i]));
  findings.sort(
    (a, b) =>
      order[a.severity] - order[b.severity] ||
      checkOrder.get(a.check)! - checkOrder.get(b.check)! ||
      a.resource.id.localeCompare(b.resource.id),
  );
  const checks: CheckResult[] = CHECKS.map((c) => {
    const n = findings.filter((f) => f.check === c.id).length;
    const special = notes.get(c.id);
    return {
      id: c.id,
      title: c.title,
      severity: c.severity,
      controls: c.controls,
      criterion: c.criterion,
      status: special?.status ?? (n > 0 ? 'fail' : 'pass'),
      examined: examined.get(c.id) ?? 0,
      findings: n,
      ...(special ? { note: special.note } : {}),
    };
  });
  const summary = { total: findings.length, high: 0, medium: 0, low: 0 } as ComplianceReport['summary'];
  for (const f of findings) summary[f.severity]++;

  const vault = snapshot.vaults[0];
  return {
    format: 'ekv-compliance-report/1',
    generatedAt: iso(now),
    asOf: now,
    scope:
      snapshot.target.kind === 'vault' && vault
        ? { kind: 'vault', vault: vault.name, vaultId: vault.id }
        : { kind: 'deployment', vaults: snapshot.vaults.length },
    auditCheckpoint,
    thresholds: Thresholds,
    summary,
    checks,
    findings,
  };
}
