/**
 * Management API for an application's credentials besides creating secrets (management.ts):
 * listing its client secrets (never their values), its certificate credentials (public
 * certificates only) and its federated identity credentials. Administrators only. Removing any
 * of them takes effect for the next token request: the token endpoint reads credentials from D1.
 */
import type { Hono } from 'hono';
import * as z from 'zod';
import { getApplication, listClientSecrets } from '../../identity/applications';
import { addCertificate, getCertificate, listCertificates, removeCertificate } from '../../identity/certificates';
import {
  addFederatedCredential,
  getFederatedCredential,
  issuerPolicyOf,
  listFederatedCredentials,
  removeFederatedCredential,
} from '../../identity/federation';
import { notFound } from '../../core/errors';
import { parseBody } from '../../core/validation';
import { bodyText, noContent, type AppContext, type AppEnv } from '../context';
import { adminOperation } from '../operation';

const appObject = (c: AppContext) => `/applications/${c.req.param('clientId')}`;

const certificateBody = z.object({ certificate: z.string().min(1) });
const federatedBody = z.object({
  name: z.string(),
  issuer: z.string(),
  subject: z.string(),
  audiences: z.array(z.string()).optional(),
  description: z.string().nullable().optional(),
});

async function requireApplication(c: AppContext): Promise<string> {
  const clientId = c.req.param('clientId')!;
  if (!(await getApplication(c.get('services').db, clientId)))
    throw notFound('NotFound', `Application ${clientId.slice(0, 64)} was not found.`);
  return clientId;
}

const list = <T>(value: T[]) => ({ value, nextLink: null });

export function credentialManagementRoutes(app: Hono<AppEnv>): void {
  const base = '/management/applications/:clientId';

  app.get(`${base}/secrets`, adminOperation('ApplicationSecretList', appObject), async (c) => {
    const clientId = await requireApplication(c);
    return c.json(list(await listClientSecrets(c.get('services').db, clientId)));
  });

  app.post(`${base}/certificates`, adminOperation('ApplicationCertificateAdd', appObject), async (c) => {
    const clientId = await requireApplication(c);
    const { certificate } = parseBody(certificateBody, await bodyText(c));
    return c.json(await addCertificate(c.get('services').db, clientId, certificate), 201);
  });

  app.get(`${base}/certificates`, adminOperation('ApplicationCertificateList', appObject), async (c) => {
    const clientId = await requireApplication(c);
    return c.json(list(await listCertificates(c.get('services').db, clientId)));
  });

  app.get(`${base}/certificates/:id`, adminOperation('ApplicationCertificateGet', appObject), async (c) => {
    const clientId = await requireApplication(c);
    return c.json(await getCertificate(c.get('services').db, clientId, c.req.param('id')));
  });

  app.delete(`${base}/certificates/:id`, adminOperation('ApplicationCertificateRemove', appObject), async (c) => {
    const clientId = await requireApplication(c);
    await removeCertificate(c.get('services').db, clientId, c.req.param('id'));
    return noContent(c);
  });

  app.post(`${base}/federatedCredentials`, adminOperation('ApplicationFederatedCredentialAdd', appObject), async (c) => {
    const clientId = await requireApplication(c);
    const input = parseBody(federatedBody, await bodyText(c));
    return c.json(await addFederatedCredential(c.get('services').db, clientId, input, issuerPolicyOf(c.env)), 201);
  });

  app.get(`${base}/federatedCredentials`, adminOperation('ApplicationFederatedCredentialList', appObject), async (c) => {
    const clientId = await requireApplication(c);
    return c.json(list(await listFederatedCredentials(c.get('services').db, clientId)));
  });

  app.get(`${base}/federatedCredentials/:id`, adminOperation('ApplicationFederatedCredentialGet', appObject), async (c) => {
    const clientId = await requireApplication(c);
    return c.json(await getFederatedCredential(c.get('services').db, clientId, c.req.param('id')));
  });

  app.delete(`${base}/federatedCredentials/:id`, adminOperation('ApplicationFederatedCredentialRemove', appObject), async (c) => {
    const clientId = await requireApplication(c);
    await removeFederatedCredential(c.get('services').db, clientId, c.req.param('id'));
    return noContent(c);
  });
}
