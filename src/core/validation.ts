/**
 * Request validation shared by the object kinds: Azure Key Vault's limits on names, versions,
 * attributes, tags and secret bodies.
 */
import * as z from 'zod';
import { badParameter } from './errors';

// Limits as Azure Key Vault has them (see DESIGN.md, "Limits worth mirroring").
export const MAX_SECRET_VALUE_BYTES = 25 * 1024;
const OBJECT_NAME = /^[0-9a-zA-Z-]{1,127}$/;
const VERSION = /^[0-9a-f]{32}$/;

export function assertObjectName(name: string, kind = 'secret'): void {
  if (!OBJECT_NAME.test(name)) {
    throw badParameter(`The ${kind} name '${truncate(name)}' is invalid: names are 1-127 letters, digits and hyphens.`);
  }
}

export const isVersionId = (version: string) => VERSION.test(version.toLowerCase());

const unixTime = z.number().int().min(0).max(253402300799).nullable().optional();

export const attributes = z.object({
  enabled: z.boolean().nullable().optional(),
  nbf: unixTime,
  exp: unixTime,
});

const tagName = z.string().max(256, 'tag names are at most 256 characters');
const tagValue = z.string().max(256, 'tag values are at most 256 characters');

/**
 * Tags, checked name by name. Not z.record: it skips a `__proto__` name (which JSON.parse makes an
 * own property) without checking its value, so `{"__proto__": {…}}` vanished instead of being
 * refused. Every own name is checked here alike and the result is built with own data properties
 * only (Object.fromEntries), so no name can reach a prototype.
 */
const tagRecord = z.unknown().transform((raw, ctx): Record<string, string> => {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    ctx.addIssue({
      code: 'custom',
      message: `Invalid input: expected record, received ${Array.isArray(raw) ? 'array' : raw === null ? 'null' : typeof raw}`,
    });
    return z.NEVER;
  }
  const entries = Object.entries(raw as Record<string, unknown>);
  if (entries.length > 15) {
    ctx.addIssue({ code: 'custom', message: 'at most 15 tags are allowed' });
    return z.NEVER;
  }
  for (const [name, value] of entries) {
    const issue = tagName.safeParse(name).error?.issues[0] ?? tagValue.safeParse(value).error?.issues[0];
    if (issue) {
      ctx.addIssue({ code: 'custom', path: [name], message: issue.message });
      return z.NEVER;
    }
  }
  return Object.fromEntries(entries) as Record<string, string>;
});

export const tags = tagRecord.nullable().optional();

const contentType = z.string().max(255, 'contentType is at most 255 characters').nullable().optional();

export const setSecretBody = z.object({
  value: z
    .string()
    .refine((v) => new TextEncoder().encode(v).byteLength <= MAX_SECRET_VALUE_BYTES, 'the secret value is larger than 25 KB'),
  contentType,
  attributes: attributes.nullable().optional(),
  tags,
});
export type SetSecretInput = z.infer<typeof setSecretBody>;

export const updateSecretBody = z.object({
  contentType,
  attributes: attributes.nullable().optional(),
  tags,
});
export type UpdateSecretInput = z.infer<typeof updateSecretBody>;

export const restoreBody = z.object({ value: z.string().min(1).max(1_000_000) });

/** Parses a JSON body against a schema; every failure is a 400 BadParameter naming the field. */
export function parseBody<T>(schema: z.ZodType<T>, raw: string): T {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    throw badParameter('The request body is not valid JSON.');
  }
  const result = schema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const where = issue.path.length ? `'${issue.path.join('.')}'` : 'the request body';
    throw badParameter(`Invalid value for ${where}: ${issue.message}.`);
  }
  return result.data;
}

/** `maxresults`: 1–25, default 25. */
export function parseMaxResults(raw: string | undefined): number {
  if (raw === undefined || raw === '') return 25;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 25) throw badParameter('maxresults must be an integer from 1 to 25.');
  return n;
}

function truncate(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}
