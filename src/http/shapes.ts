/**
 * Azure's JSON shapes of secrets, keys, their list items and pages, rendered from the object
 * layer's records.
 */
import type { KeyRecord } from '../objects/keys';
import type { SecretRecord } from '../objects/secrets';
import { type VaultRecord } from '../core/vault';

/** Azure's recovery level for a vault's soft-delete settings. */
export function recoveryLevel(vault: VaultRecord): string {
  const base = vault.softDeleteRetentionDays < 90 ? 'CustomizedRecoverable' : 'Recoverable';
  return vault.purgeProtection ? base : `${base}+Purgeable`;
}

/** What secrets and keys have in common: the version's attributes and its soft-delete state. */
type ObjectRecord = Pick<
  SecretRecord,
  'name' | 'enabled' | 'nbf' | 'exp' | 'created' | 'updated' | 'deletedAt' | 'scheduledPurgeAt'
>;

function attributes(vault: VaultRecord, r: ObjectRecord) {
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

function deletedFields(origin: string, r: ObjectRecord, collection = 'secrets') {
  return r.deletedAt != null
    ? {
        recoveryId: `${origin}/deleted${collection}/${r.name}`,
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
    // A certificate's secret names its key, as Azure's does.
    ...(r.managed ? { kid: `${origin}/keys/${r.name}/${r.version}`, managed: true } : {}),
    ...deletedFields(origin, r),
  };
}

/** SecretItem in lists: never a value; the latest-versions list names the secret, not the version. */
export function secretItem(origin: string, vault: VaultRecord, r: SecretRecord, withVersion: boolean) {
  return {
    id: withVersion ? `${origin}/secrets/${r.name}/${r.version}` : `${origin}/secrets/${r.name}`,
    ...common(vault, r),
    ...(r.managed ? { managed: true } : {}),
    ...deletedFields(origin, r),
  };
}

/** The public JSON Web Key of a key version, as Azure returns it: never a private field. */
function jsonWebKey(origin: string, r: KeyRecord) {
  const pub = r.publicJwk;
  return {
    kid: `${origin}/keys/${r.name}/${r.version}`,
    kty: r.kind,
    key_ops: r.keyOps,
    ...(pub?.n !== undefined ? { n: pub.n, e: pub.e } : {}),
    ...(pub?.crv !== undefined ? { crv: pub.crv, x: pub.x, y: pub.y } : {}),
  };
}

function keyAttributes(vault: VaultRecord, r: KeyRecord) {
  return {
    attributes: { ...attributes(vault, r), exportable: false },
    ...(r.tags ? { tags: r.tags } : {}),
    ...(r.managed ? { managed: true } : {}),
  };
}

/** KeyBundle / DeletedKeyBundle. */
export function keyBundle(origin: string, vault: VaultRecord, r: KeyRecord) {
  return { key: jsonWebKey(origin, r), ...keyAttributes(vault, r), ...deletedFields(origin, r, 'keys') };
}

/** KeyItem in lists; the latest-versions list names the key, not the version. */
export function keyItem(origin: string, vault: VaultRecord, r: KeyRecord, withVersion: boolean) {
  return {
    kid: withVersion ? `${origin}/keys/${r.name}/${r.version}` : `${origin}/keys/${r.name}`,
    ...keyAttributes(vault, r),
    ...deletedFields(origin, r, 'keys'),
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
