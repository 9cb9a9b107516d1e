/**
 * `/healthz`: whether the Worker, D1 and the bridge (with its KEK) are ready. An anonymous caller
 * (a load balancer, an uptime probe) learns up or down only: the status code and `{status}`. A
 * caller presenting a token must be an administrator, and then gets the operator's report
 * (src/http/health-report.ts): what is wrong and since when.
 */
import type { Hono } from 'hono';
import { getApplication } from '../../identity/applications';
import { forbidden } from '../../core/errors';
import { authenticate } from '../authenticate';
import { auditAs, type AppEnv } from '../context';
import { operatorReport, probeDependencies } from '../health-report';
import { throttleCaller } from '../throttle';

export function healthRoutes(app: Hono<AppEnv>): void {
  app.get('/healthz', async (c) => {
    auditAs(c, 'HealthCheck');
    const s = c.get('services');
    const operator = c.req.header('authorization') !== undefined;
    if (operator) {
      // As the management API: challenged without a valid token, refused unless an administrator.
      const challenged = await authenticate(c);
      if (challenged) return challenged;
      const limited = throttleCaller(c);
      if (limited) return limited;
      const app = await getApplication(s.db, c.get('caller')!.appId);
      if (!app?.isAdmin) throw forbidden('Only administrator applications may read the health details.');
    }
    const deps = await probeDependencies(s);
    const up = deps.d1.status === 'ok' && deps.bridge.status === 'ok';
    if (!up) c.header('Retry-After', '5');
    const status = up ? 'ok' : 'unavailable';
    if (!operator) return c.json({ status }, up ? 200 : 503);
    return c.json({ status, ...(await operatorReport(c.env, s, deps)) }, up ? 200 : 503);
  });
}
