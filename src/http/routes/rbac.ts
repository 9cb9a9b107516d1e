/**
 * Role-based access control on each vault host: the shared API (rbac-api.ts, what
 * @azure/keyvault-admin's KeyVaultAccessControlClient sends) mounted once per scope prefix.
 *
 * {scope} is '/', '/secrets', '/keys', '/certificates' or one object ('/keys/{name}'); the SDK
 * writes the vault scope as `//providers/…`, which the vault app reads as `/providers/…`. Each
 * route is a vault operation like any other: audit name, data action, and the one
 * authorization decision at the scope in the URL, with the caller's rights; the
 * no-self-escalation rules then apply on top (src/access/assignments.ts).
 */
import type { Hono } from 'hono';
import { providerPath } from '../../access/assignments';
import { COLLECTIONS, parseScope } from '../../access/scopes';
import { auditAs, authenticated, currentVault, type AppContext, type AppEnv } from '../context';
import { vaultOperation } from '../operation';
import { rbacApi, type RbacMount } from './rbac-api';

interface ScopeRoute {
  /** Route prefix: '/', '/secrets', '/secrets/:name', … */
  prefix: string;
  collection: string;
  named: boolean;
}

const SCOPE_ROUTES: ScopeRoute[] = [
  { prefix: '/', collection: '/', named: false },
  ...COLLECTIONS.flatMap((c) => [
    { prefix: `/${c}`, collection: `/${c}`, named: false },
    { prefix: `/${c}/:name`, collection: `/${c}`, named: true },
  ]),
];

/** The scope a request names, canonical (400 for an object name that cannot exist). */
function scopeOf(c: AppContext, route: ScopeRoute): string {
  return route.named ? parseScope(`${route.collection}/${c.req.param('name')}`) : route.collection;
}

/** The vault host's mount at one scope prefix: the caller's rights at that scope decide. */
function scopeMount(route: ScopeRoute): RbacMount {
  return {
    guard: (operation, action) => vaultOperation(operation, action, route.collection, route.named),
    target: async (c, operation, kind, name) => {
      const scope = scopeOf(c, route);
      if (name !== undefined) auditAs(c, operation, providerPath(scope, kind, name));
      return {
        vault: currentVault(c).vault,
        actor: { kind: 'principal', caller: authenticated(c).caller },
        scope: () => scope,
        lookupScope: () => scope,
      };
    },
  };
}

export function rbacRoutes(app: Hono<AppEnv>): void {
  for (const route of SCOPE_ROUTES) app.route(route.prefix, rbacApi(scopeMount(route)));
}
