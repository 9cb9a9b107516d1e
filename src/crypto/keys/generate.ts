/** New software keys: WebCrypto where it has the curve or size, @noble/curves for secp256k1. */
import { badParameter } from '../../core/errors';
import { toBase64Url } from '../../core/encoding';
import { curveImpl } from './ec';
import { parseImportJwk } from './jwk';
import { CURVES, isCurve, RSA_SIZES, type Curve, type Jwk, type PublicJwk } from './types';

type Spec = { kty: 'RSA'; size: number } | { kty: 'EC'; crv: Curve };

export async function generateSoftwareKey(spec: Spec): Promise<{ publicJwk: PublicJwk; privateJwk: Jwk }> {
  const jwk = spec.kty === 'RSA' ? await generateRsa(spec.size) : await generateEc(spec.crv);
  // Same normalization and consistency checks as an import: one shape for every stored key.
  const { publicJwk, privateJwk } = parseImportJwk(jwk);
  return { publicJwk, privateJwk };
}

async function generateRsa(size: number): Promise<Jwk> {
  if (!(RSA_SIZES as readonly number[]).includes(size)) {
    throw badParameter(`The RSA key size ${size} is not supported: use ${RSA_SIZES.join(', ')}.`);
  }
  // The algorithm named here only labels the CryptoKey; the exported material serves every RSA alg.
  const pair = (await crypto.subtle.generateKey(
    { name: 'RSASSA-PKCS1-v1_5', modulusLength: size, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    true,
    ['sign', 'verify'],
  )) as CryptoKeyPair;
  return exportJwk(pair.privateKey);
}

async function generateEc(crv: Curve): Promise<Jwk> {
  if (!isCurve(crv)) throw badParameter(`The curve is not supported: use ${CURVES.join(', ')}.`);
  if (crv === 'P-256K') {
    // WebCrypto has no secp256k1.
    const impl = curveImpl(crv);
    const d = impl.utils.randomSecretKey();
    const point = impl.getPublicKey(d, false); // 04 || x || y
    const jwk: Jwk = {
      kty: 'EC',
      crv,
      x: toBase64Url(point.subarray(1, 33)),
      y: toBase64Url(point.subarray(33, 65)),
      d: toBase64Url(d),
    };
    d.fill(0);
    return jwk;
  }
  const pair = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: crv }, true, ['sign', 'verify'])) as CryptoKeyPair;
  return exportJwk(pair.privateKey);
}

async function exportJwk(key: CryptoKey): Promise<Jwk> {
  const { kty, crv, n, e, d, p, q, dp, dq, qi, x, y } = (await crypto.subtle.exportKey('jwk', key)) as JsonWebKey;
  return { kty: kty!, crv, n, e, d, p, q, dp, dq, qi, x, y };
}
