// Drizzle mirror of migrations/*.sql (the SQL files are the source of truth: they carry the
// case-insensitive collations drizzle's schema cannot express).
import { integer, primaryKey, sqliteTable, text } from 'drizzle-orm/sqlite-core';

export const settings = sqliteTable('settings', {
  key: text('key').primaryKey(),
  value: text('value').notNull(),
});

export const dataKeys = sqliteTable('data_keys', {
  id: text('id').primaryKey(),
  scope: text('scope').notNull(),
  wrapped: text('wrapped').notNull(),
  kekLabel: text('kek_label').notNull(),
  createdAt: integer('created_at').notNull(),
  encryptions: integer('encryptions').notNull().default(0),
});

export const vaults = sqliteTable('vaults', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  tenantId: text('tenant_id').notNull(),
  softDeleteRetentionDays: integer('soft_delete_retention_days').notNull(),
  purgeProtection: integer('purge_protection', { mode: 'boolean' }).notNull(),
  createdAt: integer('created_at').notNull(),
});

export const secrets = sqliteTable(
  'secrets',
  {
    vaultId: text('vault_id').notNull(),
    name: text('name').notNull(),
    latestVersion: text('latest_version').notNull(),
    deletedAt: integer('deleted_at'),
    scheduledPurgeAt: integer('scheduled_purge_at'),
  },
  (t) => [primaryKey({ columns: [t.vaultId, t.name] })],
);

export const secretVersions = sqliteTable(
  'secret_versions',
  {
    vaultId: text('vault_id').notNull(),
    name: text('name').notNull(),
    version: text('version').notNull(),
    ciphertext: text('ciphertext').notNull(),
    dataKeyId: text('data_key_id').notNull(),
    contentType: text('content_type'),
    tags: text('tags'),
    enabled: integer('enabled', { mode: 'boolean' }).notNull(),
    nbf: integer('nbf'),
    exp: integer('exp'),
    created: integer('created').notNull(),
    updated: integer('updated').notNull(),
  },
  (t) => [primaryKey({ columns: [t.vaultId, t.name, t.version] })],
);

export const applications = sqliteTable('applications', {
  clientId: text('client_id').primaryKey(),
  objectId: text('object_id').notNull(),
  tenantId: text('tenant_id').notNull(),
  displayName: text('display_name').notNull(),
  isAdmin: integer('is_admin', { mode: 'boolean' }).notNull(),
  createdAt: integer('created_at').notNull(),
});

export const clientSecrets = sqliteTable('client_secrets', {
  id: text('id').primaryKey(),
  clientId: text('client_id').notNull(),
  digest: text('digest').notNull(),
  hint: text('hint').notNull(),
  createdAt: integer('created_at').notNull(),
  expiresAt: integer('expires_at'),
});

export const signingKeys = sqliteTable('signing_keys', {
  kid: text('kid').primaryKey(),
  publicJwk: text('public_jwk').notNull(),
  privateCiphertext: text('private_ciphertext').notNull(),
  dataKeyId: text('data_key_id').notNull(),
  createdAt: integer('created_at').notNull(),
});

export const auditEvents = sqliteTable('audit_events', {
  id: text('id').primaryKey(),
  time: integer('time').notNull(),
  vault: text('vault'),
  operation: text('operation').notNull(),
  caller: text('caller'),
  objectId: text('object_id'),
  result: text('result').notNull(),
  status: integer('status').notNull(),
  durationMs: integer('duration_ms').notNull(),
  correlationId: text('correlation_id').notNull(),
  clientIp: text('client_ip'),
});
