/**
 * Key material and plaintexts never reach D1, the Worker's or the bridge's logs: imported keys
 * with known private parts and known plaintexts are used through the SDK, then the stack's whole
 * output and every file of its local D1 and queue storage are searched for them.
 */
import { constants, createHash, generateKeyPairSync, publicEncrypt, randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cryptoClient, keyClient, stackInfo, toSdkJwk, uniqueName } from '../support/e2e';

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(path)));
    else out.push(path);
  }
  return out;
}

/** Every form a secret byte string could take in a log or a database page. */
function forms(bytes: Buffer): Buffer[] {
  return [
    bytes,
    Buffer.from(bytes.toString('base64url')),
    Buffer.from(bytes.toString('base64')),
    Buffer.from(bytes.toString('hex')),
  ];
}

describe('key material stays secret', () => {
  it('appears in no log line and no byte of D1 or queue storage', async () => {
    const client = keyClient();
    const needles = new Map<string, Buffer>();
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const rsaJwk = rsa.privateKey.export({ format: 'jwk' });
    const ecJwk = ec.privateKey.export({ format: 'jwk' });
    for (const field of ['d', 'p', 'q', 'dp', 'dq', 'qi'] as const)
      needles.set(`rsa.${field}`, Buffer.from(rsaJwk[field]!, 'base64url'));
    needles.set('ec.d', Buffer.from(ecJwk.d!, 'base64url'));

    const plaintext = Buffer.from(`canary-plaintext-${randomBytes(12).toString('hex')}`);
    needles.set('plaintext', plaintext);
    const digest = createHash('sha256')
      .update(`canary-message-${randomBytes(12).toString('hex')}`)
      .digest();

    for (const hsm of [false, true]) {
      const rsaKey = await client.importKey(uniqueName('secret-rsa'), toSdkJwk(rsaJwk), { hardwareProtected: hsm });
      const ecKey = await client.importKey(uniqueName('secret-ec'), toSdkJwk(ecJwk), { hardwareProtected: hsm });
      const ciphertext = publicEncrypt(
        { key: rsa.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
        plaintext,
      );
      const decrypted = await cryptoClient(rsaKey).decrypt({ algorithm: 'RSA-OAEP-256', ciphertext });
      expect(Buffer.from(decrypted.result).equals(plaintext)).toBe(true);
      const unwrapped = await cryptoClient(rsaKey).unwrapKey('RSA-OAEP-256', ciphertext);
      expect(Buffer.from(unwrapped.result).equals(plaintext)).toBe(true);
      expect((await cryptoClient(ecKey).sign('ES256', digest)).result).toHaveLength(64);
      expect((await cryptoClient(rsaKey).sign('RS256', digest)).result).toHaveLength(256);
    }
    const oct = await client.createOctKey(uniqueName('secret-oct'), { hsm: true, keySize: 256 });
    const sealed = await cryptoClient(oct).encrypt({ algorithm: 'A256GCM', plaintext });
    expect(
      Buffer.from(
        (
          await cryptoClient(oct).decrypt({
            algorithm: 'A256GCM',
            ciphertext: sealed.result,
            iv: sealed.iv!,
            authenticationTag: sealed.authenticationTag!,
          })
        ).result,
      ).equals(plaintext),
    ).toBe(true);

    // Let the audit and event consumers write what these requests produced.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const { stateDir, outputLog } = stackInfo();
    const haystacks: Array<[string, Buffer]> = [['output log', await readFile(outputLog)]];
    for (const file of await filesUnder(join(stateDir, 'wrangler'))) haystacks.push([file, await readFile(file)]);
    expect(haystacks.some(([name]) => /\.sqlite$/.test(name))).toBe(true);
    // The search does see what D1 holds: the public modulus is stored, in the clear, as it may be.
    expect(haystacks.some(([, content]) => content.includes(Buffer.from(rsaJwk.n!)))).toBe(true);
    for (const [needle, bytes] of needles) {
      for (const form of forms(bytes)) {
        for (const [where, content] of haystacks) {
          expect(content.includes(form), `${needle} found in ${where}`).toBe(false);
        }
      }
    }
  }, 120_000);
});
