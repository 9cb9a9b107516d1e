/** Bindings and configuration of the vault Worker (see wrangler.toml). */
export interface Env {
  DB: D1Database;
  /** Audit records (src/audit/event.ts AuditEvent), persisted by the queue consumer. */
  AUDIT_QUEUE: Queue<unknown>;
  /** Event Grid-shaped vault events (KeyNewVersionCreated, KeyNearExpiry); consumed into D1. */
  EVENTS_QUEUE: Queue<unknown>;
  /** Certificate renewal work, one certificate a message (src/jobs/certificate-renewal.ts). */
  CERTIFICATE_RENEWAL_QUEUE: Queue<unknown>;
  /** Webhook deliveries, one subscription's events a message (src/events/delivery.ts). */
  EVENT_DELIVERY_QUEUE: Queue<unknown>;
  /** Events whose delivery gave up, kept for listing and redelivery (src/events/dead-letters.ts). */
  EVENT_DEADLETTER: R2Bucket;
  /**
   * DNS-over-HTTPS JSON endpoint that webhook host names are resolved with before they are
   * trusted (default https://cloudflare-dns.com/dns-query); see src/events/endpoint-policy.ts.
   */
  EVENTS_DOH_URL?: string;
  /**
   * Base URL of the Cloudflare API that ACME dns-01 records are written through (default
   * https://api.cloudflare.com/client/v4); the test suite points it at a local fake.
   */
  ACME_DNS_API_BASE?: string;
  /** The apex zone, e.g. `vault.example.com`; vault `x` is served at `x.{zone}`. */
  VAULT_ZONE: string;
  BRIDGE_URL: string;
  BRIDGE_HMAC_SECRET: string;
  /**
   * Optional mTLS certificate binding (`[[mtls_certificates]]` in wrangler.toml): when present the
   * bridge is called through it, presenting the Worker's client certificate (README "Running the bridge").
   */
  BRIDGE_MTLS?: Fetcher;
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
  /**
   * Request limits (src/http/throttle.ts), whole numbers; "0" turns one off. Per vault per 10 s:
   * THROTTLE_VAULT_REQUESTS (4000), THROTTLE_VAULT_CREATES (300), THROTTLE_VAULT_KEY_OPERATIONS
   * (2000); per caller per 10 s: THROTTLE_CALLER_REQUESTS (2000); failed token requests per
   * minute: THROTTLE_TOKEN_FAILURES_PER_CLIENT (10), THROTTLE_TOKEN_FAILURES_PER_ADDRESS (30).
   */
  THROTTLE_VAULT_REQUESTS?: string;
  THROTTLE_VAULT_CREATES?: string;
  THROTTLE_VAULT_KEY_OPERATIONS?: string;
  THROTTLE_CALLER_REQUESTS?: string;
  THROTTLE_TOKEN_FAILURES_PER_CLIENT?: string;
  THROTTLE_TOKEN_FAILURES_PER_ADDRESS?: string;
  /**
   * Workers Analytics Engine dataset of requests, queue batches and cron runs (src/core/metrics.ts,
   * README "Watching it"). Optional: without it no metrics are written.
   */
  METRICS?: AnalyticsEngineDataset;
}
