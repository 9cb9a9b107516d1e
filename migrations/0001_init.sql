-- Edge Key Vault schema. Names compare case-insensitively, as Azure Key Vault's do.
-- Everything secret is stored as ciphertext under a data key; data keys are stored wrapped by
-- the HSM's KEK. Times are Unix seconds.

CREATE TABLE settings (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);

-- Data keys, per scope (a vault id, or 'system' for the token signing key and backups).
CREATE TABLE data_keys (
  id TEXT PRIMARY KEY,
  scope TEXT NOT NULL,
  wrapped TEXT NOT NULL,
  kek_label TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  encryptions INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX data_keys_scope ON data_keys (scope, created_at);

CREATE TABLE vaults (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL COLLATE NOCASE UNIQUE,
  tenant_id TEXT NOT NULL,
  soft_delete_retention_days INTEGER NOT NULL,
  purge_protection INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL
);

-- One row per secret name: its latest version and its soft-delete state.
CREATE TABLE secrets (
  vault_id TEXT NOT NULL REFERENCES vaults (id) ON DELETE CASCADE,
  name TEXT NOT NULL COLLATE NOCASE,
  latest_version TEXT NOT NULL,
  deleted_at INTEGER,
  scheduled_purge_at INTEGER,
  PRIMARY KEY (vault_id, name)
);
CREATE INDEX secrets_purge ON secrets (scheduled_purge_at) WHERE deleted_at IS NOT NULL;

CREATE TABLE secret_versions (
  vault_id TEXT NOT NULL,
  name TEXT NOT NULL COLLATE NOCASE,
  version TEXT NOT NULL,
  ciphertext TEXT NOT NULL,
  data_key_id TEXT NOT NULL REFERENCES data_keys (id),
  content_type TEXT,
  tags TEXT,
  enabled INTEGER NOT NULL,
  nbf INTEGER,
  exp INTEGER,
  created INTEGER NOT NULL,
  updated INTEGER NOT NULL,
  PRIMARY KEY (vault_id, name, version),
  FOREIGN KEY (vault_id, name) REFERENCES secrets (vault_id, name) ON DELETE CASCADE
);
CREATE INDEX secret_versions_order ON secret_versions (vault_id, name, created, version);

CREATE TABLE applications (
  client_id TEXT PRIMARY KEY,
  object_id TEXT NOT NULL UNIQUE,
  tenant_id TEXT NOT NULL,
  display_name TEXT NOT NULL,
  is_admin INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL
);

-- Client secrets are stored only as SHA-256 digests (they are 256-bit random values).
CREATE TABLE client_secrets (
  id TEXT PRIMARY KEY,
  client_id TEXT NOT NULL REFERENCES applications (client_id) ON DELETE CASCADE,
  digest TEXT NOT NULL,
  hint TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER
);
CREATE INDEX client_secrets_client ON client_secrets (client_id);

-- Token signing keys: the public JWK in the clear, the private JWK encrypted like vault content.
CREATE TABLE signing_keys (
  kid TEXT PRIMARY KEY,
  public_jwk TEXT NOT NULL,
  private_ciphertext TEXT NOT NULL,
  data_key_id TEXT NOT NULL REFERENCES data_keys (id),
  created_at INTEGER NOT NULL
);

CREATE TABLE audit_events (
  id TEXT PRIMARY KEY,
  time INTEGER NOT NULL,
  vault TEXT,
  operation TEXT NOT NULL,
  caller TEXT,
  object_id TEXT,
  result TEXT NOT NULL,
  status INTEGER NOT NULL,
  duration_ms INTEGER NOT NULL,
  correlation_id TEXT NOT NULL,
  client_ip TEXT
);
CREATE INDEX audit_events_time ON audit_events (vault, time);
