/**
 * Replay across restarts: a signed request stays acceptable for ±60 s, so the nonces of accepted
 * requests are journalled in BRIDGE_STATE_DIR and a restarted (or crashed) bridge still refuses
 * them. The journal on its own first, then the bridge as a real process restarted on its state.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
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

  it('gives back, after a reopen, every nonce recorded, concurrent ones included', async () => {
    const state = join(dir, 'reopen');
    const nowMs = 1_700_000_000_000;
    const journal = await NonceJournal.open(state, { now: () => nowMs });
    expect(journal.recovered).toEqual([]);
    const entries = Array.from({ length: 50 }, (_, i) => ({ nonce: nonce(), timestamp: nowMs / 1000 - 30 + i }));
    await Promise.all(entries.map((e) => journal.record(e.nonce, e.timestamp)));
    await journal.close();
    const again = await NonceJournal.open(state, { now: () => nowMs + 5_000 });
    expect(again.recovered).toEqual(expect.arrayContaining(entries));
    expect(again.recovered).toHaveLength(50);
    await again.close();
  });

  it('forgets, and deletes, segments whose requests can no longer be replayed', async () => {
    const state = join(dir, 'prune');
    const t0 = 1_700_000_000;
    const journal = await NonceJournal.open(state, { now: () => t0 * 1000 });
    const old = { nonce: nonce(), timestamp: t0 - 50 };
    await journal.record(old.nonce, old.timestamp);
    await journal.close();
    // Still replayable 100 s later? No: 150 s old. Only a fresh entry survives.
    const later = await NonceJournal.open(state, { now: () => (t0 + 100) * 1000 });
    expect(later.recovered).toEqual([]);
    const fresh = { nonce: nonce(), timestamp: t0 + 100 };
    await later.record(fresh.nonce, fresh.timestamp);
    await later.close();
    const segments = await readdir(state);
    expect(segments.every((name) => /^nonces-\d+\.log$/.test(name))).toBe(true);
    expect(segments).not.toContain(`nonces-${Math.floor(old.timestamp / 60)}.log`);
    const last = await NonceJournal.open(state, { now: () => (t0 + 101) * 1000 });
    expect(last.recovered).toEqual([fresh]);
    await last.close();
  });

  it('ignores a line a crash cut short without losing the lines written after it', async () => {
    const state = join(dir, 'torn');
    const t0 = 1_700_000_000;
    const first = await NonceJournal.open(state, { now: () => t0 * 1000 });
    await first.close();
    await writeFile(join(state, `nonces-${Math.floor(t0 / 60)}.log`), 'half-a-nonce-with', { flag: 'a' });
    const second = await NonceJournal.open(state, { now: () => t0 * 1000 });
    expect(second.recovered).toEqual([]);
    const entry = { nonce: nonce(), timestamp: t0 };
    await second.record(entry.nonce, entry.timestamp);
    await second.close();
    const third = await NonceJournal.open(state, { now: () => t0 * 1000 });
    expect(third.recovered).toEqual([entry]);
    await third.close();
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
