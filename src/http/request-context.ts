/**
 * The first middleware of each app: origins from the host, per-request services, and the audit
 * record.
 */
import type { MiddlewareHandler } from 'hono';
import { services } from '../crypto/services';
import { auditMiddleware } from './audit';
import type { AppEnv } from './context';
import { classifyHost } from './hosts';

/** First middleware of each app: origins from the host, per-request services, and auditing. */
export function requestContext(kind: 'apex' | 'vault'): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const target = classifyHost(new URL(c.req.url).host, c.env.VAULT_ZONE);
    if (target.kind !== kind) throw new Error(`${kind} app reached for another host`);
    c.set('apexOrigin', target.apexOrigin);
    c.set('services', services(c.env));
    if (target.kind === 'vault') c.set('origin', target.origin);
    return auditMiddleware(target.kind === 'vault' ? target.vaultName : null)(c, next);
  };
}
