// A certificate's key in the formats certificates speak: the vault keeps keys as JWKs (software)
// or token handles (HSM), certificates carry SubjectPublicKeyInfo, PFX and PEM carry PKCS#8.
// WebCrypto does the conversions, so a key that it refuses is refused here too.
import { AsnConvert } from '@peculiar/asn1-schema';
import { PrivateKeyInfo } from '@peculiar/asn1-pkcs8';
import { SubjectPublicKeyInfo } from '@peculiar/asn1-x509';
import { toHex } from '../../core/encoding';
import { bs } from './der';
import { badParameter } from '../../core/errors';
import { parseImportJwk, type Curve, type Jwk, type PublicJwk } from '../../crypto/keys';

/** The DER of the named-curve OIDs (the EC key algorithm's parameters), in hex. */
const EC_CURVES: Record<string, Curve> = {
  '06082a8648ce3d030107': 'P-256',
  '06052b81040022': 'P-384',
  '06052b81040023': 'P-521',
};
type KeyParams = { name: 'RSASSA-PKCS1-v1_5'; hash: string } | { name: 'ECDSA'; namedCurve: string };
const RSA_OID = '1.2.840.113549.1.1.1';
const EC_OID = '1.2.840.10045.2.1';

function algorithm(jwk: PublicJwk): KeyParams {
  if (jwk.kty === 'RSA' || jwk.kty === 'RSA-HSM') return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  if (jwk.crv === 'P-256' || jwk.crv === 'P-384' || jwk.crv === 'P-521') return { name: 'ECDSA', namedCurve: jwk.crv };
  throw badParameter(
    `Certificates support RSA keys and the EC curves P-256, P-384 and P-521, not ${String(jwk.crv ?? jwk.kty)}.`,
  );
}

/** DER SubjectPublicKeyInfo of a public JWK. */
export async function spkiOf(jwk: PublicJwk): Promise<Uint8Array> {
  const pub = jwk.kty.startsWith('RSA') ? { kty: 'RSA', n: jwk.n, e: jwk.e } : { kty: 'EC', crv: jwk.crv, x: jwk.x, y: jwk.y };
  const key = await crypto.subtle.importKey('jwk', pub as JsonWebKey, algorithm(jwk), true, ['verify']);
  return new Uint8Array((await crypto.subtle.exportKey('spki', key)) as ArrayBuffer);
}

/** The public JWK of a DER SubjectPublicKeyInfo (RSA, or EC on a supported curve). */
export async function jwkOfSpki(spki: Uint8Array): Promise<PublicJwk> {
  const info = AsnConvert.parse(spki, SubjectPublicKeyInfo);
  const params = keyParams(info.algorithm.algorithm, info.algorithm.parameters ?? null);
  const key = await crypto.subtle.importKey('spki', bs(spki), params, true, ['verify']);
  const { kty, n, e, crv, x, y } = (await crypto.subtle.exportKey('jwk', key)) as JsonWebKey;
  return kty === 'RSA' ? { kty, n, e } : { kty: kty!, crv, x, y };
}

/** DER PKCS#8 PrivateKeyInfo of a software key's private JWK. */
export async function pkcs8Of(jwk: Jwk): Promise<Uint8Array> {
  const { kty, n, e, d, p, q, dp, dq, qi, crv, x, y } = jwk;
  const key = await crypto.subtle.importKey(
    'jwk',
    { kty, n, e, d, p, q, dp, dq, qi, crv, x, y } as JsonWebKey,
    algorithm(jwk),
    true,
    ['sign'],
  );
  return new Uint8Array((await crypto.subtle.exportKey('pkcs8', key)) as ArrayBuffer);
}

/** A PKCS#8 private key as the vault's JWKs (the same checks as a key import). */
export async function jwkOfPkcs8(der: Uint8Array): Promise<{ publicJwk: PublicJwk; privateJwk: Jwk }> {
  let info: PrivateKeyInfo;
  try {
    info = AsnConvert.parse(der, PrivateKeyInfo);
  } catch {
    throw badParameter('The private key is not a valid PKCS#8 key.');
  }
  const params = keyParams(info.privateKeyAlgorithm.algorithm, info.privateKeyAlgorithm.parameters ?? null);
  let key: CryptoKey;
  try {
    key = await crypto.subtle.importKey('pkcs8', bs(der), params, true, ['sign']);
  } catch {
    throw badParameter('The private key could not be read.');
  }
  const jwk = (await crypto.subtle.exportKey('jwk', key)) as unknown as Record<string, unknown>;
  delete jwk.key_ops;
  delete jwk.ext;
  delete jwk.alg;
  return parseImportJwk(jwk as never);
}

function keyParams(oid: string, parameters: ArrayBuffer | null): KeyParams {
  if (oid === RSA_OID) return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  if (oid === EC_OID && parameters) {
    const crv = EC_CURVES[toHex(parameters)];
    if (crv) return { name: 'ECDSA', namedCurve: crv };
  }
  throw badParameter('Certificates support RSA keys and the EC curves P-256, P-384 and P-521.');
}

/** The signature algorithm a key signs its certificates with (Azure: SHA-256 for RSA, the curve's hash for EC). */
export function signingAlgorithm(jwk: PublicJwk): 'RS256' | 'ES256' | 'ES384' | 'ES512' {
  if (jwk.kty.startsWith('RSA')) return 'RS256';
  if (jwk.crv === 'P-256') return 'ES256';
  if (jwk.crv === 'P-384') return 'ES384';
  if (jwk.crv === 'P-521') return 'ES512';
  throw badParameter('Certificates support RSA keys and the EC curves P-256, P-384 and P-521.');
}
