/** Bindings and configuration of the vault Worker (see wrangler.toml). */
export interface Env {
  DB: D1Database;
  /** Audit records (src/audit/event.ts AuditEvent), persisted by the queue consumer. */
  AUDIT_QUEUE: Queue<unknown>;
  /** Event Grid-shaped vault events (KeyNewVersionCreated, KeyNearExpiry); consumed into D1. */
  EVENTS_QUEUE: Queue<unknown>;
  /** The apex zone, e.g. `vault.example.com`; vault `x` is served at `x.{zone}`. */
  VAULT_ZONE: string;
  BRIDGE_URL: string;
  BRIDGE_HMAC_SECRET: string;
  /** One-time secret that bootstraps the tenant and its first administrator. */
  BOOTSTRAP_SECRET?: string;
  /**
   * "true" lets federated identity credentials trust plain-http OIDC issuers on loopback
   * (127.0.0.1, ::1, localhost): set by the test suites and the local stack, never in production.
   */
  ALLOW_LOOPBACK_HTTP_ISSUERS?: string;
  /** Closed audit periods are archived here as NDJSON (src/audit/archive.ts); optional. */
  AUDIT_ARCHIVE?: R2Bucket;
  /** 'day' (default) or 'hour': the audit period one archive object covers. */
  AUDIT_ARCHIVE_PERIOD?: string;
  /** Days archived audit records stay in D1 (default 365, at least 30). */
  AUDIT_RETENTION_DAYS?: string;
  /**
   * Development only (the soak run): the share (0–1) of request-path D1 statements that fail as if
   * D1 were unavailable. Ignored unless ALLOW_FAULT_INJECTION is "true"; never set in wrangler.toml.
   */
  D1_FAULT_RATE?: string;
  ALLOW_FAULT_INJECTION?: string;
  /** Days archive objects stay in R2 (unset: forever; at least AUDIT_RETENTION_DAYS). */
  AUDIT_ARCHIVE_RETENTION_DAYS?: string;
}
