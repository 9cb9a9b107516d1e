/**
 * Standard Webhooks signing (https://www.standardwebhooks.com, spec "Signature scheme"), with
 * WebCrypto: the scheme is a few lines, so the Worker carries no library for it (the tests check
 * it against the `standardwebhooks` package and the spec's test vector). Each delivery carries `webhook-id`, `webhook-timestamp` (Unix seconds) and
 * `webhook-signature`: space-delimited `v1,{base64 HMAC-SHA256 over "{id}.{timestamp}.{body}"}`,
 * one per secret that currently signs, which is how a rotation overlaps without a gap.
 */
import { randomBytes } from '../core/encoding';

const PREFIX = 'whsec_';

function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function fromBase64(text: string): Uint8Array {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** A new signing secret: `whsec_` and 32 random bytes in base64 (the spec allows 24–64). */
export function newSigningSecret(): string {
  return PREFIX + toBase64(randomBytes(32));
}

/** Whether `secret` is a well-formed `whsec_` secret. */
export function isSigningSecret(secret: string): boolean {
  if (!secret.startsWith(PREFIX)) return false;
  try {
    const n = fromBase64(secret.slice(PREFIX.length)).length;
    return n >= 24 && n <= 64;
  } catch {
    return false;
  }
}

/** One `v1,…` signature of a message under one secret. */
export async function signature(secret: string, id: string, timestamp: number, body: string): Promise<string> {
  const key = await crypto.subtle.importKey(
    'raw',
    fromBase64(secret.slice(PREFIX.length)) as BufferSource,
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['sign'],
  );
  const mac = await crypto.subtle.sign('HMAC', key, new TextEncoder().encode(`${id}.${timestamp}.${body}`));
  return `v1,${toBase64(new Uint8Array(mac))}`;
}

/** The three Standard Webhooks headers for a body signed with every given secret. */
export async function webhookHeaders(
  secrets: string[],
  id: string,
  timestamp: number,
  body: string,
): Promise<Record<string, string>> {
  const signatures = await Promise.all(secrets.map((s) => signature(s, id, timestamp, body)));
  return { 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': signatures.join(' ') };
}
