// The one call the webhook receiver makes to renew a certificate. Scheduled renewal (src/jobs/) is
// being built with its own "renew one certificate" function; when it lands, this body becomes a
// call to it (or, if it lives above the objects layer, the route passes it to startRenewals in
// place of this one), and nothing else in the webhook code changes.
import type { CertificateStore, OperationRecord } from '../store';

/**
 * Starts a new version of `name` through its issuer with its stored policy (create without a
 * policy uses the stored one): 'completed' at once for Self and the internal CA, 'inProgress' for
 * issuers that answer later (Unknown, ACME).
 */
export function renewCertificate(store: CertificateStore, name: string): Promise<OperationRecord> {
  return store.create(name, {});
}
