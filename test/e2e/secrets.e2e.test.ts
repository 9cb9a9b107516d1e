/**
 * Every SecretClient method of @azure/keyvault-secrets, unmodified, against the running stack:
 * the SDK does its own challenge, token request (ClientSecretCredential) and resource check.
 */
import { describe, expect, it } from 'vitest';
import { isRestError, SecretClient } from '@azure/keyvault-secrets';
import { adminToken, collect, credential, request, secretClient, stackInfo, uniqueName } from '../support/e2e.js';

const FAST_POLL = { intervalInMs: 100 };

/** Awaits a promise that must fail with an HTTP error of `status`; returns the error. */
async function expectStatus(promise: Promise<unknown>, status: number) {
  const err: unknown = await promise.then(
    (value) => ({ unexpectedSuccess: value }),
    (e: unknown) => e,
  );
  if (!isRestError(err))
    throw new Error(`expected HTTP ${status}, got ${err instanceof Error ? err.stack : JSON.stringify(err)}`);
  expect(err.statusCode, err.message).toBe(status);
  return err;
}

async function deleteAndWait(client: SecretClient, name: string) {
  const poller = await client.beginDeleteSecret(name, FAST_POLL);
  return poller.pollUntilDone();
}

describe('SecretClient against the local vault', () => {
  const client = () => secretClient();
  const vaultUrl = () => stackInfo().credentials.vaultUrl;

  it('setSecret and getSecret round-trip the value and properties; ids follow Azure exactly', async () => {
    const name = uniqueName('roundtrip');
    const value = `p@ss\u00e9\u20ac-${'x'.repeat(100)}\n"quoted"`;
    const expiresOn = new Date(Math.floor(Date.now() / 1000 + 86_400) * 1000);
    const notBefore = new Date(Math.floor(Date.now() / 1000 - 60) * 1000);
    const created = await client().setSecret(name, value, {
      contentType: 'text/plain',
      tags: { env: 'e2e', team: 'vault' },
      expiresOn,
      notBefore,
    });
    expect(created.name).toBe(name);
    expect(created.value).toBe(value);
    expect(created.properties.version).toMatch(/^[0-9a-f]{32}$/);
    expect(created.properties.id).toBe(`${vaultUrl()}/secrets/${name}/${created.properties.version}`);
    expect(created.properties.vaultUrl).toBe(vaultUrl());
    expect(created.properties.enabled).toBe(true);
    expect(created.properties.contentType).toBe('text/plain');
    expect(created.properties.tags).toEqual({ env: 'e2e', team: 'vault' });
    expect(created.properties.expiresOn?.getTime()).toBe(expiresOn.getTime());
    expect(created.properties.notBefore?.getTime()).toBe(notBefore.getTime());
    expect(created.properties.createdOn).toBeInstanceOf(Date);
    expect(Math.abs(created.properties.createdOn!.getTime() - Date.now())).toBeLessThan(120_000);
    expect(created.properties.recoverableDays).toBe(90);
    expect(created.properties.recoveryLevel).toBe('Recoverable+Purgeable');

    const latest = await client().getSecret(name);
    expect(latest.value).toBe(value);
    expect(latest.properties.id).toBe(created.properties.id);
    expect(latest.properties.tags).toEqual({ env: 'e2e', team: 'vault' });
  });

  it('names are case-insensitive; unknown names answer 404', async () => {
    const name = uniqueName('CaseName');
    await client().setSecret(name, 'v');
    expect((await client().getSecret(name.toLowerCase())).value).toBe('v');
    await expectStatus(client().getSecret(uniqueName('missing')), 404);
  });

  it('every setSecret creates a new version; getSecret reads any version', async () => {
    const name = uniqueName('versions');
    const v1 = await client().setSecret(name, 'one');
    const v2 = await client().setSecret(name, 'two');
    expect(v2.properties.version).not.toBe(v1.properties.version);
    expect((await client().getSecret(name)).value).toBe('two');
    expect((await client().getSecret(name, { version: v1.properties.version! })).value).toBe('one');
    expect((await client().getSecret(name, { version: v2.properties.version! })).value).toBe('two');
    await expectStatus(client().getSecret(name, { version: '0'.repeat(32) }), 404);
  });

  it('updateSecretProperties changes attributes of one version; a disabled version is refused with 403', async () => {
    const name = uniqueName('update');
    const v1 = await client().setSecret(name, 'first', { contentType: 'a' });
    const v2 = await client().setSecret(name, 'second');

    const updated = await client().updateSecretProperties(name, v1.properties.version!, {
      enabled: false,
      contentType: 'application/x-updated',
      tags: { rotated: 'yes' },
    });
    expect(updated.enabled).toBe(false);
    expect(updated.contentType).toBe('application/x-updated');
    expect(updated.tags).toEqual({ rotated: 'yes' });
    expect(updated.version).toBe(v1.properties.version);
    expect(updated.updatedOn!.getTime()).toBeGreaterThanOrEqual(v1.properties.updatedOn!.getTime());

    await expectStatus(client().getSecret(name, { version: v1.properties.version! }), 403);
    // The other version is untouched.
    expect((await client().getSecret(name)).value).toBe('second');
    expect((await client().getSecret(name, { version: v2.properties.version! })).properties.enabled).toBe(true);

    await client().updateSecretProperties(name, v1.properties.version!, { enabled: true });
    const again = await client().getSecret(name, { version: v1.properties.version! });
    expect(again.value).toBe('first');
    expect(again.properties.contentType).toBe('application/x-updated');
  });

  it('refuses values over 25 KB and invalid names with 400', async () => {
    await expectStatus(client().setSecret(uniqueName('big'), 'x'.repeat(25 * 1024 + 1)), 400);
    await expectStatus(client().setSecret('not_valid_name', 'v'), 400);
  });

  it('listPropertiesOfSecrets pages across more than 25 secrets, with maxPageSize and by default', async () => {
    const prefix = uniqueName('list');
    const names = Array.from({ length: 30 }, (_, i) => `${prefix}-${String(i).padStart(2, '0')}`);
    for (const name of names) await client().setSecret(name, `value-of-${name}`);

    const pages: string[][] = [];
    for await (const page of client().listPropertiesOfSecrets().byPage({ maxPageSize: 7 })) {
      expect(page.length).toBeLessThanOrEqual(7);
      pages.push(page.map((p) => p.name));
    }
    const paged = pages.flat();
    expect(new Set(paged).size).toBe(paged.length); // no duplicates across pages
    expect(paged).toEqual(expect.arrayContaining(names));
    expect(pages.length).toBeGreaterThanOrEqual(Math.ceil(names.length / 7));

    const all = await collect(client().listPropertiesOfSecrets());
    const mine = all.filter((p) => p.name.startsWith(prefix));
    expect(mine.map((p) => p.name).sort()).toEqual(names);
    for (const p of mine) {
      expect(p.id).toBe(`${vaultUrl()}/secrets/${p.name}`);
      expect(p.enabled).toBe(true);
    }
  });

  it('list answers carry no values and absolute nextLinks (raw HTTP)', async () => {
    const { credentials } = stackInfo();
    const token = await adminToken();
    const res = await request(`${credentials.vaultUrl}/secrets?api-version=7.6&maxresults=2`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(200);
    const body = res.json<{ value: Record<string, unknown>[]; nextLink: string | null }>();
    expect(body.value.length).toBeLessThanOrEqual(2);
    for (const item of body.value) expect(item).not.toHaveProperty('value');
    expect(body.nextLink).toMatch(new RegExp(`^${credentials.vaultUrl.replace(/\./g, '\\.')}/secrets\\?`));
  });

  it('listPropertiesOfSecretVersions lists every version, paged', async () => {
    const name = uniqueName('versionlist');
    const versions: string[] = [];
    for (let i = 0; i < 5; i++) versions.push((await client().setSecret(name, `v${i}`)).properties.version!);

    const pages: string[][] = [];
    for await (const page of client().listPropertiesOfSecretVersions(name).byPage({ maxPageSize: 2 })) {
      expect(page.length).toBeLessThanOrEqual(2);
      pages.push(page.map((p) => p.version!));
    }
    expect(pages.length).toBeGreaterThanOrEqual(3);
    expect(pages.flat().sort()).toEqual([...versions].sort());
    const listed = await collect(client().listPropertiesOfSecretVersions(name));
    for (const p of listed) expect(p.id).toBe(`${vaultUrl()}/secrets/${name}/${p.version}`);
  });

  it('beginDeleteSecret soft-deletes; the name is then refused with 409; getDeletedSecret and listDeletedSecrets see it', async () => {
    const name = uniqueName('delete');
    await client().setSecret(name, 'to-delete', { tags: { keep: 'tag' } });

    const deleted = await deleteAndWait(client(), name);
    expect(deleted.name).toBe(name);
    expect(deleted.recoveryId).toBe(`${vaultUrl()}/deletedsecrets/${name}`);
    expect(deleted.deletedOn).toBeInstanceOf(Date);
    expect(deleted.scheduledPurgeDate!.getTime() - deleted.deletedOn!.getTime()).toBe(90 * 86_400_000);

    await expectStatus(client().getSecret(name), 404);
    await expectStatus(client().setSecret(name, 'again'), 409);

    const fetched = await client().getDeletedSecret(name);
    expect(fetched.name).toBe(name);
    expect(fetched.properties.tags).toEqual({ keep: 'tag' });
    expect(fetched.recoveryId).toBe(deleted.recoveryId);

    const listed = await collect(client().listDeletedSecrets());
    const entry = listed.find((d) => d.name === name);
    expect(entry, 'deleted secret is listed').toBeDefined();
    expect(entry!.recoveryId).toBe(deleted.recoveryId);
    expect(listed.find((d) => d.name === uniqueName('never'))).toBeUndefined();
    // Live secrets are not listed as deleted, deleted ones are not listed as live.
    expect((await collect(client().listPropertiesOfSecrets())).some((p) => p.name === name)).toBe(false);
  });

  it('beginRecoverDeletedSecret restores the secret with all its versions', async () => {
    const name = uniqueName('recover');
    const v1 = await client().setSecret(name, 'old');
    await client().setSecret(name, 'new');
    await deleteAndWait(client(), name);

    const recover = await client().beginRecoverDeletedSecret(name, FAST_POLL);
    const recovered = await recover.pollUntilDone();
    expect(recovered.name).toBe(name);
    expect((await client().getSecret(name)).value).toBe('new');
    expect((await client().getSecret(name, { version: v1.properties.version! })).value).toBe('old');
    await expectStatus(client().getDeletedSecret(name), 404);
  });

  it('purgeDeletedSecret removes a deleted secret for good and frees the name', async () => {
    const name = uniqueName('purge');
    await client().setSecret(name, 'gone soon');
    await deleteAndWait(client(), name);

    await client().purgeDeletedSecret(name);
    await expectStatus(client().getDeletedSecret(name), 404);
    await expectStatus(client().getSecret(name), 404);
    expect((await collect(client().listDeletedSecrets())).some((d) => d.name === name)).toBe(false);
    // Purging what is not deleted is an error, not a silent success.
    await expectStatus(client().purgeDeletedSecret(name), 404);

    const fresh = await client().setSecret(name, 'reborn');
    expect((await client().getSecret(name)).value).toBe('reborn');
    expect(await collect(client().listPropertiesOfSecretVersions(name))).toHaveLength(1);
    expect(fresh.properties.version).toMatch(/^[0-9a-f]{32}$/);
  });

  it('a 204 answer is not labelled gzip (the SDK gunzips an empty body and fails)', async () => {
    // workerd compresses every answer for clients that accept gzip, even a 204 without a body,
    // which Node's gunzip (used by the SDK) rejects: "unexpected end of file".
    const name = uniqueName('nocontent');
    await client().setSecret(name, 'x');
    await deleteAndWait(client(), name);
    const res = await request(`${vaultUrl()}/deletedsecrets/${name}?api-version=7.6`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${await adminToken()}`, 'accept-encoding': 'gzip, deflate' },
    });
    expect(res.status).toBe(204);
    expect(res.headers['content-encoding'] ?? 'identity').toBe('identity');
  });

  it('backupSecret and restoreSecretBackup: restore into an existing name is 409; after purge every version comes back', async () => {
    const name = uniqueName('backup');
    const v1 = await client().setSecret(name, 'first', { contentType: 'text/plain' });
    const v2 = await client().setSecret(name, 'second', { tags: { a: 'b' } });

    const backup = await client().backupSecret(name);
    expect(backup).toBeInstanceOf(Uint8Array);
    expect(backup!.length).toBeGreaterThan(32);
    // The backup is opaque: no value appears in it in the clear.
    expect(Buffer.from(backup!).toString('latin1')).not.toContain('second');

    await expectStatus(client().restoreSecretBackup(backup!), 409);

    await deleteAndWait(client(), name);
    await client().purgeDeletedSecret(name);
    await expectStatus(client().getSecret(name), 404);

    const restored = await client().restoreSecretBackup(backup!);
    expect(restored.name).toBe(name);
    expect(restored.version).toBe(v2.properties.version);
    expect((await client().getSecret(name)).value).toBe('second');
    const old = await client().getSecret(name, { version: v1.properties.version! });
    expect(old.value).toBe('first');
    expect(old.properties.contentType).toBe('text/plain');
    expect((await collect(client().listPropertiesOfSecretVersions(name))).map((p) => p.version).sort()).toEqual(
      [v1.properties.version, v2.properties.version].sort(),
    );

    const tampered = Uint8Array.from(backup!);
    tampered[Math.floor(tampered.length / 2)]! ^= 0x01;
    await expectStatus(client().restoreSecretBackup(tampered), 400);
  });

  it('speaks every api-version the SDK can be asked for (serviceVersion 7.0 to 2026-04-01)', async () => {
    const versions = ['7.0', '7.1', '7.2', '7.3', '7.4', '7.5', '7.6', '2025-07-01', '2026-04-01'] as const;
    for (const serviceVersion of versions) {
      const versioned = new SecretClient(vaultUrl(), credential(), { serviceVersion });
      const name = uniqueName(`api-${serviceVersion.replace(/\./g, '-')}`);
      await versioned.setSecret(name, `value for ${serviceVersion}`);
      expect((await versioned.getSecret(name)).value).toBe(`value for ${serviceVersion}`);
    }
  });

  it('a vault that does not exist answers 404 to an authenticated caller', async () => {
    const { zone, vaultPort } = stackInfo();
    const other = secretClient(`https://${uniqueName('novault')}.${zone}:${vaultPort}`);
    await expectStatus(other.getSecret('anything'), 404);
  });
});
