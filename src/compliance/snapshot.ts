/**
 * Everything the compliance checks read, loaded from D1 once per report: for one vault, or for the
 * whole deployment. The checks (src/compliance/checks/) are pure functions of this snapshot and the
 * time, so each can be tested with a hand-built snapshot and none of them touches the database.
 *
 * Scope. A vault's snapshot holds that vault, its live keys and secrets (latest versions), its role
 * assignments and access policies, the custom roles it can name, and the credentials of the
 * applications that are principals of it. The deployment's holds every vault and the credentials
 * of every application. Soft-deleted keys and secrets are left out (they cannot be used).
 */
import { and, eq, inArray, isNull, or, type AnyColumn } from 'drizzle-orm';
import { customRole } from '../access/store';
import { builtInRole, type RoleDefinition } from '../access/roles';
import type { Database } from '../storage/db';
import {
  accessPolicies,
  applicationCertificates,
  applications,
  certificatePolicies,
  certificates,
  certificateVersions,
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

export type ReportTarget = { kind: 'vault'; name: string } | { kind: 'deployment' };

export class VaultNotFoundForReport extends Error {}

export type VaultRow = typeof vaults.$inferSelect;
export type AppRow = typeof applications.$inferSelect;
export type AssignmentRow = typeof roleAssignments.$inferSelect;
export type PolicyRow = typeof accessPolicies.$inferSelect;
export type ClientSecretRow = typeof clientSecrets.$inferSelect;
export type FederatedCredentialRow = typeof federatedCredentials.$inferSelect;

/** A live key as the checks see it: its latest version. */
export interface KeyRow {
  vaultId: string;
  name: string;
  rotationPolicy: string | null;
  rotationDueAt: number | null;
  kty: string;
  keySize: number | null;
  publicJwk: string | null;
  exp: number | null;
  created: number;
}

export interface SecretRow {
  vaultId: string;
  name: string;
  exp: number | null;
}

export interface CertificateCredentialRow {
  id: string;
  clientId: string;
  thumbprintSha256: string;
  notAfter: number;
  createdAt: number;
}

/** A vault certificate as the certificate checks see it. */
export interface VaultCertificate {
  vault: string;
  name: string;
  /** Unix seconds. */
  notAfter: number;
  /** Whether its policy has an AutoRenew lifetime action. */
  autoRenew: boolean;
  /** Issued by its own key (issuer Self, or an imported self-signed one). */
  selfSigned: boolean;
  /** The key's type (RSA, RSA-HSM, EC, EC-HSM) and, for RSA, its size in bits. */
  kty: string;
  keySize: number | null;
}

export interface ComplianceSnapshot {
  target: ReportTarget;
  /** The vaults in scope, by name. */
  vaults: VaultRow[];
  keys: KeyRow[];
  secrets: SecretRow[];
  assignments: AssignmentRow[];
  policies: PolicyRow[];
  /** Custom roles by lower-case id: the deployment's, and (for a vault) that vault's. */
  customRoles: ReadonlyMap<string, RoleDefinition>;
  /** Every application (principal names, deployment administrators). */
  applications: AppRow[];
  /** The applications whose credentials are in scope: all, or the principals of the vault. */
  credentialOwners: AppRow[];
  clientSecrets: ClientSecretRow[];
  certificateCredentials: CertificateCredentialRow[];
  federatedCredentials: FederatedCredentialRow[];
  /** Vault certificates, live ones, as their latest versions (null: not loaded, e.g. a hand-built snapshot). */
  certificates: VaultCertificate[] | null;
}

/** Lookups derived from a snapshot once, on first use (a snapshot is never changed after loading). */
const indexes = new WeakMap<ComplianceSnapshot, { vaultNames: Map<string, string>; appByObjectId: Map<string, AppRow> }>();
function indexOf(snapshot: ComplianceSnapshot) {
  let index = indexes.get(snapshot);
  if (!index) {
    index = {
      vaultNames: new Map(snapshot.vaults.map((v) => [v.id, v.name])),
      appByObjectId: new Map(snapshot.applications.map((a) => [a.objectId.toLowerCase(), a])),
    };
    indexes.set(snapshot, index);
  }
  return index;
}

/** A vault's name from its id, for finding texts (the id itself for a vault not in scope). */
export function vaultNameOf(snapshot: ComplianceSnapshot, vaultId: string): string {
  return indexOf(snapshot).vaultNames.get(vaultId) ?? vaultId;
}

/** How the report names a principal: the application's display name when it is one. */
export function principalLabel(snapshot: ComplianceSnapshot, objectId: string): string {
  const app = indexOf(snapshot).appByObjectId.get(objectId.toLowerCase());
  return app ? `${app.displayName} (object ${objectId})` : `principal ${objectId}`;
}

/** The role an assignment names: built-in, or a custom role of its vault or of the deployment. */
export function roleOf(snapshot: ComplianceSnapshot, id: string, vaultId: string): RoleDefinition | undefined {
  const builtIn = builtInRole(id);
  if (builtIn) return builtIn;
  const role = snapshot.customRoles.get(id.toLowerCase());
  return role && (role.vaultId == null || role.vaultId === vaultId) ? role : undefined;
}

/** How the report names an application whose credentials it examines. */
export const appLabel = (app: AppRow) => `${app.displayName} (client ${app.clientId})`;

/** Reads the snapshot for one vault (by name; VaultNotFoundForReport if none) or the deployment. */
export async function loadSnapshot(db: Database, target: ReportTarget): Promise<ComplianceSnapshot> {
  const scopedVaults =
    target.kind === 'vault'
      ? await db.select().from(vaults).where(eq(vaults.name, target.name.toLowerCase())).all()
      : await db.select().from(vaults).orderBy(vaults.name).all();
  if (target.kind === 'vault' && scopedVaults.length === 0)
    throw new VaultNotFoundForReport(`Vault ${target.name} was not found.`);
  const vaultIds = scopedVaults.map((v) => v.id);
  const inScope = (column: AnyColumn) => (target.kind === 'vault' ? inArray(column, vaultIds) : undefined);

  const [keyRows, secretRows, assignmentRows, definitionRows, policyRows, appRows, certificateRows] = await Promise.all([
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
        and(
          eq(secretVersions.vaultId, secrets.vaultId),
          eq(secretVersions.name, secrets.name),
          eq(secretVersions.version, secrets.latestVersion),
        ),
      )
      .where(and(isNull(secrets.deletedAt), inScope(secrets.vaultId)))
      .all(),
    db.select().from(roleAssignments).where(inScope(roleAssignments.vaultId)).all(),
    db
      .select()
      .from(roleDefinitions)
      .where(
        target.kind === 'vault' ? or(isNull(roleDefinitions.vaultId), inArray(roleDefinitions.vaultId, vaultIds)) : undefined,
      )
      .all(),
    db.select().from(accessPolicies).where(inScope(accessPolicies.vaultId)).all(),
    db.select().from(applications).all(),
    db
      .select({
        vaultId: certificates.vaultId,
        name: certificates.name,
        exp: certificateVersions.exp,
        selfSigned: certificateVersions.selfSigned,
        kty: certificateVersions.kty,
        keySize: certificateVersions.keySize,
        policy: certificatePolicies.policy,
      })
      .from(certificates)
      .innerJoin(
        certificateVersions,
        and(
          eq(certificateVersions.vaultId, certificates.vaultId),
          eq(certificateVersions.name, certificates.name),
          eq(certificateVersions.version, certificates.latestVersion),
        ),
      )
      .leftJoin(
        certificatePolicies,
        and(eq(certificatePolicies.vaultId, certificates.vaultId), eq(certificatePolicies.name, certificates.name)),
      )
      .where(and(isNull(certificates.deletedAt), inScope(certificates.vaultId)))
      .all(),
  ]);

  let credentialOwners: AppRow[] = appRows;
  if (target.kind === 'vault') {
    const principals = new Set([
      ...assignmentRows.map((a) => a.principalId.toLowerCase()),
      ...policyRows.map((p) => p.objectId.toLowerCase()),
    ]);
    credentialOwners = appRows.filter((a) => principals.has(a.objectId.toLowerCase()));
  }
  const clientIds = credentialOwners.map((a) => a.clientId);
  // D1 binds at most 100 parameters: a vault with many principals reads every credential instead
  // (the credential checks skip those of applications outside credentialOwners).
  const byClient = target.kind === 'vault' && clientIds.length <= 50;
  const [secretCreds, certCreds, federatedCreds] = clientIds.length
    ? await Promise.all([
        db
          .select()
          .from(clientSecrets)
          .where(byClient ? inArray(clientSecrets.clientId, clientIds) : undefined)
          .all(),
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
        db
          .select()
          .from(federatedCredentials)
          .where(byClient ? inArray(federatedCredentials.clientId, clientIds) : undefined)
          .all(),
      ])
    : [[], [], []];

  return {
    target,
    vaults: scopedVaults,
    keys: keyRows,
    secrets: secretRows,
    assignments: assignmentRows,
    policies: policyRows,
    customRoles: new Map(definitionRows.map((r) => [r.id.toLowerCase(), customRole(r)])),
    applications: appRows,
    credentialOwners,
    clientSecrets: secretCreds,
    certificateCredentials: certCreds,
    federatedCredentials: federatedCreds,
    certificates: certificateRows.map((c) => ({
      vault: scopedVaults.find((v) => v.id === c.vaultId)?.name ?? c.vaultId,
      name: c.name,
      notAfter: c.exp ?? 0,
      autoRenew: renews(c.policy),
      selfSigned: c.selfSigned,
      kty: c.kty,
      keySize: c.keySize,
    })),
  };
}

/** Whether a stored certificate policy (JSON) has an AutoRenew lifetime action. */
function renews(policy: string | null): boolean {
  if (!policy) return false;
  try {
    const actions = (JSON.parse(policy) as { lifetime_actions?: { action?: { action_type?: string } }[] }).lifetime_actions ?? [];
    return actions.some((a) => a.action?.action_type === 'AutoRenew');
  } catch {
    return false;
  }
}
