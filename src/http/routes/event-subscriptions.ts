/**
 * Event subscriptions (src/events/), one sub-app served twice with a different guard:
 *   https://{vault}.{zone}/eventSubscriptions[/{name}]…   callers holding the vault's
 *       Microsoft.KeyVault/vaults/eventSubscriptions/read or /write (api-version required)
 *   https://{zone}/management/vaults/{vault}/eventSubscriptions[/{name}]…   administrators
 * Routes: list; get; PUT (create, with the endpoint's handshake, or replace); DELETE;
 * POST …/rotateSecret {overlapMinutes}; GET …/deadLetters; POST …/deadLetters/{eventId}/redeliver.
 * The guard names the operation for the audit record and puts the vault in the context.
 */
import { Hono, type MiddlewareHandler } from 'hono';
import * as z from 'zod';
import { nextLinkFor } from '../../access/listing';
import { EventSubscriptionActions, type DataAction } from '../../core/data-actions';
import { badParameter, notFound } from '../../core/errors';
import { parseBody } from '../../core/validation';
import type { VaultRecord } from '../../core/vault';
import { deleteDeadLetter, getDeadLetter, listDeadLetters } from '../../events/dead-letters';
import { endpointPolicyOf } from '../../events/endpoint-policy';
import type { DeliveryMessage } from '../../events/fanout';
import { putSubscription, rotateSigningSecret } from '../../events/manage';
import {
  assertSubscriptionName,
  settingsOf,
  subscriptionBody,
  subscriptionShape,
  vaultResourceId,
  type Subscription,
} from '../../events/subscription';
import { SubscriptionStore } from '../../events/subscription-store';
import { findVault } from '../../storage/vaults';
import { auditAs, bodyText, noContent, type AppContext, type AppEnv } from '../context';
import { adminOperation, vaultOperation } from '../operation';

export type SubscriptionGuard = (operation: string, action: DataAction, named: boolean) => MiddlewareHandler<AppEnv>;

/** The vault host: the data-plane chain (authentication, api-version, firewall, authorize). */
export const vaultGuard: SubscriptionGuard = (operation, action, named) =>
  vaultOperation(operation, action, '/eventSubscriptions', named);

/** The apex: administrators, the vault named by `:vault`. */
export const adminGuard: SubscriptionGuard = (operation, _action, named) => {
  const object = (c: AppContext) => `/vaults/${c.req.param('vault')}/eventSubscriptions${named ? `/${c.req.param('name')}` : ''}`;
  const admin = adminOperation(operation, object);
  return (c, next) =>
    admin(c, async () => {
      const name = c.req.param('vault')!;
      const vault = await findVault(c.get('services').db, name);
      if (!vault) throw notFound('VaultNotFound', `Vault ${name.slice(0, 64)} was not found.`);
      c.set('vault', vault);
      await next();
    });
};

const rotateBody = z.object({ overlapMinutes: z.number().int().min(0).max(1440).optional() }).strict();

function vaultOf(c: AppContext): VaultRecord {
  const vault = c.get('vault');
  if (!vault) throw new Error('event subscription route reached without a vault');
  return vault;
}

const storeOf = (c: AppContext) => new SubscriptionStore(c.get('services').db, c.get('services').keys);

async function subscriptionNamed(c: AppContext): Promise<Subscription> {
  const name = c.req.param('name')!;
  assertSubscriptionName(name);
  const s = await storeOf(c).get(vaultOf(c).id, name);
  if (!s) throw notFound('EventSubscriptionNotFound', `Event subscription ${name} was not found.`);
  return s;
}

const shape = (c: AppContext, s: Subscription) => subscriptionShape(s, vaultResourceId(vaultOf(c)));

export function eventSubscriptionApp(guard: SubscriptionGuard): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const { read, write } = EventSubscriptionActions;

  app.get('/eventSubscriptions', guard('EventSubscriptionList', read, false), async (c) => {
    const list = await storeOf(c).list(vaultOf(c).id);
    return c.json({ value: list.map((s) => shape(c, s)), nextLink: null });
  });

  app.get('/eventSubscriptions/:name', guard('EventSubscriptionGet', read, true), async (c) =>
    c.json(shape(c, await subscriptionNamed(c))),
  );

  app.put('/eventSubscriptions/:name', guard('EventSubscriptionCreate', write, true), async (c) => {
    const settings = settingsOf(parseBody(subscriptionBody, await bodyText(c)));
    const name = c.req.param('name');
    assertSubscriptionName(name);
    const vault = vaultOf(c);
    const existing = await storeOf(c).get(vault.id, name);
    // Audited as what it is: a replacement is an update.
    if (existing) auditAs(c, 'EventSubscriptionUpdate', c.get('audit').objectId);
    const result = await putSubscription(storeOf(c), vault, name, settings, {
      policy: endpointPolicyOf(c.env),
      origin: new URL(c.get('apexOrigin')).hostname,
    });
    const body = shape(c, result.subscription);
    if (!result.created) return c.json(body, 200);
    return c.json({ ...body, properties: { ...body.properties, signingSecret: result.signingSecret } }, 201);
  });

  app.delete('/eventSubscriptions/:name', guard('EventSubscriptionDelete', write, true), async (c) => {
    const s = await subscriptionNamed(c);
    await storeOf(c).delete(s.vaultId, s.name);
    return noContent(c);
  });

  app.post('/eventSubscriptions/:name/rotateSecret', guard('EventSubscriptionSecretRotate', write, true), async (c) => {
    const text = await bodyText(c);
    const { overlapMinutes } = text.trim() === '' ? {} : parseBody(rotateBody, text);
    const s = await subscriptionNamed(c);
    const rotated = await rotateSigningSecret(storeOf(c), s, overlapMinutes ?? 60);
    const body = shape(c, rotated.subscription);
    return c.json({ ...body, properties: { ...body.properties, signingSecret: rotated.signingSecret } });
  });

  app.get('/eventSubscriptions/:name/deadLetters', guard('EventSubscriptionDeadLetterList', read, true), async (c) => {
    const params = new URL(c.req.url).searchParams;
    const limit = Number(params.get('maxresults') ?? 25);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw badParameter('maxresults must be an integer from 1 to 100.');
    const s = await subscriptionNamed(c);
    const page = await listDeadLetters(c.env.EVENT_DEADLETTER, s.vaultId, s.id, limit, params.get('$skiptoken') ?? undefined);
    return c.json({ value: page.items, nextLink: nextLinkFor(c.req.url, page.cursor) });
  });

  app.post(
    '/eventSubscriptions/:name/deadLetters/:eventId/redeliver',
    guard('EventSubscriptionRedeliver', write, true),
    async (c) => {
      const s = await subscriptionNamed(c);
      const eventId = c.req.param('eventId');
      if (!/^[A-Za-z0-9_.-]{1,128}$/.test(eventId)) throw badParameter('The event id is not valid.');
      const letter = await getDeadLetter(c.env.EVENT_DEADLETTER, s.vaultId, s.id, eventId);
      if (!letter) throw notFound('DeadLetterNotFound', `No dead-lettered event ${eventId} for subscription ${s.name}.`);
      const message: DeliveryMessage = {
        subscriptionId: s.id,
        vaultId: s.vaultId,
        events: [letter.event],
        enqueuedAt: Date.now(),
      };
      await c.env.EVENT_DELIVERY_QUEUE.send(message);
      await deleteDeadLetter(c.env.EVENT_DEADLETTER, s.vaultId, s.id, eventId);
      return c.json({ eventId, status: 'Queued' }, 202);
    },
  );

  return app;
}
