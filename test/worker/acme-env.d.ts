// Bindings the worker project adds for the ACME issuance tests (vitest.config.ts).
declare global {
  namespace Cloudflare {
    interface Env {
      /** pebble's directory through the suite's plain-http pass-through, and its EAB credentials. */
      ACME_DIRECTORY_URL: string;
      ACME_EAB_KID: string;
      ACME_EAB_HMAC_KEY: string;
    }
  }
}
export {};
