// Event subscriptions: the API on both hosts, handshakes, and the SSRF policy on endpoints.
import { beforeAll, describe, expect, it } from 'vitest';
import { addressRefusal } from '../../src/events/endpoint-policy';
import { API, APEX, admin, call, json, newVault, tokenFor, vaultOrigin } from './helpers';
import { newHook, received, RECEIVER, setDns, subscribe, subscriptionBody } from './events-helpers';
import { rows } from './identity-helpers';

// Subscriptions through both APIs: handshakes (Event Grid echo, CloudEvents abuse protection),
// the SSRF policy on endpoints, what reads show (never the secret, never the query string), who
// may do what, and the audit names of changes.

let token: string;
let nobodyToken: string;
let vault: string;

beforeAll(async () => {
  const creds = await admin();
  token = await tokenFor(creds);
  vault = await newVault(token);
  const res = await call('POST', `${APEX}/management/applications`, { token, body: { displayName: 'events: no rights' } });
  const app = await json(res);
  nobodyToken = await tokenFor({ tenantId: creds.tenantId, clientId: app.clientId, clientSecret: app.clientSecret });
});

const mgmt = (path = '') => `${APEX}/management/vaults/${vault}/eventSubscriptions${path}`;
const onVault = (path = '') => `${vaultOrigin(vault)}/eventSubscriptions${path}?${API}`;

describe('creating subscriptions', () => {
  it('performs the Event Grid validation handshake, shows the signing secret once, never again', async () => {
    const hook = await newHook();
    const { status, body } = await subscribe(
      token,
      vault,
      'eg-ok',
      subscriptionBody(`${hook.url}?code=credential-in-query`, { types: ['KeyNewVersionCreated'] }),
    );
    expect(status, JSON.stringify(body)).toBe(201);
    expect(body.properties.signingSecret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(body.properties.destination.properties).toEqual({ endpointBaseUrl: hook.url, maxEventsPerBatch: 1 });
    expect(body.properties.filter.includedEventTypes).toEqual(['Microsoft.KeyVault.KeyNewVersionCreated']);
    expect(body.properties.retryPolicy).toEqual({ maxDeliveryAttempts: 30, eventTimeToLiveInMinutes: 1440 });

    const [validation] = await received(hook.id);
    expect(validation!.headers['aeg-event-type']).toBe('SubscriptionValidation');
    const [event] = JSON.parse(validation!.body);
    expect(event.eventType).toBe('Microsoft.EventGrid.SubscriptionValidationEvent');
    expect(event.data.validationCode).toMatch(/^[0-9A-F]{32}$/);

    const got = await json(await call('GET', mgmt('/eg-ok'), { token }));
    expect(JSON.stringify(got)).not.toContain('whsec_');
    expect(JSON.stringify(got)).not.toContain('credential-in-query');
    expect(got.properties.deliveryStatus).toEqual({
      delivered: 0,
      failed: 0,
      deadLettered: 0,
      lastError: null,
      lastErrorTime: null,
      lastSuccessTime: null,
    });
    // Sealed at rest: the stored row holds no secret in the clear.
    const [row] = await rows<{ secret_ciphertext: string }>(
      'select secret_ciphertext from event_subscriptions where name = ?',
      'eg-ok',
    );
    expect(row!.secret_ciphertext).not.toContain('whsec_');
  });

  it('refuses, and stores nothing, when the receiver does not echo the validation code or errs', async () => {
    for (const validation of ['wrong', 500] as const) {
      const hook = await newHook({ validation });
      const { status, body } = await subscribe(token, vault, 'eg-bad', subscriptionBody(hook.url));
      expect(status).toBe(400);
      expect(body.error.code).toBe('EndpointValidationFailed');
      expect((await call('GET', mgmt('/eg-bad'), { token })).status).toBe(404);
    }
  });

  it('performs the CloudEvents abuse-protection handshake (OPTIONS, WebHook-Allowed-Origin)', async () => {
    const hook = await newHook();
    const { status } = await subscribe(token, vault, 'ce-ok', subscriptionBody(hook.url, { schema: 'CloudEventSchemaV1_0' }));
    expect(status).toBe(201);
    const [options] = await received(hook.id);
    expect(options!.method).toBe('OPTIONS');
    expect(options!.headers['webhook-request-origin']).toBe('vault.localhost');

    const denying = await newHook({ allowOrigin: false });
    const refused = await subscribe(token, vault, 'ce-bad', subscriptionBody(denying.url, { schema: 'CloudEventSchemaV1_0' }));
    expect(refused.status).toBe(400);
    expect(refused.body.error.code).toBe('EndpointValidationFailed');
  });

  it('does not follow a redirect during the handshake (to a metadata address, say)', async () => {
    const hook = await newHook({ validation: 302, location: 'http://169.254.169.254/latest/meta-data/' });
    const { status, body } = await subscribe(token, vault, 'eg-redirect', subscriptionBody(hook.url));
    expect(status).toBe(400);
    expect(body.error.message).toContain('HTTP 302');
  });

  it('validates the body: bounds, unknown event types, unknown fields', async () => {
    const hook = await newHook();
    for (const body of [
      subscriptionBody(hook.url, { maxDeliveryAttempts: 31 }),
      subscriptionBody(hook.url, { maxDeliveryAttempts: 0 }),
      subscriptionBody(hook.url, { ttl: 1441 }),
      subscriptionBody(hook.url, { types: ['KeyDeleted'] }),
      subscriptionBody(hook.url, { schema: 'CustomInputSchema' }),
      { properties: { ...subscriptionBody(hook.url).properties, surprise: true } },
    ]) {
      const res = await subscribe(token, vault, 'invalid', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
    }
    expect((await subscribe(token, vault, 'x', subscriptionBody(hook.url))).status).toBe(400);
    expect(await received(hook.id)).toEqual([]);
  });

  it('replacing keeps the secret and re-validates only a changed endpoint; audited as update', async () => {
    const hook = await newHook();
    expect((await subscribe(token, vault, 'replace-me', subscriptionBody(hook.url))).status).toBe(201);
    const id = crypto.randomUUID();
    const res = await call('PUT', mgmt('/replace-me'), {
      token,
      body: subscriptionBody(hook.url, { begins: 'app-' }),
      headers: { 'x-ms-client-request-id': id },
    });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.properties.signingSecret).toBeUndefined();
    expect(body.properties.filter.subjectBeginsWith).toBe('app-');
    expect((await received(hook.id)).length).toBe(1); // the first handshake only
    const deadline = Date.now() + 10_000;
    let ops: { operation: string }[] = [];
    while (ops.length === 0 && Date.now() < deadline) {
      ops = await rows<{ operation: string }>('select operation from audit_records where correlation_id = ?', id);
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(ops.map((o) => o.operation)).toEqual(['EventSubscriptionUpdate']);
  });
});

describe('endpoint policy (SSRF)', () => {
  it('refuses private, loopback, link-local, CGNAT, multicast, unspecified and metadata addresses, mapped or not', () => {
    for (const address of [
      '10.1.2.3',
      '172.16.0.1',
      '192.168.1.1',
      '127.0.0.1',
      '169.254.169.254',
      '100.64.0.1',
      '224.0.0.1',
      '0.0.0.0',
      '255.255.255.255',
      '::1',
      '::',
      'fe80::1',
      'fc00::1',
      'fd00:ec2::254',
      'ff02::1',
      '::ffff:10.0.0.1',
      '::ffff:a9fe:a9fe',
      '::ffff:127.0.0.1',
      '64:ff9b::a9fe:a9fe',
      '2002:a00:1::1',
    ]) {
      expect(addressRefusal(address, false), address).not.toBeNull();
    }
    for (const address of ['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111', '::ffff:8.8.8.8'])
      expect(addressRefusal(address, false), address).toBeNull();
    // The test flag lets loopback through, and only loopback.
    expect(addressRefusal('127.0.0.1', true)).toBeNull();
    expect(addressRefusal('::1', true)).toBeNull();
    expect(addressRefusal('10.0.0.1', true)).not.toBeNull();
  });

  it('refuses such endpoints through the API, before any request leaves', async () => {
    const strict = { ALLOW_LOOPBACK_HTTP_ISSUERS: 'false' };
    await setDns('internal.events.test', ['10.9.8.7']);
    await setDns('rebound.events.test', ['93.184.216.34', '::ffff:169.254.169.254']);
    const cases: [string, Record<string, string> | undefined][] = [
      ['https://10.0.0.1/hook', undefined],
      ['https://169.254.169.254/latest', undefined],
      ['https://[::ffff:10.0.0.1]/hook', undefined],
      ['https://[fd00:ec2::254]/', undefined],
      ['https://[fe80::1]/', undefined],
      ['https://100.64.1.1/', undefined],
      ['https://internal.events.test/hook', undefined],
      ['https://rebound.events.test/hook', undefined],
      ['https://unknown-name.events.test/hook', undefined],
      ['http://93.184.216.34/hook', undefined],
      ['https://user:pw@93.184.216.34/hook', undefined],
      [`${RECEIVER}/hook/x`, strict],
      ['https://[::1]/hook', strict],
      ['https://localhost/hook', strict],
      ['https://[::ffff:127.0.0.1]/hook', strict],
    ];
    for (const [url, env] of cases) {
      const { status, body } = await subscribe(token, vault, 'ssrf', subscriptionBody(url), { env });
      expect(status, url).toBe(400);
      expect(body.error.code, url).toBe('EndpointNotAllowed');
      expect(body.error.message, url).not.toMatch(/10\.9\.8\.7|169\.254/);
    }
  });
});

describe('the vault host and authorization', () => {
  it('serves the same API on the vault host to holders of the eventSubscriptions actions, not to others', async () => {
    const hook = await newHook();
    const created = await call('PUT', onVault('/on-vault-host'), { token, body: subscriptionBody(hook.url) });
    expect(created.status).toBe(201);
    const list = await json(await call('GET', onVault(), { token }));
    expect(list.value.map((s: { name: string }) => s.name)).toContain('on-vault-host');
    expect((await call('GET', mgmt('/on-vault-host'), { token })).status).toBe(200);

    expect((await call('GET', onVault(), { token: nobodyToken })).status).toBe(403);
    expect((await call('PUT', onVault('/intruder'), { token: nobodyToken, body: subscriptionBody(hook.url) })).status).toBe(403);
    expect((await call('GET', mgmt(), { token: nobodyToken })).status).toBe(403);
    expect((await call('GET', onVault())).status).toBe(401);

    expect((await call('DELETE', onVault('/on-vault-host'), { token })).status).toBe(204);
    expect((await call('GET', onVault('/on-vault-host'), { token })).status).toBe(404);
    expect((await call('GET', `${APEX}/management/vaults/no-such-vault-ev/eventSubscriptions`, { token })).status).toBe(404);
  });
});
