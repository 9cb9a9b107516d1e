/**
 * The vaults' internal CA certificates, public on the apex so relying parties can fetch the root
 * they are told to trust: `/pki/{vault}/ca.crt` (DER) and `/pki/{vault}/ca.pem`. Unauthenticated
 * by design (a CA certificate is public); each download is still audited.
 */
import type { Hono } from 'hono';
import { isValidVaultName } from '../../core/vault';
import { caCertificate } from '../../objects/certificates/issuers/internal-ca';
import { toPem } from '../../objects/certificates/issuers/ca-core';
import { findVault } from '../../storage/vaults';
import { auditAs, type AppEnv } from '../context';
import { errorResponse } from '../errors';

export function pkiRoutes(app: Hono<AppEnv>): void {
  app.get('/pki/:vault/:file{ca\\.(crt|pem)}', async (c) => {
    const name = c.req.param('vault').toLowerCase();
    const pem = c.req.param('file') === 'ca.pem';
    auditAs(c, 'CertificateAuthorityGet', `/pki/${name}/ca`);
    const { db } = c.get('services');
    const vault = isValidVaultName(name) ? await findVault(db, name) : undefined;
    const der = vault ? await caCertificate(db, vault.id) : undefined;
    if (!der) return errorResponse(c, 404, 'NotFound', 'This vault has no internal CA.');
    c.header('Cache-Control', 'public, max-age=300');
    if (pem) return c.body(toPem(der), 200, { 'Content-Type': 'application/x-pem-file' });
    return c.body(der as Uint8Array<ArrayBuffer>, 200, { 'Content-Type': 'application/pkix-cert' });
  });
}
