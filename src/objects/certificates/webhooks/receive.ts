// What one inbound renewal webhook does, in the order that lets a refused request start nothing:
// the Standard Webhooks signature (with the `standardwebhooks` package: its 5-minute window and
// constant-time comparison), then every named certificate checked against the receiver's scope,
// its existence and its pending operation, then the webhook-id claimed once, and only then the
// renewals started.
import { and, eq, inArray, lt, sql, type SQL } from 'drizzle-orm';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import * as z from 'zod';
import { now } from '../../../core/clock';
import { badParameter, conflict, forbidden, notFound, VaultError } from '../../../core/errors';
import type { Database } from '../../../storage/db';
import { describeError } from '../../../storage/errors';
import { certificateOperations, certificatePolicies, certificates, certificateWebhookMessages } from '../../../storage/schema';
import type { OperationRecord } from '../store';
import { MAX_CERTIFICATES, type Receiver } from './receivers';

/** The package's window: a timestamp further than this from the vault's clock is refused. */
export const WINDOW_SECONDS = 300;
// A webhook-id is remembered until a replay of it would fail the window anyway (with some slack).
const REMEMBER_SECONDS = WINDOW_SECONDS + 60;
const WEBHOOK_ID = /^[\x21-\x7e]{1,256}$/;

const NAME = /^[0-9a-zA-Z-]{1,127}$/;
export const renewalBody = z
  .object({
    certificates: z
      .array(z.string().regex(NAME, 'certificate names are 1-127 letters, digits and hyphens'))
      .min(1)
      .max(MAX_CERTIFICATES)
      .optional(),
    all: z.literal(true).optional(),
  })
  .refine((b) => (b.certificates === undefined) !== (b.all === undefined), {
    message: 'name the certificates to renew ("certificates": [...]) or ask for every certificate in scope ("all": true)',
  });
export type RenewalRequest = z.infer<typeof renewalBody>;

const unauthorized = (innerCode: string, message: string) => new VaultError(401, 'Unauthorized', message, innerCode);

/**
 * Verifies the three Standard Webhooks headers against each secret the receiver accepts (two during
 * a rotation's overlap). Throws a 401 that names what failed, never the secret or the signature.
 */
export function verifyWebhook(
  secrets: string[],
  body: string,
  headers: { id?: string; timestamp?: string; signature?: string },
): { id: string; timestamp: number } {
  const given = {
    'webhook-id': headers.id ?? '',
    'webhook-timestamp': headers.timestamp ?? '',
    'webhook-signature': headers.signature ?? '',
  };
  let failure: WebhookVerificationError | undefined;
  for (const secret of secrets) {
    try {
      new Webhook(secret).verify(body, given, { jsonParse: false });
      if (!WEBHOOK_ID.test(given['webhook-id']))
        throw badParameter('The webhook-id must be 1-256 printable ASCII characters without spaces.');
      return { id: given['webhook-id'], timestamp: Number.parseInt(given['webhook-timestamp'], 10) };
    } catch (err) {
      if (!(err instanceof WebhookVerificationError)) throw err;
      failure = err;
    }
  }
  switch (failure?.message) {
    case 'Missing required headers':
      throw unauthorized(
        'WebhookHeadersMissing',
        'The request needs the webhook-id, webhook-timestamp and webhook-signature headers.',
      );
    case 'Invalid Signature Headers':
      throw unauthorized('WebhookTimestampInvalid', 'The webhook-timestamp header is not a Unix time in seconds.');
    case 'Message timestamp too old':
    case 'Message timestamp too new':
      throw unauthorized(
        'WebhookTimestampOutOfRange',
        `The webhook-timestamp is more than ${WINDOW_SECONDS / 60} minutes from the vault's clock: sign each request when sending it.`,
      );
    default:
      throw unauthorized('WebhookSignatureInvalid', "No signature in webhook-signature matches the receiver's secret.");
  }
}

export interface RenewalPlan {
  /** Certificates to renew, as stored. */
  names: string[];
  /** With "all": certificates in scope that are not renewed now, and why. */
  skipped: { name: string; code: string; message: string }[];
}

interface Candidate {
  name: string;
  issuer: string;
  deleted: boolean;
  pending: boolean;
}

/** The certificates of `names` (any case) as stored: issuer of their policy, deleted, pending. */
async function candidates(db: Database, vaultId: string, where: SQL | undefined): Promise<Candidate[]> {
  const rows = await db
    .select({
      name: certificatePolicies.name,
      issuer: sql<string>`json_extract(${certificatePolicies.policy}, '$.issuer.name')`,
      deletedAt: certificates.deletedAt,
      status: certificateOperations.status,
    })
    .from(certificatePolicies)
    .leftJoin(
      certificates,
      and(eq(certificates.vaultId, certificatePolicies.vaultId), eq(certificates.name, certificatePolicies.name)),
    )
    .leftJoin(
      certificateOperations,
      and(
        eq(certificateOperations.vaultId, certificatePolicies.vaultId),
        eq(certificateOperations.name, certificatePolicies.name),
      ),
    )
    .where(and(eq(certificatePolicies.vaultId, vaultId), where))
    .all();
  return rows.map((r) => ({
    name: r.name,
    issuer: String(r.issuer ?? ''),
    deleted: r.deletedAt != null,
    pending: r.status === 'inProgress',
  }));
}

const lower = (s: string) => s.toLowerCase();
const list = (names: string[]) => names.join(', ');

/**
 * Which certificates a request renews. Named certificates must all be in scope (403), exist (404)
 * and have no operation in progress (409), or nothing starts. "all" renews what is in scope and
 * can be renewed now, and says what it skipped.
 */
export async function planRenewal(
  db: Database,
  vaultId: string,
  receiver: Receiver,
  request: RenewalRequest,
): Promise<RenewalPlan> {
  const scope = receiver.scope;
  if (request.all) {
    const found =
      'issuer' in scope
        ? await candidates(
            db,
            vaultId,
            sql`lower(json_extract(${certificatePolicies.policy}, '$.issuer.name')) = ${lower(scope.issuer)}`,
          )
        : await candidates(db, vaultId, inArray(certificatePolicies.name, scope.certificates));
    const live = found.filter((c) => !c.deleted);
    const names = live.filter((c) => !c.pending).map((c) => c.name);
    const skipped = live
      .filter((c) => c.pending)
      .map((c) => ({ name: c.name, code: 'Conflict', message: 'A create operation of this certificate is in progress.' }));
    if ('certificates' in scope) {
      const known = new Set(live.map((c) => lower(c.name)));
      for (const name of scope.certificates.filter((n) => !known.has(lower(n))))
        skipped.push({ name, code: 'CertificateNotFound', message: 'No such certificate in the vault.' });
    }
    if (names.length > MAX_CERTIFICATES)
      throw badParameter(
        `${names.length} certificates are in scope; one request renews at most ${MAX_CERTIFICATES}: name them in batches. Nothing was started.`,
      );
    return { names, skipped };
  }

  const seen = new Set<string>();
  const requested = request.certificates!.filter((n) => !seen.has(lower(n)) && seen.add(lower(n)));
  // A named scope is checked before anything is looked up: the sender learns nothing about
  // certificates it may not renew.
  if ('certificates' in scope) {
    const allowed = new Set(scope.certificates.map(lower));
    const outside = requested.filter((n) => !allowed.has(lower(n)));
    if (outside.length) throw scopeViolation(receiver, outside);
  }
  const found = new Map(
    (await candidates(db, vaultId, inArray(certificatePolicies.name, requested))).map((c) => [lower(c.name), c]),
  );
  const unknown = requested.filter((n) => !found.get(lower(n)) || found.get(lower(n))!.deleted);
  if (unknown.length) throw notFound('CertificateNotFound', `Certificate not found: ${list(unknown)}. Nothing was started.`);
  const known = requested.map((n) => found.get(lower(n))!);
  if ('issuer' in scope) {
    const outside = known.filter((c) => lower(c.issuer) !== lower(scope.issuer)).map((c) => c.name);
    if (outside.length) throw scopeViolation(receiver, outside);
  }
  const pending = known.filter((c) => c.pending).map((c) => c.name);
  if (pending.length)
    throw conflict(
      `A create operation is in progress for: ${list(pending)}; complete, cancel or delete it first. Nothing was started.`,
    );
  return { names: known.map((c) => c.name), skipped: [] };
}

function scopeViolation(receiver: Receiver, names: string[]): VaultError {
  const scope = 'issuer' in receiver.scope ? `the certificates of issuer ${receiver.scope.issuer}` : 'the certificates it names';
  return forbidden(
    `Webhook receiver ${receiver.name} may renew only ${scope}; not: ${list(names)}. Nothing was started.`,
    'WebhookScopeViolation',
  );
}

/**
 * Claims the webhook-id for the receiver: true the first time, false for a replay. Expired ids
 * (of any receiver) are removed first, so the table holds only the last few minutes.
 */
export async function claimWebhookId(db: Database, receiverId: string, webhookId: string, timestamp: number): Promise<boolean> {
  const t = now();
  const [, inserted] = await db.batch([
    db.delete(certificateWebhookMessages).where(lt(certificateWebhookMessages.expiresAt, t)),
    db
      .insert(certificateWebhookMessages)
      .values({ receiverId, webhookId, received: t, expiresAt: Math.max(t, timestamp) + REMEMBER_SECONDS })
      .onConflictDoNothing()
      .returning({ id: certificateWebhookMessages.webhookId }),
  ]);
  return inserted.length === 1;
}

/** Forgets a claimed id: nothing could be started, so the sender's retry should be acted on. */
export async function releaseWebhookId(db: Database, receiverId: string, webhookId: string): Promise<void> {
  await db
    .delete(certificateWebhookMessages)
    .where(and(eq(certificateWebhookMessages.receiverId, receiverId), eq(certificateWebhookMessages.webhookId, webhookId)));
}

export interface RenewalResult {
  started: OperationRecord[];
  failed: { name: string; code: string; message: string }[];
}

/**
 * Starts the renewals of a plan with `renew` (renew.ts's renewCertificate, passed in so that a
 * renewal function of a higher layer can take its place). A certificate whose renewal cannot start
 * is reported, the others still start; when none could start, the first error is thrown (the
 * caller releases the id).
 */
export async function startRenewals(names: string[], renew: (name: string) => Promise<OperationRecord>): Promise<RenewalResult> {
  const result: RenewalResult = { started: [], failed: [] };
  let first: unknown;
  for (const name of names) {
    try {
      result.started.push(await renew(name));
    } catch (err) {
      first ??= err;
      if (err instanceof VaultError) result.failed.push({ name, code: err.code, message: err.message });
      else {
        console.error(`webhook renewal of a certificate failed: ${describeError(err)}`);
        result.failed.push({ name, code: 'InternalServerError', message: 'The renewal could not be started.' });
      }
    }
  }
  if (result.started.length === 0 && first !== undefined) throw first;
  return result;
}
