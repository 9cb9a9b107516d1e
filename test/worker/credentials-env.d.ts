// Bindings the worker project adds for the credential tests (vitest.config.ts).
declare global {
  namespace Cloudflare {
    interface Env {
      /** The local OIDC issuer host (test/support/oidc-issuer.ts) and its control token. */
      OIDC_ISSUER_HOST: string;
      OIDC_ISSUER_CONTROL_TOKEN: string;
    }
  }
}
export {};
