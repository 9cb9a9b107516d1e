/**
 * The same role assignments and definitions (rbac-api.ts) through the management API, for the
 * deployment's administrators (who are not subject to the vault-level escalation rules: they own
 * the deployment). The vault is in the path, the scope in `?scope=` (default '/'):
 *
 *   PUT|GET|DELETE /management/vaults/{vault}/providers/Microsoft.Authorization/roleAssignments/{guid}[?scope=/keys]
 *   GET            /management/vaults/{vault}/providers/Microsoft.Authorization/roleAssignments[?scope=…&$filter=…]
 *   PUT|GET|DELETE /management/vaults/{vault}/providers/Microsoft.Authorization/roleDefinitions/{guid}[?scope=…]
 *   GET            /management/vaults/{vault}/providers/Microsoft.Authorization/roleDefinitions[?scope=…&$filter=…]
 *
 * Bodies and answers are the data plane's. GET and DELETE of one assignment find it by name
 * wherever it is, unless `scope` is given.
 */
import type { Hono } from 'hono';
import { parseScope } from '../../access/scopes';
import { notFound } from '../../core/errors';
import { findVault } from '../../storage/vaults';
import type { AppContext, AppEnv } from '../context';
import { adminOperation } from '../operation';
import { rbacApi, type RbacMount } from './rbac-api';

const scopeQuery = (c: AppContext) => new URL(c.req.url).searchParams.get('scope');

const MANAGEMENT: RbacMount = {
  // Audited under the vault and object in the path, before authentication; administrators only.
  guard: (operation, _action, kind, param) =>
    adminOperation(
      operation,
      (c) => `/vaults/${c.req.param('vault')}/providers/Microsoft.Authorization/${kind}${param ? `/${c.req.param(param)}` : ''}`,
    ),
  target: async (c) => {
    const name = c.req.param('vault')!;
    const vault = await findVault(c.get('services').db, name);
    if (!vault) throw notFound('VaultNotFound', `Vault ${name} was not found.`);
    const given = scopeQuery(c);
    return {
      vault,
      actor: { kind: 'administrator' },
      scope: () => parseScope(given ?? '/'),
      lookupScope: () => (given === null ? undefined : parseScope(given)),
    };
  },
};

export function managementRbacRoutes(app: Hono<AppEnv>): void {
  app.route('/management/vaults/:vault', rbacApi(MANAGEMENT));
}
