/**
 * Certificate credentials of applications (private_key_jwt): the vault keeps the public
 * certificate only, and verifies client assertions signed with the matching private key.
 * Nothing is cached: a removed certificate signs in nobody from the next request on.
 */
import { and, asc, eq, sql } from 'drizzle-orm';
import type { Database } from '../storage/db';
import { violatedConstraint } from '../storage/errors';
import { applicationCertificates } from '../storage/schema';
import { badParameter, conflict, notFound } from '../core/errors';
import { credentialRemovable, lastAdministrator } from './admin-guard';
import {
  CertificateFormatError,
  certificateDer,
  parseCertificate,
  PrivateKeyMaterialError,
  thumbprints,
  UnsupportedKeyError,
  type ParsedCertificate,
} from './x509';
import { fromBase64, fromBase64Url, toBase64, toHex } from '../core/encoding';

export type CertificateRow = typeof applicationCertificates.$inferSelect;

/** Our bound, not Entra's: keeps every application's certificate list small. */
export const MAX_CERTIFICATES_PER_APP = 20;
const MIN_RSA_BITS = 2048;
const MAX_INPUT_CHARS = 32 * 1024;

/** What an administrator sees of a certificate credential: identifiers and validity, nothing secret. */
export interface CertificateCredentialInfo {
  id: string;
  /** SHA-1 thumbprint in hex, as Entra and the Azure portal show it. */
  thumbprint: string;
  thumbprintSha256: string;
  /** The JWS header values that name this certificate: x5t and x5t#S256. */
  x5t: string;
  'x5t#S256': string;
  keyType: 'RSA' | 'EC';
  keySize?: number;
  curve?: string;
  notBefore: number;
  notAfter: number;
  createdAt: number;
}

const hex = (b64url: string) => toHex(fromBase64Url(b64url)).toUpperCase();

const derOf = (row: CertificateRow): Uint8Array => fromBase64(row.certificate);

async function rsaBits(spki: Uint8Array): Promise<number> {
  const key = await crypto.subtle.importKey('spki', spki as BufferSource, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, true, [
    'verify',
  ]);
  return (key.algorithm as { modulusLength?: number }).modulusLength ?? 0;
}

async function info(row: CertificateRow): Promise<CertificateCredentialInfo> {
  const parsed = parseCertificate(derOf(row));
  return {
    id: row.id,
    thumbprint: hex(row.thumbprintSha1),
    thumbprintSha256: hex(row.thumbprintSha256),
    x5t: row.thumbprintSha1,
    'x5t#S256': row.thumbprintSha256,
    keyType: parsed.keyType,
    ...(parsed.keyType === 'RSA' ? { keySize: await rsaBits(parsed.spki) } : { curve: parsed.curve }),
    notBefore: row.notBefore,
    notAfter: row.notAfter,
    createdAt: row.createdAt,
  };
}

/** Parses and checks an uploaded certificate; every refusal is a 400 that says why. */
async function acceptable(input: string): Promise<ParsedCertificate> {
  if (input.length > MAX_INPUT_CHARS) throw badParameter('The certificate is too large.');
  let parsed: ParsedCertificate;
  try {
    parsed = parseCertificate(certificateDer(input));
  } catch (err) {
    if (err instanceof PrivateKeyMaterialError || err instanceof UnsupportedKeyError) throw badParameter(err.message);
    if (err instanceof CertificateFormatError) {
      throw badParameter(`The certificate is not a base64 DER or PEM X.509 certificate (${err.message}).`);
    }
    throw err;
  }
  const now = Math.floor(Date.now() / 1000);
  if (parsed.notAfter <= now) throw badParameter('The certificate has expired.');
  if (parsed.notBefore >= parsed.notAfter) throw badParameter("The certificate's validity period is empty.");
  try {
    if (parsed.keyType === 'RSA') {
      const bits = await rsaBits(parsed.spki);
      if (bits < MIN_RSA_BITS) throw badParameter(`RSA certificates need a key of at least ${MIN_RSA_BITS} bits.`);
    } else {
      await crypto.subtle.importKey('spki', parsed.spki as BufferSource, { name: 'ECDSA', namedCurve: parsed.curve! }, false, [
        'verify',
      ]);
    }
  } catch (err) {
    if (err instanceof Error && err.name === 'VaultError') throw err;
    throw badParameter("The certificate's public key is not valid.");
  }
  return parsed;
}

export async function addCertificate(db: Database, clientId: string, input: string): Promise<CertificateCredentialInfo> {
  const parsed = await acceptable(input);
  const tp = await thumbprints(parsed.der);
  const row: CertificateRow = {
    id: crypto.randomUUID(),
    clientId,
    thumbprintSha1: tp.sha1,
    thumbprintSha256: tp.sha256,
    certificate: toBase64(parsed.der),
    notBefore: parsed.notBefore,
    notAfter: parsed.notAfter,
    createdAt: Math.floor(Date.now() / 1000),
  };
  // One statement, so the limit and the duplicate check hold under concurrent uploads.
  let changes: number;
  try {
    const result = await db.run(sql`
      INSERT INTO application_certificates
        (id, client_id, thumbprint_sha1, thumbprint_sha256, certificate, not_before, not_after, created_at)
      SELECT ${row.id}, ${row.clientId}, ${row.thumbprintSha1}, ${row.thumbprintSha256}, ${row.certificate},
             ${row.notBefore}, ${row.notAfter}, ${row.createdAt}
      WHERE (SELECT count(*) FROM application_certificates WHERE client_id = ${clientId}) < ${MAX_CERTIFICATES_PER_APP}
        AND NOT EXISTS (SELECT 1 FROM application_certificates WHERE client_id = ${clientId} AND thumbprint_sha256 = ${row.thumbprintSha256})`);
    changes = result.meta.changes ?? 0;
  } catch (err) {
    if (violatedConstraint(err) === 'foreign-key') throw notFound('NotFound', `Application ${clientId} was not found.`);
    throw err;
  }
  if (changes === 0) {
    const duplicate = await db
      .select({ id: applicationCertificates.id })
      .from(applicationCertificates)
      .where(
        and(eq(applicationCertificates.clientId, clientId), eq(applicationCertificates.thumbprintSha256, row.thumbprintSha256)),
      )
      .get();
    if (duplicate) throw conflict(`The application already has this certificate (id ${duplicate.id}).`);
    throw badParameter(`An application can hold at most ${MAX_CERTIFICATES_PER_APP} certificates.`);
  }
  return info(row);
}

export async function listCertificates(db: Database, clientId: string): Promise<CertificateCredentialInfo[]> {
  const rows = await db
    .select()
    .from(applicationCertificates)
    .where(eq(applicationCertificates.clientId, clientId))
    .orderBy(asc(applicationCertificates.createdAt), asc(applicationCertificates.id))
    .all();
  return Promise.all(rows.map(info));
}

export async function getCertificate(db: Database, clientId: string, id: string): Promise<CertificateCredentialInfo> {
  const row = await db
    .select()
    .from(applicationCertificates)
    .where(and(eq(applicationCertificates.clientId, clientId), eq(applicationCertificates.id, id)))
    .get();
  if (!row) throw notFound('NotFound', `Certificate ${id.slice(0, 64)} was not found.`);
  return info(row);
}

export async function removeCertificate(db: Database, clientId: string, id: string): Promise<void> {
  const which = and(eq(applicationCertificates.clientId, clientId), eq(applicationCertificates.id, id));
  const removed = await db
    .delete(applicationCertificates)
    .where(and(which, credentialRemovable(clientId, id)))
    .returning({ id: applicationCertificates.id });
  if (removed.length > 0) return;
  if (await db.select({ id: applicationCertificates.id }).from(applicationCertificates).where(which).get())
    throw lastAdministrator();
  throw notFound('NotFound', `Certificate ${id.slice(0, 64)} was not found.`);
}

/** The application's certificate a JWS header names by x5t#S256 (preferred) or x5t; read fresh from D1. */
export async function findCertificate(
  db: Database,
  clientId: string,
  thumbprint: { sha256?: string; sha1?: string },
): Promise<CertificateRow | undefined> {
  const column = thumbprint.sha256 ? applicationCertificates.thumbprintSha256 : applicationCertificates.thumbprintSha1;
  const value = thumbprint.sha256 ?? thumbprint.sha1;
  if (!value || value.length > 64) return undefined;
  return db
    .select()
    .from(applicationCertificates)
    .where(and(eq(applicationCertificates.clientId, clientId), eq(column, value)))
    .get();
}

const HASHES = { '256': 'SHA-256', '384': 'SHA-384', '512': 'SHA-512' } as const;
const EC_ALG = { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512' } as const;

/**
 * The certificate's public key imported for the JWS algorithm `alg`, or undefined when the key
 * cannot make such signatures (RSxxx and PSxxx need RSA; ES256/384/512 need P-256/384/521).
 */
export async function certificateVerificationKey(row: CertificateRow, alg: string): Promise<CryptoKey | undefined> {
  const parsed = parseCertificate(derOf(row));
  const spki = parsed.spki as BufferSource;
  const m = /^(RS|PS|ES)(256|384|512)$/.exec(alg);
  if (!m) return undefined;
  const hash = HASHES[m[2] as keyof typeof HASHES];
  if (parsed.keyType === 'RSA' && m[1] !== 'ES') {
    const name = m[1] === 'RS' ? 'RSASSA-PKCS1-v1_5' : 'RSA-PSS';
    return crypto.subtle.importKey('spki', spki, { name, hash }, false, ['verify']);
  }
  if (parsed.keyType === 'EC' && parsed.curve && EC_ALG[parsed.curve] === alg) {
    return crypto.subtle.importKey('spki', spki, { name: 'ECDSA', namedCurve: parsed.curve }, false, ['verify']);
  }
  return undefined;
}
