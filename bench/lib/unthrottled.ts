/**
 * Worker variables that turn the request limits off (src/http/throttle.ts): a benchmark or soak
 * measures the service at saturation, which the per-caller limit would otherwise answer with 429s.
 */
export const UNTHROTTLED: Record<string, string> = {
  THROTTLE_VAULT_REQUESTS: '0',
  THROTTLE_VAULT_CREATES: '0',
  THROTTLE_VAULT_KEY_OPERATIONS: '0',
  THROTTLE_CALLER_REQUESTS: '0',
};
