/**
 * The request generators of the fuzz suite (test/worker/fuzz.test.ts): for any route appRoutes()
 * lists, a request shaped to hit the validation edges — path parameters at their length limits and
 * with encodings that confuse routers, api-version and paging query quirks, bodies from valid
 * through near-valid to hostile, and every kind of credential. Kept apart from the properties so
 * that the list of edges can grow without touching what is asserted.
 */
import fc from 'fast-check';
import type { AppRoute } from '../../src/http/routes-list';

/** Objects the suite creates in its vault, so that generated requests also reach real logic. */
export const FIXTURE = { secret: 'fz-secret', key: 'fz-key', rsa: 'fz-rsa', hsm: 'fz-hsm' } as const;

export type AuthKind =
  'none' | 'malformed' | 'basic' | 'bootstrap' | 'garbageJwt' | 'expired' | 'wrongAudience' | 'powerless' | 'admin';

export interface FuzzContext {
  vault: string;
  tenantId: string;
  /** Client credentials the token endpoint may be offered (a powerless app's). */
  client: { clientId: string; clientSecret: string };
}

export interface FuzzRequest {
  route: AppRoute;
  method: string;
  /** Path and query, to be appended to the host's origin. */
  target: string;
  auth: AuthKind;
  contentType: string | undefined;
  body: Uint8Array | undefined;
  /** What the body is, for the failure message (bodies can be huge). */
  bodyKind: string;
}

const hex32 = fc
  .uint8Array({ minLength: 16, maxLength: 16 })
  .map((b) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(''));
const uuid = fc.uuid();
const b64url = (n: number) =>
  fc.uint8Array({ minLength: n, maxLength: n }).map((b) =>
    btoa(String.fromCharCode(...b))
      .replace(/\+/g, '-')
      .replace(/\//g, '_')
      .replace(/=+$/, ''),
  );

/** Segments that are hostile as written: they go into the URL raw. */
const RAW_SEGMENTS = ['', '..', '.', '%2F', 'a%2Fb', '%2e%2e', '%00', '%ZZ', '-', '--', 'a-', '-a', 'a--b', '%20', 'a;b', 'A'];

/** An object name: the fixtures, the length limits (1–127), unicode, and raw hostile segments. */
export const objectName = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(FIXTURE.secret, FIXTURE.key, FIXTURE.rsa, FIXTURE.hsm) },
  { weight: 2, arbitrary: fc.constantFrom('a', 'fz-new', 'x'.repeat(127), 'x'.repeat(128), 'Fz-Secret', '0', 'z'.repeat(300)) },
  { weight: 2, arbitrary: fc.constantFrom(...RAW_SEGMENTS) },
  { weight: 1, arbitrary: fc.constantFrom('ключ', 'clé', '秘密', '🔑', 'a b', 'a_b', 'a.b').map(encodeURIComponent) },
  { weight: 2, arbitrary: fc.string({ maxLength: 140, unit: 'grapheme' }).map(encodeURIComponent) },
  { weight: 1, arbitrary: fc.stringMatching(/^[a-zA-Z0-9-]{1,130}$/) },
);

export const version = fc.oneof(
  { weight: 3, arbitrary: hex32 },
  { weight: 1, arbitrary: hex32.map((h) => h.toUpperCase()) },
  { weight: 1, arbitrary: hex32.map((h) => h.slice(1)) },
  { weight: 1, arbitrary: hex32.map((h) => `${h}0`) },
  { weight: 1, arbitrary: fc.constantFrom('', 'latest', 'sign', 'versions', 'g'.repeat(32), ...RAW_SEGMENTS) },
);

const guidLike = fc.oneof(
  { weight: 3, arbitrary: uuid },
  {
    weight: 1,
    arbitrary: fc.constantFrom('', 'not-a-guid', '00000000-0000-0000-0000-000000000000', 'x'.repeat(200), ...RAW_SEGMENTS),
  },
);

/** A concrete value for each kind of path parameter. */
function paramValue(param: string, route: AppRoute, ctx: FuzzContext): fc.Arbitrary<string> {
  const name = param.replace(/\{.*\}$/, '').replace(/\?$/, '');
  if (route.host === 'vault' && name === 'name') return objectName;
  if (name === 'version') return version;
  if (name === 'name' || name === 'vault') {
    // Writes never name the suite's own vault: deleting it or locking it by firewall would only
    // make the rest of the run answer 404/403.
    const own = route.method === 'GET' || name === 'vault' ? [ctx.vault] : [];
    return fc.oneof(
      { weight: own.length ? 3 : 0, arbitrary: fc.constantFrom(...(own.length ? own : ['unused'])) },
      {
        weight: 2,
        arbitrary: fc.constantFrom('fz-nosuchvault', 'a', 'A', '-x', 'x'.repeat(25), 'x'.repeat(64), ...RAW_SEGMENTS),
      },
      { weight: 1, arbitrary: fc.stringMatching(/^[a-z0-9-]{1,30}$/) },
    );
  }
  if (name === 'tenant')
    return fc.oneof(
      { weight: 4, arbitrary: fc.constant(ctx.tenantId) },
      { weight: 1, arbitrary: fc.constantFrom('common', 'organizations', ctx.tenantId.toUpperCase(), ...RAW_SEGMENTS) },
      { weight: 1, arbitrary: uuid },
    );
  if (name === 'kind') return fc.constantFrom('add', 'replace', 'remove', 'ADD', 'other');
  if (name === 'clientId')
    return fc.oneof({ weight: 2, arbitrary: fc.constant(ctx.client.clientId) }, { weight: 2, arbitrary: guidLike });
  return guidLike;
}

/** The route's path with each `:param` (optionally `{regex}` and/or `?`) replaced by a generated value. */
function concretePath(route: AppRoute, ctx: FuzzContext): fc.Arbitrary<string> {
  const parts = route.path.split('/');
  return fc
    .tuple(...parts.map((part) => (part.startsWith(':') ? paramValue(part.slice(1), route, ctx) : fc.constant(part))))
    .map((values) => values.join('/'));
}

const apiVersion = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.constantFrom('api-version=7.6', 'api-version=2026-04-01', 'api-version=2025-07-01', 'api-version=7.0'),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '',
      'api-version=',
      'api-version=9.9',
      'api-version=7.6&api-version=7.5',
      'api-version=7.6&api-version=7.6',
      'api%2Dversion=7.6',
      'API-VERSION=7.6',
      'api-version=7.6%00',
      'api-version',
    ),
  },
);

const maxResults = fc.oneof(
  { weight: 4, arbitrary: fc.constant('') },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom('0', '1', '25', '26', '-1', 'abc', '1e1', '', '99999999999999999999', ' 5')
      .map((v) => `maxresults=${v}`),
  },
);

const skipToken = fc.oneof(
  { weight: 4, arbitrary: fc.constant('') },
  { weight: 1, arbitrary: fc.constantFrom('AAAA', '%ZZ', 'eyJ9', '..', 'null', '$', '%00').map((v) => `$skiptoken=${v}`) },
  { weight: 1, arbitrary: fc.string({ maxLength: 80 }).map((v) => `$skiptoken=${encodeURIComponent(v)}`) },
  { weight: 1, arbitrary: b64url(40).map((v) => `$skiptoken=${v}`) },
);

const extraQuery = fc.oneof(
  { weight: 6, arbitrary: fc.constant('') },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      'scope=/secrets/fz-secret',
      'scope=%2F',
      'scope=',
      'filter=x',
      'format=html',
      'format=json',
      'from=abc',
      'to=-1',
      'top=0',
      'chain=deployment',
      'after=-5',
      '__proto__=1',
      '%=%',
    ),
  },
);

const query = fc.tuple(apiVersion, maxResults, skipToken, extraQuery).map((parts) => {
  const q = parts.filter(Boolean).join('&');
  return q ? `?${q}` : '';
});

const encoder = new TextEncoder();
const utf8 = (s: string) => encoder.encode(s);

/** A body the route would accept (roughly): the starting point of the near-valid mutations. */
function validBody(route: AppRoute, _ctx: FuzzContext): fc.Arbitrary<unknown> {
  const p = route.path;
  const m = route.method;
  const digest = b64url(32);
  if (route.host === 'vault') {
    if (m === 'PUT' && p === '/secrets/:name')
      return fc.record(
        {
          value: fc.string({ maxLength: 64 }),
          contentType: fc.constantFrom('text/plain', undefined),
          tags: fc.constantFrom(undefined, { a: 'b' }),
        },
        { requiredKeys: ['value'] },
      );
    if (m === 'PATCH')
      return fc.constantFrom(
        { attributes: { enabled: true } },
        { tags: { k: 'v' } },
        { contentType: 'x' },
        { key_ops: ['sign', 'verify'] },
        {},
      );
    if (p.endsWith('/restore')) return b64url(48).map((value) => ({ value }));
    if (p.endsWith('/create'))
      return fc.constantFrom(
        { kty: 'EC', crv: 'P-256' },
        { kty: 'EC-HSM', crv: 'P-256' },
        { kty: 'oct-HSM', key_size: 256 },
        { kty: 'EC', crv: 'P-384', key_ops: ['sign'] },
        { kty: 'EC', attributes: { exp: 1 } },
      );
    if (m === 'PUT' && p === '/keys/:name')
      return fc.constantFrom(
        { key: { kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'AAAA' } },
        { key: { kty: 'oct', k: 'AAAAAAAAAAAAAAAAAAAAAA' } },
        { key: {} },
      );
    if (p.endsWith('/sign'))
      return fc.record({ alg: fc.constantFrom('ES256', 'ES384', 'RS256', 'PS256', 'HS256'), value: digest });
    if (p.endsWith('/verify')) return fc.record({ alg: fc.constantFrom('ES256', 'RS256'), digest, value: b64url(64) });
    if (/\/(encrypt|decrypt|wrapkey|unwrapkey)$/.test(p))
      return fc.record(
        {
          alg: fc.constantFrom('RSA-OAEP', 'RSA-OAEP-256', 'RSA1_5', 'A256KW', 'A256GCM', 'A256CBCPAD'),
          value: b64url(32),
          iv: fc.constantFrom(undefined, 'AAAAAAAAAAAAAAAA'),
          tag: fc.constantFrom(undefined, 'AAAA'),
        },
        { requiredKeys: ['alg', 'value'] },
      );
    if (p.endsWith('/rotationpolicy'))
      return fc.constantFrom(
        {
          lifetimeActions: [{ trigger: { timeBeforeExpiry: 'P30D' }, action: { type: 'Notify' } }],
          attributes: { expiryTime: 'P90D' },
        },
        { lifetimeActions: [{ trigger: { timeAfterCreate: 'P1D' }, action: { type: 'Rotate' } }] },
      );
    if (p === '/rng') return fc.integer({ min: -1, max: 2000 }).map((count) => ({ count }));
  }
  if (p.endsWith('/roleAssignments/:assignment'))
    return uuid.map((principalId) => ({
      properties: {
        roleDefinitionId: '/providers/Microsoft.Authorization/roleDefinitions/4633458b-17de-408a-b874-0445c86b69e6',
        principalId,
      },
    }));
  if (p.endsWith('/roleDefinitions/:definition'))
    return fc.constant({
      properties: { roleName: 'fz role', permissions: [{ dataActions: ['Microsoft.KeyVault/vaults/secrets/getSecret/action'] }] },
    });
  if (p === '/management/vaults/:name')
    return fc.constantFrom(
      {},
      { softDeleteRetentionInDays: 7 },
      { enableRbacAuthorization: true },
      { networkAcls: { defaultAction: 'Allow' } },
    );
  if (p === '/management/applications') return fc.constant({ displayName: 'fz app' });
  if (p.endsWith('/secrets') && route.host === 'apex') return fc.constantFrom({}, { expiresInDays: 30 }, { expiresInDays: 0 });
  if (p.endsWith('/certificates'))
    return fc.constantFrom(
      { certificate: 'AAAA' },
      { certificate: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----' },
    );
  if (p.endsWith('/federatedCredentials'))
    return fc.constant({ name: 'fz', issuer: 'https://issuer.example', subject: 's', audiences: ['api://AzureADTokenExchange'] });
  if (p.includes('/accessPolicies/:kind'))
    return uuid.map((objectId) => ({ properties: { accessPolicies: [{ objectId, permissions: { secrets: ['get'] } }] } }));
  if (p.includes('/accessPolicies/')) return fc.constant({ permissions: { secrets: ['get'], keys: ['sign'] } });
  return fc.constant({});
}

/** A form for the token endpoint: right or wrong grant, client, secret and scope. */
function tokenForm(ctx: FuzzContext): fc.Arbitrary<string> {
  return fc
    .record({
      grant_type: fc.constantFrom('client_credentials', 'password', '', undefined),
      client_id: fc.constantFrom(ctx.client.clientId, 'nobody', '', undefined),
      client_secret: fc.constantFrom(ctx.client.clientSecret, 'wrong', '', undefined),
      scope: fc.constantFrom('https://vault.localhost/.default', 'https://other/.default', '', undefined),
      client_assertion_type: fc.constantFrom(undefined, 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'),
      client_assertion: fc.constantFrom(undefined, 'a.b.c', 'eyJhbGciOiJub25lIn0.e30.'),
    })
    .map((r) => new URLSearchParams(Object.entries(r).filter(([, v]) => v !== undefined) as [string, string][]).toString());
}

/** Replaces, removes or poisons one field of a valid object. */
function nearValid(valid: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> {
  return fc
    .tuple(valid, fc.nat(), fc.constantFrom('drop', 'retype', 'proto', 'null'), fc.jsonValue({ maxDepth: 2 }))
    .map(([v, i, how, junk]) => {
      if (!v || typeof v !== 'object' || Array.isArray(v)) return junk;
      const copy: Record<string, unknown> = JSON.parse(JSON.stringify(v));
      const keys = Object.keys(copy);
      const key = keys.length ? keys[i % keys.length]! : 'value';
      if (how === 'drop') delete copy[key];
      else if (how === 'retype') copy[key] = junk;
      else if (how === 'null') copy[key] = null;
      else
        return JSON.parse(
          `{"__proto__":{"isAdmin":true,"polluted":1},"constructor":{"prototype":{"polluted":1}},${JSON.stringify(copy).slice(1)}`.replace(
            /,}$/,
            '}',
          ),
        );
      return copy;
    });
}

type Body = { bytes: Uint8Array | undefined; kind: string };

function bodies(route: AppRoute, ctx: FuzzContext): fc.Arbitrary<Body> {
  const isToken = route.path.endsWith('/oauth2/v2.0/token');
  const valid = validBody(route, ctx);
  const json =
    (kind: string) =>
    (v: unknown): Body => ({ bytes: utf8(JSON.stringify(v) ?? ''), kind });
  return fc.oneof(
    { weight: 8, arbitrary: isToken ? tokenForm(ctx).map((f) => ({ bytes: utf8(f), kind: 'form' })) : valid.map(json('valid')) },
    { weight: 4, arbitrary: nearValid(valid).map(json('near-valid')) },
    { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }).map(json('wrong types')) },
    { weight: 1, arbitrary: fc.constant<Body>({ bytes: undefined, kind: 'none' }) },
    { weight: 1, arbitrary: fc.constant<Body>({ bytes: new Uint8Array(0), kind: 'empty' }) },
    {
      weight: 1,
      arbitrary: fc
        .constantFrom(
          'not json',
          '{',
          '{"value":',
          "{'value':'x'}",
          'null',
          '[]',
          '""',
          '1e999',
          '{"value":"\\ud800"}',
          '\u0000',
          '{"a":1}{"b":2}',
        )
        .map((s) => ({ bytes: utf8(s), kind: `non-JSON ${JSON.stringify(s)}` })),
    },
    {
      weight: 1,
      arbitrary: fc
        .constantFrom(
          [0xff, 0xfe, 0xfd],
          [0x7b, 0x22, 0x76, 0x61, 0x6c, 0x75, 0x65, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d],
          [0xef, 0xbb, 0xbf, 0x7b, 0x7d],
          [0xed, 0xa0, 0x80],
        )
        .map((b) => ({ bytes: new Uint8Array(b), kind: 'invalid UTF-8' })),
    },
    {
      weight: 1,
      arbitrary: fc
        .integer({ min: 500, max: 5000 })
        .map((depth) => ({ bytes: utf8(`${'{"a":['.repeat(depth)}1${']}'.repeat(depth)}`), kind: `nested ${depth}` })),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(30 * 1024, 300 * 1024, 1_200_000).map((n) => ({
        bytes: utf8(
          JSON.stringify({ value: 'x'.repeat(n), key: { kty: 'EC' }, alg: 'ES256', properties: { roleName: 'y'.repeat(n) } }),
        ),
        kind: `huge ${n}`,
      })),
    },
    {
      weight: 1,
      arbitrary: fc
        .constantFrom(
          '{"__proto__":{"isAdmin":true}}',
          '{"constructor":{"prototype":{"isAdmin":true}}}',
          '{"value":"x","__proto__":{"tags":{"a":"b"}}}',
          '{"properties":{"__proto__":{"roleName":"x"}}}',
        )
        .map((s) => ({ bytes: utf8(s), kind: `prototype ${s}` })),
    },
  );
}

const contentType = fc.oneof(
  { weight: 6, arbitrary: fc.constant('application/json') },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      undefined,
      'application/json; charset=utf-8',
      'application/json; charset=latin1',
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'APPLICATION/JSON',
      '',
      'application/jsonx',
      '*/*',
    ),
  },
);

const auth = fc.oneof(
  { weight: 8, arbitrary: fc.constant<AuthKind>('admin') },
  { weight: 2, arbitrary: fc.constant<AuthKind>('powerless') },
  {
    weight: 4,
    arbitrary: fc.constantFrom<AuthKind>('none', 'malformed', 'basic', 'bootstrap', 'garbageJwt', 'expired', 'wrongAudience'),
  },
);

/** Mostly the route's own method; now and then another one on the same path. */
const method = (route: AppRoute) =>
  fc.oneof(
    { weight: 9, arbitrary: fc.constant(route.method) },
    { weight: 1, arbitrary: fc.constantFrom('GET', 'PUT', 'POST', 'PATCH', 'DELETE', 'OPTIONS') },
  );

export function fuzzRequest(routes: AppRoute[], ctx: FuzzContext): fc.Arbitrary<FuzzRequest> {
  return fc.constantFrom(...routes).chain((route) =>
    fc
      .record({ path: concretePath(route, ctx), query, auth, method: method(route), body: bodies(route, ctx), contentType })
      .map((r): FuzzRequest => ({
        route,
        method: r.method,
        target: `${r.path || '/'}${r.query}`,
        auth: r.auth,
        // The token endpoint is mostly sent the form it expects.
        contentType:
          route.path.endsWith('/oauth2/v2.0/token') && r.body.kind === 'form' && r.contentType === 'application/json'
            ? 'application/x-www-form-urlencoded'
            : r.contentType,
        // fetch refuses a GET with a body.
        body: r.method === 'GET' ? undefined : r.body.bytes,
        bodyKind: r.method === 'GET' ? 'none' : r.body.kind,
      })),
  );
}
