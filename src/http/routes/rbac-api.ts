/**
 * The role assignment and role definition API (Managed HSM's data-plane shape), written once and
 * mounted twice: on each vault host under every scope prefix (rbac.ts), and on the apex under
 * `/management/vaults/{vault}` for the deployment's administrators (management-rbac.ts). Routes,
 * bodies, answers and audit names are the same on both; what differs is supplied by the mount:
 *
 *   PUT|GET|DELETE {mount}/providers/Microsoft.Authorization/roleAssignments/{guid}
 *   GET            {mount}/providers/Microsoft.Authorization/roleAssignments[?$filter=…]
 *   PUT|GET|DELETE {mount}/providers/Microsoft.Authorization/roleDefinitions/{guid}
 *   GET            {mount}/providers/Microsoft.Authorization/roleDefinitions[?$filter=…]
 */
import { Hono, type MiddlewareHandler } from 'hono';
import {
  assignmentBody,
  assignmentShape,
  createRoleAssignment,
  deleteRoleAssignment,
  getRoleAssignment,
  listRoleAssignments,
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
import { RoleActions, type DataAction } from '../../core/data-actions';
import { parseBody } from '../../core/validation';
import type { VaultRecord } from '../../core/vault';
import { bodyText, type AppContext, type AppEnv } from '../context';

export type RbacKind = 'roleAssignments' | 'roleDefinitions';

/** What a request acts on, as its mount resolves it. */
export interface RbacTarget {
  vault: VaultRecord;
  actor: Actor;
  /**
   * The scope to create or list at. A function: the management mount reads it from the query
   * only once the body is parsed, as it always has, so a request wrong in both keeps its error.
   */
  scope(): string;
  /** The scope to find one assignment at; undefined: wherever it is. */
  lookupScope(): string | undefined;
}

/** What one mount supplies: the guard of each operation and how a request names its target. */
export interface RbacMount {
  /** Middleware run before the handler: audit name, authentication, the authorization decision. */
  guard(operation: string, action: DataAction, kind: RbacKind, param?: 'assignment' | 'definition'): MiddlewareHandler<AppEnv>;
  /** The vault, actor and scope of the request; `name` is the object's name for one-object operations. */
  target(c: AppContext, operation: string, kind: RbacKind, name?: string): Promise<RbacTarget>;
}

const AUTH = '/providers/Microsoft.Authorization';
const ASSIGNMENTS = `${AUTH}/roleAssignments`;
const DEFINITIONS = `${AUTH}/roleDefinitions`;

function query(c: AppContext, name: string): string | null {
  return new URL(c.req.url).searchParams.get(name);
}

function page(c: AppContext) {
  return [query(c, '$filter'), parsePageSize(query(c, 'maxresults')), query(c, '$skiptoken')] as const;
}

/** The API as a Hono sub-app for `app.route(prefix, rbacApi(mount))`. */
export function rbacApi(mount: RbacMount): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const db = (c: AppContext) => c.get('services').db;

  app.put(
    `${ASSIGNMENTS}/:assignment`,
    mount.guard('RoleAssignmentCreate', RoleActions.writeAssignments, 'roleAssignments', 'assignment'),
    async (c) => {
      const name = c.req.param('assignment');
      const at = await mount.target(c, 'RoleAssignmentCreate', 'roleAssignments', name);
      const input = parseBody(assignmentBody, await bodyText(c));
      return c.json(assignmentShape(await createRoleAssignment(db(c), at.vault, at.actor, at.scope(), name, input)), 201);
    },
  );

  app.get(
    `${ASSIGNMENTS}/:assignment`,
    mount.guard('RoleAssignmentGet', RoleActions.readAssignments, 'roleAssignments', 'assignment'),
    async (c) => {
      const name = c.req.param('assignment');
      const at = await mount.target(c, 'RoleAssignmentGet', 'roleAssignments', name);
      return c.json(assignmentShape(await getRoleAssignment(db(c), at.vault, name, at.lookupScope())));
    },
  );

  app.delete(
    `${ASSIGNMENTS}/:assignment`,
    mount.guard('RoleAssignmentDelete', RoleActions.deleteAssignments, 'roleAssignments', 'assignment'),
    async (c) => {
      const name = c.req.param('assignment');
      const at = await mount.target(c, 'RoleAssignmentDelete', 'roleAssignments', name);
      return c.json(assignmentShape(await deleteRoleAssignment(db(c), at.vault, at.actor, name, at.lookupScope())));
    },
  );

  app.get(ASSIGNMENTS, mount.guard('RoleAssignmentList', RoleActions.readAssignments, 'roleAssignments'), async (c) => {
    const at = await mount.target(c, 'RoleAssignmentList', 'roleAssignments');
    const result = await listRoleAssignments(db(c), at.vault, at.scope(), ...page(c));
    return c.json({ value: result.items.map(assignmentShape), nextLink: nextLinkFor(c.req.url, result.next) });
  });

  app.put(
    `${DEFINITIONS}/:definition`,
    mount.guard('RoleDefinitionCreate', RoleActions.writeDefinitions, 'roleDefinitions', 'definition'),
    async (c) => {
      const name = c.req.param('definition');
      const at = await mount.target(c, 'RoleDefinitionCreate', 'roleDefinitions', name);
      const input = parseBody(roleDefinitionBody, await bodyText(c));
      return c.json(roleDefinitionShape(await putRoleDefinition(db(c), at.vault, at.actor, at.scope(), name, input)), 201);
    },
  );

  app.get(
    `${DEFINITIONS}/:definition`,
    mount.guard('RoleDefinitionGet', RoleActions.readDefinitions, 'roleDefinitions', 'definition'),
    async (c) => {
      const name = c.req.param('definition');
      const at = await mount.target(c, 'RoleDefinitionGet', 'roleDefinitions', name);
      return c.json(roleDefinitionShape(await getRoleDefinition(db(c), at.vault, name)));
    },
  );

  app.delete(
    `${DEFINITIONS}/:definition`,
    mount.guard('RoleDefinitionDelete', RoleActions.deleteDefinitions, 'roleDefinitions', 'definition'),
    async (c) => {
      const name = c.req.param('definition');
      const at = await mount.target(c, 'RoleDefinitionDelete', 'roleDefinitions', name);
      return c.json(roleDefinitionShape(await deleteRoleDefinition(db(c), at.vault, at.actor, name)));
    },
  );

  app.get(DEFINITIONS, mount.guard('RoleDefinitionList', RoleActions.readDefinitions, 'roleDefinitions'), async (c) => {
    const at = await mount.target(c, 'RoleDefinitionList', 'roleDefinitions');
    const result = await listRoleDefinitions(db(c), at.vault, at.scope(), ...page(c));
    return c.json({ value: result.items.map(roleDefinitionShape), nextLink: nextLinkFor(c.req.url, result.next) });
  });

  return app;
}
