/**
 * A local OIDC issuer for the federated-credential tests: a Node HTTP server on 127.0.0.1 that
 * serves, for any number of issuers under it (`http://127.0.0.1:{port}/{name}`), the discovery
 * document and the JWKS the vault fetches, and counts those fetches.
 *
 * - In process (the e2e suite): `host.issuer(name)` makes an issuer with its own keys that signs
 *   tokens (`sign`) and rotates keys (`rotate`), like GitHub's or a Kubernetes cluster's issuer.
 * - Remotely (the Worker suite, whose tests run inside workerd): with a control token, tests set
 *   an issuer's public JWKS (`PUT /control/{name}/jwks`) and read its fetch counts
 *   (`GET /control/{name}/stats`); they sign with their own keys.
 * Plain http is fine here: the vault allows it only for loopback issuers, and only when
 * ALLOW_LOOPBACK_HTTP_ISSUERS is "true" (the test and local stacks).
 */
import { timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';

interface HostedIssuer {
  keys: JWK[];
  fetches: { discovery: number; jwks: number };
}

export interface IssuerKey {
  kid: string;
  alg: 'RS256' | 'ES256';
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export interface SignOptions {
  /** Seconds from now; default 600. Negative makes an expired token. */
  expiresIn?: number;
  /** Seconds from now for nbf and iat; default 0. */
  notBefore?: number;
  /** Sign with this key instead of the issuer's current one (e.g. one it never published). */
  key?: IssuerKey;
  /** Override the iss claim (default: this issuer's URL). */
  iss?: string;
}

/** An issuer with its own keys, served by the host. */
export class LocalOidcIssuer {
  private current!: IssuerKey;

  constructor(
    readonly url: string,
    private readonly hosted: HostedIssuer,
  ) {}

  get fetches(): Readonly<{ discovery: number; jwks: number }> {
    return { ...this.hosted.fetches };
  }

  get currentKey(): IssuerKey {
    return this.current;
  }

  /** A fresh key pair, not (yet) published. */
  static async newKey(alg: 'RS256' | 'ES256' = 'RS256'): Promise<IssuerKey> {
    const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
    const kid = crypto.randomUUID();
    return { kid, alg, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
  }

  /** Publishes a new signing key and signs with it from now on; `keepOld` keeps the previous one published. */
  async rotate(opts: { alg?: 'RS256' | 'ES256'; keepOld?: boolean } = {}): Promise<IssuerKey> {
    const key = await LocalOidcIssuer.newKey(opts.alg);
    this.hosted.keys = [...(opts.keepOld && this.current ? this.hosted.keys : []), key.publicJwk];
    this.current = key;
    return key;
  }

  /** A token of this issuer for `sub` and `aud`, valid for ten minutes unless told otherwise. */
  async sign(claims: JWTPayload & { sub: string; aud: string | string[] }, opts: SignOptions = {}): Promise<string> {
    const key = opts.key ?? this.current;
    const t = Math.floor(Date.now() / 1000);
    return new SignJWT({ ...claims })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
      .setIssuer(opts.iss ?? this.url)
      .setIssuedAt(t + (opts.notBefore ?? 0))
      .setNotBefore(t + (opts.notBefore ?? 0))
      .setExpirationTime(t + (opts.expiresIn ?? 600))
      .setJti(crypto.randomUUID())
      .sign(key.privateKey);
  }
}

export interface OidcIssuerHost {
  /** `http://127.0.0.1:{port}`. */
  baseUrl: string;
  /** An issuer with its own keys at `{baseUrl}/{name}` (created on first use). */
  issuer(name: string, alg?: 'RS256' | 'ES256'): Promise<LocalOidcIssuer>;
  close(): Promise<void>;
}

const send = (res: http.ServerResponse, status: number, body?: unknown) => {
  if (body === undefined) res.writeHead(status).end();
  else res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
};

/**
 * Starts the host on a free loopback port. With `controlToken`, the control endpoints accept
 * requests bearing it (and create issuers on first PUT); without, they do not exist.
 */
export async function startOidcIssuerHost(opts: { controlToken?: string } = {}): Promise<OidcIssuerHost> {
  const hosted = new Map<string, HostedIssuer>();
  const issuers = new Map<string, LocalOidcIssuer>();
  let baseUrl = '';
  const expected = opts.controlToken ? Buffer.from(`Bearer ${opts.controlToken}`) : undefined;

  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const control = /^\/control\/([A-Za-z0-9_-]+)\/(jwks|stats)$/.exec(path);
    if (control) {
      const given = Buffer.from(req.headers.authorization ?? '');
      if (!expected || given.length !== expected.length || !timingSafeEqual(given, expected)) return send(res, 401);
      const [, name, what] = control as unknown as [string, string, string];
      if (what === 'stats' && req.method === 'GET') {
        const entry = hosted.get(name);
        return entry ? send(res, 200, entry.fetches) : send(res, 404);
      }
      if (what === 'jwks' && req.method === 'PUT') {
        const chunks: Buffer[] = [];
        req.on('data', (chunk: Buffer) => chunks.push(chunk));
        req.on('end', () => {
          try {
            const { keys } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { keys: JWK[] };
            const entry = hosted.get(name) ?? { keys: [], fetches: { discovery: 0, jwks: 0 } };
            entry.keys = keys;
            hosted.set(name, entry);
            send(res, 204);
          } catch {
            send(res, 400);
          }
        });
        return;
      }
      return send(res, 405);
    }
    const served = /^\/([A-Za-z0-9_-]+)\/(\.well-known\/openid-configuration|jwks)$/.exec(path);
    const entry = served ? hosted.get(served[1]!) : undefined;
    if (!served || !entry || req.method !== 'GET') return send(res, 404);
    const issuerUrl = `${baseUrl}/${served[1]}`;
    if (served[2] === 'jwks') {
      entry.fetches.jwks++;
      return send(res, 200, { keys: entry.keys });
    }
    entry.fetches.discovery++;
    return send(res, 200, {
      issuer: issuerUrl,
      jwks_uri: `${issuerUrl}/jwks`,
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['RS256', 'ES256'],
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    baseUrl,
    async issuer(name, alg = 'RS256') {
      let issuer = issuers.get(name);
      if (!issuer) {
        const entry: HostedIssuer = { keys: [], fetches: { discovery: 0, jwks: 0 } };
        hosted.set(name, entry);
        issuer = new LocalOidcIssuer(`${baseUrl}/${name}`, entry);
        await issuer.rotate({ alg });
        issuers.set(name, issuer);
      }
      return issuer;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
