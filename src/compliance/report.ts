import { and, eq, inArray, isNull, or, sql, type AnyColumn } from 'drizzle-orm';
import { customRole } from '../access/store';
import { BuiltInRoleIds, builtInRole, grantedActions, type RoleDefinition } from '../access/roles';
import { chainOfVault, DEPLOYMENT_CHAIN } from '../audit/event';
import { fromBase64Url } from '../core/encoding';
import type { Database } from '../storage/db';
import {
  accessPolicies,
  applicationCertificates,
  applications,
  auditChainHeads,
  auditCheckpoints,
  clientSecrets,
  federatedCredentials,
  keys,
  keyVersions,
  roleAssignments,
  roleDefinitions,
  secrets,
  secretVersions,
  vaults,
} from '../storage/schema';
import { CertificateActions, KeyActions, SecretActions } from '../core/data-actions';
import { rotationDueTime, storedPolicy } from '../objects/rotation';
import {
  AUDIT_ANCHOR_CONTROLS,
  check,
  CHECKS,
  SEVERITIES,
  Thresholds,
  type CheckId,
  type ControlRef,
  type Severity,
} from './controls';

/**
 * The compliance report: what the deployment's (or one vault's) stored state says about key
 * management, access and credentials, as findings that each name the controls they give evidence
 * against (src/compliance/controls.ts). Read from D1 only, independent of HTTP; `now` (Unix
 * seconds) is a parameter so that tests, and anyone asking "what will be wrong in a month", can
 * move the clock.
 *
 * Scope. A vault's report covers that vault: its settings, its live keys and secrets, its role
 * assignments (or access policies), and the credentials of the applications that are principals
 * of it (assignment or policy). The deployment's report covers every vault and, besides, what
 * belongs to no vault: the administrator applications of the management API and the credentials
 * of every application. Soft-deleted keys and secrets are not examined (they cannot be used).
 *
 * The report is anchored in the audit trail: its header names, per relevant chain (the vault's
 * and the deployment's, or every chain), the latest signed checkpoint, or when there is none the
 * chain head (seq, hash) marked 'unsigned head', so the state it describes can be placed in
 * the tamper-evident record of what was done.
 */

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

export interface ChainAnchor {
  chain: string;
  /** 'signed-checkpoint' when a signed checkpoint anchors the chain, else 'unsigned head'. */
  kind: 'signed-checkpoint' | 'unsigned head' | 'empty';
  seq: number;
  hash: string | null;
  /** The chain's head when the anchor is a checkpoint behind it. */
  headSeq: number;
  checkpoint?: { time: string | number; alg: string; kid: string; signature: string };
}

export interface AuditAnchor {
  /** The weakest anchor among the chains: 'signed-checkpoint' only when every chain has one. */
  kind: 'signed-checkpoint' | 'unsigned head' | 'empty';
  chains: ChainAnchor[];
  controls: readonly ControlRef[];
  note: string;
}

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

export type ReportTarget = { kind: 'vault'; name: string } | { kind: 'deployment' };

export interface ReportOptions {
  /** Unix seconds; defaults to the current time. */
  now?: number;
}

export class VaultNotFoundForReport extends Error {}

const DAY = 86_400;
const T = Thresholds;

type VaultRow = typeof vaults.$inferSelect;
type AppRow = typeof applications.$inferSelect;

const days = (seconds: number) => Math.floor(seconds / DAY);
const iso = (unixSeconds: number) => new Date(unixSeconds * 1000).toISOString();
const vaultPath = (v: string) => `/vaults/${v}`;

/** Builds the report for one vault (by name) or the whole deployment. */
export async function buildComplianceReport(db: Database, target: ReportTarget, options: ReportOptions = {}): Promise<ComplianceReport> {
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const scopedVaults =
    target.kind === 'vault'
      ? await db.select().from(vaults).where(eq(vaults.name, target.name.toLowerCase())).all()
      : await db.select().from(vaults).orderBy(vaults.name).all();
  if (target.kind === 'vault' && scopedVaults.length === 0) throw new VaultNotFoundForReport(`Vault ${target.name} was not found.`);
  const vaultIds = scopedVaults.map((v) => v.id);
  const vaultById = new Map(scopedVaults.map((v) => [v.id, v]));
  const inScope = (column: AnyColumn) => (target.kind === 'vault' ? inArray(column, vaultIds) : undefined);

  const [keyRows, secretRows, assignmentRows, definitionRows, policyRows, appRows] = await Promise.all([
    db
      .select({
        vaultId: keys.vaultId,
        name: keys.name,
        rotationPolicy: keys.rotationPolicy,
        rotationDueAt: keys.rotationDueAt,
        kty: keyVersions.kty,
        keySize: keyVersions.keySize,
        publicJwk: keyVersions.publicJwk,
        exp: keyVersions.exp,
        created: keyVersions.created,
      })
      .from(keys)
      .innerJoin(
        keyVersions,
        and(eq(keyVersions.vaultId, keys.vaultId), eq(keyVersions.name, keys.name), eq(keyVersions.version, keys.latestVersion)),
      )
      .where(and(isNull(keys.deletedAt), inScope(keys.vaultId)))
      .all(),
    db
      .select({ vaultId: secrets.vaultId, name: secrets.name, exp: secretVersions.exp })
      .from(secrets)
      .innerJoin(
        secretVersions,
        and(eq(secretVersions.vaultId, secrets.vaultId), eq(secretVersions.name, secrets.name), eq(secretVersions.version, secrets.latestVersion)),
      )
      .where(and(isNull(secrets.deletedAt), inScope(secrets.vaultId)))
      .all(),
    db.select().from(roleAssignments).where(inScope(roleAssignments.vaultId)).all(),
    db
      .select()
      .from(roleDefinitions)
      .where(target.kind === 'vault' ? or(isNull(roleDefinitions.vaultId), inArray(roleDefinitions.vaultId, vaultIds)) : undefined)
      .all(),
    db.select().from(accessPolicies).where(inScope(accessPolicies.vaultId)).all(),
    db.select().from(applications).all(),
  ]);

  const appByObjectId = new Map(appRows.map((a) => [a.objectId.toLowerCase(), a]));
  // Applications whose credentials are in scope: every one, or the principals of the vault.
  let scopedApps: AppRow[] = appRows;
  if (target.kind === 'vault') {
    const principals = new Set([...assignmentRows.map((a) => a.principalId.toLowerCase()), ...policyRows.map((p) => p.objectId.toLowerCase())]);
    scopedApps = appRows.filter((a) => principals.has(a.objectId.toLowerCase()));
  }
  const clientIds = scopedApps.map((a) => a.clientId);
  // D1 binds at most 100 parameters: a vault with many principals reads every credential instead
  // (those of other applications are skipped below).
  const byClient = target.kind === 'vault' && clientIds.length <= 50;
  const [secretCreds, certCreds, federatedCreds] = clientIds.length
    ? await Promise.all([
        db.select().from(clientSecrets).where(byClient ? inArray(clientSecrets.clientId, clientIds) : undefined).all(),
        db
          .select({
            id: applicationCertificates.id,
            clientId: applicationCertificates.clientId,
            thumbprintSha256: applicationCertificates.thumbprintSha256,
            notAfter: applicationCertificates.notAfter,
            createdAt: applicationCertificates.createdAt,
          })
          .from(applicationCertificates)
          .where(byClient ? inArray(applicationCertificates.clientId, clientIds) : undefined)
          .all(),
        db.select().from(federatedCredentials).where(byClient ? inArray(federatedCredentials.clientId, clientIds) : undefined).all(),
      ])
    : [[], [], []];

  const findings: Finding[] = [];
  const examined = new Map<CheckId, number>();
  const notes = new Map<CheckId, { status?: CheckStatus; note: string }>();
  const count = (id: CheckId, n = 1) => examined.set(id, (examined.get(id) ?? 0) + n);
  const add = (id: CheckId, resource: Finding['resource'], title: string, detail: string, remediation: string, severity?: Severity) => {
    const def = check(id);
    findings.push({ id: `${id}:${resource.id}`, check: id, severity: severity ?? def.severity, controls: def.controls, resource, title, detail, remediation });
  };
  const vaultName = (vaultId: string) => vaultById.get(vaultId)?.name ?? vaultId;
  const appLabel = (app: AppRow) => `${app.displayName} (client ${app.clientId})`;

  // --- Vault settings ------------------------------------------------------------------------
  for (const v of scopedVaults) {
    count('vault-purge-protection-disabled');
    count('vault-retention-short');
    const resource = { type: 'vault' as const, id: vaultPath(v.name), vault: v.name, name: v.name };
    if (!v.purgeProtection) {
      add(
        'vault-purge-protection-disabled',
        resource,
        `Vault ${v.name} has purge protection disabled`,
        `Anyone with purge rights can destroy deleted keys and secrets of ${v.name} at once, before the ${v.softDeleteRetentionDays}-day retention ends; data encrypted under a purged key is lost for good.`,
        `PATCH /management/vaults/${v.name} with {"enablePurgeProtection": true} (it cannot be turned off again).`,
      );
    }
    if (v.softDeleteRetentionDays < T.minRetentionDays) {
      add(
        'vault-retention-short',
        resource,
        `Vault ${v.name} keeps deleted objects for ${v.softDeleteRetentionDays} days`,
        `Soft-delete retention is ${v.softDeleteRetentionDays} days, below ${T.minRetentionDays} days, Azure's default and the longest it allows: a deletion (accidental or malicious) can be noticed and recovered only within that window.`,
        `Retention is fixed at creation here: create a vault with softDeleteRetentionInDays ${T.minRetentionDays}, move the keys and secrets (backup/restore) and retire this one.`,
      );
    }
  }

  // --- Keys ------------------------------------------------------------------------------------
  for (const k of keyRows) {
    const v = vaultName(k.vaultId);
    const resource = { type: 'key' as const, id: `${vaultPath(v)}/keys/${k.name}`, vault: v, name: k.name };
    const policy = storedPolicy(k.rotationPolicy);
    const rotate = policy?.lifetimeActions.find((a) => a.action.type === 'Rotate');
    count('key-rotation-policy-missing');
    count('key-rotation-overdue');
    count('key-no-expiry');
    if (!rotate) {
      add(
        'key-rotation-policy-missing',
        resource,
        `Key ${k.name} in ${v} is never rotated automatically`,
        policy
          ? 'Its rotation policy has no Rotate action (only Notify): nothing ends its cryptoperiod.'
          : 'It has no rotation policy (the default only notifies 30 days before expiry): nothing ends its cryptoperiod.',
        `PUT /keys/${k.name}/rotationpolicy with a Rotate action (timeAfterCreate, e.g. P90D, or timeBeforeExpiry) and an expiryTime.`,
      );
    } else {
      const due = rotationDueTime(policy, { created: k.created, exp: k.exp });
      const late: string[] = [];
      if (due !== null && now > due + T.rotationGraceSeconds) {
        late.push(`its Rotate action (${rotate.trigger.timeAfterCreate ? `timeAfterCreate ${rotate.trigger.timeAfterCreate}` : `timeBeforeExpiry ${rotate.trigger.timeBeforeExpiry}`}) was due ${iso(due)}`);
      }
      if (k.rotationDueAt !== null && now > k.rotationDueAt + T.rotationGraceSeconds) {
        late.push(`its scheduled rotation time ${iso(k.rotationDueAt)} has passed without the cron acting on it`);
      }
      if (late.length) {
        add(
          'key-rotation-overdue',
          resource,
          `Key ${k.name} in ${v} is overdue for rotation`,
          `The latest version (created ${iso(k.created)}) is still current: ${late.join('; ')}. The rotation job (every 5 minutes) should have made a new version.`,
          `POST /keys/${k.name}/rotate now, and check that the scheduled job runs (its logs, the keys_rotation_due index).`,
        );
      }
    }
    if (k.exp === null) {
      add(
        'key-no-expiry',
        resource,
        `Key ${k.name} in ${v} has no expiry`,
        'Its latest version has no exp: its cryptoperiod is unbounded.',
        `Set attributes.exp on the key (PATCH /keys/${k.name}), or give its rotation policy an expiryTime so rotated versions expire.`,
      );
    }
    if (k.kty === 'RSA' || k.kty === 'RSA-HSM') {
      count('key-size-weak');
      const bits = k.keySize ?? modulusBits(k.publicJwk);
      if (bits !== null && bits < T.minRsaBits) {
        add(
          'key-size-weak',
          resource,
          `Key ${k.name} in ${v} is RSA ${bits} bits`,
          `RSA ${bits} gives less than 112 bits of security; NIST has disallowed RSA below ${T.minRsaBits} bits for signatures and key establishment since 2014.`,
          `Create a replacement of at least RSA ${T.minRsaBits} (3072 for use beyond 2030), re-encrypt or re-sign with it, then disable and delete this key.`,
        );
      }
    }
  }

  // --- Secrets -----------------------------------------------------------------------------------
  for (const s of secretRows) {
    const v = vaultName(s.vaultId);
    count('secret-no-expiry');
    if (s.exp === null) {
      add(
        'secret-no-expiry',
        { type: 'secret', id: `${vaultPath(v)}/secrets/${s.name}`, vault: v, name: s.name },
        `Secret ${s.name} in ${v} has no expiry`,
        'Its latest version has no exp: nothing forces the value to be changed.',
        `Set attributes.exp (PATCH /secrets/${s.name}/{version}) and rotate the value before it.`,
      );
    }
  }

  // --- Certificates --------------------------------------------------------------------------
  // The checks are generic over whatever certificates a vault holds; this deployment has no
  // certificates API yet, so there are none to examine and the checks say so.
  const vaultCertificates = listVaultCertificates();
  if (vaultCertificates === null) {
    const note = 'Not applicable: no certificates. This deployment has no certificates API yet, so vaults hold none; application certificate credentials are covered by the credential checks.';
    notes.set('certificate-expiring', { status: 'not_applicable', note });
    notes.set('certificate-no-auto-renew', { status: 'not_applicable', note });
  } else {
    for (const cert of vaultCertificates) certificateFindings(cert, now, add, count);
  }

  // --- Privileged principals -------------------------------------------------------------------
  const customRoles = new Map<string, RoleDefinition>(definitionRows.map((r) => [r.id.toLowerCase(), customRole(r)]));
  const principalLabel = (objectId: string) => {
    const app = appByObjectId.get(objectId.toLowerCase());
    return app ? `${app.displayName} (object ${objectId})` : `principal ${objectId}`;
  };
  for (const v of scopedVaults) {
    if (v.enableRbacAuthorization) {
      const vaultAssignments = assignmentRows.filter((a) => a.vaultId === v.id);
      count('privileged-principal', vaultAssignments.length);
      const admins = new Map<string, string[]>();
      for (const a of vaultAssignments) {
        if (a.expiresAt !== null && a.expiresAt <= now) continue; // grants nothing any more
        const role = roleOf(a.roleDefinitionId, customRoles, v.id);
        if (!role || !grantsEverything(role)) continue;
        const key = a.principalId.toLowerCase();
        const line = `${role.roleName} at ${a.scope}${a.expiresAt !== null ? ` until ${iso(a.expiresAt)}` : ' (standing)'}`;
        admins.set(key, [...(admins.get(key) ?? []), line]);
      }
      for (const [principal, held] of admins) {
        add(
          'privileged-principal',
          { type: 'principal', id: `${vaultPath(v.name)}/principals/${principal}`, vault: v.name, name: principal },
          `${principalLabel(principal)} administers vault ${v.name}`,
          `Holds every data action of ${v.name}, purge included: ${held.join('; ')}.`,
          'Replace with the narrowest roles the principal needs (Secrets User, Crypto User, …) or make the assignment time-bound (expiresOn); keep standing administrators to a named few.',
        );
      }
    } else {
      const vaultPolicies = policyRows.filter((p) => p.vaultId === v.id);
      count('privileged-principal', vaultPolicies.length);
      for (const p of vaultPolicies) {
        const perms = parsePermissions(p.permissions);
        const all = (list: string[]) => list.some((x) => x.toLowerCase() === 'all');
        const purge = (list: string[]) => list.some((x) => x.toLowerCase() === 'purge' || x.toLowerCase() === 'all');
        const everything = all(perms.keys) && all(perms.secrets) && all(perms.certificates);
        const purgeOn = (['keys', 'secrets', 'certificates'] as const).filter((c) => purge(perms[c]));
        if (!everything && purgeOn.length === 0) continue;
        add(
          'privileged-principal',
          { type: 'principal', id: `${vaultPath(v.name)}/principals/${p.objectId.toLowerCase()}`, vault: v.name, name: p.objectId },
          `${principalLabel(p.objectId)} administers vault ${v.name} (access policy)`,
          everything
            ? "Its access policy grants 'all' on keys, secrets and certificates."
            : `Its access policy lets it purge ${purgeOn.join(', ')} (permanent destruction).`,
          `Narrow the policy (PUT /management/vaults/${v.name}/accessPolicies/${p.objectId}) to the permissions the principal needs; leave purge to no one, or to a named break-glass principal.`,
        );
      }
    }
  }
  if (target.kind === 'deployment') {
    for (const app of appRows) {
      count('privileged-principal');
      if (!app.isAdmin) continue;
      add(
        'privileged-principal',
        { type: 'principal', id: `/applications/${app.clientId}`, name: app.displayName },
        `${appLabel(app)} is a deployment administrator`,
        'Administrator applications use the whole management API: they create and delete vaults, assign any role and manage every application.',
        'Keep deployment administrators to a named few; give automation a non-administrator application with role assignments instead.',
      );
    }
  }

  // --- Credentials -----------------------------------------------------------------------------
  const appByClient = new Map(scopedApps.map((a) => [a.clientId, a]));
  const credentialChecks = (
    kind: string,
    path: string,
    app: AppRow,
    createdAt: number,
    expiresAt: number | null,
    rotateHint: string,
  ) => {
    const resource = { type: 'credential' as const, id: path, name: `${kind} of ${app.displayName}` };
    count('credential-old');
    if (expiresAt !== null) {
      count('credential-expiring');
      count('credential-expired');
    }
    if (expiresAt !== null && expiresAt <= now) {
      add(
        'credential-expired',
        resource,
        `Expired ${kind} of ${appLabel(app)}`,
        `Expired ${iso(expiresAt)} (${days(now - expiresAt)} days ago); it no longer authenticates but is still stored.`,
        `Remove it (DELETE ${path}).`,
      );
      return;
    }
    if (expiresAt !== null && expiresAt - now <= T.expiringWithinDays * DAY) {
      add(
        'credential-expiring',
        resource,
        `${capitalize(kind)} of ${appLabel(app)} expires in ${days(expiresAt - now)} days`,
        `Expires ${iso(expiresAt)}; the application cannot authenticate with it after that.`,
        `${rotateHint} Then remove this one.`,
      );
    }
    if (now - createdAt > T.staleDays * DAY) {
      add(
        'credential-old',
        resource,
        `${capitalize(kind)} of ${appLabel(app)} is ${days(now - createdAt)} days old`,
        `Created ${iso(createdAt)}, more than ${T.staleDays} days ago.`,
        `${rotateHint} Then remove this one.`,
      );
    }
  };
  for (const s of secretCreds) {
    const app = appByClient.get(s.clientId);
    if (!app) continue;
    credentialChecks(
      'client secret',
      `/applications/${app.clientId}/secrets/${s.id}`,
      app,
      s.createdAt,
      s.expiresAt,
      `Add a new client secret (POST /management/applications/${app.clientId}/secrets with expiresInDays), deploy it;`,
    );
  }
  for (const cert of certCreds) {
    const app = appByClient.get(cert.clientId);
    if (!app) continue;
    credentialChecks(
      'certificate credential',
      `/applications/${app.clientId}/certificates/${cert.id}`,
      app,
      cert.createdAt,
      cert.notAfter,
      `Add a new certificate (POST /management/applications/${app.clientId}/certificates), deploy its key;`,
    );
  }
  for (const f of federatedCreds) {
    const app = appByClient.get(f.clientId);
    if (!app) continue;
    // No secret to leak, so no expiry; its trust (issuer, subject) is reviewed like access.
    credentialChecks(
      'federated credential',
      `/applications/${app.clientId}/federatedCredentials/${f.id}`,
      app,
      f.createdAt,
      null,
      `Review that ${f.issuer} and subject ${truncate(f.subject, 80)} are still the workload to trust; if so re-create it to record the review, if not delete it.`,
    );
  }

  // --- Role assignments --------------------------------------------------------------------------
  for (const a of assignmentRows) {
    const v = vaultName(a.vaultId);
    count('assignment-expired');
    const role = roleOf(a.roleDefinitionId, customRoles, a.vaultId);
    const resource = {
      type: 'roleAssignment' as const,
      id: `${vaultPath(v)}/providers/Microsoft.Authorization/roleAssignments/${a.id}`,
      vault: v,
      name: a.id,
    };
    const what = `${role?.roleName ?? `role ${a.roleDefinitionId}`} for ${principalLabel(a.principalId)} at ${a.scope} in ${v}`;
    if (a.expiresAt !== null && a.expiresAt <= now) {
      add(
        'assignment-expired',
        resource,
        `Expired assignment: ${what}`,
        `Expired ${iso(a.expiresAt)}; it grants nothing but is still listed.`,
        `Delete it (DELETE /management/vaults/${v}/providers/Microsoft.Authorization/roleAssignments/${a.id}).`,
      );
      continue;
    }
    count('assignment-unused');
    const last = a.lastUsedAt ?? a.createdAt;
    if (now - last > T.staleDays * DAY) {
      add(
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

  const auditCheckpoint = await auditAnchor(db, target.kind === 'vault' ? [chainOfVault(scopedVaults[0]!.name), DEPLOYMENT_CHAIN] : null);

  const order: Record<Severity, number> = { high: 0, medium: 1, low: 2 };
  const checkOrder = new Map(CHECKS.map((c, i) => [c.id, i]));
  findings.sort(
    (a, b) => order[a.severity] - order[b.severity] || checkOrder.get(a.check)! - checkOrder.get(b.check)! || a.resource.id.localeCompare(b.resource.id),
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

  return {
    format: 'ekv-compliance-report/1',
    generatedAt: iso(now),
    asOf: now,
    scope:
      target.kind === 'vault'
        ? { kind: 'vault', vault: scopedVaults[0]!.name, vaultId: scopedVaults[0]!.id }
        : { kind: 'deployment', vaults: scopedVaults.length },
    auditCheckpoint,
    thresholds: Thresholds,
    summary,
    checks,
    findings,
  };
}

// ---------------------------------------------------------------------------------------------

/** A vault certificate as the certificate checks see it (there is no certificates store yet). */
export interface VaultCertificate {
  vault: string;
  name: string;
  /** Unix seconds. */
  notAfter: number;
  /** Whether its policy has an AutoRenew lifetime action. */
  autoRenew: boolean;
}

/** The vault certificates to examine; null while the deployment has no certificates API. */
function listVaultCertificates(): VaultCertificate[] | null {
  return null;
}

/** The certificate checks on one certificate (ready for when vaults hold certificates). */
export function certificateFindings(
  cert: VaultCertificate,
  now: number,
  add: (id: CheckId, resource: Finding['resource'], title: string, detail: string, remediation: string) => void,
  count: (id: CheckId) => void,
): void {
  const resource = { type: 'certificate' as const, id: `${vaultPath(cert.vault)}/certificates/${cert.name}`, vault: cert.vault, name: cert.name };
  count('certificate-expiring');
  count('certificate-no-auto-renew');
  if (cert.notAfter - now <= Thresholds.expiringWithinDays * DAY) {
    add(
      'certificate-expiring',
      resource,
      cert.notAfter <= now ? `Certificate ${cert.name} in ${cert.vault} has expired` : `Certificate ${cert.name} in ${cert.vault} expires in ${days(cert.notAfter - now)} days`,
      `Not valid after ${iso(cert.notAfter)}.`,
      'Renew it now and deploy the new version.',
    );
  }
  if (!cert.autoRenew) {
    add(
      'certificate-no-auto-renew',
      resource,
      `Certificate ${cert.name} in ${cert.vault} does not renew itself`,
      'Its policy has no AutoRenew lifetime action.',
      'Add an AutoRenew lifetime action (e.g. daysBeforeExpiry 30) to its policy.',
    );
  }
}

/** The role an assignment names: built-in, or a custom role of its vault or of the deployment. */
function roleOf(id: string, custom: ReadonlyMap<string, RoleDefinition>, vaultId: string): RoleDefinition | undefined {
  const builtIn = builtInRole(id);
  if (builtIn) return builtIn;
  const role = custom.get(id.toLowerCase());
  return role && (role.vaultId == null || role.vaultId === vaultId) ? role : undefined;
}

/** Data actions of the vault's objects (role management excluded): what administering means. */
const OBJECT_ACTIONS = [...Object.values(SecretActions), ...Object.values(KeyActions), ...Object.values(CertificateActions)];

/** Key Vault Administrator, or a custom role that grants every data action on the vault's objects. */
function grantsEverything(role: RoleDefinition): boolean {
  if (role.id === BuiltInRoleIds.administrator) return true;
  const granted = new Set(grantedActions(role));
  return OBJECT_ACTIONS.every((a) => granted.has(a));
}

function parsePermissions(text: string): { keys: string[]; secrets: string[]; certificates: string[] } {
  try {
    const p = JSON.parse(text) as Record<string, unknown>;
    const list = (v: unknown) => (Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : []);
    return { keys: list(p.keys), secrets: list(p.secrets), certificates: list(p.certificates) };
  } catch {
    return { keys: [], secrets: [], certificates: [] };
  }
}

/** An RSA key's size from its public JWK's modulus, when the row has no key_size. */
function modulusBits(publicJwk: string | null): number | null {
  if (!publicJwk) return null;
  try {
    const n = (JSON.parse(publicJwk) as { n?: unknown }).n;
    if (typeof n !== 'string') return null;
    const bytes = fromBase64Url(n);
    let i = 0;
    while (i < bytes.length && bytes[i] === 0) i++;
    if (i === bytes.length) return null;
    return (bytes.length - i) * 8 - Math.clz32(bytes[i]!) + 24;
  } catch {
    return null;
  }
}

const capitalize = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
const truncate = (s: string, n: number) => (s.length > n ? `${s.slice(0, n)}…` : s);

// ---------------------------------------------------------------------------------------------
// The audit anchor
// ---------------------------------------------------------------------------------------------

/**
 * Where the report stands in the audit trail. For each chain (the given ones, or every chain when
 * null): the latest signed checkpoint if checkpoints are kept, else the chain head (seq, hash),
 * marked 'unsigned head'. A chain without records is 'empty' (seq 0).
 */
export async function auditAnchor(db: Database, chains: string[] | null): Promise<AuditAnchor> {
  const [heads, checkpoints] = await Promise.all([
    db
      .select()
      .from(auditChainHeads)
      .where(chains ? inArray(auditChainHeads.chain, chains) : undefined)
      .orderBy(auditChainHeads.chain)
      .all(),
    // The latest checkpoint of each chain.
    db
      .select()
      .from(auditCheckpoints)
      .where(
        and(
          chains ? inArray(auditCheckpoints.chain, chains) : undefined,
          sql`${auditCheckpoints.seq} = (select max(c2.seq) from ${auditCheckpoints} as c2 where c2.chain = ${auditCheckpoints.chain})`,
        ),
      )
      .all(),
  ]);
  const headOf = new Map(heads.map((h) => [h.chain, h]));
  const checkpointOf = new Map(checkpoints.map((c) => [c.chain, c]));
  // The deployment's chain always, then every other chain that has records or checkpoints.
  const names = chains ?? [DEPLOYMENT_CHAIN, ...[...new Set([...heads.map((h) => h.chain), ...checkpoints.map((c) => c.chain)])].filter((c) => c !== DEPLOYMENT_CHAIN).sort()];
  const anchors: ChainAnchor[] = names.map((chain) => {
    const head = headOf.get(chain);
    const cp = checkpointOf.get(chain);
    const headSeq = head?.seq ?? 0;
    if (cp) {
      return {
        chain,
        kind: 'signed-checkpoint',
        seq: cp.seq,
        hash: cp.hash,
        headSeq: Math.max(headSeq, cp.seq),
        checkpoint: { time: cp.time, alg: cp.alg, kid: cp.kid, signature: cp.signature },
      };
    }
    return head
      ? { chain, kind: 'unsigned head', seq: head.seq, hash: head.hash, headSeq }
      : { chain, kind: 'empty', seq: 0, hash: null, headSeq: 0 };
  });
  const nonEmpty = anchors.filter((a) => a.kind !== 'empty');
  const kind: AuditAnchor['kind'] =
    nonEmpty.length === 0 ? 'empty' : nonEmpty.every((a) => a.kind === 'signed-checkpoint') ? 'signed-checkpoint' : 'unsigned head';
  const notes: Record<AuditAnchor['kind'], string> = {
    'signed-checkpoint':
      "Made against the latest signed checkpoint of each chain (ES256 by the HSM's checkpoint key; the report does not re-verify the signature: " +
      'verifyChain does). Records after a checkpoint (headSeq > seq) are covered by the next one.',
    'unsigned head':
      'Made against the latest signed checkpoint where a chain has one, and otherwise the chain head (seq and hash) as stored: ' +
      'an unsigned head places the report in the hash chain but is not signed; a later checkpoint covering that seq confirms it.',
    empty: 'No audit records yet in the relevant chains.',
  };
  return { kind, chains: anchors, controls: AUDIT_ANCHOR_CONTROLS, note: notes[kind] };
}

export { SEVERITIES };
