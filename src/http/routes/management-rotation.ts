/**
 * Key rotation on the management API (administrators only): the KEK in the HSM (rotate, progress
 * of the background re-wrap, destroy an unused one), the token-signing key (stage a new one, see
 * the schedule) and the audit checkpoint key. Procedures: README, "Operations: rotating keys".
 */
import type { Hono } from 'hono';
import * as z from 'zod';
import { rotateCheckpointKey } from '../../audit/checkpoints';
import { parseBody } from '../../core/validation';
import { destroyKek, kekStatus } from '../../crypto/kek-rotation';
import { rotateSigningKey, signingKeySchedules } from '../../identity/signing-keys';
import { auditAs, bodyText, noContent, type AppContext, type AppEnv } from '../context';
import { adminOperation } from '../operation';

const rotateCheckpointBody = z.object({ currentKid: z.string().min(1).max(64) });

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

  /**
   * A new audit checkpoint key in the HSM; new checkpoints name it, old ones keep verifying with
   * the keys that stay published. The body names the key being replaced, so two operators (or a
   * retried request) cannot rotate twice: 409 when it is no longer the current one.
   */
  app.post('/management/audit/checkpoint-keys/rotate', adminOperation('AuditCheckpointKeyRotate'), async (c) => {
    const { currentKid } = parseBody(rotateCheckpointBody, await bodyText(c));
    const { db, bridge } = c.get('services');
    const key = await rotateCheckpointKey(db, bridge, currentKid);
    auditAs(c, 'AuditCheckpointKeyRotate', `/audit/checkpoint-keys/${key.kid}`);
    return c.json({ kid: key.kid, publicJwk: key.publicJwk }, 201);
  });
}
