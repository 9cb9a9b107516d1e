/** Certificate contacts and issuers: a vault's certificate settings (mounted before certificates.ts). */
import type { Hono } from 'hono';
import { CertificateActions, type DataAction } from '../../core/data-actions';
import { parseBody, parseMaxResults } from '../../core/validation';
import { contactsBody as contactsInput, setIssuerBody, updateIssuerBody } from '../../objects/certificates/settings';
import { contactsBody, issuerBundle, issuerItem } from '../certificate-shapes';
import { bodyText, type AppEnv } from '../context';
import { vaultOperation } from '../operation';
import { listBody } from '../shapes';
import { beginCertificates } from './certificates';

const contacts = (operation: string) =>
  vaultOperation(operation, CertificateActions.manageContacts, '/certificates/contacts', false);
const issuers = (operation: string, action: DataAction) => vaultOperation(operation, action, '/certificates/issuers', false);
const issuer = (operation: string, action: DataAction) => vaultOperation(operation, action, '/certificates/issuers', true);

export function certificateSettingsRoutes(app: Hono<AppEnv>): void {
  app.get('/certificates/contacts', contacts('CertificateContactsGet'), async (c) => {
    const { store, origin } = beginCertificates(c);
    return c.json(contactsBody(origin, await store.settings.contacts()));
  });

  app.put('/certificates/contacts', contacts('CertificateContactsSet'), async (c) => {
    const { store, origin } = beginCertificates(c);
    const input = parseBody(contactsInput, await bodyText(c));
    return c.json(contactsBody(origin, await store.settings.setContacts(input.contacts)));
  });

  app.delete('/certificates/contacts', contacts('CertificateContactsDelete'), async (c) => {
    const { store, origin } = beginCertificates(c);
    return c.json(contactsBody(origin, await store.settings.deleteContacts()));
  });

  app.get('/certificates/issuers', issuers('CertificateIssuersList', CertificateActions.readIssuers), async (c) => {
    const { store, origin } = beginCertificates(c);
    const max = parseMaxResults(c.req.query('maxresults'));
    const page = await store.settings.listIssuers(max, c.req.query('$skiptoken') || undefined);
    return c.json(
      listBody(
        page.items.map((r) => issuerItem(origin, r)),
        page.next,
        c.req.url,
        c.get('apiVersion')!,
        max,
      ),
    );
  });

  app.get('/certificates/issuers/:name', issuer('CertificateIssuerGet', CertificateActions.readIssuers), async (c) => {
    const { store, origin } = beginCertificates(c);
    return c.json(issuerBundle(origin, await store.settings.issuer(c.req.param('name'))));
  });

  app.put('/certificates/issuers/:name', issuer('CertificateIssuerSet', CertificateActions.writeIssuers), async (c) => {
    const { store, origin } = beginCertificates(c);
    const input = parseBody(setIssuerBody, await bodyText(c));
    return c.json(issuerBundle(origin, await store.settings.setIssuer(c.req.param('name'), input, true)));
  });

  app.patch('/certificates/issuers/:name', issuer('CertificateIssuerUpdate', CertificateActions.writeIssuers), async (c) => {
    const { store, origin } = beginCertificates(c);
    const input = parseBody(updateIssuerBody, await bodyText(c));
    return c.json(issuerBundle(origin, await store.settings.setIssuer(c.req.param('name'), input, false)));
  });

  app.delete('/certificates/issuers/:name', issuer('CertificateIssuerDelete', CertificateActions.deleteIssuers), async (c) => {
    const { store, origin } = beginCertificates(c);
    return c.json(issuerBundle(origin, await store.settings.deleteIssuer(c.req.param('name'))));
  });
}
