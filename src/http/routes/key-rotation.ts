/**
 * Key rotation routes: the rotation policy (get, set) and rotation on demand. Registered before
 * the generic key routes, whose `/keys/:name/:version` patterns would otherwise take these paths.
 */
import type { Hono } from 'hono';
import { KeyActions, type DataAction } from '../../core/data-actions';
import { KeyStore } from '../../objects/keys';
import { KeyRotation, type RotationPolicyView } from '../../objects/rotation';
import { rotationPolicyBody } from '../../objects/rotation-policy';
import { parseBody } from '../../core/validation';
import { bodyText, currentVault, type AppContext, type AppEnv } from '../context';
import { vaultOperation } from '../operation';
import { keyBundle } from '../shapes';
import { announceNewVersion } from './keys';

const one = (operation: string, action: DataAction) => vaultOperation(operation, action, '/keys', true);

function begin(c: AppContext) {
  const { vault, origin } = currentVault(c);
  const { db, keys, bridge } = c.get('services');
  const store = new KeyStore(db, keys, bridge, vault);
  return { rotation: new KeyRotation(db, store), vault, origin };
}

/**
 * KeyRotationPolicy. A key without a policy of its own answers as Azure does: the default Notify
 * action only, no id and null attributes.
 */
export function policyResponse(origin: string, v: RotationPolicyView) {
  const lifetimeActions = v.lifetimeActions.map((a) => ({ trigger: { ...a.trigger }, action: { type: a.action.type } }));
  if (!v.explicit) return { lifetimeActions, attributes: null };
  return {
    id: `${origin}/keys/${v.name}/rotationpolicy`,
    lifetimeActions,
    attributes: { ...(v.expiryTime ? { expiryTime: v.expiryTime } : {}), created: v.created, updated: v.updated },
  };
}

export function keyRotationRoutes(app: Hono<AppEnv>): void {
  app.get('/keys/:name/rotationpolicy', one('KeyGetRotationPolicy', KeyActions.getRotationPolicy), async (c) => {
    const { rotation, origin } = begin(c);
    return c.json(policyResponse(origin, await rotation.getPolicy(c.req.param('name'))));
  });

  app.put('/keys/:name/rotationpolicy', one('KeyUpdateRotationPolicy', KeyActions.setRotationPolicy), async (c) => {
    const { rotation, origin } = begin(c);
    const input = parseBody(rotationPolicyBody, await bodyText(c));
    return c.json(policyResponse(origin, await rotation.setPolicy(c.req.param('name'), input)));
  });

  app.post('/keys/:name/rotate', one('KeyRotate', KeyActions.rotate), async (c) => {
    const { rotation, vault, origin } = begin(c);
    const record = await rotation.rotate(c.req.param('name'));
    announceNewVersion(c, record);
    return c.json(keyBundle(origin, vault, record));
  });
}
