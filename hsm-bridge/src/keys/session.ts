/**
 * Running PKCS#11 calls on the Hsm's pooled sessions: a failed call must not leave an operation
 * active in a session the next request will get, and graphene's callbacks become promises.
 */
import type * as graphene from 'graphene-pk11';

/** What the key operations need of the Hsm: a pooled, logged-in session. */
export interface SessionSource {
  withSession<T>(fn: (session: graphene.Session) => Promise<T> | T): Promise<T>;
}

/**
 * Ends whatever operation a failed call left active in the session. PKCS#11 says a failed C_Encrypt
 * ends the operation, but SoftHSM keeps it on argument errors and CKR_BUFFER_TOO_SMALL, and the
 * next C_*Init on that pooled session would answer CKR_OPERATION_ACTIVE.
 */
function settle(session: graphene.Session): void {
  const out = Buffer.alloc(1024);
  const { lib, handle } = session;
  for (const end of [
    () => lib.C_EncryptFinal(handle, out),
    () => lib.C_DecryptFinal(handle, out),
    () => lib.C_SignFinal(handle, out),
  ]) {
    try {
      end();
    } catch {
      // CKR_OPERATION_NOT_INITIALIZED: nothing was active; any other error also ends the operation
    }
  }
  out.fill(0);
}

/** fn on a pooled session; a failure leaves no operation active in it. */
export function onSession<T>(source: SessionSource, fn: (session: graphene.Session) => Promise<T> | T): Promise<T> {
  return source.withSession(async (session) => {
    try {
      return await fn(session);
    } catch (err) {
      settle(session);
      throw err;
    }
  });
}

/** A graphene call with a node-style callback, as a promise (the work runs off the event loop). */
export function pkcs11<T>(start: (done: (err: Error | null, value: T | null) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => start((err, value) => (err ? reject(err) : resolve(value as T))));
}

/** A copy of a token's answer, the answer itself wiped. */
export function copyAndWipe(buffer: Buffer): Uint8Array {
  const out = new Uint8Array(buffer);
  buffer.fill(0);
  return out;
}
