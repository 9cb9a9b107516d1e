/**
 * `npm run bridge`: the HSM bridge as a process. A fatal startup error prints one line and exits 1
 * with no retry: retrying a wrong PIN would count down to a locked token.
 */
import { ConfigError, loadConfig } from './config.js';
import { HsmError } from './hsm.js';
import { ListenError, startBridge } from './serve.js';

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  // Keep secrets out of anything that later reads or inherits the environment.
  for (const name of ['HSM_PIN', 'BRIDGE_HMAC_SECRET', 'BRIDGE_HMAC_SECRET_PREVIOUS']) delete process.env[name];
  const bridge = await startBridge(config);
  process.stdout.write(`hsm-bridge listening on ${bridge.url}\n`);

  const shutdown = (signal: string) => {
    process.stderr.write(`hsm-bridge: ${signal} received, shutting down\n`);
    // A client holding a connection open must not keep the bridge alive forever.
    setTimeout(() => process.exit(1), 5_000).unref();
    bridge.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
}

main().catch((err: unknown) => {
  // Our own errors are written to be shown (no PINs, no secrets); for anything else the first
  // line of the message is enough to diagnose without dumping a stack.
  const known = err instanceof ConfigError || err instanceof HsmError || err instanceof ListenError;
  const what = known
    ? (err as Error).message
    : `unexpected ${err instanceof Error ? `${err.name}: ${err.message.split('\n')[0]}` : String(err)}`;
  const code = err instanceof HsmError ? ` [${err.code}]` : '';
  process.stderr.write(`hsm-bridge: fatal${code}: ${what}\n`);
  process.exit(1);
});
