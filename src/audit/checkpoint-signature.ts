/**
 * The checkpoint signature, pure and web-standard (crypto.subtle, no D1, no Workers APIs): what
 * the Worker and the offline verifier (scripts/audit-verify.ts) both check. A checkpoint's
 * signature is ES256 (raw r||s, base64url) over the UTF-8 canonical JSON {chain, hash, seq, time}.
 */
import { fromBase64Url, toBase64Url } from '../../bridge-protocol';
import { canonicalJson } from './canonical';
import type { Checkpoint } from './verify';

export const CHECKPOINT_ALG = 'ES256';

export interface EcPublicJwk {
  kty: 'EC';
  crv: 'P-256';
  x: string;
  y: string;
}

/** The exact bytes a checkpoint's signature covers. */
export function checkpointPayload(cp: Pick<Checkpoint, 'chain' | 'seq' | 'hash' | 'time'>): string {
  return canonicalJson({ chain: cp.chain, seq: cp.seq, hash: cp.hash, time: cp.time });
}

/** RFC 7638 JWK thumbprint (SHA-256, base64url) of an EC public key: the checkpoints' `kid`. */
export async function jwkThumbprint(jwk: { crv: string; kty: string; x: string; y: string }): Promise<string> {
  const members = `{"crv":${JSON.stringify(jwk.crv)},"kty":${JSON.stringify(jwk.kty)},"x":${JSON.stringify(jwk.x)},"y":${JSON.stringify(jwk.y)}}`;
  return toBase64Url(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(members) as BufferSource)));
}

export function asP256(jwk: unknown): EcPublicJwk {
  const k = jwk as Partial<EcPublicJwk> | null;
  if (!k || k.kty !== 'EC' || k.crv !== 'P-256' || typeof k.x !== 'string' || typeof k.y !== 'string') {
    throw new TypeError('the checkpoint key is not an EC P-256 public JWK');
  }
  return { kty: 'EC', crv: 'P-256', x: k.x, y: k.y };
}

/** Does the checkpoint carry a valid ES256 signature by this public key (and name its kid)? */
export async function verifyCheckpointSignature(cp: Checkpoint, publicJwk: EcPublicJwk, kid?: string): Promise<boolean> {
  if (cp.alg !== CHECKPOINT_ALG) return false;
  if (kid !== undefined && cp.kid !== kid) return false;
  try {
    const key = await crypto.subtle.importKey(
      'jwk',
      { ...asP256(publicJwk), ext: true },
      { name: 'ECDSA', namedCurve: 'P-256' },
      false,
      ['verify'],
    );
    const signature = fromBase64Url(cp.signature);
    if (signature.length !== 64) return false;
    return await crypto.subtle.verify(
      { name: 'ECDSA', hash: 'SHA-256' },
      key,
      signature as BufferSource,
      new TextEncoder().encode(checkpointPayload(cp)) as BufferSource,
    );
  } catch {
    return false;
  }
}
