/**
 * The shape of every request and answer of every bridge route, as zod schemas. The bridge parses
 * request bodies with them (a body that does not fit is a 400 BadRequest naming the field) and the
 * Worker parses answers with them (an answer that does not fit is a malformed answer, never a
 * crash). Byte fields travel as base64url without padding and parse to Uint8Array, so each type
 * comes twice: the wire form (`z.input`, what is sent) and the parsed form (`z.output`).
 *
 * Only shapes and sizes are checked here; whether an algorithm suits a key is the bridge's call.
 */
import * as z from 'zod';
import { fromBase64Url } from './encoding';

// ---------------------------------------------------------------------------------------------
// Limits and vocabulary
// ---------------------------------------------------------------------------------------------

/** Largest data key /v1/wrap wraps. */
export const MAX_WRAP_PLAINTEXT = 64;
/** Largest wrapped data key /v1/unwrap reads. */
export const MAX_WRAPPED_BYTES = 16 * 1024;
/** Largest context bound into a data-key wrap. */
export const MAX_CONTEXT_BYTES = 1024;
/** Largest plaintext or ciphertext of one HSM-key operation. */
export const MAX_CIPHER_BYTES = 32 * 1024;
/** Largest key that A*KW wraps. */
export const MAX_KW_KEY_BYTES = 1024;
/** Largest additional authenticated data for GCM. */
export const MAX_AAD_BYTES = 4 * 1024;
/** Largest digest a signature covers (SHA-512). */
export const MAX_DIGEST_BYTES = 64;
/** Most random bytes one POST /v1/rng returns. */
export const MAX_RANDOM_BYTES = 128;

/** Key ids (and so handles) are 32 lowercase hex characters chosen by the caller. */
export const HSM_KEY_ID_PATTERN = /^[0-9a-f]{32}$/;
/** Label of the token objects of key <id>. */
export const hsmKeyLabel = (id: string): string => `ekv-key-${id}`;

export const HSM_RSA_SIZES = [2048, 3072, 4096] as const;
export const HSM_CURVES = ['P-256', 'P-384', 'P-521', 'P-256K'] as const;
export const HSM_AES_SIZES = [128, 192, 256] as const;
export type HsmRsaSize = (typeof HSM_RSA_SIZES)[number];
export type HsmCurve = (typeof HSM_CURVES)[number];
export type HsmAesSize = (typeof HSM_AES_SIZES)[number];

/** Signing algorithms; the caller hashes and sends the digest. */
export const HSM_SIGN_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'ES256K'] as const;
/** RSA decryption (and unwrap) with the private key. */
export const HSM_RSA_DECRYPT_ALGS = ['RSA-OAEP', 'RSA-OAEP-256', 'RSA1_5'] as const;
/** AES encryption and decryption with an oct key; the size in the name must match the key's. */
export const HSM_AES_CIPHER_ALGS = [
  'A128GCM',
  'A192GCM',
  'A256GCM',
  'A128CBC',
  'A192CBC',
  'A256CBC',
  'A128CBCPAD',
  'A192CBCPAD',
  'A256CBCPAD',
] as const;
/** RFC 3394 AES key wrap with an oct key. */
export const HSM_AES_KW_ALGS = ['A128KW', 'A192KW', 'A256KW'] as const;
export type HsmSignAlg = (typeof HSM_SIGN_ALGS)[number];
export type HsmRsaDecryptAlg = (typeof HSM_RSA_DECRYPT_ALGS)[number];
export type HsmAesCipherAlg = (typeof HSM_AES_CIPHER_ALGS)[number];
export type HsmAesKwAlg = (typeof HSM_AES_KW_ALGS)[number];

// ---------------------------------------------------------------------------------------------
// Field types. Messages are written to follow the field's name ("'iv' must decode to …"); see
// describeIssue.
// ---------------------------------------------------------------------------------------------

/** A base64url string, kept as text (a value the Worker stores and sends back unread). */
const base64urlText = z
  .string({ error: 'is required and must be a base64url string' })
  .regex(/^[A-Za-z0-9_-]*$/, 'is not valid base64url')
  .refine((text) => text.length % 4 !== 1, 'is not valid base64url');

/** A base64url string that parses to min..max bytes. */
function bytes(min = 0, max = Number.MAX_SAFE_INTEGER) {
  return z.string({ error: 'is required and must be a base64url string' }).transform((text, ctx) => {
    let out: Uint8Array;
    try {
      out = fromBase64Url(text);
    } catch {
      ctx.issues.push({ code: 'custom', message: 'is not valid base64url', input: text });
      return z.NEVER;
    }
    if (out.length < min || out.length > max) {
      ctx.issues.push({ code: 'custom', message: `must decode to ${min}..${max} bytes`, input: text });
      return z.NEVER;
    }
    return out;
  });
}

/** An optional bytes field: absent or null parses to undefined. */
const optionalBytes = (max: number) =>
  bytes(0, max)
    .nullish()
    .transform((value) => value ?? undefined);

const keyId = z
  .string({ error: 'must be 32 lowercase hex characters' })
  .regex(HSM_KEY_ID_PATTERN, 'must be 32 lowercase hex characters');

/** An algorithm name; which ones a key takes is the bridge's semantic check, with its own messages. */
const alg = z
  .string({ error: 'is required and must be a short string' })
  .min(1, 'is required and must be a short string')
  .max(64, 'is required and must be a short string');

export const HsmKeySpec = z.union(
  [
    z.object({ kty: z.literal('RSA'), size: z.literal(HSM_RSA_SIZES) }),
    z.object({ kty: z.literal('EC'), crv: z.enum(HSM_CURVES) }),
    z.object({ kty: z.literal('oct'), size: z.literal(HSM_AES_SIZES) }),
  ],
  {
    error:
      "must be {kty:'RSA', size: 2048|3072|4096}, {kty:'EC', crv: 'P-256'|'P-384'|'P-521'|'P-256K'} or {kty:'oct', size: 128|192|256}",
  },
);
export type HsmKeySpec = z.output<typeof HsmKeySpec>;

export const HsmPublicJwk = z.union([
  z.object({ kty: z.literal('RSA'), n: base64urlText, e: base64urlText }),
  z.object({ kty: z.literal('EC'), crv: z.enum(HSM_CURVES), x: base64urlText, y: base64urlText }),
]);
export type HsmPublicJwk = z.output<typeof HsmPublicJwk>;

// ---------------------------------------------------------------------------------------------
// Data keys: POST /v1/wrap and /v1/unwrap under the KEK, GET /healthz, GET /v1/status.
// ---------------------------------------------------------------------------------------------

/** POST /v1/wrap: a data key, and the context bound into the wrap as AES-GCM additional data. */
export const WrapRequest = z.object({ plaintext: bytes(1, MAX_WRAP_PLAINTEXT), context: bytes(1, MAX_CONTEXT_BYTES) });
/** `wrapped`: base64url of version(1) || iv(12) || ciphertext || tag(16). */
export const WrapResponse = z.object({
  wrapped: base64urlText.min(1, 'is required and must be a base64url string'),
  kekLabel: z.string(),
});
/** A KEK's label: `{HSM_KEK_LABEL}` or `{HSM_KEK_LABEL}.{generation}`. */
const kekLabel = z.string({ error: 'must be a KEK label' }).min(1, 'must be a KEK label').max(128, 'must be a KEK label');
/**
 * POST /v1/unwrap under the KEK `kekLabel` (the one the wrap answer named; the current KEK when
 * absent). 422 UnwrapFailed when the wrapped key does not authenticate or no such KEK exists.
 */
export const UnwrapRequest = z.object({
  wrapped: bytes(1, MAX_WRAPPED_BYTES),
  context: bytes(1, MAX_CONTEXT_BYTES),
  kekLabel: kekLabel.optional(),
});
export const UnwrapResponse = z.object({ plaintext: bytes(1, MAX_WRAP_PLAINTEXT) });

/** Most data keys one POST /v1/unwrap-batch carries. */
export const MAX_BATCH_ITEMS = 32;

/**
 * POST /v1/unwrap-batch: several /v1/unwrap requests in one signed request (one nonce, the whole
 * body under the HMAC like any body). Only the envelope is checked as a whole: each item is parsed
 * with UnwrapRequest and answered, or failed, on its own, in the order sent.
 */
export const UnwrapBatchRequest = z.object({
  items: z
    .array(z.unknown(), { error: 'is required and must be an array' })
    .min(1, `must hold 1..${MAX_BATCH_ITEMS} items`)
    .max(MAX_BATCH_ITEMS, `must hold 1..${MAX_BATCH_ITEMS} items`),
});
/** One item's answer: the plaintext, or the error /v1/unwrap would have answered for it alone. */
export const UnwrapBatchResult = z.union([
  UnwrapResponse,
  z.object({
    error: z.object({ code: z.enum(['BadRequest', 'UnwrapFailed', 'HsmUnavailable', 'InternalError']), message: z.string() }),
  }),
]);
/** `results[i]` answers `items[i]`. */
export const UnwrapBatchResponse = z.object({ results: z.array(UnwrapBatchResult).max(MAX_BATCH_ITEMS) });

// ---------------------------------------------------------------------------------------------
// KEK rotation: POST /v1/kek/create, /v1/kek/list, /v1/kek/destroy. A new KEK becomes current
// (new wraps use it); older ones keep unwrapping until destroyed. 404 KekNotFound, 409 KekInUse.
// ---------------------------------------------------------------------------------------------

export const KekCreateRequest = z.object({});
export const KekCreateResponse = z.object({ kekLabel });
export const KekListRequest = z.object({});
/** Oldest first. */
export const KekListResponse = z.object({
  current: kekLabel,
  keks: z.array(z.object({ label: kekLabel, current: z.boolean() })),
});
/** Refused (409 KekInUse) for the current KEK: rotate first. The Worker checks nothing references it. */
export const KekDestroyRequest = z.object({ kekLabel });
export const KekDestroyResponse = z.object({ destroyed: z.literal(true) });

/** GET /healthz (unauthenticated): 200 with status ok, or 503 with a reason. */
export const BridgeHealth = z.object({
  status: z.enum(['ok', 'unavailable']),
  kek: z.boolean(),
  reason: z.string().optional(),
});

const count = z.number().int().nonnegative();
/** GET /v1/status: requests per operation since start, data keys (wrap, unwrap) then HSM keys. */
export const BridgeStatus = z.object({
  kekLabel: z.string(),
  ops: z.object({
    wrap: count,
    unwrap: count,
    generate: count,
    import: count,
    sign: count,
    decrypt: count,
    encrypt: count,
    wrapKey: count,
    unwrapKey: count,
    destroy: count,
    publicKey: count,
    rng: count,
  }),
});

// ---------------------------------------------------------------------------------------------
// HSM key operations (/v1/keys/*, /v1/rng). Private and secret key material is generated or
// imported inside the token as sensitive, non-extractable token objects and never leaves it.
// Errors: 400 BadRequest, 404 KeyNotFound, 409 KeyExists, 422 OperationFailed.
// ---------------------------------------------------------------------------------------------

/** POST /v1/keys/generate. 409 KeyExists when the token already holds objects with this id. */
export const GenerateKeyRequest = z.object({ id: keyId, spec: HsmKeySpec });
/** `handle`: the id again, the handle of every later operation. `publicJwk`: absent for oct keys. */
export const GenerateKeyResponse = z.object({ handle: keyId, publicJwk: HsmPublicJwk.optional() });

/** POST /v1/keys/import: a private RSA (n,e,d,p,q,dp,dq,qi) or EC (crv,x,y,d) JWK; its members are the bridge's to check. */
export const ImportKeyRequest = z.object({
  id: keyId,
  jwk: z.record(z.string(), z.unknown(), { error: 'is required and must be an object' }),
});
export const ImportKeyResponse = z.object({ handle: keyId, publicJwk: HsmPublicJwk });

/** POST /v1/keys/sign. RS*: PKCS#1 v1.5; PS*: PSS, MGF1 of the same hash, salt = hash length; ES*: raw r||s. */
export const KeySignRequest = z.object({ handle: keyId, alg, digest: bytes(1, MAX_DIGEST_BYTES) });
export const KeySignResponse = z.object({ signature: bytes(1) });

/** POST /v1/keys/decrypt. GCM: iv (12) and tag (16) required, aad optional; CBC*: iv (16) required. */
export const KeyDecryptRequest = z.object({
  handle: keyId,
  alg,
  ciphertext: bytes(1, MAX_CIPHER_BYTES),
  iv: optionalBytes(64),
  aad: optionalBytes(MAX_AAD_BYTES),
  tag: optionalBytes(64),
});
/** The plaintext may be empty (an empty GCM message). */
export const KeyDecryptResponse = z.object({ plaintext: bytes() });

/**
 * POST /v1/keys/encrypt, oct keys only (RSA encryption needs only the public key). GCM: the IV is
 * always generated in the token (a caller's iv is refused); CBC*: iv optional, generated if absent.
 */
export const KeyEncryptRequest = z.object({
  handle: keyId,
  alg,
  plaintext: bytes(1, MAX_CIPHER_BYTES),
  iv: optionalBytes(64),
  aad: optionalBytes(MAX_AAD_BYTES),
});
/** `tag`: GCM only. */
export const KeyEncryptResponse = z.object({ ciphertext: bytes(), iv: bytes().optional(), tag: bytes().optional() });

/** POST /v1/keys/wrap: A*KW (RFC 3394) of key bytes (a multiple of 8, at least 16) under an oct key. */
export const KeyWrapRequest = z.object({ handle: keyId, alg, key: bytes(1, MAX_KW_KEY_BYTES) });
export const KeyWrapResponse = z.object({ wrapped: bytes(1) });

/** POST /v1/keys/unwrap: RSA-OAEP, RSA-OAEP-256, RSA1_5 on RSA keys; A*KW on oct keys. */
export const KeyUnwrapRequest = z.object({ handle: keyId, alg, wrapped: bytes(1, MAX_CIPHER_BYTES) });
export const KeyUnwrapResponse = z.object({ key: bytes() });

/** POST /v1/keys/destroy: destroys every object of the key; idempotent (false: nothing to destroy). */
export const DestroyKeyRequest = z.object({ handle: keyId });
export const DestroyKeyResponse = z.object({ destroyed: z.boolean() });

/** POST /v1/keys/public: the public JWK of an RSA or EC key, read from the token. */
export const PublicKeyRequest = z.object({ handle: keyId });
export const PublicKeyResponse = z.object({ publicJwk: HsmPublicJwk });

/** POST /v1/rng: 1..MAX_RANDOM_BYTES bytes from the token's generator. */
export const RandomRequest = z.object({
  count: z
    .number({ error: 'is required and must be a number' })
    .int(`must be an integer from 1 to ${MAX_RANDOM_BYTES}`)
    .min(1, `must be an integer from 1 to ${MAX_RANDOM_BYTES}`)
    .max(MAX_RANDOM_BYTES, `must be an integer from 1 to ${MAX_RANDOM_BYTES}`),
});
export const RandomResponse = z.object({ bytes: bytes(1, MAX_RANDOM_BYTES) });

// Wire forms (what is sent). Parsed forms: z.output<typeof X>.
export type WrapRequest = z.input<typeof WrapRequest>;
export type WrapResponse = z.input<typeof WrapResponse>;
export type UnwrapRequest = z.input<typeof UnwrapRequest>;
export type UnwrapResponse = z.input<typeof UnwrapResponse>;
/** The items are typed for the sender; the bridge parses each one with UnwrapRequest. */
export type UnwrapBatchRequest = { items: UnwrapRequest[] };
export type UnwrapBatchResult = z.input<typeof UnwrapBatchResult>;
export type UnwrapBatchResponse = z.input<typeof UnwrapBatchResponse>;
export type BridgeHealth = z.input<typeof BridgeHealth>;
export type BridgeStatus = z.input<typeof BridgeStatus>;
export type GenerateKeyRequest = z.input<typeof GenerateKeyRequest>;
export type GenerateKeyResponse = z.input<typeof GenerateKeyResponse>;
export type ImportKeyRequest = z.input<typeof ImportKeyRequest>;
export type ImportKeyResponse = z.input<typeof ImportKeyResponse>;
export type KeySignRequest = z.input<typeof KeySignRequest>;
export type KeySignResponse = z.input<typeof KeySignResponse>;
export type KeyDecryptRequest = z.input<typeof KeyDecryptRequest>;
export type KeyDecryptResponse = z.input<typeof KeyDecryptResponse>;
export type KeyEncryptRequest = z.input<typeof KeyEncryptRequest>;
export type KeyEncryptResponse = z.input<typeof KeyEncryptResponse>;
export type KeyWrapRequest = z.input<typeof KeyWrapRequest>;
export type KeyWrapResponse = z.input<typeof KeyWrapResponse>;
export type KeyUnwrapRequest = z.input<typeof KeyUnwrapRequest>;
export type KeyUnwrapResponse = z.input<typeof KeyUnwrapResponse>;
export type DestroyKeyRequest = z.input<typeof DestroyKeyRequest>;
export type DestroyKeyResponse = z.input<typeof DestroyKeyResponse>;
export type PublicKeyRequest = z.input<typeof PublicKeyRequest>;
export type PublicKeyResponse = z.input<typeof PublicKeyResponse>;
export type RandomRequest = z.input<typeof RandomRequest>;
export type RandomResponse = z.input<typeof RandomResponse>;
export type KekCreateResponse = z.input<typeof KekCreateResponse>;
export type KekListResponse = z.input<typeof KekListResponse>;
export type KekDestroyResponse = z.input<typeof KekDestroyResponse>;

/** Every authenticated POST route: its path and the schemas of its body and its 200 answer. */
export const BRIDGE_ROUTES = {
  wrap: { path: '/v1/wrap', request: WrapRequest, response: WrapResponse },
  unwrap: { path: '/v1/unwrap', request: UnwrapRequest, response: UnwrapResponse },
  unwrapBatch: { path: '/v1/unwrap-batch', request: UnwrapBatchRequest, response: UnwrapBatchResponse },
  generateKey: { path: '/v1/keys/generate', request: GenerateKeyRequest, response: GenerateKeyResponse },
  importKey: { path: '/v1/keys/import', request: ImportKeyRequest, response: ImportKeyResponse },
  sign: { path: '/v1/keys/sign', request: KeySignRequest, response: KeySignResponse },
  decrypt: { path: '/v1/keys/decrypt', request: KeyDecryptRequest, response: KeyDecryptResponse },
  encrypt: { path: '/v1/keys/encrypt', request: KeyEncryptRequest, response: KeyEncryptResponse },
  wrapKey: { path: '/v1/keys/wrap', request: KeyWrapRequest, response: KeyWrapResponse },
  unwrapKey: { path: '/v1/keys/unwrap', request: KeyUnwrapRequest, response: KeyUnwrapResponse },
  destroyKey: { path: '/v1/keys/destroy', request: DestroyKeyRequest, response: DestroyKeyResponse },
  publicKey: { path: '/v1/keys/public', request: PublicKeyRequest, response: PublicKeyResponse },
  random: { path: '/v1/rng', request: RandomRequest, response: RandomResponse },
  kekCreate: { path: '/v1/kek/create', request: KekCreateRequest, response: KekCreateResponse },
  kekList: { path: '/v1/kek/list', request: KekListRequest, response: KekListResponse },
  kekDestroy: { path: '/v1/kek/destroy', request: KekDestroyRequest, response: KekDestroyResponse },
} as const;
export type BridgeRoute = (typeof BRIDGE_ROUTES)[keyof typeof BRIDGE_ROUTES];

/**
 * One sentence for the first problem zod found: "'<field>' <message>", or "body must be a JSON
 * object" for the body itself. Field messages name sizes and algorithms, never the value sent.
 */
export function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'body is malformed';
  if (issue.path.length === 0) return 'body must be a JSON object';
  return `'${issue.path.join('.')}' ${issue.message}`;
}
