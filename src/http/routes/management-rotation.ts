/**
 * Key rotation on the management API (administrators only): the KEK in the HSM (rotate, progress
 * of the background re-wrap, destroy an unused one) and the token-signing key (stage a new one,
 * see the schedule). Procedures: README, "Operations: rotating keys".
 */
import type { Hono } from 'hono';
import { destroyKek, kekStatus } from '../../crypto/kek-rotation';
import { rotateSigningKey, signingKeySchedules } from '../../identity/signing-keys';
import { auditAs, noContent, type AppContext, type AppEnv } from '../context';
import { adminOperation } from '../operation';

const kekObject = (c: AppContext) => `/kek/${c.req.param('label')}`;

export function rotationRoutes(app: Hono<AppEnv>): void {
  /** The HSM's KEKs, how many data keys each wraps, and how many still wait for the re-wrap. */
  app.get('/management/kek', adminOperation('KekGet'), async (c) => {
    const { db, bridge } = c.get('services');
    return c.json(await kekStatus(db, bridge));
  });

  /** A new KEK in the HSM, current at once; the cron re-wraps existing data keys under it. */
  app.post('/management/kek/rotate', adminOperation('KekRotate'), async (c) => {
    const { db, bridge } = c.get('services');
    const label = await bridge.createKek();
    auditAs(c, 'KekRotate', `/kek/${label}`);
    return c.json(await kekStatus(db, bridge), 201);
  });

  /** 409 while any data key is still wrapped under it (or it is current); the HSM destroys it. */
  app.delete('/management/kek/:label', adminOperation('KekDelete', kekObject), async (c) => {
    const { db, bridge } = c.get('services');
    await destroyKek(db, bridge, c.req.param('label'));
    return noContent(c);
  });

  app.get('/management/signing-keys', adminOperation('SigningKeyList'), async (c) => {
    return c.json({ value: await signingKeySchedules(c.get('services').db), nextLink: null });
  });

  /** Stages a new token-signing key: published now, signing after the publish lead. */
  app.post('/management/signing-keys/rotate', adminOperation('SigningKeyRotate'), async (c) => {
    const { db, keys } = c.get('services');
    const staged = await rotateSigningKey(db, keys);
    auditAs(c, 'SigningKeyRotate', `/signing-keys/${staged.kid}`);
    return c.json(staged, 201);
  });
}
