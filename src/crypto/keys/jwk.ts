/** Import validation and normalization of private JWKs, and their public halves. */
import { badParameter } from '../../core/errors';
import { randomBytes, timingSafeEqual, toBase64Url } from '../../core/encoding';
import { bitLength, bytesToBigInt, jwkBytes, leftPad, mod, stripLeadingZeros } from './bytes';
import { COORDINATE_BYTES, curveImpl, uncompressedPoint } from './ec';
import { rawSign, rawVerify } from './rsa-raw';
import { CURVES, isCurve, RSA_SIZES, type Curve, type Jwk, type PublicJwk } from './types';

export function publicOf(privateJwk: Jwk): PublicJwk {
  const kty = baseKty(privateJwk.kty);
  if (kty === 'RSA') return { kty, n: privateJwk.n, e: privateJwk.e };
  if (kty === 'EC') return { kty, crv: privateJwk.crv, x: privateJwk.x, y: privateJwk.y };
  throw badParameter('Only RSA and EC keys have a public part.');
}

function baseKty(kty: unknown): 'RSA' | 'EC' | undefined {
  if (kty === 'RSA' || kty === 'RSA-HSM') return 'RSA';
  if (kty === 'EC' || kty === 'EC-HSM') return 'EC';
  return undefined;
}

export interface ParsedJwk {
  kty: 'RSA' | 'EC';
  publicJwk: PublicJwk;
  privateJwk: Jwk;
  size?: number;
  crv?: Curve;
}

/**
 * Validates an imported private JWK and returns it normalized (only key material, minimal
 * integers, full-width EC fields, kty without -HSM). Other members (kid, key_ops…) are dropped:
 * the caller handles them.
 */
export function parseImportJwk(jwk: unknown): ParsedJwk {
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) {
    throw badParameter("The 'key' parameter must be a JSON web key object.");
  }
  const fields = jwk as Record<string, unknown>;
  const kty = baseKty(fields.kty);
  if (kty === 'RSA') return parseRsa(fields);
  if (kty === 'EC') return parseEc(fields);
  const shown = typeof fields.kty === 'string' ? `'${fields.kty.slice(0, 16)}'` : 'missing';
  throw badParameter(`The key type ${shown} cannot be imported: use RSA, RSA-HSM, EC or EC-HSM.`);
}

const RSA_FIELDS = ['n', 'e', 'd', 'p', 'q', 'dp', 'dq', 'qi'] as const;

function parseRsa(fields: Record<string, unknown>): ParsedJwk {
  if (fields.d === undefined)
    throw badParameter("The JSON web key has no private part ('d'): only private keys can be imported.");
  const raw = Object.fromEntries(RSA_FIELDS.map((f) => [f, stripLeadingZeros(jwkBytes(fields, f))])) as Record<
    (typeof RSA_FIELDS)[number],
    Uint8Array
  >;
  const size = bitLength(raw.n);
  if (!(RSA_SIZES as readonly number[]).includes(size)) {
    throw badParameter(`The RSA key size ${size} is not supported: use ${RSA_SIZES.join(', ')}.`);
  }
  // Odd and at least 3, as RSA needs; at most 32 bits, as BoringSSL (our RSA engine) allows.
  const e = bytesToBigInt(raw.e);
  if (e < 3n || e % 2n === 0n || raw.e.length > 4) throw badParameter('The RSA public exponent is not supported.');

  // Consistency of the private part with the public part. Variable-time BigInt, but only once,
  // at import; operations on the key run in BoringSSL.
  const [n, d, p, q, dp, dq, qi] = (['n', 'd', 'p', 'q', 'dp', 'dq', 'qi'] as const).map((f) => bytesToBigInt(raw[f]));
  const consistent =
    p! > 1n &&
    q! > 1n &&
    p! * q! === n &&
    d! > 0n &&
    d! < n! &&
    dp === mod(d!, p! - 1n) &&
    dq === mod(d!, q! - 1n) &&
    mod(e * dp!, p! - 1n) === 1n &&
    mod(e * dq!, q! - 1n) === 1n &&
    mod(qi! * q!, p!) === 1n;
  if (!consistent) throw mismatch();

  const privateJwk: Jwk = { kty: 'RSA' };
  for (const f of RSA_FIELDS) privateJwk[f] = toBase64Url(raw[f]);
  for (const b of Object.values(raw)) b.fill(0);
  pairwiseCheck(privateJwk, size);
  return { kty: 'RSA', publicJwk: { kty: 'RSA', n: privateJwk.n, e: privateJwk.e }, privateJwk, size };
}

/**
 * Signs and verifies one random block with the key: the arithmetic checks above cannot tell a
 * composite p or q, this can (and BoringSSL refusing the key shows here too).
 */
function pairwiseCheck(privateJwk: Jwk, size: number): void {
  const k = Math.ceil(size / 8);
  const block = randomBytes(k);
  block[0] = 0; // below n
  let ok = false;
  try {
    ok = timingSafeEqual(rawVerify(privateJwk, rawSign(privateJwk, block)), block);
  } catch {
    ok = false;
  }
  if (!ok) throw mismatch();
}

const mismatch = () => badParameter('The JSON web key is inconsistent: its public part does not match its private part.');

function parseEc(fields: Record<string, unknown>): ParsedJwk {
  const crv = fields.crv;
  if (!isCurve(crv)) {
    const shown = typeof crv === 'string' ? `'${crv.slice(0, 16)}'` : 'missing';
    throw badParameter(`The curve ${shown} is not supported: use ${CURVES.join(', ')}.`);
  }
  if (fields.d === undefined)
    throw badParameter("The JSON web key has no private part ('d'): only private keys can be imported.");
  const len = COORDINATE_BYTES[crv];
  // RFC 7518 wants full-width fields; some encoders drop leading zeros, so shorter ones are padded.
  const field = (name: 'x' | 'y' | 'd') => {
    const bytes = jwkBytes(fields, name);
    if (bytes.length > len) throw badParameter(`The JSON web key's '${name}' parameter is too long for curve ${crv}.`);
    return leftPad(bytes, len);
  };
  const x = field('x');
  const y = field('y');
  const d = field('d');
  const impl = curveImpl(crv);
  let ok = false;
  try {
    // d in [1, n-1], and d·G is the given point (which puts the point on the curve, too).
    ok = impl.utils.isValidSecretKey(d) && timingSafeEqual(impl.getPublicKey(d, false), uncompressedPoint(x, y));
  } catch {
    ok = false;
  }
  if (!ok) throw mismatch();
  const publicJwk: PublicJwk = { kty: 'EC', crv, x: toBase64Url(x), y: toBase64Url(y) };
  const privateJwk: Jwk = { ...publicJwk, kty: 'EC', d: toBase64Url(d) };
  d.fill(0);
  return { kty: 'EC', publicJwk, privateJwk, crv };
}
