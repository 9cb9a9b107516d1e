/**
 * Creating, replacing and rotating subscriptions: the steps the API needs in order. An endpoint
 * is checked against the SSRF policy, then must pass its schema's handshake before anything is
 * stored; a refused endpoint or a failed handshake stores nothing and answers 400 with its code.
 */
import { conflict, VaultError } from '../core/errors';
import type { VaultRecord } from '../core/vault';
import { violatedConstraint } from '../storage/errors';
import { checkEndpoint, EndpointRefused, type EndpointPolicy } from './endpoint-policy';
import { handshake } from './handshake';
import { newSigningSecret } from './signing';
import { vaultResourceId, type Subscription, type SubscriptionSettings } from './subscription';
import type { SubscriptionStore } from './subscription-store';

async function admitEndpoint(url: string, policy: EndpointPolicy): Promise<void> {
  try {
    await checkEndpoint(url, policy);
  } catch (err) {
    if (err instanceof EndpointRefused)
      throw new VaultError(400, 'EndpointNotAllowed', `The endpoint was refused: ${err.reason}.`);
    throw err;
  }
}

async function validate(settings: SubscriptionSettings, vault: VaultRecord, secret: string, origin: string): Promise<void> {
  const result = await handshake(settings.deliverySchema, settings.endpointUrl, {
    origin,
    topic: vaultResourceId(vault),
    secret,
  });
  if (!result.ok) throw new VaultError(400, 'EndpointValidationFailed', `The endpoint failed validation: ${result.reason}.`);
}

export interface PutResult {
  subscription: Subscription;
  created: boolean;
  /** Only on creation: shown once, never again. */
  signingSecret?: string;
}

/**
 * Creates the subscription, or replaces an existing one's settings (keeping its secrets). The
 * handshake runs on creation and whenever the endpoint or the delivery schema changes.
 */
export async function putSubscription(
  store: SubscriptionStore,
  vault: VaultRecord,
  name: string,
  settings: SubscriptionSettings,
  opts: { policy: EndpointPolicy; origin: string },
): Promise<PutResult> {
  await admitEndpoint(settings.endpointUrl, opts.policy);
  const existing = await store.get(vault.id, name);
  if (existing) {
    if (existing.endpointUrl !== settings.endpointUrl || existing.deliverySchema !== settings.deliverySchema) {
      await validate(settings, vault, await store.currentSecret(existing), opts.origin);
    }
    return { subscription: await store.update(existing, settings), created: false };
  }
  const secret = newSigningSecret();
  await validate(settings, vault, secret, opts.origin);
  try {
    return { subscription: await store.create(vault.id, name, settings, secret), created: true, signingSecret: secret };
  } catch (err) {
    if (violatedConstraint(err) === 'unique') throw conflict(`Event subscription ${name} was created concurrently.`);
    throw err;
  }
}

export async function rotateSigningSecret(
  store: SubscriptionStore,
  s: Subscription,
  overlapMinutes: number,
): Promise<{ subscription: Subscription; signingSecret: string }> {
  const secret = newSigningSecret();
  return { subscription: await store.rotateSecret(s, secret, overlapMinutes), signingSecret: secret };
}
