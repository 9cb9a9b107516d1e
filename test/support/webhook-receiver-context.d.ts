// What the webhook receiver global setup provides (test/support/webhook-receiver-global-setup.ts).
import 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    webhookReceiver: { url: string; controlToken: string; deadUrl: string };
  }
}
