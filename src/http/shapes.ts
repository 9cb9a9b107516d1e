import type { SecretRecord } from '../vault/secrets';
import type { VaultRecord } from '../vault/vaults';

/** Azure's recovery level for a vault's soft-delete settings. */
export function recoveryLevel(vault: VaultRecord): string {
  const base = vault.softDeleteRetentionDays < 90 ? 'CustomizedRecoverable' : 'Recoverable';
  return vault.purgeProtection ? base : `${base}+Purgeable`;
}

function attributes(vault: VaultRecord, r: SecretRecord) {
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

function common(vault: VaultRecord, r: SecretRecord) {
  return {
    attributes: attributes(vault, r),
    ...(r.contentType != null ? { contentType: r.contentType } : {}),
    ...(r.tags ? { tags: r.tags } : {}),
  };
}

function deletedFields(origin: string, r: SecretRecord) {
  return r.deletedAt != null
    ? {
        recoveryId: `${origin}/deletedsecrets/${r.name}`,
        deletedDate: r.deletedAt,
        scheduledPurgeDate: r.scheduledPurgeAt,
      }
    : {};
}

/** SecretBundle / DeletedSecretBundle: one version, with its value when it was read. */
export function secretBundle(origin: string, vault: VaultRecord, r: SecretRecord) {
  return {
    ...(r.value !== undefined ? { value: r.value } : {}),
    id: `${origin}/secrets/${r.name}/${r.version}`,
    ...common(vault, r),
    ...deletedFields(origin, r),
  };
}

/** SecretItem in lists: never a value; the latest-versions list names the secret, not the version. */
export function secretItem(origin: string, vault: VaultRecord, r: SecretRecord, withVersion: boolean) {
  return {
    id: withVersion ? `${origin}/secrets/${r.name}/${r.version}` : `${origin}/secrets/${r.name}`,
    ...common(vault, r),
    ...deletedFields(origin, r),
  };
}

/** The list envelope, with an absolute nextLink that carries the api-version and page size. */
export function listBody<T>(items: T[], next: string | null, requestUrl: string, apiVersion: string, maxResults: number) {
  let nextLink: string | null = null;
  if (next) {
    const url = new URL(requestUrl);
    url.search = '';
    url.searchParams.set('api-version', apiVersion);
    url.searchParams.set('$skiptoken', next);
    url.searchParams.set('maxresults', String(maxResults));
    nextLink = url.toString();
  }
  return { value: items, nextLink };
}
