/**
 * RFC 8555 §6.2 request signing: every POST body is a flattened JWS whose protected header names
 * the request URL and a fresh server nonce, and identifies the account by its JWK (newAccount) or
 * by its account URL (`kid`, everything else). Also the External Account Binding (§7.3.4): the
 * account's public JWK MAC'd with the key the CA handed out.
 */
import { FlattenedSign, calculateJwkThumbprint, type JWK } from 'jose';
import { toBase64Url, utf8 } from '../../../../core/encoding';

export interface AccountKey {
  privateKey: CryptoKey;
  /** The public JWK (kty, crv, x, y). */
  jwk: JWK;
}

export interface Flattened {
  protected: string;
  payload: string;
  signature: string;
}

const ALG = 'ES256';

/** A JWS over `payload` (JSON; `undefined` for POST-as-GET, whose payload is empty). */
export async function signRequest(
  key: AccountKey,
  payload: unknown,
  header: { url: string; nonce: string; kid?: string },
): Promise<Flattened> {
  const body = payload === undefined ? new Uint8Array(0) : utf8(JSON.stringify(payload));
  const protectedHeader = header.kid
    ? { alg: ALG, kid: header.kid, nonce: header.nonce, url: header.url }
    : { alg: ALG, jwk: key.jwk, nonce: header.nonce, url: header.url };
  return (await new FlattenedSign(body).setProtectedHeader(protectedHeader).sign(key.privateKey)) as Flattened;
}

/** The externalAccountBinding member of a newAccount payload. */
export async function externalAccountBinding(
  key: AccountKey,
  eab: { kid: string; hmacKey: Uint8Array },
  newAccountUrl: string,
): Promise<Flattened> {
  return (await new FlattenedSign(utf8(JSON.stringify(key.jwk)))
    .setProtectedHeader({ alg: 'HS256', kid: eab.kid, url: newAccountUrl })
    .sign(eab.hmacKey)) as Flattened;
}

/** token.thumbprint: what an http-01 answer serves and a dns-01 record hashes (§8.1). */
export async function keyAuthorization(key: AccountKey, token: string): Promise<string> {
  return `${token}.${await calculateJwkThumbprint(key.jwk, 'sha256')}`;
}

/** The TXT value of a dns-01 challenge: base64url(SHA-256(key authorization)) (§8.4). */
export async function dnsTxtValue(keyAuth: string): Promise<string> {
  return toBase64Url(new Uint8Array(await crypto.subtle.digest('SHA-256', utf8(keyAuth) as BufferSource)));
}

/** A new software P-256 account key; the private JWK is returned for sealed storage. */
export async function generateAccountKey(): Promise<{ key: AccountKey; privateJwk: JWK }> {
  const pair = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ])) as CryptoKeyPair;
  const privateJwk = (await crypto.subtle.exportKey('jwk', pair.privateKey)) as JWK;
  return { key: await importAccountKey(privateJwk), privateJwk };
}

/** The account key from its stored private JWK (non-extractable once imported). */
export async function importAccountKey(privateJwk: JWK): Promise<AccountKey> {
  const { kty, crv, x, y } = privateJwk;
  if (kty !== 'EC' || crv !== 'P-256' || !x || !y || !privateJwk.d)
    throw new Error('the stored ACME account key is not a P-256 private JWK');
  const privateKey = await crypto.subtle.importKey(
    'jwk',
    { kty, crv, x, y, d: privateJwk.d },
    { name: 'ECDSA', namedCurve: 'P-256' },
    false,
    ['sign'],
  );
  return { privateKey, jwk: { kty, crv, x, y } };
}
