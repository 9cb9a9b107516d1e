/** The failures of key operations the server answers with their own codes (see bridge-protocol/errors.ts). */
export { KeyRequestError } from '../key-material.js';

/** No token objects under that handle (404). */
export class KeyNotFoundError extends Error {
  override name = 'KeyNotFoundError';
  constructor() {
    super('no key with this handle in the token');
  }
}

/** The token already holds objects with that id (409). */
export class KeyExistsError extends Error {
  override name = 'KeyExistsError';
  constructor() {
    super('the token already holds objects with this id');
  }
}

/** A decryption or unwrap that does not authenticate: bad tag, bad padding, wrong key (422). */
export class KeyOperationError extends Error {
  override name = 'KeyOperationError';
  constructor() {
    super('the operation failed: the ciphertext or key does not authenticate');
  }
}
