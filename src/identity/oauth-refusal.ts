/**
 * A refused token request, as Entra words it: the OAuth2 `error`, the AADSTS code (when Entra has
 * one for the case) and a description that never contains the presented secret or assertion.
 */
export class OAuthRefusal extends Error {
  constructor(
    readonly status: 400 | 401,
    readonly error: 'invalid_client' | 'invalid_request' | 'unauthorized_client',
    readonly code: number | undefined,
    description: string,
  ) {
    super(code === undefined ? description : `AADSTS${code}: ${description}`);
    this.name = 'OAuthRefusal';
  }
}

export const invalidClient = (code: number | undefined, description: string) =>
  new OAuthRefusal(401, 'invalid_client', code, description);
export const invalidRequest = (code: number | undefined, description: string) =>
  new OAuthRefusal(400, 'invalid_request', code, description);

/** A claim value, shortened and stripped of control characters, fit to quote in a description. */
export function quote(value: unknown): string {
  const text = typeof value === 'string' ? value : (JSON.stringify(value) ?? '');
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\u0000-\u001f\u007f]/g, '');
  return clean.length > 200 ? `${clean.slice(0, 200)}…` : clean;
}

export const isoTime = (seconds: number) => new Date(seconds * 1000).toISOString();
