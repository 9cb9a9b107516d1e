/**
 * Checks on the credentials of the applications in scope (client secrets, certificate credentials,
 * federated credentials): none expired but still stored, none about to expire, none older than
 * the rotation threshold. Federated credentials hold no secret and never expire; their age
 * stands for the last review of the trust they grant.
 */
import { Thresholds as T } from '../controls';
import { capitalize, collector, DAY, days, iso, truncate, type CheckOutcome } from '../findings';
import { appLabel, type AppRow, type ComplianceSnapshot } from '../snapshot';

export function credentialsCheck(snapshot: ComplianceSnapshot, now: number): CheckOutcome {
  const out = collector();
  const appByClient = new Map(snapshot.credentialOwners.map((a) => [a.clientId, a]));
  const examine = (kind: string, path: string, app: AppRow, createdAt: number, expiresAt: number | null, rotateHint: string) => {
    const resource = { type: 'credential' as const, id: path, name: `${kind} of ${app.displayName}` };
    out.count('credential-old');
    if (expiresAt !== null) {
      out.count('credential-expiring');
      out.count('credential-expired');
    }
    if (expiresAt !== null && expiresAt <= now) {
      out.add(
        'credential-expired',
        resource,
        `Expired ${kind} of ${appLabel(app)}`,
        `Expired ${iso(expiresAt)} (${days(now - expiresAt)} days ago); it no longer authenticates but is still stored.`,
        `Remove it (DELETE ${path}).`,
      );
      return;
    }
    if (expiresAt !== null && expiresAt - now <= T.expiringWithinDays * DAY) {
      out.add(
        'credential-expiring',
        resource,
        `${capitalize(kind)} of ${appLabel(app)} expires in ${days(expiresAt - now)} days`,
        `Expires ${iso(expiresAt)}; the application cannot authenticate with it after that.`,
        `${rotateHint} Then remove this one.`,
      );
    }
    if (now - createdAt > T.staleDays * DAY) {
      out.add(
        'credential-old',
        resource,
        `${capitalize(kind)} of ${appLabel(app)} is ${days(now - createdAt)} days old`,
        `Created ${iso(createdAt)}, more than ${T.staleDays} days ago.`,
        `${rotateHint} Then remove this one.`,
      );
    }
  };
  // Credentials of applications outside the scope may be in the snapshot (read in bulk): skipped.
  for (const s of snapshot.clientSecrets) {
    const app = appByClient.get(s.clientId);
    if (!app) continue;
    examine(
      'client secret',
      `/applications/${app.clientId}/secrets/${s.id}`,
      app,
      s.createdAt,
      s.expiresAt,
      `Add a new client secret (POST /management/applications/${app.clientId}/secrets with expiresInDays), deploy it;`,
    );
  }
  for (const cert of snapshot.certificateCredentials) {
    const app = appByClient.get(cert.clientId);
    if (!app) continue;
    examine(
      'certificate credential',
      `/applications/${app.clientId}/certificates/${cert.id}`,
      app,
      cert.createdAt,
      cert.notAfter,
      `Add a new certificate (POST /management/applications/${app.clientId}/certificates), deploy its key;`,
    );
  }
  for (const f of snapshot.federatedCredentials) {
    const app = appByClient.get(f.clientId);
    if (!app) continue;
    examine(
      'federated credential',
      `/applications/${app.clientId}/federatedCredentials/${f.id}`,
      app,
      f.createdAt,
      null,
      `Review that ${f.issuer} and subject ${truncate(f.subject, 80)} are still the workload to trust; if so re-create it to record the review, if not delete it.`,
    );
  }
  return out;
}
