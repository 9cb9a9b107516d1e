/**
 * Backups are sealed under a deployment-wide (system) data key, so they restore into any vault
 * of this deployment and nowhere else; GCM makes any change to the blob fail to open.
 * Blob: base64url(JSON {f: format, k: data key id, c: sealed payload}).
 */
import { SYSTEM_SCOPE, type DataKeyManager } from '../crypto/data-keys';
import { fromBase64Url, fromUtf8, toBase64Url, utf8 } from '../core/encoding';
import { open, seal } from '../crypto/envelope';
import * as z from 'zod';
import { badParameter, IntegrityError } from '../core/errors';

const FORMAT = 'ekv-backup-v1';
const aad = (kind: string, keyId: string) => `${FORMAT}|${kind}|${keyId}`;

/**
 * Azure's one answer to any blob restore cannot use: not base64url, not this format, sealed for
 * another kind or by another deployment, altered, or not a backup of this kind once opened.
 */
export const corruptBackup = () => badParameter('Backup blob contains invalid or corrupt version.');

export async function sealBackup(keys: DataKeyManager, kind: string, payload: Uint8Array): Promise<string> {
  const dataKey = await keys.forWrite(SYSTEM_SCOPE);
  const sealed = await seal(dataKey.key, payload, aad(kind, dataKey.id));
  return toBase64Url(utf8(JSON.stringify({ f: FORMAT, k: dataKey.id, c: sealed })));
}

/** The blob's outer shape: which data key sealed it, and the sealed payload. */
const Envelope = z.object({ f: z.literal(FORMAT), k: z.string().min(1).max(200), c: z.string().min(1) });

export async function openBackup(keys: DataKeyManager, kind: string, blob: string): Promise<Uint8Array> {
  let envelope: z.infer<typeof Envelope>;
  try {
    envelope = Envelope.parse(JSON.parse(fromUtf8(fromBase64Url(blob))));
  } catch {
    throw corruptBackup();
  }
  let key: CryptoKey;
  try {
    key = await keys.forRead(envelope.k, SYSTEM_SCOPE);
  } catch (err) {
    // A key id this deployment never issued: the blob comes from elsewhere.
    if (err instanceof IntegrityError) throw corruptBackup();
    throw err;
  }
  const payload = await open(key, envelope.c, aad(kind, envelope.k));
  if (!payload) throw corruptBackup();
  return payload;
}
