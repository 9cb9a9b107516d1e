// Tokens are base64url (RFC 8555 §8.1); anything else cannot be ours.
import type { Hono } from 'hono';
import { http01Answer } from '../../objects/certificates/issuers/acme/stores';
import { auditAs, type AppEnv } from '../context';
import { errorResponse } from '../errors';

const TOKEN = /^[A-Za-z0-9_-]{16,128}$/;

/**
 * ACME http-01 answers (RFC 8555 §8.3) for names routed to this Worker, on the apex and the vault
 * hosts. Unauthenticated by design: the CA fetches the key authorization, which is no secret (it
 * only proves control of the name together with the account key). Each fetch is audited.
 */
export function acmeChallengeRoutes(app: Hono<AppEnv>): void {
  app.get('/.well-known/acme-challenge/:token', async (c) => {
    const token = c.req.param('token');
    auditAs(c, 'AcmeChallengeGet', `/.well-known/acme-challenge/${TOKEN.test(token) ? token : '-'}`);
    const answer = TOKEN.test(token) ? await http01Answer(c.get('services').db, token) : undefined;
    if (!answer) return errorResponse(c, 404, 'NotFound', 'No ACME challenge with this token is pending.');
    return c.text(answer.keyAuthorization, 200, { 'Content-Type': 'text/plain', 'Cache-Control': 'no-store' });
  });
}
