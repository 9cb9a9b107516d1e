/**
 * The deployment must always keep an administrator that can still get a token: deleting the last
 * administrator application, or an administrator's last usable credential, would leave only
 * editing the database (bootstrap is refused once the deployment has a tenant).
 *
 * The rule is a condition inside the very DELETE statement that would break it, not a read before
 * the write: D1 runs each statement atomically, one at a time, so two administrators deleting each
 * other at the same moment are ordered and the second one's condition sees the first one's delete.
 */
import { sql, type SQL } from 'drizzle-orm';
import { conflict } from '../core/errors';

/**
 * True while some administrator application other than `clientId` (if given) holds a usable
 * credential other than `credentialId` (if given): an unexpired client secret, a certificate not
 * past its notAfter, or a federated credential (those have no expiry of their own).
 */
export function anotherUsableAdministrator(
  exclude: { clientId?: string; credentialId?: string },
  now = Math.floor(Date.now() / 1000),
): SQL {
  const app = exclude.clientId ?? '';
  const credential = exclude.credentialId ?? '';
  return sql`exists (select 1 from applications a where a.is_admin = 1 and a.client_id <> ${app} and (
    exists (select 1 from client_secrets s where s.client_id = a.client_id and s.id <> ${credential} and (s.expires_at is null or s.expires_at > ${now}))
    or exists (select 1 from application_certificates c where c.client_id = a.client_id and c.id <> ${credential} and c.not_after > ${now})
    or exists (select 1 from federated_credentials f where f.client_id = a.client_id and f.id <> ${credential})))`;
}

/** Whether `clientId` is not an administrator (then its credentials are not guarded). */
export function notAnAdministrator(clientId: string): SQL {
  return sql`not exists (select 1 from applications x where x.client_id = ${clientId} and x.is_admin = 1)`;
}

/** Removing a credential of `clientId` is allowed when it is not an administrator or another usable one remains. */
export function credentialRemovable(clientId: string, credentialId: string): SQL {
  return sql`(${notAnAdministrator(clientId)} or ${anotherUsableAdministrator({ credentialId })})`;
}

export const LAST_ADMINISTRATOR_MESSAGE =
  'This change would leave the deployment without an administrator application holding a usable credential; ' +
  'add another credential or administrator first.';

export const lastAdministrator = () => conflict(LAST_ADMINISTRATOR_MESSAGE);
