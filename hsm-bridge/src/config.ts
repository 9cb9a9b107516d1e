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
  /**
   * The secret being rotated out, accepted next to hmacSecret while the Worker switches over
   * (README "Rotating the bridge HMAC secret"). Secret: never log it.
   */
  previousHmacSecret?: string;
  host: string;
  /** 0 asks the OS for a free port (the real one is printed when listening). */
  port: number;
  sessionPoolSize: number;
  /**
   * Directory of the bridge's own state: the floor of answered requests' timestamps that keeps a
   * captured request from being replayed after a restart (see nonce-journal.ts). Absolute.
   */
  stateDir: string;
  /** PEM files; when both are set the bridge serves HTTPS. */
  tlsCertFile?: string;
  tlsKeyFile?: string;
  /** PEM CA bundle: when set, clients must present a certificate it issued (mutual TLS). */
  tlsClientCaFile?: string;
  /** SHA-256 fingerprints ("AB:CD:…", upper case) a client certificate must also match; empty: any the CA issued. */
  tlsClientCertSha256?: string[];
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

/** Refuses secrets that are short or visibly not random; the message names the variable only. */
function checkSecretStrength(name: string, secret: string): void {
  if (secret.length < MIN_SECRET_LENGTH) {
    throw new ConfigError(`${name} is too weak: it must be at least ${MIN_SECRET_LENGTH} characters`);
  }
  // Catches placeholders such as 'x'.repeat(32); a random secret of this length has far more variety.
  if (new Set(secret).size < 8) {
    throw new ConfigError(`${name} is too weak: it must be random (fewer than 8 distinct characters)`);
  }
}

/** "ab:cd…" or "abcd…" (64 hex digits) as Node's fingerprint256 spells it. */
function fingerprintsFromEnv(env: Env, name: string): string[] {
  const raw = env[name];
  if (!raw) return [];
  return raw.split(',').map((item) => {
    const hex = item.trim().replace(/:/g, '');
    if (!/^[0-9a-fA-F]{64}$/.test(hex))
      throw new ConfigError(`${name} must be comma-separated SHA-256 fingerprints (64 hex digits each)`);
    return hex.toUpperCase().match(/../g)!.join(':');
  });
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
  checkSecretStrength('BRIDGE_HMAC_SECRET', hmacSecret);
  // Optional: only during a rotation. Held to the same rules, since it opens the same door.
  const previousHmacSecret =
    env.BRIDGE_HMAC_SECRET_PREVIOUS || env.BRIDGE_HMAC_SECRET_PREVIOUS_FILE
      ? secretFromEnv(env, 'BRIDGE_HMAC_SECRET_PREVIOUS')
      : undefined;
  if (previousHmacSecret !== undefined) {
    checkSecretStrength('BRIDGE_HMAC_SECRET_PREVIOUS', previousHmacSecret);
    // The same value twice is a rotation step gone wrong (the new secret was never put in place).
    if (previousHmacSecret === hmacSecret) throw new ConfigError('BRIDGE_HMAC_SECRET_PREVIOUS is the same as BRIDGE_HMAC_SECRET');
  }

  const tlsCertFile = env.BRIDGE_TLS_CERT_FILE || undefined;
  const tlsKeyFile = env.BRIDGE_TLS_KEY_FILE || undefined;
  if (Boolean(tlsCertFile) !== Boolean(tlsKeyFile)) {
    throw new ConfigError('set both BRIDGE_TLS_CERT_FILE and BRIDGE_TLS_KEY_FILE, or neither');
  }
  const tlsClientCaFile = env.BRIDGE_TLS_CLIENT_CA_FILE || undefined;
  if (tlsClientCaFile && !tlsCertFile) {
    throw new ConfigError(
      'BRIDGE_TLS_CLIENT_CA_FILE needs BRIDGE_TLS_CERT_FILE and BRIDGE_TLS_KEY_FILE (mutual TLS is TLS first)',
    );
  }
  const tlsClientCertSha256 = fingerprintsFromEnv(env, 'BRIDGE_TLS_CLIENT_CERT_SHA256');
  if (tlsClientCertSha256.length && !tlsClientCaFile) {
    throw new ConfigError('BRIDGE_TLS_CLIENT_CERT_SHA256 needs BRIDGE_TLS_CLIENT_CA_FILE');
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
    ...(previousHmacSecret !== undefined ? { previousHmacSecret } : {}),
    host,
    port: intFromEnv(env, 'BRIDGE_PORT', DEFAULTS.port, 0, 65535),
    sessionPoolSize: intFromEnv(env, 'HSM_SESSION_POOL', DEFAULTS.sessionPoolSize, 1, 64),
    stateDir: resolve(env.BRIDGE_STATE_DIR || DEFAULTS.stateDir),
    tlsCertFile,
    tlsKeyFile,
    tlsClientCaFile,
    tlsClientCertSha256,
  };
}
