// What the OIDC issuer global setup provides (test/support/oidc-issuer-global-setup.ts).
import 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    oidcIssuerHost: { url: string; controlToken: string };
  }
}
