/**
 * The Secrets API routes: each declares its operation (audit name, data action, object), then
 * calls the vault logic and renders Azure's shape. Nothing else happens here.
 */
import type { Hono } from 'hono';
import { SecretActions, type DataAction } from '../../core/data-actions';
import { emitEvents, newVersionEvent } from '../../events/event';
import { SecretStore, type SecretRecord } from '../../objects/secrets';
import { parseBody, parseMaxResults, restoreBody, setSecretBody, updateSecretBody } from '../../core/validation';
import { auditAs, bodyText, currentVault, noContent, type AppContext, type AppEnv } from '../context';
import { vaultOperation } from '../operation';
import { listBody, secretBundle, secretItem } from '../shapes';

const one = (operation: string, action: DataAction) => vaultOperation(operation, action, '/secrets', true);
const all = (operation: string, action: DataAction) => vaultOperation(operation, action, '/secrets', false);

function begin(c: AppContext) {
  const { vault, origin } = currentVault(c);
  const { db, keys } = c.get('services');
  return { store: new SecretStore(db, keys, vault), vault, origin };
}

/** SecretNewVersionCreated, queued after the answer (see src/events); the event carries no value. */
function announceNewVersion(c: AppContext, record: SecretRecord): void {
  const { vault, origin } = currentVault(c);
  c.executionCtx.waitUntil(
    newVersionEvent(origin, vault, record, 'Secret').then((event) => emitEvents(c.env.EVENTS_QUEUE, [event])),
  );
}

function listParams(c: AppContext) {
  return { max: parseMaxResults(c.req.query('maxresults')), skip: c.req.query('$skiptoken') || undefined };
}

export function secretRoutes(app: Hono<AppEnv>): void {
  app.put('/secrets/:name', one('SecretSet', SecretActions.set), async (c) => {
    const name = c.req.param('name');
    const { store, vault, origin } = begin(c);
    const input = parseBody(setSecretBody, await bodyText(c));
    const record = await store.set(name, input);
    announceNewVersion(c, record);
    return c.json(secretBundle(origin, vault, record));
  });

  app.get('/secrets', all('SecretList', SecretActions.readMetadata), async (c) => {
    const { store, vault, origin } = begin(c);
    const { max, skip } = listParams(c);
    const page = await store.list(max, skip);
    const items = page.items.map((r) => secretItem(origin, vault, r, false));
    return c.json(listBody(items, page.next, c.req.url, c.get('apiVersion')!, max));
  });

  app.get('/secrets/:name/versions', one('SecretListVersions', SecretActions.readMetadata), async (c) => {
    const name = c.req.param('name');
    const { store, vault, origin } = begin(c);
    const { max, skip } = listParams(c);
    const page = await store.listVersions(name, max, skip);
    const items = page.items.map((r) => secretItem(origin, vault, r, true));
    return c.json(listBody(items, page.next, c.req.url, c.get('apiVersion')!, max));
  });

  app.post('/secrets/restore', all('SecretRestore', SecretActions.restore), async (c) => {
    const { store, vault, origin } = begin(c);
    const { value } = parseBody(restoreBody, await bodyText(c, 4 * 1024 * 1024));
    const restored = await store.restore(value);
    auditAs(c, 'SecretRestore', `/secrets/${restored.name}`);
    // The restored latest version becomes the secret's current one: announced as new.
    announceNewVersion(c, restored);
    return c.json(secretBundle(origin, vault, restored));
  });

  app.post('/secrets/:name/backup', one('SecretBackup', SecretActions.backup), async (c) => {
    const name = c.req.param('name');
    const { store } = begin(c);
    return c.json({ value: await store.backup(name) });
  });

  app.get('/secrets/:name/:version?', one('SecretGet', SecretActions.get), async (c) => {
    const name = c.req.param('name');
    const { store, vault, origin } = begin(c);
    return c.json(secretBundle(origin, vault, await store.get(name, c.req.param('version') || undefined)));
  });

  app.patch('/secrets/:name/:version?', one('SecretUpdate', SecretActions.update), async (c) => {
    const name = c.req.param('name');
    const { store, vault, origin } = begin(c);
    const input = parseBody(updateSecretBody, await bodyText(c));
    return c.json(secretBundle(origin, vault, await store.update(name, c.req.param('version') || undefined, input)));
  });

  app.delete('/secrets/:name', one('SecretDelete', SecretActions.delete), async (c) => {
    const name = c.req.param('name');
    const { store, vault, origin } = begin(c);
    return c.json(secretBundle(origin, vault, await store.delete(name)));
  });

  app.get('/deletedsecrets', all('SecretListDeleted', SecretActions.readDeleted), async (c) => {
    const { store, vault, origin } = begin(c);
    const { max, skip } = listParams(c);
    const page = await store.listDeleted(max, skip);
    const items = page.items.map((r) => secretItem(origin, vault, r, false));
    return c.json(listBody(items, page.next, c.req.url, c.get('apiVersion')!, max));
  });

  app.get('/deletedsecrets/:name', one('SecretGetDeleted', SecretActions.get), async (c) => {
    const name = c.req.param('name');
    const { store, vault, origin } = begin(c);
    return c.json(secretBundle(origin, vault, await store.getDeleted(name)));
  });

  app.delete('/deletedsecrets/:name', one('SecretPurge', SecretActions.purge), async (c) => {
    const name = c.req.param('name');
    const { store } = begin(c);
    await store.purge(name);
    return noContent(c);
  });

  app.post('/deletedsecrets/:name/recover', one('SecretRecover', SecretActions.recover), async (c) => {
    const name = c.req.param('name');
    const { store, vault, origin } = begin(c);
    return c.json(secretBundle(origin, vault, await store.recover(name)));
  });
}
