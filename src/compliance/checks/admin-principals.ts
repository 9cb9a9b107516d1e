/**
 * Check: who administers each vault. Under RBAC, principals holding Key Vault Administrator (or a
 * custom role granting every data action); under access policies, 'all' everywhere or any purge
 * permission. On the deployment, also the administrator applications of the management API.
 */
import { BuiltInRoleIds, grantedActions, type RoleDefinition } from '../../access/roles';
import { CertificateActions, KeyActions, SecretActions } from '../../core/data-actions';
import { collector, iso, vaultPath, type CheckOutcome } from '../findings';
import { appLabel, principalLabel, roleOf, type ComplianceSnapshot } from '../snapshot';

export function adminPrincipalsCheck(snapshot: ComplianceSnapshot, now: number): CheckOutcome {
  const out = collector();
  for (const v of snapshot.vaults) {
    if (v.enableRbacAuthorization) {
      const vaultAssignments = snapshot.assignments.filter((a) => a.vaultId === v.id);
      out.count('privileged-principal', vaultAssignments.length);
      const admins = new Map<string, string[]>();
      for (const a of vaultAssignments) {
        if (a.expiresAt !== null && a.expiresAt <= now) continue; // grants nothing any more
        const role = roleOf(snapshot, a.roleDefinitionId, v.id);
        if (!role || !grantsEverything(role)) continue;
        const key = a.principalId.toLowerCase();
        const line = `${role.roleName} at ${a.scope}${a.expiresAt !== null ? ` until ${iso(a.expiresAt)}` : ' (standing)'}`;
        admins.set(key, [...(admins.get(key) ?? []), line]);
      }
      for (const [principal, held] of admins) {
        out.add(
          'privileged-principal',
          { type: 'principal', id: `${vaultPath(v.name)}/principals/${principal}`, vault: v.name, name: principal },
          `${principalLabel(snapshot, principal)} administers vault ${v.name}`,
          `Holds every data action of ${v.name}, purge included: ${held.join('; ')}.`,
          'Replace with the narrowest roles the principal needs (Secrets User, Crypto User, …) or make the assignment time-bound (expiresOn); keep standing administrators to a named few.',
        );
      }
    } else {
      const vaultPolicies = snapshot.policies.filter((p) => p.vaultId === v.id);
      out.count('privileged-principal', vaultPolicies.length);
      for (const p of vaultPolicies) {
        const perms = parsePermissions(p.permissions);
        const all = (list: string[]) => list.some((x) => x.toLowerCase() === 'all');
        const purge = (list: string[]) => list.some((x) => x.toLowerCase() === 'purge' || x.toLowerCase() === 'all');
        const everything = all(perms.keys) && all(perms.secrets) && all(perms.certificates);
        const purgeOn = (['keys', 'secrets', 'certificates'] as const).filter((c) => purge(perms[c]));
        if (!everything && purgeOn.length === 0) continue;
        out.add(
          'privileged-principal',
          {
            type: 'principal',
            id: `${vaultPath(v.name)}/principals/${p.objectId.toLowerCase()}`,
            vault: v.name,
            name: p.objectId,
          },
          `${principalLabel(snapshot, p.objectId)} administers vault ${v.name} (access policy)`,
          everything
            ? "Its access policy grants 'all' on keys, secrets and certificates."
            : `Its access policy lets it purge ${purgeOn.join(', ')} (permanent destruction).`,
          `Narrow the policy (PUT /management/vaults/${v.name}/accessPolicies/${p.objectId}) to the permissions the principal needs; leave purge to no one, or to a named break-glass principal.`,
        );
      }
    }
  }
  if (snapshot.target.kind === 'deployment') {
    for (const app of snapshot.applications) {
      out.count('privileged-principal');
      if (!app.isAdmin) continue;
      out.add(
        'privileged-principal',
        { type: 'principal', id: `/applications/${app.clientId}`, name: app.displayName },
        `${appLabel(app)} is a deployment administrator`,
        'Administrator applications use the whole management API: they create and delete vaults, assign any role and manage every application.',
        'Keep deployment administrators to a named few; give automation a non-administrator application with role assignments instead.',
      );
    }
  }
  return out;
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
