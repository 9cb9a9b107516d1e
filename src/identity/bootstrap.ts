/** The one-time bootstrap of a deployment: its tenant, token-signing key and first administrator. */
import { SYSTEM_SCOPE, type DataKeyManager } from '../crypto/data-keys';
import { sha256Hex, timingSafeEqual, utf8 } from '../core/encoding';
import { dataKeys, signingKeys } from '../storage/schema';
import type { Database } from '../storage/db';
import { violatedConstraint } from '../storage/errors';
import { conflict, forbidden, VaultError } from '../core/errors';
import { prepareApplication, type NewApplication } from './applications';
import { prepareSigningKey } from './signing-keys';
import { findTenantId, insertTenant } from './tenant';

const MIN_BOOTSTRAP_SECRET = 32;

/**
 * Creates the tenant, its token-signing key and the first administrator application, once.
 * Guarded by BOOTSTRAP_SECRET (a Worker secret); all of it is written in one batch, or nothing is.
 */
export async function bootstrap(
  db: Database,
  keys: DataKeyManager,
  configured: string | undefined,
  presented: string | undefined,
): Promise<{ tenantId: string } & NewApplication> {
  if (!configured) throw forbidden('Bootstrap is not enabled: set the BOOTSTRAP_SECRET secret.');
  if (configured.length < MIN_BOOTSTRAP_SECRET) {
    throw new VaultError(
      500,
      'ConfigurationError',
      `BOOTSTRAP_SECRET is shorter than ${MIN_BOOTSTRAP_SECRET} characters; bootstrap refused.`,
    );
  }
  // Digests first, so the comparison is constant-time and length-independent.
  const same = timingSafeEqual(utf8(await sha256Hex(configured)), utf8(await sha256Hex(presented ?? '')));
  if (!presented || !same) throw new VaultError(401, 'Unauthorized', 'The bootstrap secret is not valid.');
  if (await findTenantId(db)) throw conflict('This vault service is already bootstrapped.');

  const tenantId = crypto.randomUUID();
  const { dataKey, row } = await keys.prepare(SYSTEM_SCOPE);
  const signingKey = await prepareSigningKey(dataKey);
  const admin = await prepareApplication(db, tenantId, { displayName: 'Administrator', isAdmin: true });
  try {
    await db.batch([
      insertTenant(db, tenantId),
      db.insert(dataKeys).values(row),
      db.insert(signingKeys).values(signingKey),
      ...admin.statements,
    ]);
  } catch (err) {
    if (violatedConstraint(err) === 'unique') {
      throw conflict('This vault service is already bootstrapped.');
    }
    throw err;
  }
  return { tenantId, ...admin.created };
}
