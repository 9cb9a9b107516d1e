import type { Hono } from 'hono';
import {
  assignmentBody,
  assignmentShape,
  createRoleAssignment,
  deleteRoleAssignment,
  getRoleAssignment,
  listRoleAssignments,
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
import { parseScope } from '../../access/scopes';
import { notFound } from '../../core/errors';
import { parseBody } from '../../core/validation';
import { type VaultRecord } from '../../core/vault';
import { findVault } from '../../storage/vaults';
import { bodyText, type AppContext, type AppEnv } from '../context';
import { adminOperation } from '../operation';

/**
 * The same role assignments and definitions through the management API, for the deployment's
 * administrators (who are not subject to the vault-level escalation rules: they own the
 * deployment). The vault is in the path, the scope in `?scope=` (default '/'):
 *
 *   PUT|GET|DELETE /management/vaults/{vault}/providers/Microsoft.Authorization/roleAssignments/{guid}[?scope=/keys]
 *   GET            /management/vaults/{vault}/providers/Microsoft.Authorization/roleAssignments[?scope=…&$filter=…]
 *   PUT|GET|DELETE /management/vaults/{vault}/providers/Microsoft.Authorization/roleDefinitions/{guid}[?scope=…]
 *   GET            /management/vaults/{vault}/providers/Microsoft.Authorization/roleDefinitions[?scope=…&$filter=…]
 *
 * Bodies and answers are the data plane's. GET and DELETE of one assignment find it by name
 * wherever it is, unless `scope` is given.
 */

const BASE = '/management/vaults/:vault/providers/Microsoft.Authorization';

const object = (kind: string, param?: string) => (c: AppContext) =>
  `/vaults/${c.req.param('vault')}/providers/Microsoft.Authorization/${kind}${param ? `/${c.req.param(param)}` : ''}`;

function query(c: AppContext, name: string): string | null {
  return new URL(c.req.url).searchParams.get(name);
}

/** `?scope=`, canonical; '/' when absent. */
const scopeParam = (c: AppContext) => parseScope(query(c, 'scope') ?? '/');
/** `?scope=` only when given. */
const optionalScope = (c: AppContext) => (query(c, 'scope') === null ? undefined : scopeParam(c));

async function vaultOf(c: AppContext): Promise<VaultRecord> {
  const name = c.req.param('vault')!;
  const vault = await findVault(c.get('services').db, name);
  if (!vault) throw notFound('VaultNotFound', `Vault ${name} was not found.`);
  return vault;
}

const ADMIN = { kind: 'administrator' } as const;

export function managementRbacRoutes(app: Hono<AppEnv>): void {
  app.put(`${BASE}/roleAssignments/:assignment`, adminOperation('RoleAssignmentCreate', object('roleAssignments', 'assignment')), async (c) => {
    const vault = await vaultOf(c);
    const input = parseBody(assignmentBody, await bodyText(c));
    const created = await createRoleAssignment(c.get('services').db, vault, ADMIN, scopeParam(c), c.req.param('assignment'), input);
    return c.json(assignmentShape(created), 201);
  });

  app.get(`${BASE}/roleAssignments/:assignment`, adminOperation('RoleAssignmentGet', object('roleAssignments', 'assignment')), async (c) => {
    const vault = await vaultOf(c);
    return c.json(assignmentShape(await getRoleAssignment(c.get('services').db, vault, c.req.param('assignment'), optionalScope(c))));
  });

  app.delete(`${BASE}/roleAssignments/:assignment`, adminOperation('RoleAssignmentDelete', object('roleAssignments', 'assignment')), async (c) => {
    const vault = await vaultOf(c);
    const deleted = await deleteRoleAssignment(c.get('services').db, vault, ADMIN, c.req.param('assignment'), optionalScope(c));
    return c.json(assignmentShape(deleted));
  });

  app.get(`${BASE}/roleAssignments`, adminOperation('RoleAssignmentList', object('roleAssignments')), async (c) => {
    const vault = await vaultOf(c);
    const page = await listRoleAssignments(
      c.get('services').db,
      vault,
      scopeParam(c),
      query(c, '$filter'),
      parsePageSize(query(c, 'maxresults')),
      query(c, '$skiptoken'),
    );
    return c.json({ value: page.items.map(assignmentShape), nextLink: nextLinkFor(c.req.url, page.next) });
  });

  app.put(`${BASE}/roleDefinitions/:definition`, adminOperation('RoleDefinitionCreate', object('roleDefinitions', 'definition')), async (c) => {
    const vault = await vaultOf(c);
    const input = parseBody(roleDefinitionBody, await bodyText(c));
    const role = await putRoleDefinition(c.get('services').db, vault, ADMIN, scopeParam(c), c.req.param('definition'), input);
    return c.json(roleDefinitionShape(role), 201);
  });

  app.get(`${BASE}/roleDefinitions/:definition`, adminOperation('RoleDefinitionGet', object('roleDefinitions', 'definition')), async (c) => {
    const vault = await vaultOf(c);
    return c.json(roleDefinitionShape(await getRoleDefinition(c.get('services').db, vault, c.req.param('definition'))));
  });

  app.delete(`${BASE}/roleDefinitions/:definition`, adminOperation('RoleDefinitionDelete', object('roleDefinitions', 'definition')), async (c) => {
    const vault = await vaultOf(c);
    return c.json(roleDefinitionShape(await deleteRoleDefinition(c.get('services').db, vault, ADMIN, c.req.param('definition'))));
  });

  app.get(`${BASE}/roleDefinitions`, adminOperation('RoleDefinitionList', object('roleDefinitions')), async (c) => {
    const vault = await vaultOf(c);
    const page = await listRoleDefinitions(
      c.get('services').db,
      vault,
      scopeParam(c),
      query(c, '$filter'),
      parsePageSize(query(c, 'maxresults')),
      query(c, '$skiptoken'),
    );
    return c.json({ value: page.items.map(roleDefinitionShape), nextLink: nextLinkFor(c.req.url, page.next) });
  });
}
