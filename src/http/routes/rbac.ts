import type { Hono } from 'hono';
import {
  assignmentBody,
  assignmentShape,
  createRoleAssignment,
  deleteRoleAssignment,
  getRoleAssignment,
  listRoleAssignments,
  providerPath,
  type Actor,
} from '../../access/assignments';
import {
  deleteRoleDefinition,
  getRoleDefinition,
  listRoleDefinitions,
  putRoleDefinition,
  roleDefinitionBody,
  roleDefinitionShape,
} from '../../access/definitions';
import { nextLinkFor, parsePageSize } from '../../access/listing';
import { COLLECTIONS, parseScope } from '../../access/scopes';
import { RoleActions, type DataAction } from '../../core/data-actions';
import { parseBody } from '../../core/validation';
import { auditAs, authenticated, bodyText, currentVault, type AppContext, type AppEnv } from '../context';
import { vaultOperation } from '../operation';

/**
 * Role-based access control on each vault, in Managed HSM's data-plane shape (what
 * @azure/keyvault-admin's KeyVaultAccessControlClient sends):
 *
 *   PUT|GET|DELETE /{scope}/providers/Microsoft.Authorization/roleAssignments/{guid}
 *   GET            /{scope}/providers/Microsoft.Authorization/roleAssignments[?$filter=…]
 *   PUT|GET|DELETE /{scope}/providers/Microsoft.Authorization/roleDefinitions/{guid}
 *   GET            /{scope}/providers/Microsoft.Authorization/roleDefinitions[?$filter=…]
 *
 * {scope} is '/', '/secrets', '/keys', '/certificates' or one object ('/keys/{name}'); the SDK
 * writes the vault scope as `//providers/…`, which the vault app reads as `/providers/…`. Each
 * route is a vault operation like any other: audit name, data action, and the one
 * authorization decision at the scope in the URL; the no-self-escalation rules then apply on
 * top (src/access/assignments.ts).
 */

const ASSIGNMENTS = '/providers/Microsoft.Authorization/roleAssignments';
const DEFINITIONS = '/providers/Microsoft.Authorization/roleDefinitions';

interface ScopeRoute {
  /** Route prefix: '', '/secrets', '/secrets/:name', … */
  prefix: string;
  collection: string;
  named: boolean;
}

const SCOPE_ROUTES: ScopeRoute[] = [
  { prefix: '', collection: '/', named: false },
  ...COLLECTIONS.flatMap((c) => [
    { prefix: `/${c}`, collection: `/${c}`, named: false },
    { prefix: `/${c}/:name`, collection: `/${c}`, named: true },
  ]),
];

/** The scope a request names, canonical (400 for an object name that cannot exist). */
function scopeOf(c: AppContext, route: ScopeRoute): string {
  return route.named ? parseScope(`${route.collection}/${c.req.param('name')}`) : route.collection;
}

function actor(c: AppContext): Actor {
  return { kind: 'principal', caller: authenticated(c).caller };
}

function query(c: AppContext, name: string): string | null {
  return new URL(c.req.url).searchParams.get(name);
}

export function rbacRoutes(app: Hono<AppEnv>): void {
  for (const route of SCOPE_ROUTES) {
    const op = (operation: string, action: DataAction) => vaultOperation(operation, action, route.collection, route.named);
    const assignment = `${route.prefix}${ASSIGNMENTS}/:assignment`;
    const definition = `${route.prefix}${DEFINITIONS}/:definition`;

    app.put(assignment, op('RoleAssignmentCreate', RoleActions.writeAssignments), async (c) => {
      const scope = scopeOf(c, route);
      const name = c.req.param('assignment')!;
      auditAs(c, 'RoleAssignmentCreate', providerPath(scope, 'roleAssignments', name));
      const input = parseBody(assignmentBody, await bodyText(c));
      const { vault } = currentVault(c);
      const created = await createRoleAssignment(c.get('services').db, vault, actor(c), scope, name, input);
      return c.json(assignmentShape(created), 201);
    });

    app.get(assignment, op('RoleAssignmentGet', RoleActions.readAssignments), async (c) => {
      const scope = scopeOf(c, route);
      const name = c.req.param('assignment')!;
      auditAs(c, 'RoleAssignmentGet', providerPath(scope, 'roleAssignments', name));
      const { vault } = currentVault(c);
      return c.json(assignmentShape(await getRoleAssignment(c.get('services').db, vault, name, scope)));
    });

    app.delete(assignment, op('RoleAssignmentDelete', RoleActions.deleteAssignments), async (c) => {
      const scope = scopeOf(c, route);
      const name = c.req.param('assignment')!;
      auditAs(c, 'RoleAssignmentDelete', providerPath(scope, 'roleAssignments', name));
      const { vault } = currentVault(c);
      return c.json(assignmentShape(await deleteRoleAssignment(c.get('services').db, vault, actor(c), name, scope)));
    });

    app.get(`${route.prefix}${ASSIGNMENTS}`, op('RoleAssignmentList', RoleActions.readAssignments), async (c) => {
      const scope = scopeOf(c, route);
      const { vault } = currentVault(c);
      const page = await listRoleAssignments(
        c.get('services').db,
        vault,
        scope,
        query(c, '$filter'),
        parsePageSize(query(c, 'maxresults')),
        query(c, '$skiptoken'),
      );
      return c.json({ value: page.items.map(assignmentShape), nextLink: nextLinkFor(c.req.url, page.next) });
    });

    app.put(definition, op('RoleDefinitionCreate', RoleActions.writeDefinitions), async (c) => {
      const scope = scopeOf(c, route);
      const name = c.req.param('definition')!;
      auditAs(c, 'RoleDefinitionCreate', providerPath(scope, 'roleDefinitions', name));
      const input = parseBody(roleDefinitionBody, await bodyText(c));
      const { vault } = currentVault(c);
      const role = await putRoleDefinition(c.get('services').db, vault, actor(c), scope, name, input);
      return c.json(roleDefinitionShape(role), 201);
    });

    app.get(definition, op('RoleDefinitionGet', RoleActions.readDefinitions), async (c) => {
      const scope = scopeOf(c, route);
      const name = c.req.param('definition')!;
      auditAs(c, 'RoleDefinitionGet', providerPath(scope, 'roleDefinitions', name));
      const { vault } = currentVault(c);
      return c.json(roleDefinitionShape(await getRoleDefinition(c.get('services').db, vault, name)));
    });

    app.delete(definition, op('RoleDefinitionDelete', RoleActions.deleteDefinitions), async (c) => {
      const scope = scopeOf(c, route);
      const name = c.req.param('definition')!;
      auditAs(c, 'RoleDefinitionDelete', providerPath(scope, 'roleDefinitions', name));
      const { vault } = currentVault(c);
      return c.json(roleDefinitionShape(await deleteRoleDefinition(c.get('services').db, vault, actor(c), name)));
    });

    app.get(`${route.prefix}${DEFINITIONS}`, op('RoleDefinitionList', RoleActions.readDefinitions), async (c) => {
      const scope = scopeOf(c, route);
      const { vault } = currentVault(c);
      const page = await listRoleDefinitions(
        c.get('services').db,
        vault,
        scope,
        query(c, '$filter'),
        parsePageSize(query(c, 'maxresults')),
        query(c, '$skiptoken'),
      );
      return c.json({ value: page.items.map(roleDefinitionShape), nextLink: nextLinkFor(c.req.url, page.next) });
    });
  }
}
