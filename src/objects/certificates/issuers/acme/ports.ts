/**
 * What the ACME issuer needs stored, as interfaces: the Worker passes the D1 implementations
 * (stores.ts); Node tests pass in-memory ones, so the protocol code runs unchanged in both.
 */
import type { AccountKey } from './jws';

export interface ExternalAccountBinding {
  kid: string;
  hmacKey: Uint8Array;
}

export interface AcmeAccount {
  key: AccountKey;
  accountUrl: string | null;
  eab: ExternalAccountBinding | null;
}

export interface AcmeAccountStore {
  /** The account at this directory; its key is created (and stored) on first use. */
  load(): Promise<AcmeAccount>;
  saveAccountUrl(url: string): Promise<void>;
}

export interface Http01Store {
  put(token: string, keyAuthorization: string, expiresAt: number): Promise<void>;
  remove(token: string): Promise<void>;
}
