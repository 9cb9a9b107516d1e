/**
 * The error answers of the bridge: `{ error: { code, message } }` with one HTTP status per code.
 * The bridge answers with these codes and the Worker maps them to vault errors, so both sides
 * name a failure the same way. Messages never contain key bytes, digests or plaintexts.
 */
import * as z from 'zod';

export const BRIDGE_ERROR_CODES = [
  'BadRequest',
  'Unauthorized',
  'NotFound',
  'KeyNotFound',
  'KeyExists',
  'KekNotFound',
  'KekInUse',
  'PayloadTooLarge',
  'OperationFailed',
  'UnwrapFailed',
  'InternalError',
  'HsmUnavailable',
  'StateUnavailable',
] as const;

/** Every code the bridge answers with. */
export type BridgeErrorCode = (typeof BRIDGE_ERROR_CODES)[number];

/** The status each code is answered with. */
export const BRIDGE_ERROR_STATUS = {
  /** The body does not have the route's shape, or the key operation refuses its parameters. */
  BadRequest: 400,
  /** Missing, stale, replayed or badly signed request. */
  Unauthorized: 401,
  /** No such route. */
  NotFound: 404,
  /** No token objects under the handle. */
  KeyNotFound: 404,
  /** The token already holds objects with the id asked for. */
  KeyExists: 409,
  /** No KEK of the bridge's family with this label. */
  KekNotFound: 404,
  /** The KEK asked to be destroyed is the current one. */
  KekInUse: 409,
  PayloadTooLarge: 413,
  /** An HSM-key decryption or unwrap that does not authenticate (bad tag, padding, key). */
  OperationFailed: 422,
  /** A data key that does not authenticate under the KEK and context. */
  UnwrapFailed: 422,
  InternalError: 500,
  /** The token does not answer. */
  HsmUnavailable: 503,
  /** The bridge cannot record the request's nonce, so it cannot vouch it is not a replay. */
  StateUnavailable: 503,
} as const satisfies Record<BridgeErrorCode, number>;

export const BridgeErrorBody = z.object({
  error: z.object({ code: z.enum(BRIDGE_ERROR_CODES), message: z.string() }),
});
export type BridgeErrorBody = z.input<typeof BridgeErrorBody>;
