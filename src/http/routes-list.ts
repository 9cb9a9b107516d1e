/**
 * Every route the Worker serves, per host, from the apps themselves (Hono's `app.routes`): the
 * list a coverage test walks to check that each endpoint, and each refusal path, leaves exactly
 * one well-formed audit record.
 */
import { createApexApp } from './apex-app';
import { createVaultApp } from './vault-app';

export interface AppRoute {
  host: 'apex' | 'vault';
  method: string;
  path: string;
}

export function appRoutes(): AppRoute[] {
  const out: AppRoute[] = [];
  const seen = new Set<string>();
  for (const [host, app] of [
    ['apex', createApexApp()],
    ['vault', createVaultApp()],
  ] as const) {
    for (const route of app.routes) {
      // app.use() middleware shows up as ALL /*; a route with middleware, once per handler.
      if (route.method === 'ALL' && route.path === '/*') continue;
      const key = `${host} ${route.method} ${route.path}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({ host, method: route.method, path: route.path });
    }
  }
  return out;
}
