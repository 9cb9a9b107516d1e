/**
 * The Certificates API routes (certificates, their policy and pending operation, deleted
 * certificates), declared like the secrets and keys routes. Contacts and issuers are in
 * certificate-settings.ts, mounted first (their paths would otherwise match `:name`).
 */
import type { Hono } from 'hono';
import { CertificateActions, type DataAction } from '../../core/data-actions';
import { VaultError } from '../../core/errors';
import { parseBody, parseMaxResults, restoreBody } from '../../core/validation';
import {
  createCertificateBody,
  importCertificateBody,
  mergeCertificateBody,
  operationUpdateBody,
  policyBody as policyInput,
  updateCertificateBody,
} from '../../objects/certificates/policy';
import type { CertificateRecord } from '../../objects/certificates/kind';
import { CertificateStore } from '../../objects/certificates/store';
import { emitEvents, newVersionEvent } from '../../events/event';
import {
  acceptedOperationBody,
  certificateBundle,
  certificateItem,
  operationBody,
  pendingCertificateBundle,
  policyBody,
} from '../certificate-shapes';
import { auditAs, bodyText, currentVault, noContent, type AppContext, type AppEnv } from '../context';
import { vaultOperation } from '../operation';
import { listBody } from '../shapes';

const one = (operation: string, action: DataAction) => vaultOperation(operation, action, '/certificates', true);
const all = (operation: string, action: DataAction) => vaultOperation(operation, action, '/certificates', false);

export function beginCertificates(c: AppContext) {
  const { vault, origin } = currentVault(c);
  const { db, keys, bridge } = c.get('services');
  // CertificateNewVersionCreated for whatever this request completes, queued after the answer.
  const onNewVersion = (record: CertificateRecord) =>
    c.executionCtx.waitUntil(
      newVersionEvent(origin, vault, record, 'Certificate').then((event) => emitEvents(c.env.EVENTS_QUEUE, [event])),
    );
  return {
    store: new CertificateStore(db, keys, bridge, vault, { onNewVersion, dnsApiBase: c.env.ACME_DNS_API_BASE }),
    vault,
    origin,
  };
}

function listParams(c: AppContext) {
  return { max: parseMaxResults(c.req.query('maxresults')), skip: c.req.query('$skiptoken') || undefined };
}

/** The bundle of a version with the certificate's current policy. */
async function bundle(c: AppContext, store: CertificateStore, record: Parameters<typeof certificateBundle>[2]) {
  const { vault, origin } = currentVault(c);
  const policy = await store.policy(record.name).catch(() => undefined);
  return certificateBundle(origin, vault, record, policy);
}

export function certificateRoutes(app: Hono<AppEnv>): void {
  app.post('/certificates/restore', all('CertificateRestore', CertificateActions.restore), async (c) => {
    const { store } = beginCertificates(c);
    const { value } = parseBody(restoreBody, await bodyText(c, 4 * 1024 * 1024));
    const restored = await store.restore(value);
    auditAs(c, 'CertificateRestore', `/certificates/${restored.name}`);
    return c.json(await bundle(c, store, restored));
  });

  app.get('/certificates', all('CertificateList', CertificateActions.read), async (c) => {
    const { store, vault, origin } = beginCertificates(c);
    const { max, skip } = listParams(c);
    const page = await store.list(max, skip);
    return c.json(
      listBody(
        page.items.map((r) => certificateItem(origin, vault, r, false)),
        page.next,
        c.req.url,
        c.get('apiVersion')!,
        max,
      ),
    );
  });

  app.post('/certificates/:name/create', one('CertificateCreate', CertificateActions.create), async (c) => {
    const name = c.req.param('name');
    const { store, origin } = beginCertificates(c);
    const input = parseBody(createCertificateBody, await bodyText(c));
    const op = await store.create(name, input);
    // Azure's answer: 202, the operation, and where to poll it.
    c.header(
      'Location',
      `${origin}/certificates/${op.name}/pending?api-version=${c.get('apiVersion')}&request_id=${op.requestId}`,
    );
    c.header('Retry-After', '10');
    return c.json(acceptedOperationBody(origin, op), 202);
  });

  app.post('/certificates/:name/import', one('CertificateImport', CertificateActions.import), async (c) => {
    const { store } = beginCertificates(c);
    const input = parseBody(importCertificateBody, await bodyText(c, 1024 * 1024));
    return c.json(await bundle(c, store, await store.import(c.req.param('name'), input)));
  });

  app.get('/certificates/:name/pending', one('CertificatePendingGet', CertificateActions.read), async (c) => {
    const { store, origin } = beginCertificates(c);
    return c.json(operationBody(origin, await store.operation(c.req.param('name'))));
  });

  app.patch('/certificates/:name/pending', one('CertificatePendingUpdate', CertificateActions.update), async (c) => {
    const { store, origin } = beginCertificates(c);
    const input = parseBody(operationUpdateBody, await bodyText(c));
    return c.json(operationBody(origin, await store.cancel(c.req.param('name'), input.cancellation_requested)));
  });

  app.delete('/certificates/:name/pending', one('CertificatePendingDelete', CertificateActions.update), async (c) => {
    const { store, origin } = beginCertificates(c);
    return c.json(operationBody(origin, await store.deleteOperation(c.req.param('name'))));
  });

  app.post('/certificates/:name/pending/merge', one('CertificatePendingMerge', CertificateActions.create), async (c) => {
    const { store } = beginCertificates(c);
    const input = parseBody(mergeCertificateBody, await bodyText(c, 1024 * 1024));
    return c.json(await bundle(c, store, await store.merge(c.req.param('name'), input)), 201);
  });

  app.get('/certificates/:name/policy', one('CertificatePolicyGet', CertificateActions.read), async (c) => {
    const { store, origin } = beginCertificates(c);
    return c.json(policyBody(origin, await store.policy(c.req.param('name'))));
  });

  app.patch('/certificates/:name/policy', one('CertificatePolicyUpdate', CertificateActions.update), async (c) => {
    const { store, origin } = beginCertificates(c);
    const input = parseBody(policyInput, await bodyText(c));
    return c.json(policyBody(origin, await store.updatePolicy(c.req.param('name'), input)));
  });

  app.get('/certificates/:name/versions', one('CertificateListVersions', CertificateActions.read), async (c) => {
    const { store, vault, origin } = beginCertificates(c);
    const { max, skip } = listParams(c);
    const page = await store.listVersions(c.req.param('name'), max, skip);
    return c.json(
      listBody(
        page.items.map((r) => certificateItem(origin, vault, r, true)),
        page.next,
        c.req.url,
        c.get('apiVersion')!,
        max,
      ),
    );
  });

  app.post('/certificates/:name/backup', one('CertificateBackup', CertificateActions.backup), async (c) => {
    const { store } = beginCertificates(c);
    return c.json({ value: await store.backup(c.req.param('name')) });
  });

  app.get('/certificates/:name/:version?', one('CertificateGet', CertificateActions.read), async (c) => {
    const { store, vault, origin } = beginCertificates(c);
    const name = c.req.param('name');
    const version = c.req.param('version') || undefined;
    try {
      return c.json(await bundle(c, store, await store.get(name, version)));
    } catch (err) {
      // No completed version yet: the pending one, as Azure shows it.
      const op = err instanceof VaultError && err.status === 404 ? await store.unfinishedOperation(name) : undefined;
      if (!op || (version && version !== op.version)) throw err;
      return c.json(pendingCertificateBundle(origin, vault, op, await store.policy(op.name).catch(() => undefined)));
    }
  });

  app.patch('/certificates/:name/:version?', one('CertificateUpdate', CertificateActions.update), async (c) => {
    const { store } = beginCertificates(c);
    const input = parseBody(updateCertificateBody, await bodyText(c));
    return c.json(await bundle(c, store, await store.update(c.req.param('name'), c.req.param('version') || undefined, input)));
  });

  app.delete('/certificates/:name', one('CertificateDelete', CertificateActions.delete), async (c) => {
    const { store } = beginCertificates(c);
    return c.json(await bundle(c, store, await store.delete(c.req.param('name'))));
  });

  app.get('/deletedcertificates', all('CertificateListDeleted', CertificateActions.readDeleted), async (c) => {
    const { store, vault, origin } = beginCertificates(c);
    const { max, skip } = listParams(c);
    const page = await store.listDeleted(max, skip);
    return c.json(
      listBody(
        page.items.map((r) => certificateItem(origin, vault, r, false)),
        page.next,
        c.req.url,
        c.get('apiVersion')!,
        max,
      ),
    );
  });

  app.get('/deletedcertificates/:name', one('CertificateGetDeleted', CertificateActions.readDeleted), async (c) => {
    const { store } = beginCertificates(c);
    return c.json(await bundle(c, store, await store.getDeleted(c.req.param('name'))));
  });

  app.delete('/deletedcertificates/:name', one('CertificatePurge', CertificateActions.purge), async (c) => {
    const { store } = beginCertificates(c);
    await store.purge(c.req.param('name'));
    return noContent(c);
  });

  app.post('/deletedcertificates/:name/recover', one('CertificateRecover', CertificateActions.recover), async (c) => {
    const { store } = beginCertificates(c);
    return c.json(await bundle(c, store, await store.recover(c.req.param('name'))));
  });
}
