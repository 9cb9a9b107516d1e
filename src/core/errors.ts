/**
 * Errors the vault logic raises. Each carries the HTTP status and the Azure error code it maps
 * to, so the HTTP layer only renders them. Messages never contain secret material.
 */
export class VaultError extends Error {
  constructor(
    readonly status: 400 | 401 | 403 | 404 | 409 | 413 | 500 | 503,
    readonly code: string,
    message: string,
    readonly innerCode?: string,
  ) {
    super(message);
    this.name = 'VaultError';
  }
}

export const badParameter = (message: string) => new VaultError(400, 'BadParameter', message);
export const forbidden = (message: string, innerCode?: string) => new VaultError(403, 'Forbidden', message, innerCode);
export const conflict = (message: string) => new VaultError(409, 'Conflict', message);
export const notFound = (code: string, message: string) => new VaultError(404, code, message);

/** The bridge (and so the HSM) cannot be reached; the caller may retry. Nothing was written. */
export class BridgeUnavailableError extends VaultError {
  constructor(reason: string) {
    super(503, 'ServiceUnavailable', `The HSM bridge is unavailable (${reason}); retry later.`);
    this.name = 'BridgeUnavailableError';
  }
}

/** Stored ciphertext failed authentication: tampered or moved rows are refused, never served. */
export class IntegrityError extends VaultError {
  constructor(what: string) {
    super(500, 'DataIntegrityError', `The stored ${what} failed its integrity check and was not served.`);
    this.name = 'IntegrityError';
  }
}
