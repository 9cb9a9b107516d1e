import type { Hono } from 'hono';
import { authorize, SecretActions, type DataAction } from '../../vault/authorize';
import { SecretStore } from '../../vault/secrets';
import { parseBody, parseMaxResults, restoreBody, setSecretBody, updateSecretBody } from '../../vault/validation';
import { auditAs, authenticated, bodyText, currentVault, type AppContext, type AppEnv } from '../context';
import { listBody, secretBundle, secretItem } from '../shapes';

/**
 * The Secrets API routes: each one names its audit operation, asks the one authorization
 * function, calls the vault logic and renders Azure's shape. Nothing else happens here.
 */
function begin(c: AppContext, operation: string, action: DataAction, name?: string) {
  const path = name === undefined ? '/secrets' : `/secrets/${name}`;
  auditAs(c, operation, name === undefined ? null : path);
  const { caller, tenantId } = authenticated(c);
  const { vault, origin } = currentVault(c);
  authorize(caller, action, { vaultName: vault.name, tenantId, path });
  const { db, keys } = c.get('services');
  return { store: new SecretStore(db, keys, vault), vault, origin };
}

function listParams(c: AppContext) {
  return { max: parseMaxResults(c.req.query('maxresults')), skip: c.req.query('$skiptoken') || undefined };
}

export function secretRoutes(app: Hono<AppEnv>): void {
  app.put('/secrets/:name', async (c) => {
    const name = c.req.param('name');
    const { store, vault, origin } = begin(c, 'SecretSet', SecretActions.set, name);
    const input = parseBody(setSecretBody, await bodyText(c));
    return c.json(secretBundle(origin, vault, await store.set(name, input)));
  });

  app.get('/secrets', async (c) => {
    const { store, vault, origin } = begin(c, 'SecretList', SecretActions.readMetadata);
    const { max, skip } = listParams(c);
    const page = await store.list(max, skip);
    const items = page.items.map((r) => secretItem(origin, vault, r, false));
    return c.json(listBody(items, page.next, c.req.url, c.get('apiVersion')!, max));
  });

  app.get('/secrets/:name/versions', async (c) => {
    const name = c.req.param('name');
    const { store, vault, origin } = begin(c, 'SecretListVersions', SecretActions.readMetadata, name);
    const { max, skip } = listParams(c);
    const page = await store.listVersions(name, max, skip);
    const items = page.items.map((r) => secretItem(origin, vault, r, true));
    return c.json(listBody(items, page.next, c.req.url, c.get('apiVersion')!, max));
  });

  app.post('/secrets/restore', async (c) => {
    const { store, vault, origin } = begin(c, 'SecretRestore', SecretActions.restore);
    const { value } = parseBody(restoreBody, await bodyText(c, 4 * 1024 * 1024));
    const restored = await store.restore(value);
    auditAs(c, 'SecretRestore', `/secrets/${restored.name}`);
    return c.json(secretBundle(origin, vault, restored));
  });

  app.post('/secrets/:name/backup', async (c) => {
    const name = c.req.param('name');
    const { store } = begin(c, 'SecretBackup', SecretActions.backup, name);
    return c.json({ value: await store.backup(name) });
  });

  app.get('/secrets/:name/:version?', async (c) => {
    const name = c.req.param('name');
    const { store, vault, origin } = begin(c, 'SecretGet', SecretActions.get, name);
    return c.json(secretBundle(origin, vault, await store.get(name, c.req.param('version') || undefined)));
  });

  app.patch('/secrets/:name/:version?', async (c) => {
    const name = c.req.param('name');
    const { store, vault, origin } = begin(c, 'SecretUpdate', SecretActions.update, name);
    const input = parseBody(updateSecretBody, await bodyText(c));
    return c.json(secretBundle(origin, vault, await store.update(name, c.req.param('version') || undefined, input)));
  });

  app.delete('/secrets/:name', async (c) => {
    const name = c.req.param('name');
    const { store, vault, origin } = begin(c, 'SecretDelete', SecretActions.delete, name);
    return c.json(secretBundle(origin, vault, await store.delete(name)));
  });

  app.get('/deletedsecrets', async (c) => {
    const { store, vault, origin } = begin(c, 'SecretListDeleted', SecretActions.readDeleted);
    const { max, skip } = listParams(c);
    const page = await store.listDeleted(max, skip);
    const items = page.items.map((r) => secretItem(origin, vault, r, false));
    return c.json(listBody(items, page.next, c.req.url, c.get('apiVersion')!, max));
  });

  app.get('/deletedsecrets/:name', async (c) => {
    const name = c.req.param('name');
    const { store, vault, origin } = begin(c, 'SecretGetDeleted', SecretActions.readDeleted, name);
    return c.json(secretBundle(origin, vault, await store.getDeleted(name)));
  });

  app.delete('/deletedsecrets/:name', async (c) => {
    const name = c.req.param('name');
    const { store } = begin(c, 'SecretPurge', SecretActions.purge, name);
    await store.purge(name);
    return c.body(null, 204);
  });

  app.post('/deletedsecrets/:name/recover', async (c) => {
    const name = c.req.param('name');
    const { store, vault, origin } = begin(c, 'SecretRecover', SecretActions.recover, name);
    return c.json(secretBundle(origin, vault, await store.recover(name)));
  });
}
