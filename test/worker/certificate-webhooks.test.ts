/**
 * Webhook-triggered certificate renewal: receivers managed through the API, and inbound requests
 * signed with the `standardwebhooks` package exactly as a sender signs them — good, forged, wrong
 * secret, stale and future timestamps, replayed ids, unknown and out-of-scope certificates, the
 * rotation overlap, who may manage receivers, and that no secret or signature reaches the audit
 * trail or an error message.
 */
import { Webhook } from 'standardwebhooks';
import { beforeAll, describe, expect, it } from 'vitest';
import { BuiltInRoleIds } from '../../src/access/roles';
import { persisted, vaultChainOf, type StoredRecord } from './audit-helpers';
import { API, APEX, admin, call, env, json, newVault, tokenFor, vaultOrigin } from './helpers';
import { rows, sleep } from './identity-helpers';

type Creds = { tenantId: string; clientId: string; clientSecret: string };
const AUTH = 'providers/Microsoft.Authorization';
const defId = (guid: string) => `/providers/Microsoft.Authorization/roleDefinitions/${guid}`;

let adminCreds: Creds;
let token: string;
let vault: string;
let origin: string;
/** Every secret and signature the suite saw: none may appear in any record or error. */
const secretsSeen: string[] = [];
const signaturesSeen: string[] = [];
/** Every non-2xx answer's body. */
const errorBodies: string[] = [];

const req = async (method: string, path: string, body?: unknown, as = token) => {
  const res = await call(method, `${origin}${path}${path.includes('?') ? '&' : '?'}${API}`, { token: as, body });
  if (res.status >= 300) errorBodies.push(await res.clone().text());
  return res;
};

const ecSelf = (cn: string) => ({
  issuer: { name: 'Self' },
  key_props: { kty: 'EC', crv: 'P-256' },
  x509_props: { subject: `CN=${cn}`, validity_months: 3 },
});

async function createCertificate(name: string, policy: unknown): Promise<void> {
  const res = await req('POST', `/certificates/${name}/create`, { policy });
  expect(res.status, await res.clone().text()).toBe(202);
}

async function versions(name: string): Promise<number> {
  const res = await req('GET', `/certificates/${name}/versions`);
  expect(res.status).toBe(200);
  return (await json(res)).value.length;
}

async function putReceiver(name: string, scope: unknown, as = token) {
  const res = await req('PUT', `/certificateWebhooks/${name}`, { scope }, as);
  const body = await json(res);
  if (body.signingSecret) secretsSeen.push(body.signingSecret);
  return { res, body };
}

let n = 0;
const newId = () => `msg_${Date.now().toString(36)}${(n++).toString(36)}`;

/** An inbound request as a Standard Webhooks sender makes it: signed by the package. */
async function deliver(
  receiver: string,
  payload: unknown,
  opts: { secret: string; id?: string; at?: Date; body?: string; signedBody?: string; headers?: Record<string, string> },
) {
  const body = opts.body ?? JSON.stringify(payload);
  const id = opts.id ?? newId();
  const at = opts.at ?? new Date();
  const signature = new Webhook(opts.secret).sign(id, at, opts.signedBody ?? body);
  signaturesSeen.push(signature.slice(3));
  const correlation = crypto.randomUUID();
  const res = await call('POST', `${origin}/certificateWebhooks/${receiver}/renew`, {
    body,
    headers: {
      'webhook-id': id,
      'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
      'webhook-signature': signature,
      'x-ms-client-request-id': correlation,
      ...opts.headers,
    },
  });
  const text = await res.text();
  if (res.status >= 300) errorBodies.push(text);
  return { res, body: JSON.parse(text), id, correlation };
}

async function newApp(roleId?: string) {
  const res = await call('POST', `${APEX}/management/applications`, { token, body: { displayName: 'webhook manager' } });
  expect(res.status).toBe(201);
  const app = await json(res);
  if (roleId) {
    const granted = await call(
      'PUT',
      `${APEX}/management/vaults/${vault}/${AUTH}/roleAssignments/${crypto.randomUUID()}?scope=%2F`,
      { token, body: { properties: { roleDefinitionId: defId(roleId), principalId: app.objectId } } },
    );
    expect(granted.status, await granted.clone().text()).toBe(201);
  }
  return tokenFor({ tenantId: adminCreds.tenantId, clientId: app.clientId, clientSecret: app.clientSecret });
}

let named: string; // secret of receiver "deploy": certificates web and api
let byIssuer: string; // secret of receiver "selfsigned": every certificate of issuer Self

beforeAll(async () => {
  adminCreds = await admin();
  token = await tokenFor(adminCreds);
  vault = await newVault(token);
  origin = vaultOrigin(vault);
  await createCertificate('web', ecSelf('web.example.com'));
  await createCertificate('api', ecSelf('api.example.com'));
  await createCertificate('batch', ecSelf('batch.example.com'));
  // Another issuer, its create left in progress (CSR waiting for a merge).
  const pending = await req('POST', '/certificates/csr-only/create', {
    policy: { issuer: { name: 'Unknown' }, key_props: { kty: 'EC' }, x509_props: { subject: 'CN=csr.example.com' } },
  });
  expect(pending.status).toBe(202);
  const deploy = await putReceiver('deploy', { certificates: ['web', 'api', 'ghost'] });
  expect(deploy.res.status).toBe(201);
  named = deploy.body.signingSecret;
  const self = await putReceiver('selfsigned', { issuer: 'Self' });
  expect(self.res.status).toBe(201);
  byIssuer = self.body.signingSecret;
});

describe('receivers', () => {
  it('are created with a whsec_ secret shown once, then read without it', async () => {
    expect(named).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const got = await req('GET', '/certificateWebhooks/deploy');
    expect(got.status).toBe(200);
    const body = await json(got);
    expect(body).toEqual({
      id: `${origin}/certificateWebhooks/deploy`,
      name: 'deploy',
      url: `${origin}/certificateWebhooks/deploy/renew`,
      scope: { certificates: ['web', 'api', 'ghost'] },
      attributes: { created: expect.any(Number), updated: expect.any(Number) },
    });
    const listed = await json(await req('GET', '/certificateWebhooks'));
    expect(listed.value.map((r: { name: string }) => r.name)).toEqual(['deploy', 'selfsigned']);
    expect(JSON.stringify(listed)).not.toContain('whsec_');
    // Stored sealed: the secret is nowhere in the row.
    const [row] = await rows<Record<string, unknown>>('select * from certificate_webhooks where name = ?', 'deploy');
    expect(JSON.stringify(row)).not.toContain(named.slice(6));
  });

  it('replace the scope on a second PUT, keeping the secret; refuse a bad scope; delete', async () => {
    const again = await putReceiver('deploy', { certificates: ['web', 'api', 'ghost'] });
    expect(again.res.status).toBe(200);
    expect(again.body.signingSecret).toBeUndefined();
    for (const scope of [{}, { certificates: [] }, { certificates: ['web'], issuer: 'Self' }, { certificates: ['bad name'] }]) {
      const bad = await putReceiver('bad', scope);
      expect(bad.res.status).toBe(400);
      expect(bad.body.error.code).toBe('BadParameter');
    }
    await putReceiver('temp', { issuer: 'Self' });
    expect((await req('DELETE', '/certificateWebhooks/temp')).status).toBe(200);
    const gone = await req('GET', '/certificateWebhooks/temp');
    expect(gone.status).toBe(404);
    expect((await json(gone)).error.code).toBe('CertificateWebhookNotFound');
  });

  it('are managed with certificates/create/action (Certificates Officer), read with certificates/read, refused otherwise', async () => {
    const officer = await newApp(BuiltInRoleIds.certificatesOfficer);
    const user = await newApp(BuiltInRoleIds.certificateUser);
    const nobody = await newApp();
    expect((await putReceiver('officers', { issuer: 'Self' }, officer)).res.status).toBe(201);
    expect((await req('POST', '/certificateWebhooks/officers/rotateSecret', {}, officer)).status).toBe(200);
    expect((await req('GET', '/certificateWebhooks', undefined, user)).status).toBe(200);
    for (const [method, path] of [
      ['PUT', '/certificateWebhooks/users'],
      ['POST', '/certificateWebhooks/officers/rotateSecret'],
      ['DELETE', '/certificateWebhooks/officers'],
    ] as const) {
      const refused = await req(method, path, method === 'PUT' ? { scope: { issuer: 'Self' } } : undefined, user);
      expect(refused.status, `${method} ${path}`).toBe(403);
    }
    expect((await req('GET', '/certificateWebhooks', undefined, nobody)).status).toBe(403);
    expect((await req('DELETE', '/certificateWebhooks/officers', undefined, officer)).status).toBe(200);
  });
});

describe('inbound renewal', () => {
  it('renews named certificates: 202 with the operations started, a new version each, audited with receiver and webhook-id', async () => {
    const before = { web: await versions('web'), api: await versions('api') };
    const { res, body, id, correlation } = await deliver('deploy', { certificates: ['web', 'API'] }, { secret: named });
    expect(res.status).toBe(202);
    expect(body.receiver).toBe('deploy');
    expect(body.webhookId).toBe(id);
    expect(body.operations).toHaveLength(2);
    expect(body.operations[0]).toMatchObject({
      id: `${origin}/certificates/web/pending`,
      status: 'completed',
      target: `${origin}/certificates/web`,
      issuer: { name: 'Self' },
      request_id: expect.stringMatching(/^[0-9a-f]{32}$/),
    });
    expect(body.operations[1].id).toBe(`${origin}/certificates/api/pending`);
    expect(await versions('web')).toBe(before.web + 1);
    expect(await versions('api')).toBe(before.api + 1);
    const [record] = await persisted(correlation);
    expect(record).toMatchObject({
      operation: 'CertificateWebhookReceive',
      object_id: `/certificateWebhooks/deploy/messages/${id}`,
      status: 202,
      caller_appid: null,
    });
  });

  it('renews every certificate of its issuer with "all"; a named receiver\'s "all" reports the names that do not exist', async () => {
    const before = await versions('batch');
    const { res, body } = await deliver('selfsigned', { all: true }, { secret: byIssuer });
    expect(res.status).toBe(202);
    const started = body.operations.map((o: { id: string }) => o.id.split('/')[4]).sort();
    expect(started).toEqual(['api', 'batch', 'web']);
    expect(await versions('batch')).toBe(before + 1);
    // "all" of the named receiver: the one it names that does not exist is reported, not fatal.
    const namedAll = await deliver('deploy', { all: true }, { secret: named });
    expect(namedAll.res.status).toBe(202);
    expect(namedAll.body.operations).toHaveLength(2);
    expect(namedAll.body.skipped).toEqual([{ name: 'ghost', code: 'CertificateNotFound', message: expect.any(String) }]);
  });

  async function startsNothing(run: () => Promise<{ res: Response; body: any }>, status: number, code: string, inner?: string) {
    const before = [await versions('web'), await versions('api'), await versions('batch')];
    const { res, body } = await run();
    expect(res.status).toBe(status);
    expect(body.error.code).toBe(code);
    if (inner) expect(body.error.innererror?.code).toBe(inner);
    expect([await versions('web'), await versions('api'), await versions('batch')]).toEqual(before);
    return body;
  }

  it('refuses a forged signature (the body changed after signing) and a wrong secret with 401, starting nothing', async () => {
    await startsNothing(
      () =>
        deliver(
          'deploy',
          { certificates: ['web', 'api'] },
          { secret: named, signedBody: JSON.stringify({ certificates: ['web'] }) },
        ),
      401,
      'Unauthorized',
      'WebhookSignatureInvalid',
    );
    await startsNothing(
      () =>
        deliver(
          'deploy',
          { certificates: ['web'] },
          { secret: `whsec_${btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))))}` },
        ),
      401,
      'Unauthorized',
      'WebhookSignatureInvalid',
    );
    // The other receiver's secret is a wrong secret too.
    await startsNothing(
      () => deliver('deploy', { certificates: ['web'] }, { secret: byIssuer }),
      401,
      'Unauthorized',
      'WebhookSignatureInvalid',
    );
    await startsNothing(
      () => deliver('deploy', { certificates: ['web'] }, { secret: named, headers: { 'webhook-signature': '' } }),
      401,
      'Unauthorized',
      'WebhookHeadersMissing',
    );
  });

  it('refuses a timestamp more than 5 minutes old or ahead, even correctly signed', async () => {
    const minutes = (m: number) => new Date(Date.now() + m * 60_000);
    const stale = await startsNothing(
      () => deliver('deploy', { certificates: ['web'] }, { secret: named, at: minutes(-5.2) }),
      401,
      'Unauthorized',
      'WebhookTimestampOutOfRange',
    );
    expect(stale.error.message).toContain('5 minutes');
    await startsNothing(
      () => deliver('deploy', { certificates: ['web'] }, { secret: named, at: minutes(5.2) }),
      401,
      'Unauthorized',
      'WebhookTimestampOutOfRange',
    );
    // Inside the window (4 minutes old): accepted.
    expect((await deliver('deploy', { certificates: ['web'] }, { secret: named, at: minutes(-4) })).res.status).toBe(202);
  });

  it('acts on a webhook-id once: a replay (even re-signed) is 409 and starts nothing', async () => {
    const first = await deliver('deploy', { certificates: ['api'] }, { secret: named });
    expect(first.res.status).toBe(202);
    const replay = await startsNothing(
      () => deliver('deploy', { certificates: ['api'] }, { secret: named, id: first.id }),
      409,
      'Conflict',
      'WebhookReplayed',
    );
    expect(replay.error.message).toContain('once');
    // The same id at another receiver is another message.
    expect((await deliver('selfsigned', { certificates: ['batch'] }, { secret: byIssuer, id: first.id })).res.status).toBe(202);
    const [row] = await rows<{ expires_at: number; received: number }>(
      'select m.expires_at, m.received from certificate_webhook_messages m join certificate_webhooks w on w.id = m.receiver_id where w.name = ? and m.webhook_id = ?',
      'deploy',
      first.id,
    );
    expect(row!.expires_at - row!.received).toBeGreaterThanOrEqual(300);
  });

  it('refuses an unknown certificate (404) and one outside the scope (403) before starting any', async () => {
    await startsNothing(
      () => deliver('deploy', { certificates: ['web', 'ghost'] }, { secret: named }),
      404,
      'CertificateNotFound',
    );
    const outside = await startsNothing(
      () => deliver('deploy', { certificates: ['web', 'batch'] }, { secret: named }),
      403,
      'Forbidden',
      'WebhookScopeViolation',
    );
    expect(outside.error.message).toContain('batch');
    await startsNothing(
      () => deliver('selfsigned', { certificates: ['web', 'csr-only'] }, { secret: byIssuer }),
      403,
      'Forbidden',
      'WebhookScopeViolation',
    );
    await startsNothing(
      () => deliver('selfsigned', { certificates: ['nope'] }, { secret: byIssuer }),
      404,
      'CertificateNotFound',
    );
    // In scope but its create is still in progress: 409, and the other named one does not start either.
    const { body: csr } = await putReceiver('csr', { certificates: ['web', 'csr-only'] });
    const busy = await startsNothing(
      () => deliver('csr', { certificates: ['web', 'csr-only'] }, { secret: csr.signingSecret }),
      409,
      'Conflict',
    );
    expect(busy.error.message).toContain('csr-only');
    await startsNothing(() => deliver('selfsigned', { certificates: [] }, { secret: byIssuer }), 400, 'BadParameter');
    await startsNothing(() => deliver('selfsigned', 'not an object', { secret: byIssuer }), 400, 'BadParameter');
    // An unknown receiver is 404 before any signature is looked at.
    const unknown = await deliver('nobody', { certificates: ['web'] }, { secret: named });
    expect(unknown.res.status).toBe(404);
    expect(unknown.body.error.code).toBe('CertificateWebhookNotFound');
  });

  it('starts a pending operation for an issuer that answers later (Unknown): 202 inProgress, pollable', async () => {
    // csr-only's first create is cancelled; a renewal starts a new operation with a new CSR.
    expect((await req('PATCH', '/certificates/csr-only/pending', { cancellation_requested: true })).status).toBe(200);
    const { body: created } = await putReceiver('csr-signer', { issuer: 'Unknown' });
    const { res, body } = await deliver('csr-signer', { all: true }, { secret: created.signingSecret });
    expect(res.status).toBe(202);
    expect(body.operations).toEqual([
      expect.objectContaining({
        id: `${origin}/certificates/csr-only/pending`,
        status: 'inProgress',
        issuer: { name: 'Unknown' },
      }),
    ]);
    const pending = await json(await req('GET', '/certificates/csr-only/pending'));
    expect(pending).toMatchObject({
      status: 'inProgress',
      request_id: body.operations[0].request_id,
      csr: body.operations[0].csr,
    });
  });

  it('accepts the old secret during a rotation overlap, and not once the overlap ends', async () => {
    const { body: created } = await putReceiver('rotating', { certificates: ['web'] });
    const old = created.signingSecret as string;
    const rotated = await req('POST', '/certificateWebhooks/rotating/rotateSecret', { overlapMinutes: 30 });
    expect(rotated.status).toBe(200);
    const body = await json(rotated);
    secretsSeen.push(body.signingSecret);
    expect(body.signingSecret).not.toBe(old);
    expect(body.previousSecretExpires).toBeGreaterThan(Date.now() / 1000 + 29 * 60);
    expect((await deliver('rotating', { certificates: ['web'] }, { secret: old })).res.status).toBe(202);
    expect((await deliver('rotating', { certificates: ['web'] }, { secret: body.signingSecret })).res.status).toBe(202);
    // The overlap ends (moved into the past rather than waited for).
    await env.DB.prepare('update certificate_webhooks set previous_secret_expires_at = ? where name = ?')
      .bind(Math.floor(Date.now() / 1000) - 1, 'rotating')
      .run();
    const after = await deliver('rotating', { certificates: ['web'] }, { secret: old });
    expect(after.res.status).toBe(401);
    expect((await json(await req('GET', '/certificateWebhooks/rotating'))).previousSecretExpires).toBeUndefined();
    expect((await deliver('rotating', { certificates: ['web'] }, { secret: body.signingSecret })).res.status).toBe(202);
    // overlapMinutes 0: the old secret stops at once.
    const now = await json(await req('POST', '/certificateWebhooks/rotating/rotateSecret', { overlapMinutes: 0 }));
    secretsSeen.push(now.signingSecret);
    expect((await deliver('rotating', { certificates: ['web'] }, { secret: body.signingSecret })).res.status).toBe(401);
    expect((await deliver('rotating', { certificates: ['web'] }, { secret: now.signingSecret })).res.status).toBe(202);
    const tooLong = await req('POST', '/certificateWebhooks/rotating/rotateSecret', { overlapMinutes: 20000 });
    expect(tooLong.status).toBe(400);
  });

  it('never puts a secret or a signature in an audit record or an error message', async () => {
    const chain = await vaultChainOf(vault);
    // The queue delivers the last requests' records shortly.
    await sleep(1500);
    const records = await rows<StoredRecord>('select * from audit_records where chain = ?', chain);
    const webhookRecords = records.filter((r) => r.operation.startsWith('CertificateWebhook'));
    expect(webhookRecords.length).toBeGreaterThan(10);
    const everything = JSON.stringify(records) + errorBodies.join('\n');
    expect(secretsSeen.length).toBeGreaterThanOrEqual(4);
    for (const secret of secretsSeen) {
      expect(everything).not.toContain(secret);
      expect(everything).not.toContain(secret.slice(6));
    }
    for (const signature of signaturesSeen) expect(everything).not.toContain(signature);
    // The refusals are recorded with what refused them.
    const codes = new Set(webhookRecords.map((r) => r.error_code));
    for (const code of [
      'WebhookSignatureInvalid',
      'WebhookTimestampOutOfRange',
      'WebhookReplayed',
      'WebhookScopeViolation',
      'CertificateNotFound',
    ])
      expect(codes.has(code), code).toBe(true);
  });
});
