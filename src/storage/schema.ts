// Edge Key Vault schema: the single source of truth for D1. `npm run db:generate` (drizzle-kit)
// writes the SQL migrations in migrations/ from this file; wrangler applies them.
//
// Names compare case-insensitively, as Azure Key Vault's do: every `name` column is TEXT COLLATE
// NOCASE (see `nocaseText`), so the UNIQUE on vaults.name, the primary keys of secrets and
// secret_versions, and the composite foreign key between them all compare without case.
// Everything secret is stored as ciphertext under a data key; data keys are stored wrapped by the
// HSM's KEK. Times are Unix seconds.
import { sql } from 'drizzle-orm';
import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core';
import { headTable, nocaseText, versionTable } from './versioned-tables';

export const settings = sqliteTable('settings', {
  key: text('key').primaryKey(),
  value: text('value').notNull(),
});

// Data keys, per scope (a vault id, or 'system' for the token signing key and backups).
export const dataKeys = sqliteTable(
  'data_keys',
  {
    id: text('id').primaryKey(),
    scope: text('scope').notNull(),
    wrapped: text('wrapped').notNull(),
    kekLabel: text('kek_label').notNull(),
    createdAt: integer('created_at').notNull(),
    encryptions: integer('encryptions').notNull().default(0),
  },
  (t) => [index('data_keys_scope').on(t.scope, t.createdAt)],
);

export const vaults = sqliteTable('vaults', {
  id: text('id').primaryKey(),
  name: nocaseText('name').notNull().unique(),
  tenantId: text('tenant_id').notNull(),
  softDeleteRetentionDays: integer('soft_delete_retention_days').notNull(),
  purgeProtection: integer('purge_protection', { mode: 'boolean' }).notNull().default(false),
  createdAt: integer('created_at').notNull(),
  // true: role assignments decide (Azure's default); false: the vault's access policies do.
  enableRbacAuthorization: integer('enable_rbac_authorization', { mode: 'boolean' }).notNull().default(true),
  // JSON {defaultAction: 'Allow'|'Deny', ipRules: [{value: CIDR}]}; null = every address allowed.
  networkAcls: text('network_acls'),
  // Seconds an isolate may serve cached reads of this vault (README, Read caching); 0 = none.
  readCacheSeconds: integer('read_cache_seconds').notNull().default(10),
});

// One row per secret name: its latest version and its soft-delete state.
export const secrets = headTable('secrets', () => vaults.id, {});

export const secretVersions = versionTable('secret_versions', secrets, {
  ciphertext: text('ciphertext').notNull(),
  dataKeyId: text('data_key_id')
    .notNull()
    .references(() => dataKeys.id),
  contentType: text('content_type'),
  // A certificate's secret (src/objects/certificates/): written only through the certificate.
  managed: integer('managed', { mode: 'boolean' }).notNull().default(false),
});

export const applications = sqliteTable('applications', {
  clientId: text('client_id').primaryKey(),
  objectId: text('object_id').notNull().unique(),
  tenantId: text('tenant_id').notNull(),
  displayName: text('display_name').notNull(),
  isAdmin: integer('is_admin', { mode: 'boolean' }).notNull().default(false),
  createdAt: integer('created_at').notNull(),
});

// Client secrets are stored only as SHA-256 digests (they are 256-bit random values).
export const clientSecrets = sqliteTable(
  'client_secrets',
  {
    id: text('id').primaryKey(),
    clientId: text('client_id')
      .notNull()
      .references(() => applications.clientId, { onDelete: 'cascade' }),
    digest: text('digest').notNull(),
    hint: text('hint').notNull(),
    createdAt: integer('created_at').notNull(),
    expiresAt: integer('expires_at'),
  },
  (t) => [index('client_secrets_client').on(t.clientId)],
);

// Token signing keys: the public JWK in the clear, the private JWK encrypted like vault content.
export const signingKeys = sqliteTable('signing_keys', {
  kid: text('kid').primaryKey(),
  publicJwk: text('public_jwk').notNull(),
  privateCiphertext: text('private_ciphertext').notNull(),
  dataKeyId: text('data_key_id')
    .notNull()
    .references(() => dataKeys.id),
  createdAt: integer('created_at').notNull(),
});

// The audit trail before it was chained (migration 0005): kept as it was, never written again.
export const auditEventsLegacy = sqliteTable(
  'audit_events',
  {
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
    errorCode: text('error_code'),
  },
  (t) => [index('audit_events_time').on(t.vault, t.time)],
);

// The audit trail (src/audit/): one hash chain per vault ('vault:{name}') and one for the
// deployment ('deployment'). Row n of a chain holds Azure's AuditEvent record as canonical JSON
// (src/audit/canonical.ts) and hash = SHA-256(prev_hash bytes || canonical), prev_hash being row
// n-1's hash (64 zeros for seq 1). The primary key makes concurrent appends collide instead of
// forking the chain; event_id makes redelivered events collide instead of repeating. The other
// columns are derived from the canonical record for queries (the verifier re-derives them).
// Times are Unix milliseconds here.
export const auditRecords = sqliteTable(
  'audit_records',
  {
    chain: text('chain').notNull(),
    seq: integer('seq').notNull(),
    eventId: text('event_id').notNull().unique(),
    canonical: text('canonical').notNull(),
    prevHash: text('prev_hash').notNull(),
    hash: text('hash').notNull(),
    time: integer('time').notNull(),
    operation: text('operation').notNull(),
    callerAppId: text('caller_appid'),
    callerObjectId: text('caller_oid'),
    objectId: nocaseText('object_id'),
    status: integer('status').notNull(),
    // success | denied | failed | error (src/audit/record.ts resultClass)
    result: text('result').notNull(),
    errorCode: text('error_code'),
    correlationId: text('correlation_id'),
    clientIp: text('client_ip'),
  },
  (t) => [
    primaryKey({ columns: [t.chain, t.seq] }),
    index('audit_records_time').on(t.chain, t.time),
    index('audit_records_operation').on(t.chain, t.operation, t.time),
    index('audit_records_object').on(t.chain, t.objectId, t.time),
    index('audit_records_caller').on(t.callerAppId, t.time),
    index('audit_records_correlation').on(t.correlationId),
  ],
);

// The last record of each chain, written in the same transaction as the records. Appends continue
// from the later of this and the last row, so a truncated tail leaves a detectable gap instead of
// being silently overwritten; the verifier compares it with the last row.
export const auditChainHeads = sqliteTable('audit_chain_heads', {
  chain: text('chain').primaryKey(),
  seq: integer('seq').notNull(),
  hash: text('hash').notNull(),
  // Unix milliseconds of the last append.
  updatedAt: integer('updated_at').notNull(),
});

// Which audit chain holds each vault's trail, by the vault's id (src/audit/chains.ts). A vault's
// chain is 'vault:{id}', so a vault re-created under a deleted one's name starts a chain of its
// own; vaults whose chain predates this (named 'vault:{name}', migration 0012) keep it, found here.
// Rows outlive their vault: vault_name is the last name known, for administrators reading the
// trail of a deleted vault.
export const auditChainVaults = sqliteTable('audit_chain_vaults', {
  vaultId: text('vault_id').primaryKey(),
  chain: text('chain').notNull().unique(),
  vaultName: text('vault_name').notNull(),
  // Unix milliseconds of the registration.
  createdAt: integer('created_at').notNull(),
});

// One row per key name: latest version, soft-delete state, rotation policy and the rotation claim
// a cron run holds while it makes the next version (so overlapping runs never rotate twice).
export const keys = headTable(
  'keys',
  () => vaults.id,
  {
    // JSON {lifetimeActions, expiryTime}; null = no policy set.
    rotationPolicy: text('rotation_policy'),
    rotationPolicyCreated: integer('rotation_policy_created'),
    rotationPolicyUpdated: integer('rotation_policy_updated'),
    // When the policy's Rotate action is next due (Unix seconds); null = nothing scheduled.
    rotationDueAt: integer('rotation_due_at'),
    rotationClaim: text('rotation_claim'),
    rotationClaimUntil: integer('rotation_claim_until'),
  },
  (t) => [
    index('keys_rotation_due')
      .on(t.rotationDueAt)
      .where(sql`rotation_due_at IS NOT NULL`),
  ],
);

// Key versions. Software keys keep their private JWK sealed under a vault data key; HSM keys keep
// only the public part and the handle of the token object (whose material never leaves the HSM).
export const keyVersions = versionTable('key_versions', keys, {
  kty: text('kty').notNull(),
  keySize: integer('key_size'),
  crv: text('crv'),
  publicJwk: text('public_jwk'),
  privateCiphertext: text('private_ciphertext'),
  dataKeyId: text('data_key_id').references(() => dataKeys.id),
  hsmHandle: text('hsm_handle'),
  keyOps: text('key_ops').notNull(),
  // A certificate's key (src/objects/certificates/): written only through the certificate.
  managed: integer('managed', { mode: 'boolean' }).notNull().default(false),
});

// Event Grid events the vault emits (Microsoft.KeyVault.KeyNewVersionCreated, KeyNearExpiry),
// stored by the events queue's consumer. Ids are derived from (vault, event type, object,
// version), so an event sent twice, or a batch delivered twice, is stored once.
export const events = sqliteTable(
  'events',
  {
    id: text('id').primaryKey(),
    vault: text('vault').notNull(),
    eventType: text('event_type').notNull(),
    // The object's name (Event Grid's subject) and version.
    subject: text('subject').notNull(),
    version: text('version'),
    // Unix milliseconds.
    eventTime: integer('event_time').notNull(),
    // The whole Event Grid event, as JSON (public identifiers and times only).
    body: text('body').notNull(),
  },
  (t) => [index('events_vault_time').on(t.vault, t.eventTime)],
);

// The expiry job's once-only markers (src/jobs/expiry.ts): a run claims (vault, kind, name,
// version, event type) with INSERT … ON CONFLICT DO NOTHING and queues the event only if its row
// took, so overlapping runs, or a run repeated after a crash, never announce a version twice (the
// fan-out delivers every event of a batch, stored before or not). The SQL filter can look a
// marker up by primary key, which the events table's derived ids cannot offer. Times: Unix seconds.
export const expiryNotices = sqliteTable(
  'expiry_notices',
  {
    vaultId: text('vault_id')
      .notNull()
      .references(() => vaults.id, { onDelete: 'cascade' }),
    // 'secret' | 'key' | 'certificate'
    kind: text('kind').notNull(),
    name: nocaseText('name').notNull(),
    version: text('version').notNull(),
    eventType: text('event_type').notNull(),
    claimedAt: integer('claimed_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.vaultId, t.kind, t.name, t.version, t.eventType] })],
);

// Webhook subscriptions to a vault's events (src/events/). The endpoint URL may carry a
// credential in its query string, so the API shows only its base; the signing secrets are sealed
// under the vault's data key (AAD: vault, 'eventSubscription', name). During a rotation's
// overlap the previous secret still signs, until previous_secret_expires_at. The delivery
// counters and last outcomes are written by the delivery consumer. Times are Unix seconds.
export const eventSubscriptions = sqliteTable(
  'event_subscriptions',
  {
    id: text('id').primaryKey(),
    vaultId: text('vault_id')
      .notNull()
      .references(() => vaults.id, { onDelete: 'cascade' }),
    name: nocaseText('name').notNull(),
    endpointUrl: text('endpoint_url').notNull(),
    // JSON string[] (full type names); null: every type.
    includedEventTypes: text('included_event_types'),
    subjectBeginsWith: text('subject_begins_with'),
    subjectEndsWith: text('subject_ends_with'),
    deliverySchema: text('delivery_schema').notNull(),
    maxEventsPerBatch: integer('max_events_per_batch').notNull(),
    maxDeliveryAttempts: integer('max_delivery_attempts').notNull(),
    eventTimeToLiveMinutes: integer('event_ttl_minutes').notNull(),
    secretCiphertext: text('secret_ciphertext').notNull(),
    secretDataKeyId: text('secret_data_key_id').notNull(),
    previousSecretCiphertext: text('previous_secret_ciphertext'),
    previousSecretDataKeyId: text('previous_secret_data_key_id'),
    previousSecretExpiresAt: integer('previous_secret_expires_at'),
    createdAt: integer('created_at').notNull(),
    updatedAt: integer('updated_at').notNull(),
    delivered: integer('delivered').notNull().default(0),
    failed: integer('failed').notNull().default(0),
    deadLettered: integer('dead_lettered').notNull().default(0),
    lastError: text('last_error'),
    lastErrorAt: integer('last_error_at'),
    lastSuccessAt: integer('last_success_at'),
  },
  (t) => [uniqueIndex('event_subscriptions_vault_name').on(t.vaultId, t.name)],
);

// Custom role definitions (the built-in ones are constants in code). vaultId null: the deployment's.
export const roleDefinitions = sqliteTable(
  'role_definitions',
  {
    id: text('id').primaryKey(),
    vaultId: text('vault_id').references(() => vaults.id, { onDelete: 'cascade' }),
    roleName: text('role_name').notNull(),
    description: text('description'),
    // JSON [{dataActions: string[], notDataActions: string[]}]
    permissions: text('permissions').notNull(),
    // JSON string[] of scopes ('/', '/keys', …)
    assignableScopes: text('assignable_scopes').notNull(),
    createdAt: integer('created_at').notNull(),
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [index('role_definitions_vault').on(t.vaultId)],
);

// Role assignments: a principal holds a role at a scope of one vault ('/', '/secrets',
// '/secrets/{name}', …), optionally until expiresAt.
export const roleAssignments = sqliteTable(
  'role_assignments',
  {
    id: text('id').primaryKey(),
    vaultId: text('vault_id')
      .notNull()
      .references(() => vaults.id, { onDelete: 'cascade' }),
    scope: nocaseText('scope').notNull(),
    roleDefinitionId: text('role_definition_id').notNull(),
    principalId: text('principal_id').notNull(),
    expiresAt: integer('expires_at'),
    createdAt: integer('created_at').notNull(),
    createdBy: text('created_by'),
    // Written by the audit consumer from the decisions it records, not on the request path.
    lastUsedAt: integer('last_used_at'),
  },
  (t) => [index('role_assignments_vault').on(t.vaultId, t.principalId), index('role_assignments_principal').on(t.principalId)],
);

// Legacy access policies (vaults with enableRbacAuthorization = false): one row per principal.
export const accessPolicies = sqliteTable(
  'access_policies',
  {
    vaultId: text('vault_id')
      .notNull()
      .references(() => vaults.id, { onDelete: 'cascade' }),
    objectId: text('object_id').notNull(),
    // JSON {keys: string[], secrets: string[], certificates: string[]} with Azure's permission names
    permissions: text('permissions').notNull(),
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.vaultId, t.objectId] })],
);

// Certificate credentials of applications: the public certificate only (private_key_jwt).
export const applicationCertificates = sqliteTable(
  'application_certificates',
  {
    id: text('id').primaryKey(),
    clientId: text('client_id')
      .notNull()
      .references(() => applications.clientId, { onDelete: 'cascade' }),
    // base64url SHA-1 and SHA-256 of the DER certificate (x5t, x5t#S256)
    thumbprintSha1: text('thumbprint_sha1').notNull(),
    thumbprintSha256: text('thumbprint_sha256').notNull(),
    // base64 DER
    certificate: text('certificate').notNull(),
    notBefore: integer('not_before').notNull(),
    notAfter: integer('not_after').notNull(),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [index('application_certificates_client').on(t.clientId)],
);

// Federated identity credentials: tokens of an external OIDC issuer for (issuer, subject, audience)
// are exchanged for this application's tokens.
export const federatedCredentials = sqliteTable(
  'federated_credentials',
  {
    id: text('id').primaryKey(),
    clientId: text('client_id')
      .notNull()
      .references(() => applications.clientId, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    issuer: text('issuer').notNull(),
    subject: text('subject').notNull(),
    // JSON string[]
    audiences: text('audiences').notNull(),
    description: text('description'),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [index('federated_credentials_client').on(t.clientId)],
);

// Signed checkpoints of the audit chains (src/audit/checkpoints.ts): the HSM's ES256 signature over
// the canonical JSON {chain, seq, hash, time}. A database administrator can delete or edit rows
// here, but cannot make a signature that verifies under the HSM's key.
export const auditCheckpoints = sqliteTable(
  'audit_checkpoints',
  {
    chain: text('chain').notNull(),
    seq: integer('seq').notNull(),
    hash: text('hash').notNull(),
    // ISO 8601 (UTC, milliseconds), exactly as signed.
    time: text('time').notNull(),
    alg: text('alg').notNull(),
    // RFC 7638 thumbprint of the signing key's public JWK.
    kid: text('kid').notNull(),
    // base64url of the raw r||s signature.
    signature: text('signature').notNull(),
  },
  (t) => [primaryKey({ columns: [t.chain, t.seq] })],
);

// Closed periods of the audit chains archived to R2 (src/audit/archive.ts): one object per chain
// and period covering records firstSeq..lastSeq; prunedAt once those rows left D1 (the verifier
// then starts after lastSeq, anchored by the signed checkpoint at lastSeq).
export const auditArchives = sqliteTable(
  'audit_archives',
  {
    chain: text('chain').notNull(),
    // e.g. '2026-11-28' (UTC day) or '2026-11-28T13' (UTC hour)
    period: text('period').notNull(),
    objectKey: text('object_key').notNull(),
    firstSeq: integer('first_seq').notNull(),
    lastSeq: integer('last_seq').notNull(),
    prevHash: text('prev_hash').notNull(),
    lastHash: text('last_hash').notNull(),
    // SHA-256 of the object's bytes
    digest: text('digest').notNull(),
    // Unix milliseconds of the period's end, of archiving, of pruning the rows from D1, of deleting the object
    periodEnd: integer('period_end').notNull(),
    archivedAt: integer('archived_at').notNull(),
    prunedAt: integer('pruned_at'),
    objectDeletedAt: integer('object_deleted_at'),
  },
  (t) => [primaryKey({ columns: [t.chain, t.period] }), index('audit_archives_seq').on(t.chain, t.lastSeq)],
);

// Certificate issuers (src/objects/certificates/issuers/).
// One root CA per vault: its key lives only in the HSM (keyHandle), its certificate (DER,
// base64url) is public and served at /pki/{vault}/ca.crt.
export const certificateAuthorities = sqliteTable('certificate_authorities', {
  vaultId: text('vault_id')
    .primaryKey()
    .references(() => vaults.id, { onDelete: 'cascade' }),
  keyHandle: text('key_handle').notNull(),
  // The X.509 signature algorithm of the CA key, e.g. ES256.
  alg: text('alg').notNull(),
  certDer: text('cert_der').notNull(),
  createdAt: integer('created_at').notNull(),
});

// A vault's ACME account at one directory: the account key (a private JWK) and the External
// Account Binding's HMAC key are sealed under the vault's data key, as secret values are.
export const acmeAccounts = sqliteTable(
  'acme_accounts',
  {
    vaultId: text('vault_id')
      .notNull()
      .references(() => vaults.id, { onDelete: 'cascade' }),
    directoryUrl: text('directory_url').notNull(),
    // The account's URL (the `kid` of later requests); null until newAccount succeeded.
    accountUrl: text('account_url'),
    keySealed: text('key_sealed').notNull(),
    eabKid: text('eab_kid'),
    eabHmacSealed: text('eab_hmac_sealed'),
    dataKeyId: text('data_key_id')
      .notNull()
      .references(() => dataKeys.id),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.vaultId, t.directoryUrl] })],
);

// http-01 answers the Worker serves at /.well-known/acme-challenge/{token} (public by design:
// the key authorization is what the CA fetches); removed when the order no longer needs them.
export const acmeChallenges = sqliteTable(
  'acme_challenges',
  {
    token: text('token').primaryKey(),
    keyAuthorization: text('key_authorization').notNull(),
    vaultId: text('vault_id')
      .notNull()
      .references(() => vaults.id, { onDelete: 'cascade' }),
    expiresAt: integer('expires_at').notNull(),
  },
  (t) => [index('acme_challenges_expiry').on(t.expiresAt)],
);

// Certificates (src/objects/certificates/): one head per name, one row per issued version. A
// version's key and secret are the key and secret of the same name and version (managed), so
// nothing secret is stored here: the certificate itself is public.
// renewal_due_at is when the latest version's next lifetime action (AutoRenew, EmailContacts) is
// due (null: none); the renewal job (src/jobs/certificate-renewal.ts) finds due certificates
// through its partial index and claims one with renewal_claim/renewal_claim_until, so that
// overlapping runs and redelivered queue messages act once.
export const certificates = headTable(
  'certificates',
  () => vaults.id,
  {
    renewalDueAt: integer('renewal_due_at'),
    renewalClaim: text('renewal_claim'),
    renewalClaimUntil: integer('renewal_claim_until'),
  },
  (t) => [
    index('certificates_renewal_due')
      .on(t.renewalDueAt)
      .where(sql`renewal_due_at IS NOT NULL`),
  ],
);

export const certificateVersions = versionTable('certificate_versions', certificates, {
  // base64 DER of the leaf, base64url SHA-1 thumbprint
  cer: text('cer').notNull(),
  x5t: text('x5t').notNull(),
  // The policy's secret content type when this version was made.
  contentType: text('content_type').notNull(),
  // Certificates carry no sealed payload; the engine's column stays null.
  dataKeyId: text('data_key_id').references(() => dataKeys.id),
  // The issuer, whether self-signed, and the key's type and size or curve (compliance, renewal).
  issuerName: text('issuer_name').notNull(),
  selfSigned: integer('self_signed', { mode: 'boolean' }).notNull(),
  kty: text('kty').notNull(),
  keySize: integer('key_size'),
  crv: text('crv'),
});

// A certificate's policy, kept apart from its versions: it exists before the first version (a
// pending create) and every version is made from it. Removed with the vault; purged with the name.
export const certificatePolicies = sqliteTable(
  'certificate_policies',
  {
    vaultId: text('vault_id')
      .notNull()
      .references(() => vaults.id, { onDelete: 'cascade' }),
    name: nocaseText('name').notNull(),
    // JSON CertificatePolicy without id and attributes times.
    policy: text('policy').notNull(),
    enabled: integer('enabled', { mode: 'boolean' }).notNull().default(true),
    created: integer('created').notNull(),
    updated: integer('updated').notNull(),
  },
  (t) => [primaryKey({ columns: [t.vaultId, t.name] })],
);

// The pending (or last finished) create operation of a certificate: at most one per name.
export const certificateOperations = sqliteTable(
  'certificate_operations',
  {
    vaultId: text('vault_id')
      .notNull()
      .references(() => vaults.id, { onDelete: 'cascade' }),
    name: nocaseText('name').notNull(),
    // The version the operation makes: its key already exists under it.
    version: text('version').notNull(),
    issuerName: text('issuer_name').notNull(),
    // inProgress | completed | cancelled (completed with `error` when issuance failed)
    status: text('status').notNull(),
    statusDetails: text('status_details'),
    // JSON {code, message} when failed
    error: text('error'),
    // base64 DER PKCS#10
    csr: text('csr').notNull(),
    cancellationRequested: integer('cancellation_requested', { mode: 'boolean' }).notNull().default(false),
    requestId: text('request_id').notNull(),
    // An issuer that answered 'pending' (ACME): its resume token (public facts only: order URL,
    // CSR) and when the cron moves it on next; both null otherwise.
    resume: text('resume'),
    nextAttemptAt: integer('next_attempt_at'),
    created: integer('created').notNull(),
    updated: integer('updated').notNull(),
  },
  (t) => [primaryKey({ columns: [t.vaultId, t.name] }), index('certificate_operations_next_attempt').on(t.nextAttemptAt)],
);

// Certificate contacts of a vault (JSON [{email_address, name, phone}]).
export const certificateContacts = sqliteTable('certificate_contacts', {
  vaultId: text('vault_id')
    .primaryKey()
    .references(() => vaults.id, { onDelete: 'cascade' }),
  contacts: text('contacts').notNull(),
  updated: integer('updated').notNull(),
});

// Certificate issuers of a vault. The credentials' password (and a dns-01 API token) is sealed like a secret value.
export const certificateIssuers = sqliteTable(
  'certificate_issuers',
  {
    vaultId: text('vault_id')
      .notNull()
      .references(() => vaults.id, { onDelete: 'cascade' }),
    name: nocaseText('name').notNull(),
    provider: text('provider').notNull(),
    accountId: text('account_id'),
    passwordCiphertext: text('password_ciphertext'),
    dataKeyId: text('data_key_id').references(() => dataKeys.id),
    // JSON OrganizationDetails {id, admin_details: [...]}
    orgDetails: text('org_details'),
    // ACME dns-01 through a DNS provider: JSON {provider, zone_id}; its API token sealed under
    // data_key_id like the password (issuers/acme/provider.ts).
    dns01: text('dns01'),
    dnsTokenCiphertext: text('dns_token_ciphertext'),
    enabled: integer('enabled', { mode: 'boolean' }).notNull().default(true),
    created: integer('created').notNull(),
    updated: integer('updated').notNull(),
  },
  (t) => [primaryKey({ columns: [t.vaultId, t.name] })],
);

// Inbound webhook receivers that renew certificates (src/objects/certificates/webhooks/). The
// signing secret is sealed like a secret value, bound to the vault, the receiver's name and id;
// after a rotation the previous secret is still accepted until previous_secret_expires_at.
export const certificateWebhooks = sqliteTable(
  'certificate_webhooks',
  {
    id: text('id').primaryKey(),
    vaultId: text('vault_id')
      .notNull()
      .references(() => vaults.id, { onDelete: 'cascade' }),
    name: nocaseText('name').notNull(),
    // Exactly one of: JSON string[] of certificate names, or one issuer name.
    scopeCertificates: text('scope_certificates'),
    scopeIssuer: text('scope_issuer'),
    secretCiphertext: text('secret_ciphertext').notNull(),
    secretDataKeyId: text('secret_data_key_id')
      .notNull()
      .references(() => dataKeys.id),
    previousSecretCiphertext: text('previous_secret_ciphertext'),
    previousSecretDataKeyId: text('previous_secret_data_key_id').references(() => dataKeys.id),
    previousSecretExpiresAt: integer('previous_secret_expires_at'),
    created: integer('created').notNull(),
    updated: integer('updated').notNull(),
  },
  (t) => [uniqueIndex('certificate_webhooks_vault_name').on(t.vaultId, t.name)],
);

// The webhook-ids a receiver has acted on, kept while a replay could still pass the timestamp
// window (then removed lazily): a repeated id starts nothing.
export const certificateWebhookMessages = sqliteTable(
  'certificate_webhook_messages',
  {
    receiverId: text('receiver_id')
      .notNull()
      .references(() => certificateWebhooks.id, { onDelete: 'cascade' }),
    webhookId: text('webhook_id').notNull(),
    received: integer('received').notNull(),
    expiresAt: integer('expires_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.receiverId, t.webhookId] }), index('certificate_webhook_messages_expiry').on(t.expiresAt)],
);
