/**
 * The authorization matrix (issue 4): every built-in Key Vault role × every data-plane operation
 * on secrets and keys, at vault, collection and object scope, and every access-policy permission,
 * driven through the unmodified @azure/keyvault-secrets and @azure/keyvault-keys SDKs with each
 * principal's own ClientSecretCredential. A call must succeed exactly where Azure allows it and be
 * refused elsewhere with 403 and the code `Forbidden`; the raw body's innererror is
 * `ForbiddenByRbac` on role-based vaults and `AccessDenied` on access-policy vaults.
 *
 * The expectations come from test/support/azure-roles.ts, written from Azure's published role
 * definitions and permission mappings, never from the product's own tables.
 *
 * How each call tests only authorization:
 *  - Every principal has its own secret and its own (software, EC P-256) key, made by the vault's
 *    administrator, and walks each through its life: read, update, back up and add versions;
 *    delete; read while deleted; recover; purge. Where the principal may not delete (or did
 *    recover), the administrator does it instead, so the next call finds the state it needs.
 *    Restore gets a backup of a purged object of the principal's own where it is expected to
 *    succeed, a shared one elsewhere.
 *  - The cryptographic operations use one RSA key per vault, imported by the administrator (so
 *    ciphertexts, wrapped keys and signatures are made locally with node:crypto). CryptographyClient
 *    is built from the key id, as users build it: it GETs the key first (a 403 there makes it go
 *    remote) and would encrypt, wrap and verifyData locally for RSA1_5 and RSA-OAEP, deciding
 *    nothing the vault could refuse. So encrypt and wrapKey use RSA-OAEP-256 and verification uses
 *    verify (a digest): those always go to the vault.
 *  - Collection scope: one principal holds the role at both '/secrets' and '/keys'. Object scope:
 *    one principal holds it at its secret, its key and the RSA key, and also makes one call per
 *    object-level data action on objects outside those assignments, which must all be refused.
 *  - Certificates: the vault has no certificates API yet, so no certificate data action is
 *    exercised; the certificate roles (Certificates Officer, Certificate User) still go through
 *    every secret and key operation.
 *  - Random bytes: only Managed HSM publishes a data action for it (see azure-roles.ts); the matrix
 *    expects it for `Microsoft.KeyVault/vaults/*` at the vault scope only, and leaves it out of the
 *    access-policy matrix, where Azure has no permission for it.
 *  - Access policies: each principal holds one secrets permission and one keys permission (so a
 *    permission that leaked into the other collection shows), plus combinations ([get,list,set],
 *    [all], [encrypt,decrypt], get/list/wrap/unwrap) and certificates-only.
 */
import {
  constants,
  createHash,
  generateKeyPairSync,
  publicEncrypt,
  randomBytes,
  sign as nodeSign,
  type KeyObject,
} from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { CryptographyClient, KeyClient } from '@azure/keyvault-keys';
import { isRestError, SecretClient } from '@azure/keyvault-secrets';
import {
  adminApplication,
  adminToken,
  assignRole,
  expectRestError,
  createApplication,
  createVault,
  credential,
  fromB64url,
  limiter,
  NO_RETRY,
  setAccessPolicy,
  tokenOf,
  toSdkJwk,
  uniqueName,
  vaultRequest,
  vaultUrl,
  type TestApplication,
} from '../support/e2e.js';
import {
  ACCESS_POLICY_PERMISSIONS,
  accessPolicyAllows,
  AZURE_KEY_VAULT_ROLES,
  AZURE_OPERATIONS,
  azureOperation,
  azureRole,
  rbacAllows,
  roleDefinitionId,
  type AccessPolicyPermissions,
  type AzureOperation,
  type AzureRoleDefinition,
} from '../support/azure-roles.js';

// ------------------------------------------------------------------------------------ harness

/** Requests in flight at once across the whole matrix (the stack is one workerd process). */
const run = limiter(Number(process.env.MATRIX_CONCURRENCY ?? 24));
const TIMING = process.env.MATRIX_TIMING === '1';

/** The objects one principal (or the outside check) works on, by name. */
interface Objects {
  /** A secret: live at first, deleted after `secrets.delete`, gone after `secrets.purge`. */
  s: string;
  sVersion: string;
  /** The deleted secret getDeleted, recover and purge work on (`s` itself, inside). */
  sDeleted: string;
  /** A key (EC P-256, software), with the same life as `s`. */
  k: string;
  kVersion: string;
  kDeleted: string;
  /** The RSA key of the cryptographic operations. */
  rsa: string;
  rsaKid: string;
  /** Backups of purged objects, for restore. */
  secretBackup: Uint8Array;
  keyBackup: Uint8Array;
}

/** The object each object-level operation names. */
const TARGET: Record<string, (o: Objects) => string> = {
  'secrets.get': (o) => o.s,
  'secrets.set': (o) => o.s,
  'secrets.listVersions': (o) => o.s,
  'secrets.update': (o) => o.s,
  'secrets.backup': (o) => o.s,
  'secrets.delete': (o) => o.s,
  'secrets.getDeleted': (o) => o.sDeleted,
  'secrets.recover': (o) => o.sDeleted,
  'secrets.purge': (o) => o.sDeleted,
  'keys.get': (o) => o.k,
  'keys.listVersions': (o) => o.k,
  'keys.create': (o) => o.k,
  'keys.import': (o) => o.k,
  'keys.update': (o) => o.k,
  'keys.backup': (o) => o.k,
  'keys.rotate': (o) => o.k,
  'keys.getRotationPolicy': (o) => o.k,
  'keys.updateRotationPolicy': (o) => o.k,
  'keys.delete': (o) => o.k,
  'keys.getDeleted': (o) => o.kDeleted,
  'keys.recover': (o) => o.kDeleted,
  'keys.purge': (o) => o.kDeleted,
  ...Object.fromEntries(
    ['encrypt', 'decrypt', 'sign', 'verify', 'wrapKey', 'unwrapKey'].map((x) => [`keys.${x}`, (o: Objects) => o.rsa]),
  ),
};
for (const op of AZURE_OPERATIONS) {
  if ((op.level === 'object') !== (TARGET[op.id] !== undefined)) throw new Error(`operation ${op.id}: target and level disagree`);
}

/** Material for the cryptographic calls, made locally with the RSA key the vault holds. */
interface CryptoMaterial {
  plaintext: Uint8Array;
  ciphertext: Uint8Array;
  cek: Uint8Array;
  wrapped: Uint8Array;
  digest: Uint8Array;
  signature: Uint8Array;
}

function cryptoMaterial(publicKey: KeyObject, privateKey: KeyObject): CryptoMaterial {
  const oaep256 = (data: Uint8Array) =>
    new Uint8Array(publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, data));
  const plaintext = new Uint8Array(randomBytes(32));
  const cek = new Uint8Array(randomBytes(32));
  const message = randomBytes(64);
  return {
    plaintext,
    ciphertext: oaep256(plaintext),
    cek,
    wrapped: oaep256(cek),
    digest: new Uint8Array(createHash('sha256').update(message).digest()),
    signature: new Uint8Array(nodeSign('sha256', message, privateKey)),
  };
}

interface Clients {
  secrets: SecretClient;
  keys: KeyClient;
  crypto: CryptographyClient;
}

const ROTATION_POLICY = { expiresIn: 'P90D', lifetimeActions: [{ action: 'Notify' as const, timeBeforeExpiry: 'P30D' }] };
const firstPage = <T>(iter: { byPage(settings?: { maxPageSize?: number }): AsyncIterableIterator<T> }) =>
  iter.byPage({ maxPageSize: 1 }).next();
const ecJwk = () => toSdkJwk(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }));

/** The one SDK call per operation. */
const CALLS: Record<string, (c: Clients, o: Objects, m: CryptoMaterial) => Promise<unknown>> = {
  'secrets.get': (c, o) => c.secrets.getSecret(o.s),
  'secrets.set': (c, o) => c.secrets.setSecret(o.s, 'next value'),
  'secrets.list': (c) => firstPage(c.secrets.listPropertiesOfSecrets()),
  'secrets.listVersions': (c, o) => firstPage(c.secrets.listPropertiesOfSecretVersions(o.s)),
  'secrets.update': (c, o) => c.secrets.updateSecretProperties(o.s, o.sVersion, { tags: { matrix: 'updated' } }),
  // begin* sends the request and polls once (a 403 on that poll counts as done, as the SDK has it).
  'secrets.delete': (c, o) => c.secrets.beginDeleteSecret(o.s),
  'secrets.getDeleted': (c, o) => c.secrets.getDeletedSecret(o.sDeleted),
  'secrets.listDeleted': (c) => firstPage(c.secrets.listDeletedSecrets()),
  'secrets.recover': (c, o) => c.secrets.beginRecoverDeletedSecret(o.sDeleted),
  'secrets.purge': (c, o) => c.secrets.purgeDeletedSecret(o.sDeleted),
  'secrets.backup': (c, o) => c.secrets.backupSecret(o.s),
  'secrets.restore': (c, o) => c.secrets.restoreSecretBackup(o.secretBackup),

  'keys.get': (c, o) => c.keys.getKey(o.k),
  'keys.list': (c) => firstPage(c.keys.listPropertiesOfKeys()),
  'keys.listVersions': (c, o) => firstPage(c.keys.listPropertiesOfKeyVersions(o.k)),
  'keys.create': (c, o) => c.keys.createEcKey(o.k, { curve: 'P-256' }),
  'keys.import': (c, o) => c.keys.importKey(o.k, ecJwk()),
  'keys.update': (c, o) => c.keys.updateKeyProperties(o.k, o.kVersion, { tags: { matrix: 'updated' } }),
  'keys.delete': (c, o) => c.keys.beginDeleteKey(o.k),
  'keys.getDeleted': (c, o) => c.keys.getDeletedKey(o.kDeleted),
  'keys.listDeleted': (c) => firstPage(c.keys.listDeletedKeys()),
  'keys.recover': (c, o) => c.keys.beginRecoverDeletedKey(o.kDeleted),
  'keys.purge': (c, o) => c.keys.purgeDeletedKey(o.kDeleted),
  'keys.backup': (c, o) => c.keys.backupKey(o.k),
  'keys.restore': (c, o) => c.keys.restoreKeyBackup(o.keyBackup),
  'keys.encrypt': (c, _o, m) => c.crypto.encrypt({ algorithm: 'RSA-OAEP-256', plaintext: m.plaintext }),
  'keys.decrypt': (c, _o, m) => c.crypto.decrypt({ algorithm: 'RSA-OAEP-256', ciphertext: m.ciphertext }),
  'keys.sign': (c, _o, m) => c.crypto.sign('RS256', m.digest),
  'keys.verify': (c, _o, m) => c.crypto.verify('RS256', m.digest, m.signature),
  'keys.wrapKey': (c, _o, m) => c.crypto.wrapKey('RSA-OAEP-256', m.cek),
  'keys.unwrapKey': (c, _o, m) => c.crypto.unwrapKey('RSA-OAEP-256', m.wrapped),
  'keys.rotate': (c, o) => c.keys.rotateKey(o.k),
  'keys.getRotationPolicy': (c, o) => c.keys.getKeyRotationPolicy(o.k),
  'keys.updateRotationPolicy': (c, o) => c.keys.updateKeyRotationPolicy(o.k, ROTATION_POLICY),
  'keys.getRandomBytes': (c) => c.keys.getRandomBytes(16),
};
for (const op of AZURE_OPERATIONS) if (!CALLS[op.id]) throw new Error(`operation ${op.id} has no SDK call`);

/**
 * The calls of one principal: each list runs in order, the lists side by side. `then` names what
 * the administrator does after a call, depending on how it went, so the next call finds the state
 * it needs: the object deleted after a refused delete, deleted again after a recover.
 */
type Step = string | { op: string; after: (allowed: boolean) => 'delete' | undefined };
const deleteIfRefused = (op: string): Step => ({ op, after: (allowed) => (allowed ? undefined : 'delete') });
const deleteIfAllowed = (op: string): Step => ({ op, after: (allowed) => (allowed ? 'delete' : undefined) });
const SEQUENCES: Step[][] = [
  [
    'secrets.get',
    'secrets.listVersions',
    'secrets.update',
    'secrets.backup',
    'secrets.set',
    deleteIfRefused('secrets.delete'),
    'secrets.getDeleted',
    deleteIfAllowed('secrets.recover'),
    'secrets.purge',
  ],
  ['secrets.list', 'secrets.listDeleted', 'secrets.restore'],
  [
    'keys.get',
    'keys.listVersions',
    'keys.update',
    'keys.backup',
    'keys.getRotationPolicy',
    'keys.updateRotationPolicy',
    'keys.create',
    'keys.import',
    'keys.rotate',
    deleteIfRefused('keys.delete'),
    'keys.getDeleted',
    deleteIfAllowed('keys.recover'),
    'keys.purge',
  ],
  ['keys.list', 'keys.listDeleted', 'keys.restore', 'keys.getRandomBytes'],
  ['keys.encrypt', 'keys.decrypt', 'keys.sign', 'keys.verify', 'keys.wrapKey', 'keys.unwrapKey'],
];
const stepOp = (s: Step) => (typeof s === 'string' ? s : s.op);
{
  const sequenced = SEQUENCES.flat().map(stepOp);
  for (const op of AZURE_OPERATIONS)
    if (sequenced.filter((x) => x === op.id).length !== 1) throw new Error(`operation ${op.id} must be sequenced once`);
}

/**
 * Outside an object-scope principal's assignments: one call per object-level data action (the
 * first operation of each), on objects no assignment of it names. Nothing there changes state
 * unless the vault wrongly allows it.
 */
const OUTSIDE_OPS: AzureOperation[] = AZURE_OPERATIONS.filter((op) => op.level === 'object').filter(
  (op, i, all) => all.findIndex((o) => o.action === op.action) === i,
);

type Outcome = { allowed: true } | { allowed: false; status?: number; code?: string; message: string };

async function attempt(call: () => Promise<unknown>): Promise<Outcome> {
  try {
    await run(call);
    return { allowed: true };
  } catch (e) {
    if (isRestError(e))
      return { allowed: false, status: e.statusCode, code: e.code, message: e.message.split('\n')[0]!.slice(0, 200) };
    return { allowed: false, message: e instanceof Error ? `${e.name}: ${e.message.slice(0, 200)}` : String(e) };
  }
}

interface PrincipalSpec {
  /** e.g. `Key Vault Reader @ /secrets+/keys`, `policy secrets[get] keys[sign]`. */
  label: string;
  /** What the results are reported under: a role name, or the label. */
  group: string;
  /** Role assignments (RBAC vault); 'object' stands for the principal's own objects. */
  assignments?: { role: AzureRoleDefinition; scope: string }[];
  /** Access policy (access-policy vault). */
  policy?: AccessPolicyPermissions;
}

interface Principal extends PrincipalSpec {
  app: TestApplication;
  objects: Objects;
  objectScope: boolean;
}

interface CaseResult {
  principal: string;
  group: string;
  op: string;
  target: string;
  where: 'inside' | 'outside';
  expected: boolean;
  outcome: Outcome;
}

const describeOutcome = (o: Outcome) =>
  o.allowed ? 'allowed' : `${o.status ?? 'no HTTP status'} ${o.code ?? ''} (${o.message})`;

/** A result that is not what Azure answers, in words; undefined when it is. */
function mismatch(r: CaseResult): string | undefined {
  const o = r.outcome;
  const ok = r.expected ? o.allowed : !o.allowed && o.status === 403 && o.code === 'Forbidden';
  if (ok) return undefined;
  return `${r.principal} · ${r.op} on ${r.target} (${r.where}): expected ${r.expected ? 'allowed' : '403 Forbidden'}, got ${describeOutcome(o)}`;
}

function expectedFor(p: PrincipalSpec, op: AzureOperation, target: string | undefined): boolean {
  return p.assignments ? rbacAllows(p.assignments, op, target) : accessPolicyAllows(p.policy, op);
}

/** Raw HTTPS through fetch (kept-alive connections; the development CA is trusted via NODE_EXTRA_CA_CERTS). */
async function raw(url: string, token: string, method = 'GET', body?: unknown) {
  const sep = url.includes('?') ? '&' : '?';
  const res = await fetch(`${url}${sep}api-version=7.6`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, text, json: <T>() => JSON.parse(text) as T };
}

/** The vault's administrator, preparing state over raw HTTPS with one token. */
class Admin {
  constructor(
    readonly vault: string,
    readonly token: string,
  ) {}

  async call(method: string, path: string, body?: unknown, ok: number[] = [200]) {
    const res = await run(() => raw(`${this.vault}${path}`, this.token, method, body));
    if (!ok.includes(res.status)) throw new Error(`admin ${method} ${path}: ${res.status} ${res.text.slice(0, 300)}`);
    return res;
  }

  async secret(name: string): Promise<string> {
    return (await this.call('PUT', `/secrets/${name}`, { value: 'matrix value' })).json<{ id: string }>().id.split('/').pop()!;
  }

  async ecKey(name: string): Promise<string> {
    return (await this.call('POST', `/keys/${name}/create`, { kty: 'EC', crv: 'P-256' }))
      .json<{ key: { kid: string } }>()
      .key.kid.split('/')
      .pop()!;
  }

  async importRsa(name: string, jwk: JsonWebKey): Promise<string> {
    const res = await this.call('PUT', `/keys/${name}`, {
      key: { ...jwk, key_ops: ['encrypt', 'decrypt', 'sign', 'verify', 'wrapKey', 'unwrapKey'] },
    });
    return res.json<{ key: { kid: string } }>().key.kid;
  }

  /**
   * Deletes a live secret or key (soft delete). A 404 is let pass: the object was not where the
   * previous call should have left it, which that call's result already reports.
   */
  async delete(collection: 'secrets' | 'keys', name: string, ok = [200]): Promise<void> {
    await this.call('DELETE', `/${collection}/${name}`, undefined, ok);
  }

  /** A backup of an object that no longer exists (made, backed up, deleted, purged): restore may bring it back. */
  async backupOfPurged(collection: 'secrets' | 'keys', name: string): Promise<Uint8Array> {
    if (collection === 'secrets') await this.secret(name);
    else await this.ecKey(name);
    const value = (await this.call('POST', `/${collection}/${name}/backup`)).json<{ value: string }>().value;
    await this.delete(collection, name);
    await this.call('DELETE', `/deleted${collection}/${name}`, undefined, [204]);
    return fromB64url(value);
  }
}

/** Runs one principal's calls in `objects` (inside), and for object scope the outside calls too. */
async function runPrincipal(
  p: Principal,
  vault: string,
  admin: Admin,
  ops: Set<string>,
  material: CryptoMaterial,
  outside?: Objects,
): Promise<CaseResult[]> {
  const cred = credential({ clientId: p.app.clientId, clientSecret: p.app.clientSecret });
  const secrets = new SecretClient(vault, cred, NO_RETRY);
  const keys = new KeyClient(vault, cred, NO_RETRY);
  const results: CaseResult[] = [];
  const record = (op: AzureOperation, o: Objects, where: 'inside' | 'outside', outcome: Outcome) => {
    const target = TARGET[op.id]?.(o);
    results.push({
      principal: p.label,
      group: p.group,
      op: op.id,
      target: target ?? `/${op.collection}`,
      where,
      expected: expectedFor(p, op, target),
      outcome,
    });
  };

  const inside = async () => {
    const o = p.objects;
    const clients = { secrets, keys, crypto: new CryptographyClient(o.rsaKid, cred, NO_RETRY) };
    await Promise.all(
      SEQUENCES.map(async (sequence) => {
        for (const step of sequence) {
          const op = azureOperation(stepOp(step));
          if (!ops.has(op.id)) continue;
          const outcome = await attempt(() => CALLS[op.id]!(clients, o, material));
          record(op, o, 'inside', outcome);
          if (typeof step !== 'string' && step.after(outcome.allowed) === 'delete') {
            await admin.delete(op.collection, op.collection === 'secrets' ? o.s : o.k, [200, 404]);
          }
        }
      }),
    );
  };
  const outsideCalls = async () => {
    if (!outside || !p.objectScope) return;
    const clients = { secrets, keys, crypto: new CryptographyClient(outside.rsaKid, cred, NO_RETRY) };
    for (const op of OUTSIDE_OPS) {
      if (!ops.has(op.id)) continue;
      record(op, outside, 'outside', await attempt(() => CALLS[op.id]!(clients, outside, material)));
    }
  };
  await Promise.all([inside(), outsideCalls()]);
  return results;
}

interface MatrixRun {
  vault: string;
  principals: Principal[];
  results: CaseResult[];
  /** A live secret and key nobody but the administrator holds a role on (for raw refusals). */
  sharedSecret: string;
  sharedKey: string;
}

/** Creates the vault, its principals (apps, assignments or policies, objects), then runs everyone. */
async function runMatrix(opts: {
  vaultName: string;
  rbac: boolean;
  specs: PrincipalSpec[];
  ops: readonly AzureOperation[];
  token: string;
  adminObjectId: string;
}): Promise<MatrixRun> {
  const { vaultName, token } = opts;
  const t0 = Date.now();
  await createVault(vaultName, opts.rbac ? {} : { enableRbacAuthorization: false }, token);
  const vault = vaultUrl(vaultName);
  if (!opts.rbac) {
    await setAccessPolicy(
      vaultName,
      opts.adminObjectId,
      { keys: [...ACCESS_POLICY_PERMISSIONS.keys], secrets: [...ACCESS_POLICY_PERMISSIONS.secrets] },
      token,
    );
  }
  const admin = new Admin(vault, token);
  const prefix = uniqueName('m');
  const opIds = new Set(opts.ops.map((o) => o.id));

  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const rsaJwk = privateKey.export({ format: 'jwk' }) as JsonWebKey;
  const material = cryptoMaterial(publicKey, privateKey);
  const rsa = `${prefix}-rsa`;
  const anyObjectScope = opts.specs.some((s) => s.assignments?.some((a) => a.scope === 'object'));
  const sharedSecret = `${prefix}-shared-s`;
  const sharedKey = `${prefix}-shared-k`;
  const [rsaKid, secretBackup, keyBackup, outside] = await Promise.all([
    admin.importRsa(rsa, rsaJwk),
    admin.backupOfPurged('secrets', `${prefix}-shared-rs`),
    admin.backupOfPurged('keys', `${prefix}-shared-rk`),
    // Outside every object-scope assignment: a live secret and key, deleted ones, another RSA key.
    anyObjectScope
      ? (async (): Promise<Objects> => {
          const n = (x: string) => `${prefix}-out-${x}`;
          const [sVersion, kVersion, , , rsaKidOut] = await Promise.all([
            admin.secret(n('s')),
            admin.ecKey(n('k')),
            admin.secret(n('sx')).then(() => admin.delete('secrets', n('sx'))),
            admin.ecKey(n('kx')).then(() => admin.delete('keys', n('kx'))),
            admin.importRsa(n('rsa'), rsaJwk),
          ]);
          return {
            s: n('s'),
            sVersion,
            sDeleted: n('sx'),
            k: n('k'),
            kVersion,
            kDeleted: n('kx'),
            rsa: n('rsa'),
            rsaKid: rsaKidOut,
            secretBackup: new Uint8Array(),
            keyBackup: new Uint8Array(),
          };
        })()
      : Promise.resolve(undefined),
    admin.secret(sharedSecret),
    admin.ecKey(sharedKey),
  ]);

  const principals = await Promise.all(
    opts.specs.map(async (spec, i): Promise<Principal> => {
      const app = await run(() => createApplication(`matrix ${spec.label}`, { token }));
      const s = `${prefix}-${i}-s`;
      const k = `${prefix}-${i}-k`;
      const objectScope = spec.assignments?.some((a) => a.scope === 'object') ?? false;
      const assignments = spec.assignments?.flatMap((a) =>
        a.scope === 'object' ? [`/secrets/${s}`, `/keys/${k}`, `/keys/${rsa}`].map((scope) => ({ role: a.role, scope })) : [a],
      );
      const p = { ...spec, assignments };
      const ownBackup = (collection: 'secrets' | 'keys') => expectedFor(p, azureOperation(`${collection}.restore`), undefined);
      const [sVersion, kVersion, ownSecretBackup, ownKeyBackup] = await Promise.all([
        admin.secret(s),
        admin.ecKey(k),
        ownBackup('secrets') ? admin.backupOfPurged('secrets', `${prefix}-${i}-rs`) : Promise.resolve(secretBackup),
        ownBackup('keys') ? admin.backupOfPurged('keys', `${prefix}-${i}-rk`) : Promise.resolve(keyBackup),
        ...(assignments ?? []).map((a) =>
          run(() => assignRole(vaultName, a.scope, roleDefinitionId(a.role), app.objectId, token)),
        ),
        spec.policy ? run(() => setAccessPolicy(vaultName, app.objectId, spec.policy!, token)) : Promise.resolve(),
      ]);
      return {
        ...p,
        app,
        objectScope,
        objects: {
          s,
          sVersion,
          sDeleted: s,
          k,
          kVersion,
          kDeleted: k,
          rsa,
          rsaKid,
          secretBackup: ownSecretBackup,
          keyBackup: ownKeyBackup,
        },
      };
    }),
  );
  if (TIMING) console.log(`${vaultName}: ${principals.length} principals prepared in ${Date.now() - t0} ms`);

  const results = (await Promise.all(principals.map((p) => runPrincipal(p, vault, admin, opIds, material, outside)))).flat();
  if (TIMING) console.log(`${vaultName}: ${results.length} calls done at ${Date.now() - t0} ms`);
  return { vault, principals, results, sharedSecret, sharedKey };
}

/** One raw refusal of the principal, read over HTTPS: a GET it may not make, on an object that exists. */
async function rawRefusal(p: Principal, m: MatrixRun) {
  const candidates: [string, string | undefined, string][] = [
    ['secrets.get', m.sharedSecret, `/secrets/${m.sharedSecret}`],
    ['keys.get', m.sharedKey, `/keys/${m.sharedKey}`],
    ['secrets.list', undefined, '/secrets'],
    ['keys.list', undefined, '/keys'],
    ['keys.getRotationPolicy', m.sharedKey, `/keys/${m.sharedKey}/rotationpolicy`],
  ];
  const refused = candidates.find(([op, target]) => !expectedFor(p, azureOperation(op), target));
  if (!refused) return undefined;
  const res = await vaultRequest(refused[2], { url: m.vault, token: await tokenOf(p.app) });
  return {
    what: `${p.label}: GET ${refused[2]}`,
    status: res.status,
    body: res.json<{ error?: { code?: string; message?: string; innererror?: { code?: string } } }>(),
  };
}

// ----------------------------------------------------------------------------------- the matrix

function rbacSpecs(): PrincipalSpec[] {
  const specs: PrincipalSpec[] = [];
  for (const role of AZURE_KEY_VAULT_ROLES) {
    const at = (label: string, scopes: string[]) =>
      specs.push({
        label: `${role.roleName} @ ${label}`,
        group: role.roleName,
        assignments: scopes.map((scope) => ({ role, scope })),
      });
    at('/', ['/']);
    at('/secrets+/keys', ['/secrets', '/keys']);
    at('its objects', ['object']);
  }
  specs.push({ label: 'no role assignment', group: 'no role assignment', assignments: [] });
  return specs;
}

function policySpecs(): PrincipalSpec[] {
  const specs: PrincipalSpec[] = [];
  const add = (policy: AccessPolicyPermissions) => {
    const label = `policy ${Object.entries(policy)
      .map(([collection, perms]) => `${collection}[${(perms as string[]).join(',')}]`)
      .join(' ')}`;
    specs.push({ label, group: label, policy });
  };
  // One secrets and one keys permission each (paired so that neither is named like the other).
  const secrets = ACCESS_POLICY_PERMISSIONS.secrets;
  const keys = [...ACCESS_POLICY_PERMISSIONS.keys].reverse();
  keys.forEach((key, i) => add(i < secrets.length ? { secrets: [secrets[i]!], keys: [key] } : { keys: [key] }));
  add({ secrets: ['get', 'list', 'set'], keys: ['encrypt', 'decrypt'] });
  add({ secrets: ['all'], keys: ['get', 'list', 'wrapKey', 'unwrapKey'] });
  add({ keys: ['all'] });
  add({ certificates: ['all'] });
  specs.push({ label: 'no access policy', group: 'no access policy' });
  return specs;
}

let rbacRun: MatrixRun;
let policyRun: MatrixRun;
const POLICY_OPS = AZURE_OPERATIONS.filter((o) => o.permission !== undefined);
const mismatchesOf = (m: MatrixRun, group: string) =>
  m.results
    .filter((r) => r.group === group)
    .map(mismatch)
    .filter((x): x is string => x !== undefined);

beforeAll(async () => {
  const started = Date.now();
  const token = await adminToken();
  const { objectId } = await adminApplication(token);
  [rbacRun, policyRun] = await Promise.all([
    runMatrix({
      vaultName: uniqueName('mrbac'),
      rbac: true,
      specs: rbacSpecs(),
      ops: AZURE_OPERATIONS,
      token,
      adminObjectId: objectId,
    }),
    runMatrix({
      vaultName: uniqueName('mpol'),
      rbac: false,
      specs: policySpecs(),
      ops: POLICY_OPS,
      token,
      adminObjectId: objectId,
    }),
  ]);
  if (TIMING) console.log(`matrix: ${rbacRun.results.length + policyRun.results.length} calls in ${Date.now() - started} ms`);
  if (process.env.MATRIX_DUMP)
    (await import('node:fs')).writeFileSync(
      process.env.MATRIX_DUMP,
      JSON.stringify([...rbacRun.results, ...policyRun.results], null, 1),
    );
}, 240_000);

describe('RBAC: every built-in role × every secret and key operation, at vault, collection and object scope', () => {
  it.each([...AZURE_KEY_VAULT_ROLES.map((r) => r.roleName), 'no role assignment'])(
    '%s: allowed exactly where Azure allows, 403 Forbidden (ForbiddenByRbac) elsewhere',
    async (group) => {
      const principals = rbacRun.principals.filter((p) => p.group === group);
      // Every principal made every call (object scope also one per object-level data action outside).
      const expectedCalls = principals.reduce(
        (n, p) => n + AZURE_OPERATIONS.length + (p.objectScope ? OUTSIDE_OPS.length : 0),
        0,
      );
      expect(rbacRun.results.filter((r) => r.group === group)).toHaveLength(expectedCalls);
      expect(mismatchesOf(rbacRun, group)).toEqual([]);

      // The raw body of a refusal, from each principal refused one of a few GETs (every role is).
      const refusals = (await Promise.all(principals.map((p) => rawRefusal(p, rbacRun)))).filter((r) => r !== undefined);
      expect(refusals.length).toBeGreaterThan(0);
      for (const refusal of refusals) {
        expect(refusal.status, refusal.what).toBe(403);
        expect(refusal.body.error?.code, refusal.what).toBe('Forbidden');
        expect(refusal.body.error?.innererror?.code, refusal.what).toBe('ForbiddenByRbac');
        expect(refusal.body.error?.message, refusal.what).toBeTruthy();
      }
    },
  );

  it("an assignment at '/keys/{a}' covers its name in any case, not '/keys/{a}b' nor any other key (likewise for secrets)", async () => {
    const token = await adminToken();
    const vaultName = new URL(rbacRun.vault).hostname.split('.')[0]!;
    const admin = new Admin(rbacRun.vault, token);
    const a = uniqueName('scope');
    await Promise.all([admin.secret(a), admin.secret(`${a}b`), admin.ecKey(a), admin.ecKey(`${a}b`)]);
    const app = await createApplication('matrix one object', { token });
    const role = roleDefinitionId(azureRole('Key Vault Administrator'));
    await assignRole(vaultName, `/secrets/${a}`, role, app.objectId, token);
    await assignRole(vaultName, `/keys/${a.toUpperCase()}`, role, app.objectId, token);
    const cred = credential({ clientId: app.clientId, clientSecret: app.clientSecret });
    const secrets = new SecretClient(rbacRun.vault, cred, NO_RETRY);
    const keys = new KeyClient(rbacRun.vault, cred, NO_RETRY);

    expect((await secrets.getSecret(a.toUpperCase())).value).toBe('matrix value');
    expect((await keys.getKey(a)).name).toBe(a);
    await expectRestError(secrets.getSecret(`${a}b`), 403, 'Forbidden');
    await expectRestError(keys.getKey(`${a}b`), 403, 'Forbidden');
    await expectRestError(secrets.getSecret(rbacRun.sharedSecret), 403, 'Forbidden');
    await expectRestError(keys.getKey(rbacRun.sharedKey), 403, 'Forbidden');
    // Neither object assignment reaches its collection.
    await expectRestError(firstPage(secrets.listPropertiesOfSecrets()), 403, 'Forbidden');
    await expectRestError(firstPage(keys.listPropertiesOfKeys()), 403, 'Forbidden');
  });

  it('the expected table itself: Administrator at / may do everything, at /secrets+/keys everything but random bytes, on its objects only their operations', () => {
    const expectedOps = (label: string, where: 'inside' | 'outside' = 'inside') =>
      rbacRun.results
        .filter((r) => r.principal === label && r.where === where && r.expected)
        .map((r) => r.op)
        .sort();
    const all = AZURE_OPERATIONS.map((o) => o.id).sort();
    expect(expectedOps('Key Vault Administrator @ /')).toEqual(all);
    expect(expectedOps('Key Vault Administrator @ /secrets+/keys')).toEqual(all.filter((o) => o !== 'keys.getRandomBytes'));
    expect(expectedOps('Key Vault Administrator @ its objects')).toEqual(
      AZURE_OPERATIONS.filter((o) => o.level === 'object')
        .map((o) => o.id)
        .sort(),
    );
    expect(expectedOps('Key Vault Administrator @ its objects', 'outside')).toEqual([]);
    expect(expectedOps('Key Vault Data Access Administrator @ /')).toEqual([]);
  });
});

describe('access policies: every secrets and keys permission × every operation', () => {
  it.each(policySpecs().map((s) => s.group))(
    '%s: allowed exactly where Azure allows, 403 Forbidden (AccessDenied) elsewhere',
    async (group) => {
      expect(policyRun.results.filter((r) => r.group === group)).toHaveLength(POLICY_OPS.length);
      expect(mismatchesOf(policyRun, group)).toEqual([]);

      const p = policyRun.principals.find((x) => x.group === group)!;
      const refusal = await rawRefusal(p, policyRun);
      expect(refusal, `${p.label} is refused something`).toBeDefined();
      expect(refusal!.status, refusal!.what).toBe(403);
      expect(refusal!.body.error?.code, refusal!.what).toBe('Forbidden');
      expect(refusal!.body.error?.innererror?.code, refusal!.what).toBe('AccessDenied');
    },
  );

  it('every permission is held by some principal and every operation is allowed to one and refused to another', () => {
    for (const op of POLICY_OPS) {
      const cases = policyRun.results.filter((r) => r.op === op.id);
      expect(
        cases.some((r) => r.expected),
        `${op.id} allowed somewhere`,
      ).toBe(true);
      expect(
        cases.some((r) => !r.expected),
        `${op.id} refused somewhere`,
      ).toBe(true);
    }
  });
});

describe('permission models', () => {
  /** GETs of the shared secret and key as `app`: both must be refused, with `innererror`. */
  async function expectRefused(m: MatrixRun, app: TestApplication, innererror: string) {
    const cred = credential({ clientId: app.clientId, clientSecret: app.clientSecret });
    await expectRestError(new SecretClient(m.vault, cred, NO_RETRY).getSecret(m.sharedSecret), 403, 'Forbidden');
    await expectRestError(new KeyClient(m.vault, cred, NO_RETRY).getKey(m.sharedKey), 403, 'Forbidden');
    const res = await vaultRequest(`/secrets/${m.sharedSecret}`, { url: m.vault, token: await tokenOf(app) });
    expect(res.status).toBe(403);
    expect(res.json<{ error: { innererror?: { code?: string } } }>().error.innererror?.code).toBe(innererror);
  }
  const nameOf = (m: MatrixRun) => new URL(m.vault).hostname.split('.')[0]!;

  it('a vault on access policies ignores role assignments: Key Vault Administrator at / grants nothing there', async () => {
    const token = await adminToken();
    const app = await createApplication('matrix role on a policy vault', { token });
    await assignRole(nameOf(policyRun), '/', roleDefinitionId(azureRole('Key Vault Administrator')), app.objectId, token);
    await expectRefused(policyRun, app, 'AccessDenied');
  });

  it('a vault on RBAC ignores access policies: secrets[all] keys[all] grants nothing there (if the policy is taken at all)', async () => {
    const token = await adminToken();
    const app = await createApplication('matrix policy on an RBAC vault', { token });
    await setAccessPolicy(nameOf(rbacRun), app.objectId, { secrets: ['all'], keys: ['all'] }, token).catch((e: Error) => {
      // Azure refuses access-policy updates on an RBAC vault; refusing is as good as ignoring.
      expect(e.message).toMatch(/: 4\d\d /);
    });
    await expectRefused(rbacRun, app, 'ForbiddenByRbac');
  });
});
