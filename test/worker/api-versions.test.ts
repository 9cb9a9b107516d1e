/**
 * Every api-version Key Vault has published is accepted, previews included: SDK builds still in
 * wide use (Debian's python3-azure, older npm releases) default to preview versions, and a vault
 * that refused them would refuse every call those clients make. Unknown versions keep Azure's 400.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { API, call, json, setupVault } from './helpers';

const PUBLISHED = [
  '7.0-preview',
  '7.0',
  '7.1-preview',
  '7.1',
  '7.2-preview',
  '7.2',
  '7.3-preview',
  '7.3',
  '7.4-preview.1',
  '7.4',
  '7.5-preview.1',
  '7.5',
  '7.6-preview.1',
  '7.6-preview.2',
  '7.6',
  '2025-07-01',
  '2026-04-01',
];

let token: string;
let origin: string;

beforeAll(async () => {
  ({ token, origin } = await setupVault());
  for (const name of ['av-one', 'av-two']) {
    expect((await call('PUT', `${origin}/secrets/${name}?${API}`, { token, body: { value: 'v' } })).status).toBe(200);
  }
});

describe('api-version', () => {
  it.each(PUBLISHED)('accepts %s on secrets, keys and role assignments, and keeps it in nextLink', async (version) => {
    const q = `api-version=${encodeURIComponent(version)}`;
    const page = await call('GET', `${origin}/secrets?${q}&maxresults=1`, { token });
    expect(page.status).toBe(200);
    const body = await json(page);
    expect(body.value).toHaveLength(1);
    expect(new URL(body.nextLink).searchParams.get('api-version')).toBe(version);
    expect((await call('GET', `${origin}/secrets/av-one?${q}`, { token })).status).toBe(200);
    expect((await call('GET', `${origin}/keys?${q}`, { token })).status).toBe(200);
    expect((await call('GET', `${origin}//providers/Microsoft.Authorization/roleAssignments?${q}`, { token })).status).toBe(200);
    // As the SDK sends it: the hyphen percent-encoded.
    expect((await call('GET', `${origin}/secrets/av-two?api%2Dversion=${encodeURIComponent(version)}`, { token })).status).toBe(
      200,
    );
  });

  it.each(['7.7', '6.0', '7.4-preview', '7.6-preview.3', '7.5-preview.2', '2025-07-01-preview', '2024-01-01', '7.6 ', ''])(
    'refuses %j with BadParameter',
    async (version) => {
      const res = await call('GET', `${origin}/secrets/av-one?api-version=${encodeURIComponent(version)}`, { token });
      expect(res.status).toBe(400);
      const { error } = await json(res);
      expect(error.code).toBe('BadParameter');
      expect(error.message).toMatch(
        version
          ? /^The specified version \(.*\) is not recognized\. Supported: 7\.0-preview, 7\.0, /
          : /api-version .* is required/,
      );
    },
  );
});
