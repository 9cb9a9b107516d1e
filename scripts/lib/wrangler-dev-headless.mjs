/**
 * `wrangler dev` without its devtools inspector, for measurements (bench/): wrangler's CLI always
 * attaches an inspector proxy to the Worker's isolate, and with it every console.log becomes a
 * devtools event that V8 serialises with a stack trace, that wrangler's InspectorProxyWorker
 * parses, relays to wrangler's Node process as a debug-log request, and keeps in a buffer that
 * only an attached devtools ever drains. Production has none of that. This starts the same dev
 * server through wrangler's own API (`unstable_startWorker`) with `dev.inspector: false`; the rest
 * (Miniflare, workerd, HTTPS, local bindings, structured logs on stdout) is what the CLI runs.
 *
 * Plain JavaScript so the repo's pinned Node runs it directly: `node wrangler-dev-headless.mjs
 * <options.json>`, the options file written by scripts/lib/wrangler.ts (no secrets in it: those
 * stay in the env file it names).
 */
import console from 'node:console';
import { readFile } from 'node:fs/promises';
import process from 'node:process';
import { unstable_startWorker } from 'wrangler';

const opts = JSON.parse(await readFile(process.argv[2], 'utf8'));
const bindings = Object.fromEntries(Object.entries(opts.vars ?? {}).map(([k, v]) => [k, { type: 'plain_text', value: v }]));

const worker = await unstable_startWorker({
  config: opts.config,
  envFiles: opts.envFile ? [opts.envFile] : undefined,
  bindings,
  dev: {
    remote: false,
    server: { hostname: opts.ip, port: opts.port, secure: true, httpsCertPath: opts.certPath, httpsKeyPath: opts.keyPath },
    inspector: false,
    persist: opts.persistTo,
    liveReload: false,
    watch: false,
  },
});
await worker.ready;
console.log(`Ready on ${(await worker.url).href} (no inspector)`);

const stop = async () => {
  await worker.dispose();
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
