// Request bodies of the Keys API, as the Azure SDK sends them (snake_case where Azure uses it).
import * as z from 'zod';
import { fromBase64Url } from '../core/encoding';
import { attributes, tags } from '../core/validation';

const keyAttributes = attributes.extend({ exportable: z.boolean().nullable().optional() });

/** base64url bytes (no padding), decoded; anything else is a 400 naming the field. */
const bytes = (max: number) =>
  z
    .string()
    .max(Math.ceil((max * 4) / 3) + 4)
    .transform((text, ctx) => {
      try {
        return fromBase64Url(text);
      } catch {
        ctx.addIssue({ code: 'custom', message: 'not valid base64url' });
        return z.NEVER;
      }
    });

const keyOps = z.array(z.string().max(32)).max(16).nullable().optional();

export const createKeyBody = z.object({
  kty: z.string().max(16),
  key_size: z.number().int().nullable().optional(),
  public_exponent: z.number().int().nullable().optional(),
  crv: z.string().max(16).nullable().optional(),
  key_ops: keyOps,
  attributes: keyAttributes.nullable().optional(),
  tags,
});
export type CreateKeyInput = z.infer<typeof createKeyBody>;

export const importKeyBody = z.object({
  key: z.record(z.string(), z.unknown()),
  Hsm: z.boolean().nullable().optional(),
  attributes: keyAttributes.nullable().optional(),
  tags,
});
export type ImportKeyInput = z.infer<typeof importKeyBody>;

export const updateKeyBody = z.object({
  key_ops: keyOps,
  attributes: keyAttributes.nullable().optional(),
  tags,
});
export type UpdateKeyInput = z.infer<typeof updateKeyBody>;

/** encrypt, decrypt, wrapkey, unwrapkey. */
export const keyOperationBody = z.object({
  alg: z.string().max(32),
  value: bytes(64 * 1024),
  iv: bytes(64).nullable().optional(),
  aad: bytes(64 * 1024)
    .nullable()
    .optional(),
  tag: bytes(64).nullable().optional(),
});
export type KeyOperationInput = z.infer<typeof keyOperationBody>;

export const signBody = z.object({ alg: z.string().max(32), value: bytes(1024) });
export const verifyBody = z.object({ alg: z.string().max(32), digest: bytes(1024), value: bytes(1024) });

export const randomBody = z.object({ count: z.number().int().min(1).max(128) });
