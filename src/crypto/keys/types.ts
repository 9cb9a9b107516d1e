/** Key types the vault stores: software RSA/EC (private part in the Worker) and their HSM twins. */
export type KeyKind = 'RSA' | 'EC' | 'RSA-HSM' | 'EC-HSM' | 'oct-HSM';

/** Azure's curve names; P-256K is secp256k1. */
export type Curve = 'P-256' | 'P-384' | 'P-521' | 'P-256K';

export const RSA_SIZES = [2048, 3072, 4096] as const;
export const AES_SIZES = [128, 192, 256] as const;
export const CURVES: readonly Curve[] = ['P-256', 'P-384', 'P-521', 'P-256K'];

/** Azure's JSON Web Key as the API returns/accepts it (base64url byte fields). */
export interface Jwk {
  kty: string;
  kid?: string;
  key_ops?: string[];
  n?: string;
  e?: string;
  d?: string;
  p?: string;
  q?: string;
  dp?: string;
  dq?: string;
  qi?: string;
  crv?: string;
  x?: string;
  y?: string;
  k?: string;
  t?: string;
}

/** The public half; kty is 'RSA' or 'EC' here (no -HSM suffix). */
export type PublicJwk = Pick<Jwk, 'kty' | 'n' | 'e' | 'crv' | 'x' | 'y'>;

export const isCurve = (value: unknown): value is Curve => CURVES.includes(value as Curve);
