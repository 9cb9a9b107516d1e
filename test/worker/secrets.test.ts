/**
 * The Secrets API over HTTP: set, get, update, list, versions, delete, recover, purge, backup and
 * restore, in Azure's shapes.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { API, call, json, setupVault } from './helpers';

let token: string;
let origin: string;

beforeAll(async () => {
  ({ token, origin } = await setupVault());
});

const put = (name: string, body: unknown) => call('PUT', `${origin}/secrets/${name}?${API}`, { token, body });
const get = (path: string) => call('GET', `${origin}${path}${path.includes('?') ? '&' : '?'}${API}`, { token });
const now = () => Math.floor(Date.now() / 1000);

describe('set and get', () => {
  it('stores a new version on each set and serves latest and by version', async () => {
    const first = await json(await put('app-password', { value: 'one', contentType: 'text/plain', tags: { env: 'test' } }));
    const second = await json(await put('app-password', { value: 'two' }));
    expect(first.id).toMatch(new RegExp(`^${origin}/secrets/app-password/[0-9a-f]{32}$`));
    expect(second.id).not.toBe(first.id);
    expect(first.value).toBe('one');
    expect(first.contentType).toBe('text/plain');
    expect(first.tags).toEqual({ env: 'test' });
    expect(first.attributes).toMatchObject({ enabled: true, recoveryLevel: 'Recoverable+Purgeable', recoverableDays: 90 });
    expect(first.attributes.created).toBeGreaterThan(now() - 60);

    const latest = await json(await get('/secrets/app-password/'));
    expect(latest.value).toBe('two');
    expect(latest.id).toBe(second.id);
    const firstVersion = first.id.split('/').pop();
    const old = await json(await get(`/secrets/app-password/${firstVersion}`));
    expect(old.value).toBe('one');
    expect(old.tags).toEqual({ env: 'test' });
  });

  it('treats names case-insensitively, keeping the first spelling', async () => {
    await put('MixedCase', { value: 'a' });
    const res = await get('/secrets/mixedcase');
    expect(res.status).toBe(200);
    expect((await json(res)).id).toContain('/secrets/MixedCase/');
  });

  it('accepts an empty value and unicode, and round-trips them', async () => {
    await put('empty', { value: '' });
    expect((await json(await get('/secrets/empty'))).value).toBe('');
    await put('unicode', { value: 'pässwörd ✓ 密码' });
    expect((await json(await get('/secrets/unicode'))).value).toBe('pässwörd ✓ 密码');
  });

  it('answers 404 SecretNotFound for unknown names and versions', async () => {
    const missing = await get('/secrets/nope');
    expect(missing.status).toBe(404);
    expect((await json(missing)).error.code).toBe('SecretNotFound');
    await put('known', { value: 'x' });
    expect((await get(`/secrets/known/${'0'.repeat(32)}`)).status).toBe(404);
    expect((await get('/secrets/known/not-a-version')).status).toBe(404);
  });

  it('refuses a disabled secret, and one outside nbf/exp, with 403 Forbidden', async () => {
    await put('disabled', { value: 'x', attributes: { enabled: false } });
    const disabled = await get('/secrets/disabled');
    expect(disabled.status).toBe(403);
    expect((await json(disabled)).error).toMatchObject({ code: 'Forbidden', innererror: { code: 'SecretDisabled' } });

    await put('future', { value: 'x', attributes: { nbf: now() + 3600 } });
    expect((await get('/secrets/future')).status).toBe(403);
    await put('expired', { value: 'x', attributes: { exp: now() - 10 } });
    const expired = await get('/secrets/expired');
    expect(expired.status).toBe(403);
    expect((await json(expired)).error.innererror.code).toBe('SecretExpired');
  });
});

describe('bad input is refused with 400 BadParameter and writes nothing', () => {
  const cases: Array<[string, string, unknown]> = [
    ['invalid name', 'bad_name', { value: 'x' }],
    ['name too long', 'a'.repeat(128), { value: 'x' }],
    ['value over 25 KB', 'big', { value: 'x'.repeat(25 * 1024 + 1) }],
    ['value not a string', 'typed', { value: 42 }],
    ['missing value', 'novalue', { contentType: 'x' }],
    ['16 tags', 'tags16', { value: 'x', tags: Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`t${i}`, 'v'])) }],
    ['tag value over 256', 'tagval', { value: 'x', tags: { t: 'v'.repeat(257) } }],
    ['tag name over 256', 'tagname', { value: 'x', tags: { ['k'.repeat(257)]: 'v' } }],
    ['tag value not a string', 'tagtype', { value: 'x', tags: { t: 1 } }],
    ['__proto__ tag with an object value', 'tagproto', '{"value": "x", "tags": {"__proto__": {"x": "y"}}}'],
    ['__proto__ tag with a number value', 'tagproto2', '{"value": "x", "tags": {"__proto__": 1}}'],
    ['contentType over 255', 'ctype', { value: 'x', contentType: 'c'.repeat(256) }],
    ['enabled not a boolean', 'enabled', { value: 'x', attributes: { enabled: 'yes' } }],
    ['exp not an integer', 'expfloat', { value: 'x', attributes: { exp: 1.5 } }],
    ['malformed JSON', 'malformed', '{"value": '],
  ];
  for (const [label, name, body] of cases) {
    it(label, async () => {
      const res = await put(name, body);
      expect(res.status).toBe(400);
      const err = await json(res);
      expect(err.error.code).toBe('BadParameter');
      expect(typeof err.error.message).toBe('string');
      if (/^[0-9a-zA-Z-]{1,127}$/.test(name)) expect((await get(`/secrets/${name}`)).status).toBe(404);
    });
  }

  it('keeps tags named like prototype properties as ordinary tags', async () => {
    const res = await put('tagnames', '{"value": "x", "tags": {"__proto__": "p", "constructor": "c", "toString": "t"}}');
    expect(res.status).toBe(200);
    const text = await (await get('/secrets/tagnames')).text();
    expect(text).toContain('"tags":{"__proto__":"p","constructor":"c","toString":"t"}');
  });

  it('accepts exactly 25 KB and 15 tags', async () => {
    const tags = Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`t${i}`, 'v'.repeat(256)]));
    expect((await put('limits', { value: 'x'.repeat(25 * 1024), tags })).status).toBe(200);
  });

  it('requires a known api-version', async () => {
    const missing = await call('GET', `${origin}/secrets/x`, { token });
    expect(missing.status).toBe(400);
    expect((await json(missing)).error.code).toBe('BadParameter');
    expect((await call('GET', `${origin}/secrets/x?api-version=6.0`, { token })).status).toBe(400);
    for (const v of ['7.0', '7.3', '7.6', '2025-07-01', '2026-04-01']) {
      expect((await call('GET', `${origin}/secrets?api-version=${v}`, { token })).status).toBe(200);
    }
    // The SDK percent-encodes the hyphen.
    expect((await call('GET', `${origin}/secrets?api%2Dversion=2026-04-01`, { token })).status).toBe(200);
  });

  it('rejects maxresults outside 1-25 and a forged skiptoken', async () => {
    expect((await get('/secrets?maxresults=0')).status).toBe(400);
    expect((await get('/secrets?maxresults=26')).status).toBe(400);
    expect((await get('/secrets?maxresults=abc')).status).toBe(400);
    expect((await get('/secrets?$skiptoken=!!!')).status).toBe(400);
  });

  it('answers 404 for a vault that does not exist', async () => {
    const res = await call('GET', `https://nosuchvault.vault.localhost/secrets/x?${API}`, { token });
    expect(res.status).toBe(404);
    expect((await json(res)).error.code).toBe('VaultNotFound');
  });
});

describe('update', () => {
  it('changes contentType, attributes and tags of a version without touching the value', async () => {
    const created = await json(await put('patchme', { value: 'v', tags: { a: '1' } }));
    const version = created.id.split('/').pop();
    const res = await call('PATCH', `${origin}/secrets/patchme/${version}?${API}`, {
      token,
      body: { contentType: 'application/json', attributes: { enabled: false, exp: now() + 3600 }, tags: { b: '2' } },
    });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.value).toBeUndefined();
    expect(body).toMatchObject({ contentType: 'application/json', tags: { b: '2' }, attributes: { enabled: false } });
    expect((await get('/secrets/patchme')).status).toBe(403); // now disabled
    await call('PATCH', `${origin}/secrets/patchme/${version}?${API}`, { token, body: { attributes: { enabled: true } } });
    expect((await json(await get('/secrets/patchme'))).value).toBe('v');
  });

  it('refuses bad updates and unknown secrets', async () => {
    await put('patch2', { value: 'v' });
    const bad = await call('PATCH', `${origin}/secrets/patch2?${API}`, { token, body: { tags: 'nope' } });
    expect(bad.status).toBe(400);
    const missing = await call('PATCH', `${origin}/secrets/ghost/${'a'.repeat(32)}?${API}`, { token, body: {} });
    expect(missing.status).toBe(404);
  });
});

describe('list and paging', () => {
  it('lists latest versions without values, paged with absolute nextLinks', async () => {
    const { token: t, origin: o } = await setupVault();
    for (let i = 0; i < 7; i++) await call('PUT', `${o}/secrets/s${i}?${API}`, { token: t, body: { value: `secret-${i}` } });
    await call('PUT', `${o}/secrets/s0?${API}`, { token: t, body: { value: 'again' } });
    const seen: string[] = [];
    let url: string | null = `${o}/secrets?${API}&maxresults=3`;
    let pages = 0;
    while (url) {
      const res = await call('GET', url, { token: t });
      expect(res.status).toBe(200);
      const page = await json(res);
      pages++;
      for (const item of page.value) {
        expect(item.value).toBeUndefined();
        expect(item.id).toMatch(new RegExp(`^${o}/secrets/s\\d$`));
        seen.push(item.id.split('/').pop());
      }
      url = page.nextLink;
      if (url) expect(url.startsWith(`${o}/secrets?`)).toBe(true);
    }
    expect(pages).toBe(3);
    expect(seen).toEqual(['s0', 's1', 's2', 's3', 's4', 's5', 's6']);
  });

  it('lists every version of one secret', async () => {
    for (let i = 0; i < 4; i++) await put('versioned', { value: `v${i}` });
    const first = await json(await get('/secrets/versioned/versions?maxresults=3'));
    expect(first.value).toHaveLength(3);
    expect(first.nextLink).toBeTruthy();
    const second = await json(await call('GET', first.nextLink, { token }));
    expect(second.value).toHaveLength(1);
    expect(second.nextLink).toBeNull();
    const ids = [...first.value, ...second.value].map((i: { id: string }) => i.id);
    expect(new Set(ids).size).toBe(4);
    for (const id of ids) expect(id).toMatch(/\/secrets\/versioned\/[0-9a-f]{32}$/);
    const unknown = await get('/secrets/unknown-thing/versions');
    expect(unknown.status).toBe(200); // Azure: an empty list, not 404
    expect(await json(unknown)).toEqual({ value: [], nextLink: null });
  });
});

describe('soft delete, recover and purge', () => {
  it('deletes softly, refuses the name while deleted, recovers, and purges', async () => {
    const created = await json(await put('doomed', { value: 'keep-me' }));
    const del = await call('DELETE', `${origin}/secrets/doomed?${API}`, { token });
    expect(del.status).toBe(200);
    const deleted = await json(del);
    expect(deleted.recoveryId).toBe(`${origin}/deletedsecrets/doomed`);
    expect(deleted.id).toBe(created.id);
    expect(deleted.value).toBeUndefined();
    expect(deleted.scheduledPurgeDate - deleted.deletedDate).toBe(90 * 86400);

    expect((await get('/secrets/doomed')).status).toBe(404);
    const conflict = await put('doomed', { value: 'new' });
    expect(conflict.status).toBe(409);
    expect((await json(conflict)).error.code).toBe('Conflict');
    expect((await call('DELETE', `${origin}/secrets/doomed?${API}`, { token })).status).toBe(404);

    const gotDeleted = await json(await get('/deletedsecrets/doomed'));
    expect(gotDeleted.recoveryId).toBe(`${origin}/deletedsecrets/doomed`);
    const list = await json(await get('/deletedsecrets'));
    expect(list.value.map((i: { recoveryId: string }) => i.recoveryId)).toContain(`${origin}/deletedsecrets/doomed`);

    const recovered = await call('POST', `${origin}/deletedsecrets/doomed/recover?${API}`, { token });
    expect(recovered.status).toBe(200);
    expect((await json(await get('/secrets/doomed'))).value).toBe('keep-me');
    expect((await get('/deletedsecrets/doomed')).status).toBe(404);
    expect((await call('POST', `${origin}/deletedsecrets/doomed/recover?${API}`, { token })).status).toBe(404);

    await call('DELETE', `${origin}/secrets/doomed?${API}`, { token });
    const purge = await call('DELETE', `${origin}/deletedsecrets/doomed?${API}`, { token });
    expect(purge.status).toBe(204);
    expect(purge.headers.get('content-encoding')).toBe('identity'); // nothing may gzip the empty body
    expect((await get('/deletedsecrets/doomed')).status).toBe(404);
    expect((await call('DELETE', `${origin}/deletedsecrets/doomed?${API}`, { token })).status).toBe(404);
    // The name is free again, and the old versions are gone.
    expect((await put('doomed', { value: 'fresh' })).status).toBe(200);
    expect((await json(await get('/secrets/doomed/versions'))).value).toHaveLength(1);
  });

  it('refuses to update a deleted secret', async () => {
    const created = await json(await put('deleted-update', { value: 'x' }));
    await call('DELETE', `${origin}/secrets/deleted-update?${API}`, { token });
    const version = created.id.split('/').pop();
    const res = await call('PATCH', `${origin}/secrets/deleted-update/${version}?${API}`, { token, body: { tags: { a: 'b' } } });
    expect(res.status).toBe(404);
    expect((await json(await get('/deletedsecrets/deleted-update'))).tags).toBeUndefined();
  });

  it('refuses to purge a live secret', async () => {
    await put('alive', { value: 'x' });
    expect((await call('DELETE', `${origin}/deletedsecrets/alive?${API}`, { token })).status).toBe(404);
    expect((await get('/secrets/alive')).status).toBe(200);
  });

  it('honours retention and purge protection', async () => {
    const { token: t, origin: o } = await setupVault({ softDeleteRetentionInDays: 7, enablePurgeProtection: true });
    const created = await json(await call('PUT', `${o}/secrets/protected?${API}`, { token: t, body: { value: 'x' } }));
    expect(created.attributes).toMatchObject({ recoveryLevel: 'CustomizedRecoverable', recoverableDays: 7 });
    const deleted = await json(await call('DELETE', `${o}/secrets/protected?${API}`, { token: t }));
    expect(deleted.scheduledPurgeDate - deleted.deletedDate).toBe(7 * 86400);
    const purge = await call('DELETE', `${o}/deletedsecrets/protected?${API}`, { token: t });
    expect(purge.status).toBe(403);
    expect((await json(purge)).error.code).toBe('Forbidden');
    expect((await call('GET', `${o}/deletedsecrets/protected?${API}`, { token: t })).status).toBe(200);
  });
});

describe('backup and restore', () => {
  it('restores every version into another vault of this deployment', async () => {
    await put('precious', { value: 'v1', tags: { a: 'b' } });
    const latest = await json(await put('precious', { value: 'v2', contentType: 'text/plain' }));
    const backup = await call('POST', `${origin}/secrets/precious/backup?${API}`, { token });
    expect(backup.status).toBe(200);
    const blob = (await json(backup)).value as string;
    expect(blob).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(blob).not.toContain('v1');
    expect(atob(blob.replace(/-/g, '+').replace(/_/g, '/'))).not.toContain('precious');

    const { token: t, origin: o } = await setupVault();
    const restored = await call('POST', `${o}/secrets/restore?${API}`, { token: t, body: { value: blob } });
    expect(restored.status).toBe(200);
    const body = await json(restored);
    expect(body.id).toBe(`${o}/secrets/precious/${latest.id.split('/').pop()}`);
    expect(body.value).toBeUndefined();
    expect((await json(await call('GET', `${o}/secrets/precious?${API}`, { token: t }))).value).toBe('v2');
    const versions = await json(await call('GET', `${o}/secrets/precious/versions?${API}`, { token: t }));
    expect(versions.value).toHaveLength(2);

    // Same name again: 409, in the original vault too.
    expect((await call('POST', `${o}/secrets/restore?${API}`, { token: t, body: { value: blob } })).status).toBe(409);
    expect((await call('POST', `${origin}/secrets/restore?${API}`, { token, body: { value: blob } })).status).toBe(409);
  });

  it('refuses a tampered or foreign blob with 400 and writes nothing', async () => {
    await put('tamper-src', { value: 'x' });
    const blob = (await json(await call('POST', `${origin}/secrets/tamper-src/backup?${API}`, { token }))).value as string;
    const { token: t, origin: o } = await setupVault();
    const raw = JSON.parse(atob(blob.replace(/-/g, '+').replace(/_/g, '/')));
    const flipped = raw.c.slice(0, 20) + (raw.c[20] === 'A' ? 'B' : 'A') + raw.c.slice(21);
    const tampered = btoa(JSON.stringify({ ...raw, c: flipped }))
      .replace(/\+/g, '-')
      .replace(/\//g, '_')
      .replace(/=+$/, '');
    for (const value of [
      tampered,
      'bm90IGEgYmFja3Vw',
      btoa(JSON.stringify({ ...raw, k: crypto.randomUUID() })).replace(/=+$/, ''),
    ]) {
      const res = await call('POST', `${o}/secrets/restore?${API}`, { token: t, body: { value } });
      expect(res.status).toBe(400);
      expect((await json(res)).error.code).toBe('BadParameter');
    }
    expect((await call('GET', `${o}/secrets/tamper-src?${API}`, { token: t })).status).toBe(404);
    expect((await call('POST', `${o}/secrets/restore?${API}`, { token: t, body: {} })).status).toBe(400);
  });

  it('backs up only live secrets', async () => {
    expect((await call('POST', `${origin}/secrets/never-was/backup?${API}`, { token })).status).toBe(404);
  });
});

describe('a vault deleted elsewhere', () => {
  it('answers 404 VaultNotFound to a write, not a server error, even while this isolate still caches it', async () => {
    const { env } = await import('cloudflare:workers');
    const { token: t, origin: o, vault } = await setupVault();
    expect((await call('PUT', `${o}/secrets/s?${API}`, { token: t, body: { value: 'x' } })).status).toBe(200);
    // Deleted straight in D1, as another isolate would: this isolate's vault cache is now stale.
    await env.DB.prepare('DELETE FROM vaults WHERE name = ?').bind(vault).run();
    const write = await call('PUT', `${o}/secrets/s2?${API}`, { token: t, body: { value: 'x' } });
    expect(write.status).toBe(404);
    expect((await json(write)).error.code).toBe('VaultNotFound');
    // And the stale entry is gone: the next request finds no vault either.
    const read = await call('GET', `${o}/secrets/s?${API}`, { token: t });
    expect((await json(read)).error.code).toBe('VaultNotFound');
  });
});
