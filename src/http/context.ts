/**
 * What one request carries through the middleware to the handlers, and the small helpers handlers
 * use to read it.
 */
import type { Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { AuthorizationDecision } from '../access/authorize';
import type { Env } from '../core/env';
import type { Caller } from '../identity/tokens';
import type { Services } from '../crypto/services';
import { badParameter } from '../core/errors';
import { type VaultRecord } from '../core/vault';

/** What one request carries through the middleware to the handlers. */
export interface AuditDraft {
  operation: string;
  vault: string | null;
  objectId: string | null;
  /** The error code the request was answered with, if any. */
  errorCode: string | null;
  /** What granted the request: a role assignment or an access policy (set by authorize). */
  authorization?: AuthorizationDecision;
}

export type AppEnv = {
  Bindings: Env;
  Variables: {
    services: Services;
    audit: AuditDraft;
    correlationId: string;
    apexOrigin: string;
    caller?: Caller;
    tenantId?: string;
    vault?: VaultRecord;
    /** Origin of the vault host, e.g. https://dev.vault.localhost:8443. */
    origin?: string;
    apiVersion?: string;
  };
};

export type AppContext = Context<AppEnv>;

/** Names the operation (Azure's audit names) and the object it touches, for the audit event. */
export function auditAs(c: AppContext, operation: string, objectId: string | null = null): void {
  const draft = c.get('audit');
  draft.operation = operation;
  draft.objectId = objectId;
}

/** Values set by the authentication middleware; present on every authenticated route. */
export function authenticated(c: AppContext): { caller: Caller; tenantId: string } {
  const caller = c.get('caller');
  const tenantId = c.get('tenantId');
  if (!caller || !tenantId) throw new Error('route reached without authentication');
  return { caller, tenantId };
}

export function currentVault(c: AppContext): { vault: VaultRecord; origin: string } {
  const vault = c.get('vault');
  const origin = c.get('origin');
  if (!vault || !origin) throw new Error('vault route reached without a vault');
  return { vault, origin };
}

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/**
 * The request body as text, refusing oversized bodies before parsing them: hono's body limit
 * checks the declared length, or counts a chunked body as it arrives, and the refusal is Azure's
 * 400 BadParameter (the limit is per route, hence applied here rather than as app middleware).
 */
export async function bodyText(c: AppContext, limit = 256 * 1024): Promise<string> {
  await bodyLimit({
    maxSize: limit,
    onError: () => {
      throw badParameter('The request body is too large.');
    },
  })(c, async () => {});
  // Read as bytes: form bodies (the token endpoint) are text too, but workerd warns on .text().
  const bytes = await c.req.arrayBuffer();
  try {
    return decoder.decode(bytes);
  } catch {
    throw badParameter('The request body is not valid UTF-8.');
  }
}

/**
 * 204 No Content. Marked identity-encoded so no layer (wrangler dev's workerd does) gzips the
 * empty body: the Azure SDK would then fail to gunzip nothing.
 */
export function noContent(c: AppContext): Response {
  return c.body(null, 204, { 'content-encoding': 'identity' });
}
