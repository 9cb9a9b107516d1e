/**
 * Runs the bridge in this process: open the nonce journal and the HSM, serve the app, close them
 * on demand.
 * main.ts uses it; tests and tools may too (note a PKCS#11 module is loaded once per process).
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import type { TLSSocket } from 'node:tls';
import { MAX_CLOCK_SKEW_SECONDS } from '../../bridge-protocol/index.js';
import { ConfigError, type BridgeConfig } from './config.js';
import { Hsm } from './hsm.js';
import { NonceJournal } from './nonce-journal.js';
import { createBridgeApp, jsonLog, type BridgeLog } from './server.js';

/** The HTTP(S) server could not bind (port in use, bad address). */
export class ListenError extends Error {
  override name = 'ListenError';
}

export interface RunningBridge {
  /** e.g. http://127.0.0.1:8788 (the real port when 0 was asked for). */
  url: string;
  port: number;
  hsm: Hsm;
  /** Stops accepting connections, then closes the HSM sessions. Idempotent. */
  close(): Promise<void>;
}

export async function startBridge(config: BridgeConfig, log: BridgeLog = jsonLog): Promise<RunningBridge> {
  // First, so that an unusable state directory is refused before the token is touched.
  const journal = await NonceJournal.open(config.stateDir);
  let hsm: Hsm;
  try {
    hsm = await Hsm.open(config);
  } catch (err) {
    await journal.close();
    throw err;
  }
  // Requests timestamped at or below the journal's floor are refused, the whole second of the last
  // one answered before the restart included: a restart quicker than that would refuse fresh
  // requests of that second. Wait until the clock is past it (at most the window, for a floor a
  // client with a clock running ahead left) before listening; clients retry a refused connection.
  const waitMs = Math.min((journal.floor + 1) * 1000 - Date.now(), (MAX_CLOCK_SKEW_SECONDS + 1) * 1000);
  if (waitMs > 0) {
    if (waitMs > 2_000) log('waiting_for_replay_floor', { ms: Math.ceil(waitMs) });
    await new Promise((resolve) => setTimeout(resolve, waitMs));
  }
  const hmacSecret = config.previousHmacSecret ? [config.hmacSecret, config.previousHmacSecret] : config.hmacSecret;
  const app = createBridgeApp({ hsm, hmacSecret, log, journal });
  let tls: ReturnType<typeof tlsOptions>;
  try {
    tls = tlsOptions(config);
  } catch (err) {
    await hsm.close();
    await journal.close();
    throw err;
  }
  const pins = new Set(config.tlsClientCertSha256 ?? []);
  let server: ServerType;
  let info: AddressInfo;
  try {
    ({ server, info } = await new Promise<{ server: ServerType; info: AddressInfo }>((resolve, reject) => {
      const s = serve(
        {
          fetch: app.fetch,
          hostname: config.host,
          port: config.port,
          ...(tls ? { createServer: createHttpsServer, serverOptions: tls } : {}),
        },
        (addr) => resolve({ server: s, info: addr }),
      );
      // Node closes idle keep-alive connections after 5 s, racing the Worker reusing them (its
      // request then dies as "connection failed"). Idle connections stay far longer than any
      // pause between the Worker's calls; the Worker, not the bridge, ends them.
      if ('keepAliveTimeout' in s) {
        s.keepAliveTimeout = 120_000;
        s.headersTimeout = 121_000;
      }
      s.once('error', reject); // e.g. EADDRINUSE
      // The CA may issue other certificates too: a pinned one is refused before it sends a byte of HTTP.
      if (pins.size) {
        s.on('secureConnection', (socket: TLSSocket) => {
          const fingerprint = socket.getPeerCertificate().fingerprint256;
          if (pins.has(fingerprint)) return;
          log('client_certificate_refused', { fingerprint, remote: socket.remoteAddress });
          socket.destroy();
        });
      }
    }));
  } catch (err) {
    await hsm.close();
    await journal.close();
    const code = (err as NodeJS.ErrnoException).code;
    throw new ListenError(`cannot listen on ${config.host}:${config.port} (${code ?? (err as Error).message})`);
  }
  const host = info.family === 'IPv6' ? `[${info.address}]` : info.address;
  let closing: Promise<void> | undefined;
  return {
    url: `${tls ? 'https' : 'http'}://${host}:${info.port}`,
    port: info.port,
    hsm,
    close: () =>
      (closing ??= (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          // Keep-alive connections would hold close() open; requests in flight still finish.
          if ('closeIdleConnections' in server) server.closeIdleConnections();
        });
        await hsm.close();
        await journal.close();
      })()),
  };
}

/** A PEM file the TLS settings name; unreadable is a ConfigError naming the variable. */
function readPem(variable: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(`cannot read ${variable} (${path}): ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

/** Options of the HTTPS server, or undefined for plain HTTP (loopback only, see config.ts). */
function tlsOptions(config: BridgeConfig) {
  if (!config.tlsCertFile || !config.tlsKeyFile) return undefined;
  const base = {
    cert: readPem('BRIDGE_TLS_CERT_FILE', config.tlsCertFile),
    key: readPem('BRIDGE_TLS_KEY_FILE', config.tlsKeyFile),
  };
  if (!config.tlsClientCaFile) return base;
  // Mutual TLS: a client without a certificate from this CA fails the handshake, /healthz included.
  return {
    ...base,
    ca: readPem('BRIDGE_TLS_CLIENT_CA_FILE', config.tlsClientCaFile),
    requestCert: true,
    rejectUnauthorized: true,
  };
}
