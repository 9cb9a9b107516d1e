/**
 * The events table's primary key: derived from what makes an event unique, so that emitting the
 * same event twice (overlapping cron runs, a retried queue batch) stores it once, and so that
 * "was this version's near-expiry sent?" is one primary-key lookup.
 */
import { sha256Hex } from '../core/encoding';

/** UUID-shaped id derived from what makes the event unique (names compare without case). */
export async function eventId(vaultId: string, type: string, name: string, version: string): Promise<string> {
  const hex = await sha256Hex(`${vaultId}\n${type}\n${name.toLowerCase()}\n${version.toLowerCase()}`);
  // RFC 9562 version 8 (custom) with the RFC variant bits.
  const variant = ((parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}
