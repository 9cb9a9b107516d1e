/**
 * Bridge configuration from the environment. Weak or ambiguous settings are refused with a
 * ConfigError rather than warned about: a bridge that starts is a bridge that is safe to use.
 * Error messages name variables, never their values.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { MIN_SECRET_LENGTH } from '../../bridge-protocol/index.js';

export interface BridgeConfig {
  /** Path to the PKCS#11 library. */
  pkcs11Module: string;
  tokenLabel: string;
  /** User PIN of the token. Secret: never log it. */
  pin: string;
  kekLabel: string;
  /** Shared HMAC secret with the Worker. Secret: never log it. */
  hmacSecret: string;
  host: string;
  /** 0 asks the OS for a free port (the real one is printed when listening). */
  port: number;
  sessionPoolSize: number;
  /**
   * Directory of the bridge's own state: the journal of accepted nonces that keeps a captured
   * request from being replayed after a restart (see nonce-journal.ts). Absolute.
   */
  stateDir: string;
  /** PEM files; when both are set the bridge serves HTTPS. */
  tlsCertFile?: string;
  tlsKeyFile?: string;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export const DEFAULTS = {
  pkcs11Module: '/usr/lib/softhsm/libsofthsm2.so',
  tokenLabel: 'edge-key-vault',
  kekLabel: 'ekv-kek',
  host: '127.0.0.1',
  port: 8788,
  sessionPoolSize: 4,
  /** Relative to the working directory: `npm run bridge` keeps its state next to the checkout. */
  stateDir: '.hsm-bridge-state',
} as const;

type Env = Record<string, string | undefined>;

/** A value given directly (NAME) or in a file (NAME_FILE); exactly one of them. */
function secretFromEnv(env: Env, name: string): string {
  const direct = env[name];
  const file = env[`${name}_FILE`];
  if (direct && file) throw new ConfigError(`set only one of ${name} and ${name}_FILE`);
  if (direct) return direct;
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read ${name}_FILE (${file}): ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    // Files written by editors or `echo` end with a newline that is not part of the secret.
    const value = text.replace(/\r?\n$/, '');
    if (!value) throw new ConfigError(`${name}_FILE (${file}) is empty`);
    return value;
  }
  throw new ConfigError(`${name} or ${name}_FILE is required`);
}

function intFromEnv(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}`);
  }
  return Number(raw);
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}

export function loadConfig(env: Env = process.env): BridgeConfig {
  const hmacSecret = secretFromEnv(env, 'BRIDGE_HMAC_SECRET');
  if (hmacSecret.length < MIN_SECRET_LENGTH) {
    throw new ConfigError(`BRIDGE_HMAC_SECRET is too weak: it must be at least ${MIN_SECRET_LENGTH} characters`);
  }
  // Catches placeholders such as 'x'.repeat(32); a random secret of this length has far more variety.
  if (new Set(hmacSecret).size < 8) {
    throw new ConfigError('BRIDGE_HMAC_SECRET is too weak: it must be random (fewer than 8 distinct characters)');
  }

  const tlsCertFile = env.BRIDGE_TLS_CERT_FILE || undefined;
  const tlsKeyFile = env.BRIDGE_TLS_KEY_FILE || undefined;
  if (Boolean(tlsCertFile) !== Boolean(tlsKeyFile)) {
    throw new ConfigError('set both BRIDGE_TLS_CERT_FILE and BRIDGE_TLS_KEY_FILE, or neither');
  }
  const host = env.BRIDGE_HOST || DEFAULTS.host;
  // Unwrap responses carry plaintext data keys: HMAC gives integrity, not confidentiality.
  if (!tlsCertFile && !isLoopback(host)) {
    throw new ConfigError(
      `BRIDGE_HOST=${host} is not a loopback address: serving plaintext HTTP off-host would expose data keys; ` +
        'set BRIDGE_TLS_CERT_FILE and BRIDGE_TLS_KEY_FILE, or bind to loopback behind a TLS-terminating proxy',
    );
  }

  return {
    pkcs11Module: env.PKCS11_MODULE || DEFAULTS.pkcs11Module,
    tokenLabel: env.HSM_TOKEN_LABEL || DEFAULTS.tokenLabel,
    pin: secretFromEnv(env, 'HSM_PIN'),
    kekLabel: env.HSM_KEK_LABEL || DEFAULTS.kekLabel,
    hmacSecret,
    host,
    port: intFromEnv(env, 'BRIDGE_PORT', DEFAULTS.port, 0, 65535),
    sessionPoolSize: intFromEnv(env, 'HSM_SESSION_POOL', DEFAULTS.sessionPoolSize, 1, 64),
    stateDir: resolve(env.BRIDGE_STATE_DIR || DEFAULTS.stateDir),
    tlsCertFile,
    tlsKeyFile,
  };
}
