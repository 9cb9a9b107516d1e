/**
 * Replay across restarts: a signed request stays acceptable for ±60 s, so a floor covering the
 * timestamps of answered requests is kept in BRIDGE_STATE_DIR and a restarted (or crashed) bridge
 * still refuses them. The journal on its own first, then the bridge as a real process restarted
 * on its state.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromBase64Url, signRequest, toBase64Url } from '../../bridge-protocol/index.js';
import { startBridgeProcess, type BridgeProcess } from '../dev/softhsm.js';
import { ConfigError } from '../src/config.js';
import { NonceJournal } from '../src/nonce-journal.js';
import { SECRET, bridgeEnv, freshToken, runMain, type TestToken } from './helpers.js';

const nonce = () => randomBytes(16).toString('base64url');

describe('NonceJournal', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ekv-journal-test-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const lines = async (state: string) =>
    (await Promise.all((await readdir(state)).map((name) => readFile(join(state, name), 'utf8'))))
      .join('')
      .split('\n')
      .filter(Boolean);

  it('starts, after a reopen, from the highest timestamp recorded, concurrent ones sharing writes', async () => {
    const state = join(dir, 'reopen');
    const nowMs = 1_700_000_000_000;
    const journal = await NonceJournal.open(state, { now: () => nowMs });
    expect(journal.floor).toBe(-Infinity);
    const timestamps = Array.from({ length: 50 }, (_, i) => nowMs / 1000 - 30 + ((i * 7) % 50));
    await Promise.all(timestamps.map((t) => journal.record(t)));
    await journal.close();
    expect((await lines(state)).length).toBeLessThanOrEqual(2); // group commit: one write, maybe two
    const again = await NonceJournal.open(state, { now: () => nowMs + 5_000 });
    expect(again.floor).toBe(Math.max(...timestamps));
    await again.close();
  });

  it('writes only for a timestamp above what is on disk already', async () => {
    const state = join(dir, 'covered');
    const t0 = 1_700_000_000;
    const journal = await NonceJournal.open(state, { now: () => t0 * 1000 });
    await journal.record(t0);
    const written = (await lines(state)).length;
    await journal.record(t0);
    await journal.record(t0 - 20); // a client whose clock runs behind
    expect((await lines(state)).length).toBe(written);
    await journal.record(t0 + 1);
    expect((await lines(state)).length).toBe(written + 1);
    await journal.close();
    const again = await NonceJournal.open(state, { now: () => t0 * 1000 });
    expect(again.floor).toBe(t0 + 1);
    await again.close();
  });

  it('forgets, and deletes, segments whose requests can no longer be replayed', async () => {
    const state = join(dir, 'prune');
    const t0 = 1_700_000_000;
    const journal = await NonceJournal.open(state, { now: () => t0 * 1000 });
    const old = t0 - 50;
    await journal.record(old);
    await journal.close();
    // Still replayable 100 s later? No: 150 s old. Only a fresh entry survives.
    const later = await NonceJournal.open(state, { now: () => (t0 + 100) * 1000 });
    expect(later.floor).toBe(-Infinity);
    const fresh = t0 + 100;
    await later.record(fresh);
    await later.close();
    const segments = await readdir(state);
    expect(segments.every((name) => /^nonces-\d+\.log$/.test(name))).toBe(true);
    expect(segments).not.toContain(`nonces-${Math.floor(old / 60)}.log`);
    const last = await NonceJournal.open(state, { now: () => (t0 + 101) * 1000 });
    expect(last.floor).toBe(fresh);
    await last.close();
  });

  it('ignores a line a crash cut short without losing the lines written after it', async () => {
    const state = join(dir, 'torn');
    const t0 = 1_700_000_000;
    const first = await NonceJournal.open(state, { now: () => t0 * 1000 });
    await first.close();
    await writeFile(join(state, `nonces-${Math.floor(t0 / 60)}.log`), 'half-a-nonce-with', { flag: 'a' });
    const second = await NonceJournal.open(state, { now: () => t0 * 1000 });
    expect(second.floor).toBe(-Infinity);
    await second.record(t0);
    await second.close();
    const third = await NonceJournal.open(state, { now: () => t0 * 1000 });
    expect(third.floor).toBe(t0);
    await third.close();
  });

  it('counts the nonce lines earlier versions wrote by their timestamps', async () => {
    const state = join(dir, 'upgrade');
    const t0 = 1_700_000_000;
    await (await NonceJournal.open(state, { now: () => t0 * 1000 })).close();
    const old = [`${nonce()} ${t0 - 3}`, `${nonce()} ${t0 - 1}`, `${nonce()} ${t0 - 2}`].join('\n');
    await writeFile(join(state, `nonces-${Math.floor(t0 / 60)}.log`), `\n${old}\n`, { flag: 'a' });
    const journal = await NonceJournal.open(state, { now: () => t0 * 1000 });
    expect(journal.floor).toBe(t0 - 1);
    await journal.close();
  });

  it('refuses a state directory others can write, or that is not a directory', async () => {
    const open = join(dir, 'group-writable');
    await (await NonceJournal.open(open)).close();
    await chmod(open, 0o770);
    await expect(NonceJournal.open(open)).rejects.toThrow(ConfigError);
    await expect(NonceJournal.open(open)).rejects.toThrow(/writable by group or others/);
    const file = join(dir, 'a-file');
    await writeFile(file, '');
    await expect(NonceJournal.open(file)).rejects.toThrow(/BRIDGE_STATE_DIR .* (is not a directory|cannot be created)/);
  });
});

describe('a bridge restarted on its state directory', () => {
  let token: TestToken;
  let stateDir: string;
  const running: BridgeProcess[] = [];
  const dek = randomBytes(32);
  const context = toBase64Url(new TextEncoder().encode('vault=replay;dek=1'));

  const start = async (dir = stateDir) => {
    const bridge = await startBridgeProcess({ env: bridgeEnv(token, { BRIDGE_STATE_DIR: dir }) });
    running.push(bridge);
    return bridge;
  };
  const send = (bridge: BridgeProcess, path: string, headers: Record<string, string>, body: string) =>
    fetch(`${bridge.url}${path}`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body });
  /** A signed request, as someone on the path would capture it. */
  const capture = async (path: string, payload: unknown) => {
    const body = JSON.stringify(payload);
    return { path, body, headers: await signRequest(SECRET, 'POST', path, body) };
  };
  const replay = (bridge: BridgeProcess, req: Awaited<ReturnType<typeof capture>>) =>
    send(bridge, req.path, req.headers, req.body);
  const expectUnwraps = async (res: Response) => {
    expect(res.status).toBe(200);
    expect(fromBase64Url(((await res.json()) as { plaintext: string }).plaintext)).toEqual(new Uint8Array(dek));
  };
  const expectReplayRefused = async (res: Response) => {
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: { code: 'Unauthorized', message: 'replayed nonce' } });
  };

  let wrapped: string;

  beforeAll(async () => {
    token = await freshToken('ekv-replay-test');
    stateDir = join(token.dir, 'bridge-state');
    const bridge = await start();
    const wrap = await capture('/v1/wrap', { plaintext: toBase64Url(dek), context });
    const res = await replay(bridge, wrap);
    expect(res.status).toBe(200);
    wrapped = ((await res.json()) as { wrapped: string }).wrapped;
    await bridge.stop();
  }, 60_000);

  afterAll(async () => {
    for (const bridge of running) await bridge.stop();
    await token?.remove();
  });

  it('refuses a captured /v1/unwrap replayed after a restart, and serves a fresh one', async () => {
    const first = await start();
    const unwrap = await capture('/v1/unwrap', { wrapped, context });
    await expectUnwraps(await replay(first, unwrap));
    await expectReplayRefused(await replay(first, unwrap)); // the in-memory cache, as before
    await first.stop();

    const second = await start();
    await expectReplayRefused(await replay(second, unwrap));
    await expectUnwraps(await replay(second, await capture('/v1/unwrap', { wrapped, context })));
    await second.stop();
  }, 60_000);

  it('refuses it after a crash too: the nonce is on disk before the answer', async () => {
    const first = await start();
    const unwrap = await capture('/v1/unwrap', { wrapped, context });
    await expectUnwraps(await replay(first, unwrap));
    process.kill(first.pid, 'SIGKILL');
    await first.stop();

    const second = await start();
    await expectReplayRefused(await replay(second, unwrap));
    await second.stop();
  }, 60_000);

  it('refuses after a crash a request signed in the same second as one answered and never delivered, and serves fresh ones', async () => {
    const first = await start();
    const signedAt = Date.now();
    const body = JSON.stringify({ wrapped, context });
    const delivered = { path: '/v1/unwrap', body, headers: await signRequest(SECRET, 'POST', '/v1/unwrap', body, signedAt) };
    const withheld = { path: '/v1/unwrap', body, headers: await signRequest(SECRET, 'POST', '/v1/unwrap', body, signedAt) };
    await expectUnwraps(await replay(first, delivered));
    process.kill(first.pid, 'SIGKILL');
    await first.stop();

    const second = await start();
    await expectReplayRefused(await replay(second, withheld));
    await expectUnwraps(await replay(second, await capture('/v1/unwrap', { wrapped, context })));
    await second.stop();
  }, 60_000);

  it('protects only through the state directory: a bridge on another, empty one accepts the replay', async () => {
    // What two bridges with separate state directories guarantee each other: nothing (see README).
    const first = await start();
    const unwrap = await capture('/v1/unwrap', { wrapped, context });
    await expectUnwraps(await replay(first, unwrap));
    await first.stop();
    const elsewhere = await start(join(token.dir, 'other-state'));
    await expectUnwraps(await replay(elsewhere, unwrap));
    await elsewhere.stop();
  }, 60_000);

  it('will not start on a state directory others can write', async () => {
    const weak = join(token.dir, 'weak-state');
    await (await NonceJournal.open(weak)).close();
    await chmod(weak, 0o777);
    const run = await runMain(bridgeEnv(token, { BRIDGE_STATE_DIR: weak }));
    expect(run.code).toBe(1);
    expect(run.stdout).not.toContain('listening');
    expect(run.stderr).toMatch(/fatal: BRIDGE_STATE_DIR \(.*weak-state\) is writable by group or others/);
  });
});
