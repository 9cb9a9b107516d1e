// Azure's shapes of the Certificates API (CertificateBundle, CertificateItem, CertificatePolicy,
// CertificateOperation, Contacts, IssuerBundle), rendered from the vault's records.
import type { CertificateRecord } from '../objects/certificates/kind';
import { IN_PROGRESS_DETAILS, type OperationRecord, type PolicyRecord } from '../objects/certificates/store';
import type { Contact, IssuerRecord } from '../objects/certificates/settings';
import type { VaultRecord } from '../core/vault';
import { recoveryLevel } from './shapes';

function attributes(vault: VaultRecord, r: CertificateRecord) {
  return {
    enabled: r.enabled,
    ...(r.nbf != null ? { nbf: r.nbf } : {}),
    ...(r.exp != null ? { exp: r.exp } : {}),
    created: r.created,
    updated: r.updated,
    recoveryLevel: recoveryLevel(vault),
    recoverableDays: vault.softDeleteRetentionDays,
  };
}

function deletedFields(origin: string, r: CertificateRecord) {
  return r.deletedAt != null
    ? { recoveryId: `${origin}/deletedcertificates/${r.name}`, deletedDate: r.deletedAt, scheduledPurgeDate: r.scheduledPurgeAt }
    : {};
}

export function policyBody(origin: string, p: PolicyRecord) {
  const { attributes: a, ...policy } = p.policy;
  return {
    id: `${origin}/certificates/${p.name}/policy`,
    ...policy,
    attributes: { enabled: a.enabled, created: p.created, updated: p.updated },
  };
}

/** CertificateBundle / DeletedCertificateBundle: kid and sid name the key and secret of the same version. */
export function certificateBundle(origin: string, vault: VaultRecord, r: CertificateRecord, policy?: PolicyRecord) {
  return {
    id: `${origin}/certificates/${r.name}/${r.version}`,
    kid: `${origin}/keys/${r.name}/${r.version}`,
    sid: `${origin}/secrets/${r.name}/${r.version}`,
    x5t: r.x5t,
    cer: r.cer,
    contentType: r.contentType,
    attributes: attributes(vault, r),
    ...(r.tags ? { tags: r.tags } : {}),
    ...(policy ? { policy: policyBody(origin, policy) } : {}),
    ...deletedFields(origin, r),
  };
}

/** The bundle Azure shows for a certificate whose first version is still pending: disabled, no cer, a link to the operation. */
export function pendingCertificateBundle(origin: string, vault: VaultRecord, op: OperationRecord, policy?: PolicyRecord) {
  return {
    id: `${origin}/certificates/${op.name}/${op.version}`,
    attributes: {
      enabled: false,
      created: op.created,
      updated: op.updated,
      recoveryLevel: recoveryLevel(vault),
      recoverableDays: vault.softDeleteRetentionDays,
    },
    ...(policy ? { policy: policyBody(origin, policy) } : {}),
    pending: { id: `${origin}/certificates/${op.name}/pending` },
  };
}

/** CertificateItem in lists; the latest-versions list names the certificate, not the version. */
export function certificateItem(origin: string, vault: VaultRecord, r: CertificateRecord, withVersion: boolean) {
  return {
    id: withVersion ? `${origin}/certificates/${r.name}/${r.version}` : `${origin}/certificates/${r.name}`,
    x5t: r.x5t,
    attributes: attributes(vault, r),
    ...(r.tags ? { tags: r.tags } : {}),
    ...deletedFields(origin, r),
  };
}

/** CertificateOperation: the target names the certificate once the operation completed. */
export function operationBody(origin: string, op: OperationRecord) {
  const issuer = op.policy.issuer;
  return {
    id: `${origin}/certificates/${op.name}/pending`,
    issuer: {
      name: op.issuerName,
      ...(issuer.cty ? { cty: issuer.cty } : {}),
      ...(issuer.cert_transparency != null ? { cert_transparency: issuer.cert_transparency } : {}),
    },
    csr: op.csr,
    cancellation_requested: op.cancellationRequested,
    status: op.status,
    status_details: op.statusDetails,
    ...(op.error ? { error: op.error } : {}),
    // A failed issuance completes with an error and made no certificate to point at.
    ...(op.status === 'completed' && !op.error ? { target: `${origin}/certificates/${op.name}` } : {}),
    request_id: op.requestId,
  };
}

/**
 * The answer to a create: the operation as accepted, in progress, even when the issuer finished at
 * once (Self). Azure answers so, and the Python SDK's poller relies on it: given a finished
 * operation it never polls and its result() is None. The outcome is read at /pending.
 */
export function acceptedOperationBody(origin: string, op: OperationRecord) {
  return operationBody(origin, { ...op, status: 'inProgress', statusDetails: IN_PROGRESS_DETAILS, error: null });
}

export function contactsBody(origin: string, contacts: Contact[]) {
  return { id: `${origin}/certificates/contacts`, contacts };
}

/** IssuerBundle: never the credentials' password, nor the dns-01 API token. */
export function issuerBundle(origin: string, r: IssuerRecord) {
  return {
    id: `${origin}/certificates/issuers/${r.name}`,
    provider: r.provider,
    ...(r.accountId != null ? { credentials: { account_id: r.accountId } } : {}),
    ...(r.orgDetails ? { org_details: r.orgDetails } : {}),
    ...(r.dns01 ? { dns_01: { provider: r.dns01.provider, zone_id: r.dns01.zone_id } } : {}),
    attributes: { enabled: r.enabled, created: r.created, updated: r.updated },
  };
}

export function issuerItem(origin: string, r: IssuerRecord) {
  return { id: `${origin}/certificates/issuers/${r.name}`, provider: r.provider };
}
