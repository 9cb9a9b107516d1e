/**
 * The Keys API routes, declared like the secrets routes: operation, data action, object; then the
 * vault logic, then Azure's shape.
 */
import type { Hono } from 'hono';
import { toBase64Url } from '../../core/encoding';
import { emitEvents, newVersionEvent } from '../../events/event';
import { KeyActions, type DataAction } from '../../core/data-actions';
import { KeyOperations, type OperationResult } from '../../objects/key-operations';
import {
  createKeyBody,
  importKeyBody,
  keyOperationBody,
  randomBody,
  signBody,
  updateKeyBody,
  verifyBody,
} from '../../objects/key-validation';
import { KeyStore, type KeyRecord } from '../../objects/keys';
import { parseBody, parseMaxResults, restoreBody } from '../../core/validation';
import { auditAs, bodyText, currentVault, noContent, type AppContext, type AppEnv } from '../context';
import { vaultOperation } from '../operation';
import { keyBundle, keyItem, listBody } from '../shapes';

const one = (operation: string, action: DataAction) => vaultOperation(operation, action, '/keys', true);
const all = (operation: string, action: DataAction) => vaultOperation(operation, action, '/keys', false);

function begin(c: AppContext) {
  const { vault, origin } = currentVault(c);
  const { db, keys, bridge } = c.get('services');
  const store = new KeyStore(db, keys, bridge, vault);
  return { store, vault, origin, ops: new KeyOperations(store, bridge) };
}

/** KeyNewVersionCreated, queued after the answer (see src/events). */
export function announceNewVersion(c: AppContext, record: KeyRecord): void {
  const { vault, origin } = currentVault(c);
  c.executionCtx.waitUntil(newVersionEvent(origin, vault, record).then((event) => emitEvents(c.env.EVENTS_QUEUE, [event])));
}

/** Name and optional version of an operation route (its path is built, so Hono cannot type it). */
function target(c: AppContext): [string, string | undefined] {
  return [c.req.param('name')!, c.req.param('version') || undefined];
}

function listParams(c: AppContext) {
  return { max: parseMaxResults(c.req.query('maxresults')), skip: c.req.query('$skiptoken') || undefined };
}

/** KeyOperationResult: base64url bytes, with iv/tag/aad for the symmetric algorithms. */
function operationBody(origin: string, r: OperationResult) {
  return {
    kid: `${origin}/keys/${r.record.name}/${r.record.version}`,
    value: toBase64Url(r.value),
    ...(r.iv ? { iv: toBase64Url(r.iv) } : {}),
    ...(r.tag ? { tag: toBase64Url(r.tag) } : {}),
    ...(r.aad ? { aad: toBase64Url(r.aad) } : {}),
  };
}

type Operation = 'encrypt' | 'decrypt' | 'wrapkey' | 'unwrapkey';
const OPERATIONS: Record<Operation, { audit: string; action: DataAction; run: 'encrypt' | 'decrypt' | 'wrapKey' | 'unwrapKey' }> =
  {
    encrypt: { audit: 'KeyEncrypt', action: KeyActions.encrypt, run: 'encrypt' },
    decrypt: { audit: 'KeyDecrypt', action: KeyActions.decrypt, run: 'decrypt' },
    wrapkey: { audit: 'KeyWrap', action: KeyActions.wrap, run: 'wrapKey' },
    unwrapkey: { audit: 'KeyUnwrap', action: KeyActions.unwrap, run: 'unwrapKey' },
  };

/** The operations are addressed with a version, or without one (the latest). */
const withVersion = (op: string) => [`/keys/:name/:version/${op}`, `/keys/:name/${op}`];

export function keyRoutes(app: Hono<AppEnv>): void {
  app.post('/keys/restore', all('KeyRestore', KeyActions.restore), async (c) => {
    const { store, vault, origin } = begin(c);
    const { value } = parseBody(restoreBody, await bodyText(c, 4 * 1024 * 1024));
    const restored = await store.restore(value);
    auditAs(c, 'KeyRestore', `/keys/${restored.name}`);
    // The restored latest version becomes the key's current one: announced as new.
    announceNewVersion(c, restored);
    return c.json(keyBundle(origin, vault, restored));
  });

  app.post('/keys/:name/create', one('KeyCreate', KeyActions.create), async (c) => {
    const { store, vault, origin } = begin(c);
    const input = parseBody(createKeyBody, await bodyText(c));
    const record = await store.create(c.req.param('name'), input);
    announceNewVersion(c, record);
    return c.json(keyBundle(origin, vault, record));
  });

  app.put('/keys/:name', one('KeyImport', KeyActions.import), async (c) => {
    const { store, vault, origin } = begin(c);
    const input = parseBody(importKeyBody, await bodyText(c));
    const record = await store.import(c.req.param('name'), input);
    announceNewVersion(c, record);
    return c.json(keyBundle(origin, vault, record));
  });

  app.get('/keys', all('KeyList', KeyActions.read), async (c) => {
    const { store, vault, origin } = begin(c);
    const { max, skip } = listParams(c);
    const page = await store.list(max, skip);
    const items = page.items.map((r) => keyItem(origin, vault, r, false));
    return c.json(listBody(items, page.next, c.req.url, c.get('apiVersion')!, max));
  });

  app.get('/keys/:name/versions', one('KeyListVersions', KeyActions.read), async (c) => {
    const { store, vault, origin } = begin(c);
    const { max, skip } = listParams(c);
    const page = await store.listVersions(c.req.param('name'), max, skip);
    const items = page.items.map((r) => keyItem(origin, vault, r, true));
    return c.json(listBody(items, page.next, c.req.url, c.get('apiVersion')!, max));
  });

  app.post('/keys/:name/backup', one('KeyBackup', KeyActions.backup), async (c) => {
    const { store } = begin(c);
    return c.json({ value: await store.backup(c.req.param('name')) });
  });

  for (const path of withVersion('sign')) {
    app.post(path, one('KeySign', KeyActions.sign), async (c) => {
      const { ops, origin } = begin(c);
      const { alg, value } = parseBody(signBody, await bodyText(c));
      return c.json(operationBody(origin, await ops.sign(...target(c), alg, value)));
    });
  }

  for (const path of withVersion('verify')) {
    app.post(path, one('KeyVerify', KeyActions.verify), async (c) => {
      const { ops } = begin(c);
      const { alg, digest, value } = parseBody(verifyBody, await bodyText(c));
      const { valid } = await ops.verify(...target(c), alg, digest, value);
      return c.json({ value: valid });
    });
  }

  for (const [op, spec] of Object.entries(OPERATIONS)) {
    for (const path of withVersion(op)) {
      app.post(path, one(spec.audit, spec.action), async (c) => {
        const { ops, origin } = begin(c);
        const input = parseBody(keyOperationBody, await bodyText(c));
        return c.json(operationBody(origin, await ops[spec.run](...target(c), input)));
      });
    }
  }

  app.get('/keys/:name/:version?', one('KeyGet', KeyActions.read), async (c) => {
    const { store, vault, origin } = begin(c);
    return c.json(keyBundle(origin, vault, await store.get(c.req.param('name'), c.req.param('version') || undefined)));
  });

  app.patch('/keys/:name/:version?', one('KeyUpdate', KeyActions.update), async (c) => {
    const { store, vault, origin } = begin(c);
    const input = parseBody(updateKeyBody, await bodyText(c));
    return c.json(keyBundle(origin, vault, await store.update(c.req.param('name'), c.req.param('version') || undefined, input)));
  });

  app.delete('/keys/:name', one('KeyDelete', KeyActions.delete), async (c) => {
    const { store, vault, origin } = begin(c);
    return c.json(keyBundle(origin, vault, await store.delete(c.req.param('name'))));
  });

  app.get('/deletedkeys', all('KeyListDeleted', KeyActions.readDeleted), async (c) => {
    const { store, vault, origin } = begin(c);
    const { max, skip } = listParams(c);
    const page = await store.listDeleted(max, skip);
    const items = page.items.map((r) => keyItem(origin, vault, r, false));
    return c.json(listBody(items, page.next, c.req.url, c.get('apiVersion')!, max));
  });

  app.get('/deletedkeys/:name', one('KeyGetDeleted', KeyActions.readDeleted), async (c) => {
    const { store, vault, origin } = begin(c);
    return c.json(keyBundle(origin, vault, await store.getDeleted(c.req.param('name'))));
  });

  app.delete('/deletedkeys/:name', one('KeyPurge', KeyActions.purge), async (c) => {
    const { store } = begin(c);
    await store.purge(c.req.param('name'));
    return noContent(c);
  });

  app.post('/deletedkeys/:name/recover', one('KeyRecover', KeyActions.recover), async (c) => {
    const { store, vault, origin } = begin(c);
    return c.json(keyBundle(origin, vault, await store.recover(c.req.param('name'))));
  });

  app.post('/rng', vaultOperation('GetRandomBytes', KeyActions.random, '/rng', false), async (c) => {
    const { count } = parseBody(randomBody, await bodyText(c));
    return c.json({ value: toBase64Url(await c.get('services').bridge.random(count)) });
  });
}
