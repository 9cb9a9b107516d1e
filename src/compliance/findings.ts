/**
 * What a check produces, shared by every check module and the report assembler: the finding and
 * check-result shapes of the report, a collector a check fills, and the formatting every finding
 * text uses (so all checks spell times, days and paths the same way).
 */
import { check, type CheckId, type ControlRef, type Severity } from './controls';

export type ResourceType = 'vault' | 'key' | 'secret' | 'certificate' | 'principal' | 'credential' | 'roleAssignment';

export interface Finding {
  /** Stable across runs for the same condition: `{check}:{resource id}`. */
  id: string;
  check: CheckId;
  severity: Severity;
  controls: readonly ControlRef[];
  resource: { type: ResourceType; id: string; vault?: string; name?: string };
  title: string;
  detail: string;
  remediation: string;
}

export type CheckStatus = 'pass' | 'fail' | 'not_applicable';

export interface CheckResult {
  id: CheckId;
  title: string;
  severity: Severity;
  controls: readonly ControlRef[];
  criterion: string;
  status: CheckStatus;
  /** How many resources the check examined. */
  examined: number;
  findings: number;
  note?: string;
}

/** What one check module returns: its findings, how many resources each of its checks examined, and notes. */
export interface CheckOutcome {
  findings: Finding[];
  examined: Map<CheckId, number>;
  /** A check that could not run as usual (e.g. not applicable) and why. */
  notes: Map<CheckId, { status?: CheckStatus; note: string }>;
}

/** A fresh outcome with the two ways a check fills it. */
export function collector(): CheckOutcome & {
  count(id: CheckId, n?: number): void;
  add(id: CheckId, resource: Finding['resource'], title: string, detail: string, remediation: string): void;
} {
  const out: CheckOutcome = { findings: [], examined: new Map(), notes: new Map() };
  return {
    ...out,
    count: (id, n = 1) => out.examined.set(id, (out.examined.get(id) ?? 0) + n),
    add: (id, resource, title, detail, remediation) => {
      const def = check(id);
      out.findings.push({
        id: `${id}:${resource.id}`,
        check: id,
        severity: def.severity,
        controls: def.controls,
        resource,
        title,
        detail,
        remediation,
      });
    },
  };
}

export const DAY = 86_400;
export const days = (seconds: number) => Math.floor(seconds / DAY);
export const iso = (unixSeconds: number) => new Date(unixSeconds * 1000).toISOString();
export const vaultPath = (v: string) => `/vaults/${v}`;
export const capitalize = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
export const truncate = (s: string, n: number) => (s.length > n ? `${s.slice(0, n)}…` : s);
