// Values the pebble global setup provides to the issuers suite (`inject('pebble')`).
import 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    pebble: { directoryUrl: string; managementUrl: string; listenerCaPem: string; eab: { kid: string; hmacKey: string } };
  }
}
