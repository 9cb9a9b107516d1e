/**
 * Bench-only Worker (not part of the product): the direct baseline of the sign figures. It runs in
 * workerd, started by bench/lib/workerd-webcrypto.ts through Miniflare (wrangler's own copy, so the
 * same workerd as `wrangler dev`), and signs with WebCrypto and nothing else: no TLS, no routing,
 * no token, no D1, no key decryption.
 *
 *   GET /sign?alg=ES256|RS256&n=N&c=C  N signatures, at most C in flight → { count, elapsedMs }
 *   GET /sample?alg=ES256|RS256        one signature and the public JWK, for a check in Node
 *
 * One key pair per algorithm, generated once per isolate (P-256; RSA-2048, e = 65537). WebCrypto
 * hashes what it signs, so it signs SHA-256 of a 32-byte message where the API signs a given
 * 32-byte digest: one SHA-256 of 32 bytes more per signature here.
 */

const ALGORITHMS = {
  ES256: {
    generate: { name: 'ECDSA', namedCurve: 'P-256' },
    sign: { name: 'ECDSA', hash: 'SHA-256' },
  },
  RS256: {
    generate: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    sign: { name: 'RSASSA-PKCS1-v1_5' },
  },
};

/** alg → Promise<CryptoKeyPair>, generated on first use. */
const keyPairs = new Map();

function keyPair(alg) {
  let pair = keyPairs.get(alg);
  if (!pair) {
    pair = crypto.subtle.generateKey(ALGORITHMS[alg].generate, true, ['sign', 'verify']);
    keyPairs.set(alg, pair);
  }
  return pair;
}

/** The 32-byte message every signature signs (random values may not be drawn at global scope). */
let message;

function base64url(bytes) {
  let s = '';
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function integer(params, name, max) {
  const n = Number(params.get(name));
  if (!Number.isInteger(n) || n < 1 || n > max) throw new RangeError(`${name} must be an integer from 1 to ${max}`);
  return n;
}

export default {
  async fetch(request) {
    const url = new URL(request.url);
    const alg = url.searchParams.get('alg');
    if (!Object.hasOwn(ALGORITHMS, alg)) return Response.json({ error: 'alg must be ES256 or RS256' }, { status: 400 });
    message ??= crypto.getRandomValues(new Uint8Array(32));
    const { privateKey, publicKey } = await keyPair(alg);
    const params = ALGORITHMS[alg].sign;

    if (url.pathname === '/sample') {
      const signature = await crypto.subtle.sign(params, privateKey, message);
      const jwk = await crypto.subtle.exportKey('jwk', publicKey);
      return Response.json({ publicJwk: jwk, message: base64url(message), signature: base64url(signature) });
    }

    if (url.pathname === '/sign') {
      let count;
      let concurrency;
      try {
        count = integer(url.searchParams, 'n', 1_000_000);
        concurrency = integer(url.searchParams, 'c', 256);
      } catch (err) {
        return Response.json({ error: err.message }, { status: 400 });
      }
      // The same shape as the load generator's runFixed: C loops share a counter.
      let started = 0;
      const loop = async () => {
        while (started < count) {
          started++;
          await crypto.subtle.sign(params, privateKey, message);
        }
      };
      // workerd's clock may advance only on I/O (it does under `wrangler dev` and Miniflare, at
      // millisecond resolution); the caller checks elapsedMs against its own timing.
      const t0 = performance.now();
      await Promise.all(Array.from({ length: Math.min(concurrency, count) }, loop));
      const elapsedMs = performance.now() - t0;
      return Response.json({ count, elapsedMs });
    }

    return new Response('not found', { status: 404 });
  },
};
