// Bindings the worker project adds for the event-delivery tests (vitest.config.ts).
declare global {
  namespace Cloudflare {
    interface Env {
      /** The webhook receivers (test/support/webhook-receiver.ts), their control token, a dead URL. */
      WEBHOOK_RECEIVER_URL: string;
      WEBHOOK_RECEIVER_CONTROL_TOKEN: string;
      WEBHOOK_DEAD_URL: string;
    }
  }
}
export {};
