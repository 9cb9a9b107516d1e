/**
 * The management API on the apex: bootstrap, applications and their secrets, and vaults.
 * Administrators only.
 */
import type { Hono } from 'hono';
import * as z from 'zod';
import { bridgeStats } from '../../crypto/bridge-client';
import {
  addClientSecret,
  createApplication,
  deleteApplication,
  getApplication,
  listApplications,
  listClientSecrets,
  removeClientSecret,
  type Application,
} from '../../identity/applications';
import { bootstrap } from '../../identity/bootstrap';
import { dataKeyCache } from '../../crypto/services';
import { d1Stats } from '../../storage/db';
import { clearIsolateCaches } from '../../core/cache';
import { conflict, notFound } from '../../core/errors';
import { parseBody } from '../../core/validation';
import { listAccessPolicies } from '../../access/policies';
import { findVault } from '../../storage/vaults';
import { createVault, deleteVault, listVaults } from '../../vaults/lifecycle';
import { auditAs, authenticated, bodyText, noContent, type AppContext, type AppEnv } from '../context';
import { adminOperation } from '../operation';
import { vaultShape } from './management-vault-settings';

/** Management API on the apex: applications, their secrets, and vaults. Administrators only. */

const appObject = (c: AppContext) => `/applications/${c.req.param('clientId')}`;
const vaultObject = (c: AppContext) => `/vaults/${c.req.param('name')}`;

const createAppBody = z.object({
  displayName: z.string().min(1).max(256),
  isAdmin: z.boolean().optional(),
  expiresInDays: z.number().int().optional(),
});
const addSecretBody = z.object({ expiresInDays: z.number().int().optional(), endDateTime: z.string().optional() });
const vaultBody = z.object({
  softDeleteRetentionInDays: z.number().int().optional(),
  enablePurgeProtection: z.boolean().optional(),
  // Validated by createVault (Azure's shapes).
  enableRbacAuthorization: z.boolean().optional(),
  networkAcls: z.unknown().optional(),
  accessPolicies: z.unknown().optional(),
  readCacheSeconds: z.number().optional(),
});

function appShape(app: Application) {
  return {
    clientId: app.clientId,
    objectId: app.objectId,
    tenantId: app.tenantId,
    displayName: app.displayName,
    isAdmin: app.isAdmin,
    createdAt: app.createdAt,
  };
}

const optionalJson = async (c: AppContext) => {
  const text = await bodyText(c);
  return text.trim() === '' ? '{}' : text;
};

export function managementRoutes(app: Hono<AppEnv>): void {
  app.post('/management/bootstrap', async (c) => {
    auditAs(c, 'Bootstrap');
    const presented = /^Bootstrap\s+(.+)$/i.exec(c.req.header('authorization') ?? '')?.[1];
    const { db, keys } = c.get('services');
    const result = await bootstrap(db, keys, c.env.BOOTSTRAP_SECRET, presented);
    c.header('Cache-Control', 'no-store');
    return c.json(
      { tenantId: result.tenantId, clientId: result.app.clientId, clientSecret: result.clientSecret, secretId: result.secret.id },
      201,
    );
  });

  app.post('/management/applications', adminOperation('ApplicationCreate'), async (c) => {
    const input = parseBody(createAppBody, await bodyText(c));
    const { tenantId } = authenticated(c);
    const created = await createApplication(c.get('services').db, tenantId, input);
    auditAs(c, 'ApplicationCreate', `/applications/${created.app.clientId}`);
    c.header('Cache-Control', 'no-store');
    return c.json({ ...appShape(created.app), clientSecret: created.clientSecret, secret: created.secret }, 201);
  });

  app.get('/management/applications', adminOperation('ApplicationList'), async (c) => {
    const apps = await listApplications(c.get('services').db);
    return c.json({ value: apps.map(appShape), nextLink: null });
  });

  app.get('/management/applications/:clientId', adminOperation('ApplicationGet', appObject), async (c) => {
    const clientId = c.req.param('clientId');
    const { db } = c.get('services');
    const app = await getApplication(db, clientId);
    if (!app) throw notFound('NotFound', `Application ${clientId} was not found.`);
    return c.json({ ...appShape(app), secrets: await listClientSecrets(db, clientId) });
  });

  app.delete('/management/applications/:clientId', adminOperation('ApplicationDelete', appObject), async (c) => {
    const clientId = c.req.param('clientId');
    // Deleting yourself would lock the caller out mid-session; another administrator must do it.
    if (clientId === authenticated(c).caller.appId) throw conflict('An application cannot delete itself.');
    await deleteApplication(c.get('services').db, clientId);
    return noContent(c);
  });

  app.post('/management/applications/:clientId/secrets', adminOperation('ApplicationSecretAdd', appObject), async (c) => {
    const clientId = c.req.param('clientId');
    const expiry = parseBody(addSecretBody, await optionalJson(c));
    const added = await addClientSecret(c.get('services').db, clientId, expiry);
    c.header('Cache-Control', 'no-store');
    return c.json({ clientSecret: added.clientSecret, secret: added.secret }, 201);
  });

  app.delete(
    '/management/applications/:clientId/secrets/:secretId',
    adminOperation('ApplicationSecretRemove', appObject),
    async (c) => {
      const clientId = c.req.param('clientId');
      await removeClientSecret(c.get('services').db, clientId, c.req.param('secretId'));
      return noContent(c);
    },
  );

  app.put('/management/vaults/:name', adminOperation('VaultCreate', vaultObject), async (c) => {
    const name = c.req.param('name');
    const input = parseBody(vaultBody, await optionalJson(c));
    const { tenantId, caller } = authenticated(c);
    const { db, keys } = c.get('services');
    // The creating administrator becomes the vault's Key Vault Administrator.
    const vault = await createVault(db, keys, tenantId, { name, ...input }, caller.objectId);
    return c.json(vaultShape(c, vault, await listAccessPolicies(db, vault)), 201);
  });

  app.get('/management/vaults', adminOperation('VaultList'), async (c) => {
    const vaults = await listVaults(c.get('services').db, undefined, 1000);
    return c.json({ value: vaults.map((v) => vaultShape(c, v)), nextLink: null });
  });

  app.get('/management/vaults/:name', adminOperation('VaultGet', vaultObject), async (c) => {
    const name = c.req.param('name');
    const { db } = c.get('services');
    const vault = await findVault(db, name);
    if (!vault) throw notFound('VaultNotFound', `Vault ${name} was not found.`);
    return c.json(vaultShape(c, vault, await listAccessPolicies(db, vault)));
  });

  app.delete('/management/vaults/:name', adminOperation('VaultDelete', vaultObject), async (c) => {
    const name = c.req.param('name');
    const { db, bridge } = c.get('services');
    await deleteVault(db, bridge, name);
    return noContent(c);
  });

  /**
   * Drops this isolate's caches (vault records, authorization data, data keys, issuer keys): the
   * next requests here read D1 and the bridge again. Only the isolate that serves this request is
   * affected; the concurrency tests use it to make a burst cold.
   */
  app.delete('/management/caches', adminOperation('IsolateCachesClear'), (c) => {
    clearIsolateCaches();
    return noContent(c);
  });

  /** Per-isolate counters: how the tests and the benchmark check the hot path's round trips. */
  app.get('/management/stats', adminOperation('StatsGet'), (c) => {
    return c.json({
      d1Statements: d1Stats.statements,
      d1AuditStatements: d1Stats.auditStatements,
      // The caches' background renewals: D1 work no request waited on (src/core/cache.ts).
      d1RefreshStatements: d1Stats.refreshStatements,
      bridgeCalls: bridgeStats.calls,
      dataKeyCache: { size: dataKeyCache.size, hits: dataKeyCache.hits, misses: dataKeyCache.misses },
    });
  });
}
