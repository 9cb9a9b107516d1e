// The ACME issuer's D1 side in workerd: the vault's account (key and EAB sealed under the vault's
// data key, through the real bridge) and the http-01 answers served on the apex and vault hosts.
// The protocol itself runs against pebble in test/issuers/acme.test.ts.
import { calculateJwkThumbprint } from 'jose';
import { describe, expect, it } from 'vitest';
import { eq } from 'drizzle-orm';
import { IntegrityError } from '../../src/core/errors';
import { services } from '../../src/crypto/services';
import { D1AcmeAccounts, D1Http01Store } from '../../src/objects/certificates/issuers/acme/stores';
import { acmeAccounts } from '../../src/storage/schema';
import { findVault } from '../../src/storage/vaults';
import { APEX, call, env, setupVault, vaultOrigin } from './helpers';

const DIRECTORY = 'https://acme.example.test/directory';

async function vaultAccounts(directory = DIRECTORY) {
  const { vault: name } = await setupVault();
  const { db, keys } = services(env);
  const vault = (await findVault(db, name))!;
  return { name, vault, db, accounts: new D1AcmeAccounts(db, keys, vault.id, directory) };
}

describe('ACME account store', () => {
  it('creates the account key once, sealed, and keeps the account URL', async () => {
    const { db, vault, accounts } = await vaultAccounts();
    const first = await accounts.load();
    expect(first.accountUrl).toBeNull();
    expect(first.eab).toBeNull();
    expect(first.key.privateKey.extractable).toBe(false);
    const again = await accounts.load();
    expect(await calculateJwkThumbprint(again.key.jwk)).toBe(await calculateJwkThumbprint(first.key.jwk));
    const row = (await db.select().from(acmeAccounts).where(eq(acmeAccounts.vaultId, vault.id)).get())!;
    expect(row.keySealed).not.toContain('kty');
    expect(row.keySealed).not.toContain(first.key.jwk.x);
    await accounts.saveAccountUrl('https://acme.example.test/acct/1');
    expect((await accounts.load()).accountUrl).toBe('https://acme.example.test/acct/1');
  });

  it('stores the External Account Binding sealed, and re-registers after it changes', async () => {
    const { db, vault, accounts } = await vaultAccounts();
    await accounts.saveAccountUrl('https://acme.example.test/acct/2');
    const hmac = 'zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W';
    await accounts.setExternalAccountBinding('kid-1', hmac);
    const loaded = await accounts.load();
    expect(loaded.eab?.kid).toBe('kid-1');
    expect(Buffer.from(loaded.eab!.hmacKey).toString('base64url')).toBe(hmac);
    expect(loaded.accountUrl).toBeNull();
    const row = (await db.select().from(acmeAccounts).where(eq(acmeAccounts.vaultId, vault.id)).get())!;
    expect(row.eabHmacSealed).not.toContain(hmac.slice(0, 16));
    await expect(accounts.setExternalAccountBinding('kid-1', 'c2hvcnQ')).rejects.toThrow(/at least 16 bytes/);
  });

  it('keeps accounts apart per vault and directory; a sealed key moved elsewhere does not open', async () => {
    const a = await vaultAccounts();
    const b = await vaultAccounts();
    const other = new D1AcmeAccounts(a.db, services(env).keys, a.vault.id, 'https://other.example.test/dir');
    const [ka, kb, ko] = await Promise.all([a.accounts.load(), b.accounts.load(), other.load()]);
    const prints = await Promise.all([ka, kb, ko].map((k) => calculateJwkThumbprint(k.key.jwk)));
    expect(new Set(prints).size).toBe(3);
    // Vault a's sealed key copied onto its other directory's row: bound to the directory, refused.
    const sealed = (await a.db.select().from(acmeAccounts).where(eq(acmeAccounts.directoryUrl, DIRECTORY)).all()).find(
      (r) => r.vaultId === a.vault.id,
    )!;
    await a.db
      .update(acmeAccounts)
      .set({ keySealed: sealed.keySealed, dataKeyId: sealed.dataKeyId })
      .where(eq(acmeAccounts.directoryUrl, 'https://other.example.test/dir'));
    await expect(other.load()).rejects.toBeInstanceOf(IntegrityError);
  });
});

describe('http-01 answers', () => {
  it('are served without authentication on the apex and vault hosts while live', async () => {
    const { name, vault, db } = await vaultAccounts();
    const store = new D1Http01Store(db, vault.id);
    const token = `tok${crypto.randomUUID().replace(/-/g, '')}`;
    const now = Math.floor(Date.now() / 1000);
    await store.put(token, `${token}.thumbprint`, now + 600);
    for (const origin of [APEX, vaultOrigin(name)]) {
      const res = await call('GET', `${origin}/.well-known/acme-challenge/${token}`);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe(`${token}.thumbprint`);
    }
    expect((await call('GET', `${APEX}/.well-known/acme-challenge/${token}x`)).status).toBe(404);
    expect((await call('GET', `${APEX}/.well-known/acme-challenge/bad..token`)).status).toBe(404);
    await store.put(token, `${token}.thumbprint`, now - 1);
    expect((await call('GET', `${APEX}/.well-known/acme-challenge/${token}`)).status).toBe(404);
    await store.put(token, `${token}.thumbprint`, now + 600);
    await store.remove(token);
    expect((await call('GET', `${vaultOrigin(name)}/.well-known/acme-challenge/${token}`)).status).toBe(404);
  });
});
