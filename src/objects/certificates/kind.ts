// Certificates as a description over the versioned-object engine (engine/): a version is the
// issued certificate (public: no sealed payload); its key and secret are the managed key and
// secret of the same name and version, stored by their own kinds (store.ts ties them together).
import { certificates, certificateVersions } from '../../storage/schema';
import { azureErrors } from '../engine/errors';
import type { ObjectKind, VersionedRecord } from '../engine/kind';

export type HeadRow = typeof certificates.$inferSelect;
export type VersionRow = typeof certificateVersions.$inferSelect;

/** One version of a certificate as the vault logic sees it. */
export interface CertificateRecord extends VersionedRecord {
  /** base64 DER */
  cer: string;
  x5t: string;
  contentType: string;
  issuerName: string;
  selfSigned: boolean;
  kty: string;
  keySize: number | null;
  crv: string | null;
}

export const certificateKind: ObjectKind<HeadRow, VersionRow, CertificateRecord, CertificateRecord> = {
  kind: 'certificate',
  tables: { head: certificates, versions: certificateVersions },
  errors: azureErrors('certificate', 'CertificateNotFound'),
  toRecord,
  backup: {
    export: async (row) => toRecord(row),
    accepts: (v) => typeof v.cer === 'string' && typeof v.x5t === 'string' && typeof v.contentType === 'string',
    import: async (v) => ({
      cer: v.cer,
      x5t: v.x5t,
      contentType: v.contentType,
      dataKeyId: null,
      issuerName: v.issuerName,
      selfSigned: v.selfSigned,
      kty: v.kty,
      keySize: v.keySize,
      crv: v.crv,
    }),
  },
};

export function toRecord(row: VersionRow): CertificateRecord {
  return {
    name: row.name,
    version: row.version,
    cer: row.cer,
    x5t: row.x5t,
    contentType: row.contentType,
    issuerName: row.issuerName,
    selfSigned: row.selfSigned,
    kty: row.kty,
    keySize: row.keySize,
    crv: row.crv,
    tags: row.tags ? (JSON.parse(row.tags) as Record<string, string>) : null,
    enabled: row.enabled,
    nbf: row.nbf,
    exp: row.exp,
    created: row.created,
    updated: row.updated,
  };
}
