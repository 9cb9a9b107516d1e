/**
 * `/healthz`: whether the Worker, D1 and the bridge (with its KEK) are ready; an anonymous caller
 * learns up or down only.
 */
import { sql } from 'drizzle-orm';
import type { Hono } from 'hono';
import { auditAs, type AppEnv } from '../context';

/** 200 only when the Worker, D1 and the bridge (with its KEK) are all ready; else 503 and why. */
export function healthRoutes(app: Hono<AppEnv>): void {
  app.get('/healthz', async (c) => {
    auditAs(c, 'HealthCheck');
    const { db, bridge } = c.get('services');
    const [d1, hsm] = await Promise.all([
      db
        .get(sql`select 1 as ok`)
        .then(() => 'ok')
        .catch(() => 'unavailable'),
      bridge.health(),
    ]);
    const checks = { worker: 'ok', d1, bridge: hsm.status === 'ok' && hsm.kek ? 'ok' : 'unavailable' };
    if (checks.d1 === 'ok' && checks.bridge === 'ok') return c.json({ status: 'ok', checks });
    const reason = checks.d1 !== 'ok' ? 'D1 is not reachable' : `HSM bridge: ${hsm.reason ?? 'KEK unavailable'}`;
    c.header('Retry-After', '5');
    return c.json({ status: 'unavailable', reason, checks }, 503);
  });
}
