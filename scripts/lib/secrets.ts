/** The stack's own secrets, generated once per state directory and kept in a 0600 file. */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { readJsonIfExists, writePrivateFile } from './files.js';

export interface StackSecrets {
  bridgeHmacSecret: string;
  bootstrapSecret: string;
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** `length` characters drawn uniformly from [A-Za-z0-9] (rejection sampling: no modulo bias). */
export function randomString(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248 && out.length < length) out += ALPHABET[byte % 62];
    }
  }
  return out;
}

export async function ensureStackSecrets(stateDir: string): Promise<StackSecrets> {
  const path = join(stateDir, 'secrets.json');
  const existing = await readJsonIfExists<Partial<StackSecrets>>(path);
  if (existing?.bridgeHmacSecret && existing.bootstrapSecret) {
    return { bridgeHmacSecret: existing.bridgeHmacSecret, bootstrapSecret: existing.bootstrapSecret };
  }
  const secrets: StackSecrets = { bridgeHmacSecret: randomString(48), bootstrapSecret: randomString(48) };
  await writePrivateFile(path, JSON.stringify(secrets, null, 2) + '\n');
  return secrets;
}
