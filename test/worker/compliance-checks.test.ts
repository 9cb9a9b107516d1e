/**
 * Each compliance check alone, as a pure function of a hand-built snapshot and the time: no D1,
 * no HTTP. Covers what the report test cannot reach through the API (certificate checks, which
 * have no certificates to examine yet) and the boundaries of the others.
 */
import { describe, expect, it } from 'vitest';
import { BuiltInRoleIds } from '../../src/access/roles';
import { adminPrincipalsCheck } from '../../src/compliance/checks/admin-principals';
import { certificatesCheck } from '../../src/compliance/checks/certificates';
import { credentialsCheck } from '../../src/compliance/checks/credentials';
import { expiryCheck } from '../../src/compliance/checks/expiry';
import { keyRotationCheck } from '../../src/compliance/checks/key-rotation';
import { purgeProtectionCheck } from '../../src/compliance/checks/purge-protection';
import { retentionCheck } from '../../src/compliance/checks/retention';
import { staleAssignmentsCheck } from '../../src/compliance/checks/stale-assignments';
import { modulusBits, weakKeysCheck } from '../../src/compliance/checks/weak-keys';
import type { AppRow, AssignmentRow, ComplianceSnapshot, KeyRow, VaultRow } from '../../src/compliance/snapshot';

const DAY = 86_400;
const NOW = 1_800_000_000;

const vault = (over: Partial<VaultRow> = {}): VaultRow => ({
  id: 'v1',
  name: 'alpha',
  tenantId: 't',
  softDeleteRetentionDays: 90,
  purgeProtection: true,
  createdAt: NOW - 400 * DAY,
  enableRbacAuthorization: true,
  networkAcls: null,
  readCacheSeconds: 10,
  ...over,
});
const key = (over: Partial<KeyRow> = {}): KeyRow => ({
  vaultId: 'v1',
  name: 'k',
  rotationPolicy: null,
  rotationDueAt: null,
  kty: 'RSA',
  keySize: 2048,
  publicJwk: null,
  exp: NOW + 100 * DAY,
  created: NOW - DAY,
  ...over,
});
const app = (over: Partial<AppRow> = {}): AppRow => ({
  clientId: 'c1',
  objectId: 'o1',
  tenantId: 't',
  displayName: 'Billing',
  isAdmin: false,
  createdAt: NOW - DAY,
  ...over,
});
const assignment = (over: Partial<AssignmentRow> = {}): AssignmentRow => ({
  id: 'a1',
  vaultId: 'v1',
  scope: '/',
  roleDefinitionId: BuiltInRoleIds.administrator,
  principalId: 'o1',
  expiresAt: null,
  createdAt: NOW - DAY,
  createdBy: null,
  lastUsedAt: null,
  ...over,
});

function snapshot(over: Partial<ComplianceSnapshot> = {}): ComplianceSnapshot {
  return {
    target: { kind: 'vault', name: 'alpha' },
    vaults: [vault()],
    keys: [],
    secrets: [],
    assignments: [],
    policies: [],
    customRoles: new Map(),
    applications: [],
    credentialOwners: [],
    clientSecrets: [],
    certificateCredentials: [],
    federatedCredentials: [],
    certificates: null,
    ...over,
  };
}

const checksOf = (o: { findings: { check: string }[] }) => o.findings.map((f) => f.check);

describe('vault settings', () => {
  it('flags purge protection off and retention below 90 days, each on its own', () => {
    const s = snapshot({
      vaults: [vault({ purgeProtection: false, softDeleteRetentionDays: 89 }), vault({ id: 'v2', name: 'beta' })],
    });
    const purge = purgeProtectionCheck(s);
    expect(purge.findings.map((f) => f.id)).toEqual(['vault-purge-protection-disabled:/vaults/alpha']);
    expect(purge.examined.get('vault-purge-protection-disabled')).toBe(2);
    const retention = retentionCheck(s);
    expect(retention.findings.map((f) => f.title)).toEqual(['Vault alpha keeps deleted objects for 89 days']);
    expect(retentionCheck(snapshot()).findings).toEqual([]);
  });
});

describe('keys', () => {
  it('flags a key without a Rotate action, and one overdue only after the grace hour', () => {
    const rotate = JSON.stringify({ lifetimeActions: [{ trigger: { timeAfterCreate: 'P30D' }, action: { type: 'Rotate' } }] });
    const s = snapshot({
      keys: [
        key({ name: 'none' }),
        key({ name: 'due-now', rotationPolicy: rotate, created: NOW - 30 * DAY }),
        key({ name: 'late', rotationPolicy: rotate, created: NOW - 30 * DAY - 3601 }),
      ],
    });
    const out = keyRotationCheck(s, NOW);
    expect(out.findings.map((f) => f.id)).toEqual([
      'key-rotation-policy-missing:/vaults/alpha/keys/none',
      'key-rotation-overdue:/vaults/alpha/keys/late',
    ]);
    expect(out.examined.get('key-rotation-overdue')).toBe(3);
  });

  it('sizes RSA keys from key_size or the JWK modulus, and ignores EC keys', () => {
    // A 1024-bit modulus: 128 bytes, top bit set.
    const n1024 = Buffer.from([0x80, ...new Array(127).fill(1)]).toString('base64url');
    expect(modulusBits(JSON.stringify({ n: n1024 }))).toBe(1024);
    expect(modulusBits(JSON.stringify({ n: Buffer.from([0, 0x01, 2]).toString('base64url') }))).toBe(9);
    expect(modulusBits('not json')).toBeNull();
    const s = snapshot({
      keys: [
        key({ name: 'small', keySize: null, publicJwk: JSON.stringify({ n: n1024 }) }),
        key({ name: 'ok' }),
        key({ name: 'ec', kty: 'EC', keySize: null }),
      ],
    });
    const out = weakKeysCheck(s);
    expect(out.findings.map((f) => f.title)).toEqual(['Key small in alpha is RSA 1024 bits']);
    expect(out.examined.get('key-size-weak')).toBe(2);
  });

  it('flags keys and secrets without expiry', () => {
    const out = expiryCheck(
      snapshot({
        keys: [key({ exp: null })],
        secrets: [
          { vaultId: 'v1', name: 's', exp: null },
          { vaultId: 'v1', name: 't', exp: NOW },
        ],
      }),
    );
    expect(checksOf(out)).toEqual(['key-no-expiry', 'secret-no-expiry']);
    expect(out.examined.get('secret-no-expiry')).toBe(2);
  });
});

const CA_RSA = { selfSigned: false, kty: 'RSA', keySize: 2048 };

describe('certificates', () => {
  it('are not applicable while vaults hold no certificates', () => {
    const out = certificatesCheck(snapshot(), NOW);
    expect(out.findings).toEqual([]);
    expect(out.notes.get('certificate-expiring')?.status).toBe('not_applicable');
    expect(out.notes.get('certificate-no-auto-renew')?.status).toBe('not_applicable');
  });

  it('flag expired, expiring and non-renewing certificates once there are some', () => {
    const out = certificatesCheck(
      snapshot({
        certificates: [
          { vault: 'alpha', name: 'gone', notAfter: NOW - DAY, autoRenew: true, ...CA_RSA },
          { vault: 'alpha', name: 'soon', notAfter: NOW + 10 * DAY, autoRenew: false, ...CA_RSA },
          { vault: 'alpha', name: 'fine', notAfter: NOW + 60 * DAY, autoRenew: true, ...CA_RSA },
        ],
      }),
      NOW,
    );
    expect(out.findings.map((f) => f.title)).toEqual([
      'Certificate gone in alpha has expired',
      'Certificate soon in alpha expires in 10 days',
      'Certificate soon in alpha does not renew itself',
    ]);
    expect(out.notes.size).toBe(0);
    expect(out.examined.get('certificate-expiring')).toBe(3);
  });

  it('flag certificates with weak RSA keys and self-signed ones, not EC or CA-issued ones', () => {
    const later = NOW + 300 * DAY;
    const out = certificatesCheck(
      snapshot({
        certificates: [
          { vault: 'alpha', name: 'weak', notAfter: later, autoRenew: true, selfSigned: false, kty: 'RSA', keySize: 1024 },
          { vault: 'alpha', name: 'self', notAfter: later, autoRenew: true, selfSigned: true, kty: 'EC', keySize: null },
          { vault: 'alpha', name: 'good', notAfter: later, autoRenew: true, selfSigned: false, kty: 'RSA-HSM', keySize: 3072 },
        ],
      }),
      NOW,
    );
    expect(out.findings.map((f) => [f.check, f.title])).toEqual([
      ['certificate-key-weak', 'Certificate weak in alpha has an RSA 1024-bit key'],
      ['certificate-self-signed', 'Certificate self in alpha is self-signed'],
    ]);
    expect(out.findings[0]!.controls.map((c) => c.id)).toContain('3.7.1');
    expect(out.examined.get('certificate-self-signed')).toBe(3);
    expect(certificatesCheck(snapshot({ certificates: [] }), NOW).notes.get('certificate-self-signed')?.status).toBe(
      'not_applicable',
    );
  });
});

describe('principals, credentials and assignments', () => {
  it('lists standing administrators but not expired ones, and deployment administrators only on the deployment', () => {
    const apps = [app(), app({ clientId: 'c2', objectId: 'o2', displayName: 'Root', isAdmin: true })];
    const assignments = [assignment(), assignment({ id: 'a2', principalId: 'o9', expiresAt: NOW - 1 })];
    const vaultOut = adminPrincipalsCheck(snapshot({ applications: apps, assignments }), NOW);
    expect(vaultOut.findings.map((f) => f.title)).toEqual(['Billing (object o1) administers vault alpha']);
    const deploymentOut = adminPrincipalsCheck(
      snapshot({ target: { kind: 'deployment' }, applications: apps, assignments }),
      NOW,
    );
    expect(deploymentOut.findings.map((f) => f.resource.id)).toEqual(['/vaults/alpha/principals/o1', '/applications/c2']);
  });

  it('flags old, expiring and expired credentials of the owners in scope only', () => {
    const owner = app();
    const secret = (id: string, createdAt: number, expiresAt: number | null, clientId = 'c1') =>
      ({ id, clientId, secretHash: 'x', hint: 'x', createdAt, expiresAt }) as never;
    const out = credentialsCheck(
      snapshot({
        applications: [owner, app({ clientId: 'c2', objectId: 'o2' })],
        credentialOwners: [owner],
        clientSecrets: [
          secret('old', NOW - 91 * DAY, null),
          secret('soon', NOW, NOW + 5 * DAY),
          secret('gone', NOW - DAY, NOW - 1),
          secret('other', NOW - 200 * DAY, null, 'c2'),
        ],
      }),
      NOW,
    );
    expect(out.findings.map((f) => f.id)).toEqual([
      'credential-old:/applications/c1/secrets/old',
      'credential-expiring:/applications/c1/secrets/soon',
      'credential-expired:/applications/c1/secrets/gone',
    ]);
  });

  it('flags expired assignments, and unused ones after 90 days', () => {
    const out = staleAssignmentsCheck(
      snapshot({
        assignments: [
          assignment({ id: 'expired', expiresAt: NOW - 1 }),
          assignment({ id: 'unused', createdAt: NOW - 91 * DAY }),
          assignment({ id: 'used', createdAt: NOW - 200 * DAY, lastUsedAt: NOW - DAY }),
        ],
      }),
      NOW,
    );
    expect(out.findings.map((f) => `${f.check}:${f.resource.name}`)).toEqual([
      'assignment-expired:expired',
      'assignment-unused:unused',
    ]);
    expect(out.examined.get('assignment-unused')).toBe(2);
  });
});
