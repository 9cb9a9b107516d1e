/**
 * Management of a vault's access control settings, on the apex, administrators only: its
 * properties (authorization model, network rules, purge protection) and its access policies.
 * Switching the authorization model is audited under its own operation name,
 * VaultAuthorizationModelChange, so the audit trail shows every switch.
 */
import type { Hono } from 'hono';
import * as z from 'zod';
import { forgetAuthorization } from '../../access/authorize';
import { networkAclsOf } from '../../access/network';
import {
  deleteAccessPolicy,
  getAccessPolicy,
  listAccessPolicies,
  normalizeObjectId,
  setAccessPolicy,
  updateAccessPolicies,
  type AccessPolicy,
  type AccessPolicyUpdateKind,
} from '../../access/policies';
import { badParameter, notFound } from '../../core/errors';
import { accessPolicyChangedEvent, emitEvents, vaultOriginFor } from '../../events/event';
import { parseBody } from '../../core/validation';
import { type VaultRecord } from '../../core/vault';
import { findVault } from '../../storage/vaults';
import { updateVault } from '../../vaults/lifecycle';
import { auditAs, bodyText, noContent, type AppContext, type AppEnv } from '../context';
import { adminOperation } from '../operation';

const vaultObject = (c: AppContext) => `/vaults/${c.req.param('name')}`;
const policyObject = (c: AppContext) => `/vaults/${c.req.param('name')}/accessPolicies/${c.req.param('objectId')}`;

function policyShape(p: AccessPolicy) {
  return { tenantId: p.tenantId, objectId: p.objectId, permissions: p.permissions };
}

/** A vault as the management API shows it (Azure's property names); with its policies when given. */
export function vaultShape(c: AppContext, vault: VaultRecord, policies?: AccessPolicy[]) {
  const apex = new URL(c.get('apexOrigin'));
  return {
    id: vault.id,
    name: vault.name,
    tenantId: vault.tenantId,
    vaultUri: `${apex.protocol}//${vault.name}.${apex.host}`,
    properties: {
      enableSoftDelete: true,
      softDeleteRetentionInDays: vault.softDeleteRetentionDays,
      enablePurgeProtection: vault.purgeProtection,
      enableRbacAuthorization: vault.enableRbacAuthorization,
      networkAcls: networkAclsOf(vault),
      ...(policies ? { accessPolicies: policies.map(policyShape) } : {}),
    },
    // Not an Azure property, so beside Azure's `properties`: this service's read-cache bound.
    readCacheSeconds: vault.readCacheSeconds,
    createdAt: vault.createdAt,
  };
}

const patchFields = {
  enableRbacAuthorization: z.boolean().optional(),
  networkAcls: z.unknown().optional(),
  softDeleteRetentionInDays: z.number().int().optional(),
  enablePurgeProtection: z.boolean().optional(),
  // Validated by updateVault (0–300).
  readCacheSeconds: z.number().optional(),
};
// Top-level properties, or Azure's ARM shape {properties: {...}}. Unknown names are refused: a
// misspelt security setting must not pass silently.
const patchBody = z.union([z.object({ properties: z.object(patchFields).strict() }).strict(), z.object(patchFields).strict()]);

const policyBody = z.object({ permissions: z.unknown() }).passthrough();
const policiesBody = z.object({ properties: z.object({ accessPolicies: z.array(z.unknown()) }).passthrough() }).passthrough();

async function vaultNamed(c: AppContext): Promise<VaultRecord> {
  const name = c.req.param('name')!;
  const vault = await findVault(c.get('services').db, name);
  if (!vault) throw notFound('VaultNotFound', `Vault ${name} was not found.`);
  return vault;
}

/** Queues Microsoft.KeyVault.VaultAccessPolicyChanged off the response path (emitEvents never throws). */
function policyChanged(c: AppContext, vault: VaultRecord): void {
  const event = accessPolicyChangedEvent(vaultOriginFor(c.env.VAULT_ZONE, vault), vault, Math.floor(Date.now() / 1000));
  c.executionCtx.waitUntil(event.then((e) => emitEvents(c.env.EVENTS_QUEUE, [e])));
}

export function vaultSettingsRoutes(app: Hono<AppEnv>): void {
  app.patch('/management/vaults/:name', adminOperation('VaultPatch', vaultObject), async (c) => {
    const parsed = parseBody(patchBody, await bodyText(c));
    const update = 'properties' in parsed ? parsed.properties : parsed;
    const { db } = c.get('services');
    const { before, after } = await updateVault(db, c.req.param('name'), update);
    if (before.enableRbacAuthorization !== after.enableRbacAuthorization) {
      auditAs(c, 'VaultAuthorizationModelChange', `/vaults/${after.name}`);
      forgetAuthorization(after.id);
    }
    return c.json(vaultShape(c, after, await listAccessPolicies(db, after)));
  });

  app.get('/management/vaults/:name/accessPolicies', adminOperation('VaultAccessPolicyList', vaultObject), async (c) => {
    const vault = await vaultNamed(c);
    const policies = await listAccessPolicies(c.get('services').db, vault);
    return c.json({ value: policies.map(policyShape), nextLink: null });
  });

  // Azure's Vaults - Update Access Policy: PUT …/accessPolicies/{add|replace|remove}.
  app.put(
    '/management/vaults/:name/accessPolicies/:kind{add|replace|remove}',
    adminOperation('VaultAccessPolicyUpdate', vaultObject),
    async (c) => {
      const kind = c.req.param('kind') as AccessPolicyUpdateKind;
      const { properties } = parseBody(policiesBody, await bodyText(c));
      const vault = await vaultNamed(c);
      const policies = await updateAccessPolicies(c.get('services').db, vault, kind, properties.accessPolicies);
      policyChanged(c, vault);
      return c.json({ properties: { accessPolicies: policies.map(policyShape) } });
    },
  );

  app.get(
    '/management/vaults/:name/accessPolicies/:objectId',
    adminOperation('VaultAccessPolicyGet', policyObject),
    async (c) => {
      const vault = await vaultNamed(c);
      const objectId = normalizeObjectId(c.req.param('objectId'));
      const policy = await getAccessPolicy(c.get('services').db, vault, objectId);
      if (!policy) throw notFound('NotFound', `Vault ${vault.name} has no access policy for ${objectId}.`);
      return c.json(policyShape(policy));
    },
  );

  app.put(
    '/management/vaults/:name/accessPolicies/:objectId',
    adminOperation('VaultAccessPolicyUpdate', policyObject),
    async (c) => {
      const { permissions } = parseBody(policyBody, await bodyText(c));
      if (permissions === undefined) throw badParameter('permissions is required: {keys, secrets, certificates}.');
      const vault = await vaultNamed(c);
      const { policy, created } = await setAccessPolicy(c.get('services').db, vault, c.req.param('objectId'), permissions);
      policyChanged(c, vault);
      return c.json(policyShape(policy), created ? 201 : 200);
    },
  );

  app.delete(
    '/management/vaults/:name/accessPolicies/:objectId',
    adminOperation('VaultAccessPolicyDelete', policyObject),
    async (c) => {
      const vault = await vaultNamed(c);
      await deleteAccessPolicy(c.get('services').db, vault, c.req.param('objectId'));
      policyChanged(c, vault);
      return noContent(c);
    },
  );
}
