/**
 * The sign figures' pieces: the four keys through the Keys API, the same signatures directly on
 * the token in process (the bridge's own HsmKeys on the Hsm the unwrap figure opened), and the
 * check in Node that every kind of signature measured verifies.
 */
import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import type { Hsm } from '../../hsm-bridge/src/hsm.js';
import type { HsmKeys } from '../../hsm-bridge/src/keys.js';
import { fromBase64Url } from '../../bridge-protocol/index.js';
import { httpsRequest } from '../../scripts/lib/https-client.js';

export type SignAlg = 'ES256' | 'RS256';

export interface SignFigureSpec {
  /** Short id, used in labels and JSON. */
  id: 'es256-software' | 'rs256-software' | 'es256-hsm' | 'rs256-hsm';
  alg: SignAlg;
  /** The Keys API create body. */
  create: { kty: 'EC' | 'RSA' | 'EC-HSM' | 'RSA-HSM'; crv?: 'P-256'; key_size?: 2048 };
  hsm: boolean;
  keyName: string;
}

export const SIGN_FIGURES: SignFigureSpec[] = [
  { id: 'es256-software', alg: 'ES256', create: { kty: 'EC', crv: 'P-256' }, hsm: false, keyName: 'bench-es256' },
  { id: 'rs256-software', alg: 'RS256', create: { kty: 'RSA', key_size: 2048 }, hsm: false, keyName: 'bench-rs256' },
  { id: 'es256-hsm', alg: 'ES256', create: { kty: 'EC-HSM', crv: 'P-256' }, hsm: true, keyName: 'bench-es256-hsm' },
  { id: 'rs256-hsm', alg: 'RS256', create: { kty: 'RSA-HSM', key_size: 2048 }, hsm: true, keyName: 'bench-rs256-hsm' },
];

export type PublicJwk = { kty: 'EC'; crv: string; x: string; y: string } | { kty: 'RSA'; n: string; e: string };

/** The public half of a JSON web key, its kty without Azure's -HSM suffix (node:crypto's createPublicKey takes it). */
export function publicJwkOf(key: Record<string, unknown>): PublicJwk {
  const kty = String(key.kty ?? '').replace(/-HSM$/, '');
  if (kty === 'EC' && typeof key.crv === 'string' && typeof key.x === 'string' && typeof key.y === 'string') {
    return { kty: 'EC', crv: key.crv, x: key.x, y: key.y };
  }
  if (kty === 'RSA' && typeof key.n === 'string' && typeof key.e === 'string') return { kty: 'RSA', n: key.n, e: key.e };
  throw new Error(`not an EC or RSA public key: kty ${String(key.kty)}`);
}

/**
 * Whether `signature` is `alg`'s signature over SHA-256(`message`) by `publicJwk`, according to
 * node:crypto (OpenSSL): PKCS#1 v1.5 for RS256, raw r||s (IEEE P1363) for ES256.
 */
export function verifies(alg: SignAlg, publicJwk: PublicJwk, message: Uint8Array, signature: Uint8Array): boolean {
  const key = createPublicKey({ key: publicJwk, format: 'jwk' });
  return alg === 'ES256'
    ? verify('sha256', message, { key, dsaEncoding: 'ieee-p1363' }, signature)
    : verify('sha256', message, key, signature);
}

/** A random message and its SHA-256: what every sign request of a run signs. */
export function signInput(): { message: Buffer; digest: Buffer } {
  const message = randomBytes(32);
  return { message, digest: createHash('sha256').update(message).digest() };
}

export interface ApiKey {
  /** The key's id (kid), with its version. */
  kid: string;
  publicJwk: PublicJwk;
}

/** POST {vault}/keys/{name}/create: a new key (or a new version of it). */
export async function createApiKey(
  vaultUrl: string,
  apiVersion: string,
  spec: SignFigureSpec,
  token: string,
  ca: string,
): Promise<ApiKey> {
  const res = await httpsRequest(`${vaultUrl}/keys/${spec.keyName}/create?api-version=${apiVersion}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(spec.create),
    ca,
    timeoutMs: 60_000, // RSA generation in the token or the Worker
  });
  if (res.status !== 200)
    throw new Error(`create key ${spec.keyName} (${spec.create.kty}): HTTP ${res.status} ${res.text.slice(0, 300)}`);
  const key = res.json<{ key: Record<string, unknown> }>().key;
  if (typeof key.kid !== 'string') throw new Error(`create key ${spec.keyName}: no kid in the answer`);
  return { kid: key.kid, publicJwk: publicJwkOf(key) };
}

/** The answer of POST …/sign, checked: the key's kid and a signature node:crypto verifies. */
export function checkApiSignature(text: string, alg: SignAlg, key: ApiKey, message: Uint8Array): void {
  const body = JSON.parse(text) as { kid?: string; value?: string };
  if (body.kid !== key.kid) throw new Error(`sign ${alg}: kid ${String(body.kid)}, expected ${key.kid}`);
  if (typeof body.value !== 'string' || !verifies(alg, key.publicJwk, message, fromBase64Url(body.value))) {
    throw new Error(`sign ${alg} with ${key.kid}: the signature does not verify with node:crypto`);
  }
}

export interface InProcessKey {
  handle: string;
  publicJwk: PublicJwk;
}

/**
 * A key generated in the token by the bridge's HsmKeys, in this process: EC P-256 for ES256,
 * RSA-2048 for RS256, as the bridge generates EC-HSM and RSA-HSM keys for the API.
 */
export async function generateInProcessKey(keys: HsmKeys, alg: SignAlg): Promise<InProcessKey> {
  const id = randomBytes(16).toString('hex');
  const spec = alg === 'ES256' ? ({ kty: 'EC', crv: 'P-256' } as const) : ({ kty: 'RSA', size: 2048 } as const);
  const { handle, publicJwk } = await keys.generate(id, spec);
  if (!publicJwk) throw new Error('the token returned no public key');
  return { handle, publicJwk: publicJwkOf(publicJwk) };
}

/** The bridge's HsmKeys over an Hsm opened in this process (imported late: it loads graphene). */
export async function inProcessKeys(hsm: Hsm): Promise<HsmKeys> {
  const { hsmKeys } = await import('../../hsm-bridge/src/keys.js');
  return hsmKeys(hsm);
}
