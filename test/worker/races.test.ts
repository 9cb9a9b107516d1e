// Two writers that both pass the "does it exist?" check: the database constraint decides, and
// the loser gets the same 409 it would have got a moment later, never a 500.
import { describe, expect, it } from 'vitest';
import { describeError, violatedConstraint } from '../../src/storage/errors';
import { API, APEX, call, json, setupVault } from './helpers';

describe('concurrent writers', () => {
  it('creating one vault name twice at once: one 201, one 409', async () => {
    const { token } = await setupVault();
    const name = `race${Date.now().toString(36)}`;
    const results = await Promise.all([1, 2].map(() => call('PUT', `${APEX}/management/vaults/${name}`, { token, body: {} })));
    expect(results.map((r) => r.status).sort()).toEqual([201, 409]);
    const loser = results.find((r) => r.status === 409)!;
    expect((await json(loser)).error.code).toBe('Conflict');
  });

  it('restoring one backup into one vault twice at once: one 200, one 409', async () => {
    const { token, origin } = await setupVault();
    await call('PUT', `${origin}/secrets/raced?${API}`, { token, body: { value: 'x' } });
    const blob = (await json(await call('POST', `${origin}/secrets/raced/backup?${API}`, { token }))).value;
    const target = await setupVault();
    const results = await Promise.all(
      [1, 2].map(() => call('POST', `${target.origin}/secrets/restore?${API}`, { token: target.token, body: { value: blob } })),
    );
    expect(results.map((r) => r.status).sort()).toEqual([200, 409]);
  });
});

describe('database errors', () => {
  it('are classified through a wrapping error and logged without bound parameters', () => {
    const cause = new Error('D1_ERROR: UNIQUE constraint failed: vaults.name: SQLITE_CONSTRAINT');
    const wrapped = new Error('Failed query: insert into "vaults" values (?, ?)\nparams: secret-looking-param', { cause });
    expect(violatedConstraint(wrapped)).toBe('unique');
    expect(violatedConstraint(new Error('x', { cause: new Error('FOREIGN KEY constraint failed') }))).toBe('foreign-key');
    expect(violatedConstraint(new Error('network'))).toBeUndefined();
    const logged = describeError(wrapped);
    expect(logged).toContain('Failed query: insert into "vaults"');
    expect(logged).toContain('UNIQUE constraint failed');
    expect(logged).not.toContain('secret-looking-param');
  });
});
