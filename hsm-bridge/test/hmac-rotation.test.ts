/**
 * Rotating the bridge HMAC secret without downtime (README "Rotating the bridge HMAC secret"): a
 * bridge given a current and a previous secret accepts requests signed with either; once the
 * previous one is dropped, requests signed with it are refused; weak secrets never start a bridge.
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromBase64Url, signRequest, toBase64Url } from '../../bridge-protocol/index.js';
import { ConfigError, loadConfig } from '../src/config.js';
import { startBridge, type RunningBridge } from '../src/serve.js';
import { bridgeEnv, freshToken, runMain, type TestToken } from './helpers.js';

const OLD = 'old-Secret_9f2Kq7Lm3Xv8Bn1Rt6Yh4Cj0Dw5';
const NEW = 'new-Secret_Z8pQ2mV7sK4wL1xN9rT3yH6cJ0';
const STRANGER = 'not-Ours_A1b2C3d4E5f6G7h8J9k0L1m2N3';

let token: TestToken;
let oldFile: string;
let newFile: string;

beforeAll(async () => {
  token = await freshToken('ekv-rotation-test');
  process.env.SOFTHSM2_CONF = token.confPath;
  oldFile = join(token.dir, 'hmac-old');
  newFile = join(token.dir, 'hmac-new');
  await writeFile(oldFile, `${OLD}\n`, { mode: 0o600 });
  await writeFile(newFile, `${NEW}\n`, { mode: 0o600 });
});
afterAll(async () => {
  await token?.remove();
});

/** A bridge in this process from environment variables, as main.ts would configure it. */
async function bridgeWith(env: Record<string, string>, logged: string[]): Promise<RunningBridge> {
  const config = loadConfig(bridgeEnv(token, { BRIDGE_HMAC_SECRET: '', ...env }));
  return startBridge(config, (event, fields) => logged.push(JSON.stringify({ event, ...fields })));
}

async function post(bridge: RunningBridge, secret: string, path: string, payload: unknown): Promise<Response> {
  const body = JSON.stringify(payload);
  const headers = await signRequest(secret, 'POST', path, body);
  return fetch(`${bridge.url}${path}`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body });
}

const context = toBase64Url(new TextEncoder().encode('vault/rotation'));

describe('a bridge with the current and the previous secret', () => {
  it('accepts requests signed with either, refuses others alike, and says when the old one is still used', async () => {
    const logged: string[] = [];
    const bridge = await bridgeWith({ BRIDGE_HMAC_SECRET_FILE: newFile, BRIDGE_HMAC_SECRET_PREVIOUS_FILE: oldFile }, logged);
    try {
      const dataKey = randomBytes(32);
      // Wrapped under one secret's request, unwrapped under the other's: the KEK is the same.
      const wrapRes = await post(bridge, OLD, '/v1/wrap', { plaintext: toBase64Url(dataKey), context });
      expect(wrapRes.status).toBe(200);
      const { wrapped } = (await wrapRes.json()) as { wrapped: string };
      const unwrapRes = await post(bridge, NEW, '/v1/unwrap', { wrapped, context });
      expect(unwrapRes.status).toBe(200);
      expect(Buffer.from(fromBase64Url(((await unwrapRes.json()) as { plaintext: string }).plaintext))).toEqual(dataKey);
      expect((await post(bridge, OLD, '/v1/unwrap', { wrapped, context })).status).toBe(200);

      const refused = await post(bridge, STRANGER, '/v1/unwrap', { wrapped, context });
      expect(refused.status).toBe(401);
      expect(await refused.json()).toEqual({ error: { code: 'Unauthorized', message: 'bad signature' } });

      // Logged once per minute at most, without the secret.
      expect(logged.filter((l) => l.includes('previous_hmac_secret_used'))).toHaveLength(1);
      const all = logged.join('\n');
      for (const secret of [OLD, NEW, STRANGER]) expect(all).not.toContain(secret);
    } finally {
      await bridge.close();
    }
  });

  it('after the previous secret is dropped, requests signed with it are refused (401)', async () => {
    const bridge = await bridgeWith({ BRIDGE_HMAC_SECRET_FILE: newFile }, []);
    try {
      const payload = { plaintext: toBase64Url(randomBytes(32)), context };
      expect((await post(bridge, NEW, '/v1/wrap', payload)).status).toBe(200);
      const old = await post(bridge, OLD, '/v1/wrap', payload);
      expect(old.status).toBe(401);
      expect(await old.json()).toEqual({ error: { code: 'Unauthorized', message: 'bad signature' } });
    } finally {
      await bridge.close();
    }
  });
});

describe('the previous secret is held to the same rules', () => {
  const config = (env: Record<string, string>) => () => loadConfig(bridgeEnv(token, { BRIDGE_HMAC_SECRET: NEW, ...env }));

  it.each([
    ['too short', 'short-Previous-0123456789', /BRIDGE_HMAC_SECRET_PREVIOUS is too weak: it must be at least 32 characters/],
    ['not random', 'ab'.repeat(20), /BRIDGE_HMAC_SECRET_PREVIOUS is too weak: it must be random/],
    ['the current one again', NEW, /BRIDGE_HMAC_SECRET_PREVIOUS is the same as BRIDGE_HMAC_SECRET/],
  ])('refuses a previous secret that is %s, without showing it', (_name, previous, message) => {
    let err: unknown;
    try {
      config({ BRIDGE_HMAC_SECRET_PREVIOUS: previous })();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).not.toContain(previous);
  });

  it('refuses the previous secret given both directly and as a file', () => {
    expect(config({ BRIDGE_HMAC_SECRET_PREVIOUS: OLD, BRIDGE_HMAC_SECRET_PREVIOUS_FILE: oldFile })).toThrow(
      /set only one of BRIDGE_HMAC_SECRET_PREVIOUS and BRIDGE_HMAC_SECRET_PREVIOUS_FILE/,
    );
  });

  it('a bridge process with a weak previous secret stops at start with one clear line', async () => {
    const weak = join(token.dir, 'hmac-weak');
    await writeFile(weak, 'weak-0123456789\n', { mode: 0o600 });
    const run = await runMain(bridgeEnv(token, { BRIDGE_HMAC_SECRET: NEW, BRIDGE_HMAC_SECRET_PREVIOUS_FILE: weak }));
    expect(run.code).toBe(1);
    expect(run.stdout).not.toContain('listening');
    expect(run.stderr.trim().split('\n')).toEqual([
      'hsm-bridge: fatal: BRIDGE_HMAC_SECRET_PREVIOUS is too weak: it must be at least 32 characters',
    ]);
    expect(run.stderr).not.toContain('weak-0123456789');
  });
});
