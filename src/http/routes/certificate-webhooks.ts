/**
 * Webhook-triggered certificate renewal, on the vault host (not under /certificates/, where a
 * path segment would shadow a certificate of that name):
 *   GET    /certificateWebhooks                       list receivers       certificates/read
 *   GET    /certificateWebhooks/{name}                one receiver         certificates/read
 *   PUT    /certificateWebhooks/{name}                create (201, the secret once) or replace the scope
 *   DELETE /certificateWebhooks/{name}                delete
 *   POST   /certificateWebhooks/{name}/rotateSecret   new secret, the old one kept for {overlapMinutes}
 *   POST   /certificateWebhooks/{name}/renew          the inbound endpoint: no OAuth, a Standard Webhooks signature
 * Changing receivers needs certificates/create/action: a receiver hands its sender the power to
 * start new certificate versions, so only who holds that power may hand it out (Key Vault
 * Certificates Officer and Administrator do; Certificate User and Reader may only read them).
 */
import type { Hono } from 'hono';
import { assertNetworkAllowed } from '../../access/network';
import { CertificateActions } from '../../core/data-actions';
import { notFound, VaultError } from '../../core/errors';
import { parseBody } from '../../core/validation';
import {
  claimWebhookId,
  planRenewal,
  releaseWebhookId,
  renewalBody,
  startRenewals,
  verifyWebhook,
} from '../../objects/certificates/webhooks/receive';
import { receiverBody, ReceiverStore, rotateBody, type Receiver } from '../../objects/certificates/webhooks/receivers';
import { renewCertificate } from '../../jobs/certificate-renewal';
import { findVault } from '../../storage/vaults';
import { operationBody } from '../certificate-shapes';
import { auditAs, bodyText, currentVault, type AppContext, type AppEnv } from '../context';
import { vaultOperation } from '../operation';
import { throttleVaultRequest } from '../throttle';

const PATH = '/certificateWebhooks';
const NAME = /^[0-9a-zA-Z-]{1,127}$/;
const read = (operation: string, named: boolean) => vaultOperation(operation, CertificateActions.read, PATH, named);
const manage = (operation: string) => vaultOperation(operation, CertificateActions.create, PATH, true);

function receivers(c: AppContext): ReceiverStore {
  const { db, keys } = c.get('services');
  return new ReceiverStore(db, keys, currentVault(c).vault);
}

/** A receiver as the API shows it: never a secret (only create and rotate add the new one). */
function receiverShape(origin: string, r: Receiver) {
  return {
    id: `${origin}${PATH}/${r.name}`,
    name: r.name,
    url: `${origin}${PATH}/${r.name}/renew`,
    scope: r.scope,
    attributes: { created: r.created, updated: r.updated },
    ...(r.previousSecretExpires !== null ? { previousSecretExpires: r.previousSecretExpires } : {}),
  };
}

export function certificateWebhookRoutes(app: Hono<AppEnv>): void {
  app.get(PATH, read('CertificateWebhookList', false), async (c) => {
    const { origin } = currentVault(c);
    return c.json({ value: (await receivers(c).list()).map((r) => receiverShape(origin, r)), nextLink: null });
  });

  app.get(`${PATH}/:name`, read('CertificateWebhookGet', true), async (c) => {
    const { origin } = currentVault(c);
    return c.json(receiverShape(origin, await receivers(c).get(c.req.param('name'))));
  });

  app.put(`${PATH}/:name`, manage('CertificateWebhookCreate'), async (c) => {
    const { origin } = currentVault(c);
    const { scope } = parseBody(receiverBody, await bodyText(c));
    const result = await receivers(c).put(c.req.param('name'), scope);
    const body = receiverShape(origin, result.receiver);
    if (!result.created) {
      auditAs(c, 'CertificateWebhookUpdate', c.get('audit').objectId);
      return c.json(body, 200);
    }
    return c.json({ ...body, signingSecret: result.secret }, 201);
  });

  app.delete(`${PATH}/:name`, manage('CertificateWebhookDelete'), async (c) => {
    const { origin } = currentVault(c);
    return c.json(receiverShape(origin, await receivers(c).delete(c.req.param('name'))));
  });

  app.post(`${PATH}/:name/rotateSecret`, manage('CertificateWebhookSecretRotate'), async (c) => {
    const { origin } = currentVault(c);
    const text = await bodyText(c);
    const { overlapMinutes } = text.trim() === '' ? {} : parseBody(rotateBody, text);
    const rotated = await receivers(c).rotate(c.req.param('name'), overlapMinutes);
    return c.json({ ...receiverShape(origin, rotated.receiver), signingSecret: rotated.secret });
  });

  // The inbound endpoint. No bearer token: the signature is the authentication, so the vault,
  // its firewall and the request limits are applied here, in vaultOperation's order.
  app.post(`${PATH}/:name/renew`, async (c) => {
    const name = c.req.param('name');
    const object = `${PATH}/${NAME.test(name) ? name : '-'}`;
    auditAs(c, 'CertificateWebhookReceive', object);
    const vaultName = c.get('audit').vault!;
    const { db, keys } = c.get('services');
    const vault = await findVault(db, vaultName);
    if (!vault) throw notFound('VaultNotFound', `The vault ${vaultName} does not exist.`);
    c.set('vault', vault);
    assertNetworkAllowed(vault, c.req.header('cf-connecting-ip') ?? null);

    const { receiver, secrets } = await new ReceiverStore(db, keys, vault).forVerification(name);
    const body = await bodyText(c, 64 * 1024);
    const message = verifyWebhook(secrets, body, {
      id: c.req.header('webhook-id'),
      timestamp: c.req.header('webhook-timestamp'),
      signature: c.req.header('webhook-signature'),
    });
    // Recorded as the message it was: receiver and webhook-id (never the signature).
    auditAs(c, 'CertificateWebhookReceive', `${PATH}/${receiver.name}/messages/${message.id}`);
    // Counted once the sender is known, as a caller is: anonymous noise cannot use up the vault's limits.
    const limited = throttleVaultRequest(c, vaultName, 'CertificateWebhookReceive');
    if (limited) return limited;
    const request = parseBody(renewalBody, body);
    const plan = await planRenewal(db, vault.id, receiver, request);
    if (!(await claimWebhookId(db, receiver.id, message.id, message.timestamp)))
      throw new VaultError(
        409,
        'Conflict',
        'This webhook-id was already received by this receiver: a message is acted on once, nothing was started.',
        'WebhookReplayed',
      );
    let result;
    try {
      // The renewal job's own entry: its claim keeps a webhook and the cron from renewing twice.
      const svc = c.get('services');
      result = await startRenewals(
        plan.names,
        async (certificate) => (await renewCertificate(c.env, vault, certificate, { svc })).operation,
      );
    } catch (err) {
      // Nothing started: the sender's retry of the same message is acted on.
      await releaseWebhookId(db, receiver.id, message.id);
      throw err;
    }
    const { origin } = currentVault(c);
    return c.json(
      {
        receiver: receiver.name,
        webhookId: message.id,
        operations: result.started.map((op) => operationBody(origin, op)),
        ...(plan.skipped.length ? { skipped: plan.skipped } : {}),
        ...(result.failed.length ? { failed: result.failed } : {}),
      },
      202,
    );
  });
}
