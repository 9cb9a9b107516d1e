// Values the bridge global setup provides to test files (`inject('bridgeUrl')`).
import 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    bridgeUrl: string;
    bridgeSecret: string;
  }
}
