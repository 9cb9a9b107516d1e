/**
 * Key cryptography against known answers made with node:crypto and noble: every algorithm, size
 * and curve.
 */
import { describe, expect, it } from 'vitest';
import { fromBase64Url, toBase64Url, utf8 } from '../../src/core/encoding';
import {
  checkAlgorithm,
  checkDigest,
  CURVES,
  decrypt,
  defaultKeyOps,
  encrypt,
  generateSoftwareKey,
  KEY_OPS,
  parseImportJwk,
  publicOf,
  RSA_SIZES,
  rsaKeySize,
  sign,
  validKeyOps,
  verify,
  type Curve,
  type Jwk,
  type PublicJwk,
} from '../../src/crypto/keys';
import { emePkcs1Decode, emePkcs1Encode } from '../../src/crypto/keys/padding';
import { VaultError } from '../../src/core/errors';

// Generated once with Node 22's node:crypto (OpenSSL); see the comments on each use.
const _MESSAGE = 'edge-key-vault known-answer fixture';
const DIGEST = {
  sha256: 'Jwzb-VHAVpt0DNRxjh-kZBspNbT4hdxZR94azbX06lU',
  sha384: 'ahpSIYiidgm7XFj1mUyFULhCri2-LKTgvHQoj_mDbA07qWMV5BE1-kriz4IJ36gm',
  sha512: 'OEftu8aMrxpjGr6GL0LSg9HupnGc923XKDcWqxX_d_Yrb5rSJ5l2-63Cb4ybvyRulJzMWmf96Qr1-WWGahgjJw',
};
const RSA_2048 = {
  kty: 'RSA',
  n: 'rh6Eq3ZGSvkaVn9Yi12DcWv6VzhV-_n_zo89uslH4VSStqzHmXVDMB-l-osZZwE4pYT6PXk5tju9gPoiOT3KLtAKNxcN_d731wBFQpc0SY_6nSJRY_uYFoNiu9THY1V9rgYKvH1Wcc7QUvILNF8hjVDTTwFQ81KY9zsAMjPYhWVpi7R3B7vlCQ2ZzTALrt4dwNUzRlbr5s5UYKemFo5DezJp3G6kQuWiCjlKLntPsYBwOS7cbuRfHSJtTTxQ4D7Z-UqXIDB5AFSfJRkARS0GDM8z4JKEqJ86PIHYliU9uJrr7b2ZchDqu9mm6onDp6KJXSe6hVlPL0vLqNB5OeTzEQ',
  e: 'AQAB',
  d: 'BGccJrPGbOs7RG2oQQSRKCM5ViRECauVfCp4vp-L_uwjC5XMiZpX-RW2c4054WC8Bx9uLnNsHKoKYtewWYSGTMRmRboCWLrfHHjSx4TIRdtAqeGDb6-dyw_xGrEeMOpT_mcDtXwb3U6D9lz4II-5QE1cvSuE2apAg5vifOJ9D_O-PSc_WVRFqiQt8G3zdq27S56xwgTMlpak49bs9zHLxbUH7xo2XZ-hO32j5S0fALZ0d6KJ2AAsHSWp4ww2RpoDZXCx69fyOLHLnRo8L44QlaO12owFFTD7OKSOclHGMdfoAgKg0nfqlFIrQz4NY1FOIFvqDJjs2RtAKwnx1sOPCw',
  p: '8tPbGRwGHGa3X4spy0b0TxNm4UKGRKWriURDJT-OWLtCMtqm79W_0le52zqqcBQT6eJdFqE2JdYL_vQAADSw35xbu51WP6WRGjENqiOv6eAKjHbqcSMHcLcbw4rlh5eg9M7HQj77_XL7FzTl0J35hgmo2iPYBU1YjB4iKkkvHx8',
  q: 't5CCmZcCo4VK9rurR3DECnVoVxsHocMR1GHcLbXzsUG7fUz9UIC3Rulvb8DPHu0XRnKS0zy5TYrjMJNA5kme62_k8Mw5tW6jPJ7lujcTyMZ7dPyPsyUVjEAY2pecoRnulR2t_gyheJblKlUeYXxVCSUyWHZCyK41rxVcenIhF88',
  dp: 'q71YlT6zt7yR7roO-h0Zxx-SwLh7G-wMEQ49awezVmBCZpMsRC3p-AthgILSbmhU2TLm4Y1tLX9ghpXttjeN7Oi6HEwf5u3jXSHaZz3MOd3huAyWrSO4LGjk8vy2b5q3FM12Mg03zb5Xhcc8zrob80e7q2R0cPOOL7NUOJIACMM',
  dq: 'Pmbi7uGWJQ6gEEZ2EIA2NLP693mZ25Tbz85Ask1jfYOyAAOXLbHEHFgo6N2ry4Cf4_P5E9RVzhWD7DRy4JZwbusH8hALIjFtTqNZxzcIA73tpDRjiWv26kmz6UOXHHEbWRfQ2Udj8QGjAAQVouBIbCZ3-fih9WS7nTxuxrVbqKM',
  qi: 'bRqEU_wZtaR6pMJP7SHHuws_tzr9aHjmiabXRhczb4cL_H9oiIbXfjQXqU9rU7XnpEclAWQxl2EZp8eW0hKAicUys4S2LgLmsP4uvsPteVeS_Aa3AjK8aVo8JwwUyX2Dvob55rqnpH2fkHhzTsO2FP9ItpXeM08Xz90a5X2dmKo',
};
const RSA_KAT = {
  RS256:
    'PAayX8GgsQQPb3chbzJq9QHls1GKLxkukxPsQrJhSRBhx7ZGNjxQz5N__DYMvfK2Emtatm0dB6P8RiRqA95bMaMRI-uYz9rT4WqTDr5y1wL3boi-XBQ_w1sEmMLRJpuZOi_rBrgRjphTgZU9RRcpKWxVMz207JGClpQfcX0Inb1dmWUqcDZBjKjYN9UZkWH0_YYn0P186oxBC6NEvUYdJlP4-NSRqxGZE9_NFkLWmg_-CCfxkoW6nP8MJxBdLS53zJScEEcWXYEZvDEvVX50kOIHryRbKVRp0LE9c9lt_B8SQe5d6SnrcaNSQ5_-QBQSCQzJcF6kGfD6OeWE0tyndg',
  RS512:
    'fPWtQnBwzycCYkGpBdTb_b0LSYGLsJVYr45tYu8WTLq1inhs7VyszeH9GGiqsCJjiB8SkWFTh3E6yswjAG2PMgKfY9Hvjb-PDduguqths1kIgbbJoDpb0f3Xmb5ckFjcJvQszAW3L3Yx_scVCAuepYkiwO7GaTImVtLWXB4gpTxnR_bC73Y4OsQiNGSMH_j3AQ23Tg1vS0bxVAmO-zymmvjA6o4by_AujvgE4EP3WPAmWw3mxyYVjqE6YUKhC3NVqFpXb98CuAnQd6cgnCy2cXHTs0jymZ4zDsP2PhT3e2UmJQTv78vyHJsAEKz0X9aLruqWb2qcXOJ5yrpI354j1A',
  PS256:
    'LFnB7tDd1PitqRDGlz6KXtmwCGkZy2OzWioRLjZGn_HxuL4cDhxqAdB6Uw7AccgnGZc4smy4v2aizhvL40M_Fmq2eBQMgAnZI5BI4ifqMfRQYZKv_TLqNFUcsyd3gcyzZciPQHMkchrfn71HvDDVukxDzRcSidkDVoaNuix619GC0LSLiq4VrAsENk6SUIaliNLMCd0_y8iLwhKTOeipFBJUffGuMMAiEDdKuN8TrTlbzfYCddqJgXciRKYpNKlyu3pnsjsJTUzqJ1itJSg0K4_XMRApc4Rh5M2nyWCTbUOK_hRHni7j8Qr1H88Qp-aTQGbYD8kxnadW5nhmRGSpeA',
  PS384:
    'HZAOHQgtknu-wlxcsQ7xhRB4sHWFmdvpuxMS2wVDZxX3_5oRbGGuxLmYvb6xpuTv9Ld68bukog3HKJTbzYGDwFq1zb7FrA_QdLGKudfPhKsYVSxdQt_x3d0MDHZAmHDZ_plvpG87bjzjbl92RRDA262mCSxWD6m9vQMaxchtj32E9XceTX9DotnK-3JVdBpD51aiRvRqdkv5VdF271rLpua3T2zJgkgeFdHln1BIqthBovvaPPhc1I4RYmOYzeVAAl9800ShVrXtxjQi3XT2T9BCi2qVi9N7DB0aGUJblBDPpec6SHHuLDIn6jYATSRg8_6ynWdanudjZ2ZuzMl18Q',
  plaintext: 'YSAzMi1ieXRlIGNvbnRlbnQga2V5LCBvciBzby4uLi4',
  'RSA-OAEP':
    'hT_Mv0Hf02WZYo-m536RLw2qXwHeS8KIsSyll6a1QxpmZap9Tl9OfZL8ti7nJ0yDqSDOWkmwhTU2-Cz8CJZmAyL7ct8fhwb3vEB4nGmGLt54-FXkSCcldIboDwmUtWTCMT8aEiiWFZAHRCLUne4_bT3oK0U-habev-ldV5ZB1ZuDPED1KqZ9gV-Z-WapsSEELnf3YXbLx5rXS1fyjtC5XVbJqQci-SFXl8YsY8E4u35Boo0ST6Pk7zLLZi6DKy_v2mcRaqqwuMupYNTT8pDO9wUF2uD65MV4HB6GazStelqLSW9AJciPx24usdK_UBx2uJ60nG01MEGahxoFSuGsWw',
  'RSA-OAEP-256':
    'L6wMQ81K9i1dE13VE2QKkIWIiHDuuFJtxRaeqrAFQChNOzXfwwLLsmCyip1619Lfy1g4d6zL_LodSvoP9UCNHGyGy6KQP1QGozXMbT0EYeWl2n_2ehKMduDfc7CmoXjS1VFblnHzz5taRXwukeMeAq4zpK69EluRn7mUVqpRpVPN6Ck5VXymnnKf4DbnPrTgh8zyY7uQ0IkCOG80lf8AmmQmNypTTi9bpiIjQ0Q5JmDhVl-HlSQGjNkz99ExEQWqocyzyuU7l8nI48M4OLgZNsrR5A9jJfW_IEhdbus1i3IcAJkY9VLyom6PbnlnT8fiNvIlXQkgTt41I9Sd-nU0yQ',
  RSA1_5:
    'i_RF0owaXKU5xE1-Bfp-gJ5h7o8C9W-opl9j0T0D3v9aw4SCoVUPCW1fE_5lSG1VhglkHqsXffgaRvxrNq0eVdncMcFQs2MBeRIP9g8zjdiMjjFMs02lRNBEHTXNb5igJv4W3jfZvFV2_VMfj24xHUg4MRowKFNpHeEUj2PT92VZEQORkJJjUTYm-R3OC6DNRL7f4CgIzBUZh54ULXh3PQVA3xlBP-Tk6rVRleF9zlDxYPosBGT0XWL2710YVylfAJl0Q9lQfjVfeQSO6yPRfs9eFME1wJuvN4cZYbiVl_HXQEv5pFQeQMRn0jzZw6bSMLGo9ZPMx-r7uqtBKNppXg',
};
const EC_KAT = {
  'P-256': {
    alg: 'ES256',
    jwk: {
      kty: 'EC',
      x: 'YzvnQV9jeEKAooIzVys1qIe-YnLS0DPyL92NfRb2l1k',
      y: 'ELbb3ThQVqEmQ-t0tCpK31tIUvZQA0GLArNP0Y2IrvU',
      crv: 'P-256',
      d: 'fKEEW_2uthw_0HZDL044-n1shRYP9PcAiTJ8bFxBaL0',
    },
    signatures: [
      'yEO3H4i-E9hlUmhTUb90KAeRPf0F3xCot3-lhNGKBQ3QfOm_ib8dZvA6UMKXRLLaBdfmGOB9rke9dhHrU5ovng',
      'yEO3H4i-E9hlUmhTUb90KAeRPf0F3xCot3-lhNGKBQ0vgxY_dkDimg_Frz1ou00ltw8UlMaZ8D02Q7jXqMj1sw',
    ],
  },
  'P-384': {
    alg: 'ES384',
    jwk: {
      kty: 'EC',
      x: 'By6-wZwJSVorsT3k9jEYQRjnrzz1CHHuzaDGA8oY0U05ZR8aPSS3FrIzqw8JdRhf',
      y: 'kaSO0xehs2kE6A3QydUEO7Bfp45FODJCIaYMmnx8RWu-aJG1n-TVipdR48XaqjrB',
      crv: 'P-384',
      d: '7U6UAMirIgLI5SD1gepFYoGrqbA1zYyrAxXSf_aJa09y8oZf2b0h2otAiHjLSstZ',
    },
    signatures: [
      'fVXNaWoPaZenyW6lHLbzIuaB950iiq59Ez7obCPcrZXgFPiEavmfXeFhHxyyRiE95Z5nUCHRkSqvqJwjVreUhpiglGKSloFxPajHhvmtScotNkFJZq6pvx-oyg_r33mA',
    ],
  },
  'P-521': {
    alg: 'ES512',
    jwk: {
      kty: 'EC',
      x: 'AK69Kq0Ex7fknVf4VF6z3vF6-3qFSm03O630AFf43X2gsH8gDwk8YO_rSEyQD-QRKSwrZIID7SMsvtwThMtNaZMp',
      y: 'AcwZ3_LlI66zPce0vqdLv8uqTYKdEMMi_m8_GN45h8MV7QB77fPW1GM4kXnHErrlaODuti6WZWE_YZ4JrftqUBou',
      crv: 'P-521',
      d: 'ASfPjlr0d2VTXSEsWMO0D9oIiXdZk47y-ECLffYStt3cJMqG9l9tQ2lQd1kZA0uls0pwHzO_ZiSa522yqu_y2dqa',
    },
    signatures: [
      'AGMVq7UUKvclsReoUTPuvao47jsoKKTW31qMAKufJrExnBTcSQrCB8j7J__HcqeFUMzdE1s85aJxxPT-uz62KuIqAW1Rfw8FdWFN6pdrtrAjr5PK_ODBZdbO1d5JBOe7tibnuxRgH84g7e0ooW4c6m7LNe1CqOpZJCR7KZaigEQgVpy3',
    ],
  },
  'P-256K': {
    alg: 'ES256K',
    jwk: {
      kty: 'EC',
      x: 'nS0hz6tmgN90CIWCr_V8M1j5N2_JncmfKLGBJBbqI9E',
      y: 'V0qDSCH80w2iYUsDfXPlWvL0vWKFkixp2wG6DINNVGg',
      crv: 'P-256K',
      d: 'RX1jIKmiXFMRqgXa4UCOGjzCYvWhBuHwT4DJUj_DkS0',
    },
    signatures: [
      'Pa-5AGJdYRd2eo1f7kaD759eVqp9rUNC6Rn7xL6wOp464tP0u6yu9xmmJP4QxT0ZV7omBECN9ZzfBPBUZdvDTw',
      'Pa-5AGJdYRd2eo1f7kaD759eVqp9rUNC6Rn7xL6wOp7FHSwLRFNRCOZZ2wHvOsLlYvS24m66qp7gzW44alp98g',
    ],
  },
};
const RSA_1024 = {
  kty: 'RSA',
  n: 'tl0RXQuh8LU4NbPm8iO3LrooAh6sbp5vuoPzomeLr2thLR3YqGtmpo5cbLgYrBpvenjMuVFZozs7uvOe8aAbph--C8vnEXidV3FGRLG581LNZGXWttuforv_mfe1okWmyZgtpsuG179EFkq1uX-JqVAj-6HzF2bjBI1-tuVDs80',
  e: 'AQAB',
  d: 'm-MWsqj891yR_iYY5yfssP7ksFs0HyNEcvXU0CEfYQazfPOkfuPATeQn0a_VN1kprlGQ_2Ew9L3vozIZzoaE2pxyLhVZirQ_4ePBxkOPztE07niAlgWQouJtXSUoul-mdURgs4S0RxBtB8Nj1_eJyZTsg6wctCo5n5ZQRv0tHgE',
  p: '6jGANJhfzqEoZKTjvbk0SAJDhDNO3er527n1-zmQFy4Eqh4gRtqoRT0-DV2KuU-BM7pSKF43aCqE5MwMTY3jDQ',
  q: 'x1gXtREKToRB-CHuekuDS0ywK158D2fL3-VsoJla-VwTsDTLveT8r8GMxlgHwKKTqvLEPbCxkopIQcyuDxPjwQ',
  dp: '5dvX_cdgoapDvySn8tsImXS_V84UJnQu8J7A8-c3qcidA2u2OlT6u5q0gOHC-scyBNdnM__lWfQBo58ypBwTMQ',
  dq: 'npBh-zMcwavOVbOX4Etkmmbb0wOLJy3nK6dwqqaRiLxHJOg6EEiu_pa0hajMMdygHWCR3IhKF0hLhZtr8K5fgQ',
  qi: 'z-VHsM7HA2A_6rYmoG0nXK69x3RnC8I0N7YNBjwI9SKY_Y6NpmZqcM1EBtjzqVOflOjFUdF0KoSCKh5POUCnbA',
};

// ---------------------------------------------------------------------------------------------

const RSA_SIGN_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'] as const;
const RSA_CIPHER_ALGS = ['RSA-OAEP', 'RSA-OAEP-256', 'RSA1_5'] as const;
const ES_ALG: Record<Curve, string> = { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512', 'P-256K': 'ES256K' };
const HASH_OF = (alg: string) => `SHA-${alg.endsWith('K') ? '256' : alg.slice(2, 5)}` as 'SHA-256' | 'SHA-384' | 'SHA-512';
const PRIVATE_FIELDS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'] as const;

const sha = async (hash: string, data: Uint8Array) => new Uint8Array(await crypto.subtle.digest(hash, data as BufferSource));
const flip = (bytes: Uint8Array, at = 0) => {
  const copy = bytes.slice();
  copy[at]! ^= 0x01;
  return copy;
};

/** Runs `fn` and returns the VaultError it throws (failing the test if it throws something else). */
async function refusal(fn: () => unknown): Promise<VaultError> {
  try {
    await fn();
  } catch (err) {
    expect(err).toBeInstanceOf(VaultError);
    expect((err as VaultError).status).toBe(400);
    expect((err as VaultError).code).toBe('BadParameter');
    return err as VaultError;
  }
  throw new Error('expected a BadParameter refusal');
}

// Generated keys, made once for the whole file (RSA-4096 takes seconds).
const generated = new Map<string, { publicJwk: PublicJwk; privateJwk: Jwk }>();
async function key(spec: number | Curve) {
  const id = String(spec);
  if (!generated.has(id)) {
    generated.set(
      id,
      await generateSoftwareKey(typeof spec === 'number' ? { kty: 'RSA', size: spec } : { kty: 'EC', crv: spec }),
    );
  }
  return generated.get(id)!;
}

describe('key generation', () => {
  it.each(RSA_SIZES.map((s) => [s]))(
    'RSA-%i: well-formed JWKs, public part without private fields',
    async (size) => {
      const { publicJwk, privateJwk } = await key(size);
      expect(Object.keys(publicJwk).sort()).toEqual(['e', 'kty', 'n']);
      expect(publicJwk.kty).toBe('RSA');
      expect(publicJwk.e).toBe('AQAB');
      expect(rsaKeySize(publicJwk)).toBe(size);
      expect(fromBase64Url(publicJwk.n!).length).toBe(size / 8);
      expect(Object.keys(privateJwk).sort()).toEqual(['d', 'dp', 'dq', 'e', 'kty', 'n', 'p', 'q', 'qi']);
      expect(publicOf(privateJwk)).toEqual(publicJwk);
      // The generated key passes the import checks too (pairwise consistency included).
      expect(parseImportJwk(privateJwk).publicJwk).toEqual(publicJwk);
    },
    60_000,
  );

  it.each(CURVES.map((c) => [c]))('EC %s: well-formed JWKs, full-width fields', async (crv) => {
    const { publicJwk, privateJwk } = await key(crv);
    const width = crv === 'P-384' ? 48 : crv === 'P-521' ? 66 : 32;
    expect(Object.keys(publicJwk).sort()).toEqual(['crv', 'kty', 'x', 'y']);
    expect(publicJwk).toMatchObject({ kty: 'EC', crv });
    for (const f of ['x', 'y'] as const) expect(fromBase64Url(publicJwk[f]!).length).toBe(width);
    expect(fromBase64Url(privateJwk.d!).length).toBe(width);
    expect(publicOf(privateJwk)).toEqual(publicJwk);
    for (const f of PRIVATE_FIELDS) expect(publicJwk).not.toHaveProperty(f);
    expect(parseImportJwk(privateJwk).crv).toBe(crv);
  });

  it('refuses unsupported sizes and curves', async () => {
    await refusal(() => generateSoftwareKey({ kty: 'RSA', size: 1024 }));
    await refusal(() => generateSoftwareKey({ kty: 'EC', crv: 'P-192' as Curve }));
  });
});

describe('sign and verify, every algorithm on every matching key', () => {
  const cases = [
    ...RSA_SIZES.flatMap((size) => RSA_SIGN_ALGS.map((alg) => [alg, size] as const)),
    ...CURVES.map((crv) => [ES_ALG[crv], crv] as const),
  ];
  it.each(cases)(
    '%s with %s',
    async (alg, spec) => {
      const { publicJwk, privateJwk } = await key(spec);
      const digest = await sha(HASH_OF(alg), utf8(`message for ${alg}`));
      const signature = await sign(privateJwk, alg, digest);
      expect(await verify(publicJwk, alg, digest, signature)).toBe(true);
      expect(await verify(publicJwk, alg, flip(digest), signature)).toBe(false);
      expect(await verify(publicJwk, alg, digest, flip(signature, 5))).toBe(false);
      expect(await verify(publicJwk, alg, digest, flip(signature, signature.length - 1))).toBe(false);
      expect(await verify(publicJwk, alg, digest, signature.subarray(1))).toBe(false);
      expect(await verify(publicJwk, alg, digest, new Uint8Array(0))).toBe(false);
    },
    60_000,
  );

  it('verifies against a key of the same type that did not sign', async () => {
    const digest = await sha('SHA-256', utf8('x'));
    const rsaSig = await sign((await key(2048)).privateJwk, 'PS256', digest);
    const other = parseImportJwk(RSA_2048).publicJwk;
    expect(await verify(other, 'PS256', digest, rsaSig)).toBe(false);
    const ecSig = await sign((await key('P-256')).privateJwk, 'ES256', digest);
    expect(await verify(parseImportJwk(EC_KAT['P-256'].jwk).publicJwk, 'ES256', digest, ecSig)).toBe(false);
  });

  it('a signature of all 0xff bytes (above n) is simply invalid', async () => {
    const { publicJwk } = await key(2048);
    expect(await verify(publicJwk, 'RS256', new Uint8Array(32), new Uint8Array(256).fill(0xff))).toBe(false);
  });
});

describe('interoperability with WebCrypto (which hashes the message itself)', () => {
  const params = (alg: string, crv?: string) => {
    const hash = HASH_OF(alg);
    if (alg.startsWith('RS')) return { name: 'RSASSA-PKCS1-v1_5', hash };
    if (alg.startsWith('PS')) return { name: 'RSA-PSS', hash, saltLength: Number(hash.slice(4)) / 8 };
    return { name: 'ECDSA', hash, namedCurve: crv };
  };
  const cases = [
    ...RSA_SIGN_ALGS.map((alg) => [alg, 2048] as const),
    ...(['P-256', 'P-384', 'P-521'] as const).map((crv) => [ES_ALG[crv], crv] as const),
  ];

  it.each(cases)('%s (%s): WebCrypto verifies ours, we verify WebCrypto’s', async (alg, spec) => {
    const { publicJwk, privateJwk } = await key(spec);
    const crv = typeof spec === 'string' ? spec : undefined;
    const message = utf8(`interop ${alg}`);
    const digest = await sha(HASH_OF(alg), message);
    const p = params(alg, crv);
    const pub = await crypto.subtle.importKey('jwk', publicJwk as JsonWebKey, p, false, ['verify']);
    const ours = await sign(privateJwk, alg, digest);
    expect(await crypto.subtle.verify(p, pub, ours as BufferSource, message as BufferSource)).toBe(true);

    const priv = await crypto.subtle.importKey('jwk', privateJwk as JsonWebKey, p, false, ['sign']);
    for (let i = 0; i < 4; i++) {
      // ECDSA from BoringSSL does not normalize s, so some of these are high-S signatures.
      const theirs = new Uint8Array(await crypto.subtle.sign(p, priv, utf8(`interop ${alg} ${i}`) as BufferSource));
      const d = await sha(HASH_OF(alg), utf8(`interop ${alg} ${i}`));
      expect(await verify(publicJwk, alg, d, theirs)).toBe(true);
    }
  });
});

describe('known answers (fixtures made by node:crypto)', () => {
  const rsa = () => parseImportJwk(RSA_2048);

  it('RS256 and RS512 signatures equal those of node:crypto (PKCS#1 v1.5 is deterministic)', async () => {
    const { privateJwk, publicJwk } = rsa();
    const rs256 = await sign(privateJwk, 'RS256', fromBase64Url(DIGEST.sha256));
    expect(toBase64Url(rs256)).toBe(RSA_KAT.RS256);
    const rs512 = await sign(privateJwk, 'RS512', fromBase64Url(DIGEST.sha512));
    expect(toBase64Url(rs512)).toBe(RSA_KAT.RS512);
    expect(await verify(publicJwk, 'RS256', fromBase64Url(DIGEST.sha256), fromBase64Url(RSA_KAT.RS256))).toBe(true);
  });

  it('verifies node:crypto PS256 and PS384 signatures (salt length = hash length)', async () => {
    const { publicJwk } = rsa();
    expect(await verify(publicJwk, 'PS256', fromBase64Url(DIGEST.sha256), fromBase64Url(RSA_KAT.PS256))).toBe(true);
    expect(await verify(publicJwk, 'PS384', fromBase64Url(DIGEST.sha384), fromBase64Url(RSA_KAT.PS384))).toBe(true);
    expect(await verify(publicJwk, 'PS256', fromBase64Url(DIGEST.sha256), fromBase64Url(RSA_KAT.RS256))).toBe(false);
    expect(await verify(publicJwk, 'RS256', fromBase64Url(DIGEST.sha256), fromBase64Url(RSA_KAT.PS256))).toBe(false);
  });

  it('PS256 signatures are randomized (fresh salt) and each one verifies', async () => {
    const { privateJwk, publicJwk } = rsa();
    const digest = fromBase64Url(DIGEST.sha256);
    const a = await sign(privateJwk, 'PS256', digest);
    const b = await sign(privateJwk, 'PS256', digest);
    expect(toBase64Url(a)).not.toBe(toBase64Url(b));
    expect(await verify(publicJwk, 'PS256', digest, b)).toBe(true);
  });

  it.each(Object.entries(EC_KAT))('verifies node:crypto %s signatures, low-S and high-S alike', async (crv, kat) => {
    const { publicJwk, privateJwk, crv: parsedCrv } = parseImportJwk(kat.jwk);
    expect(parsedCrv).toBe(crv);
    const digest = fromBase64Url(kat.alg === 'ES384' ? DIGEST.sha384 : kat.alg === 'ES512' ? DIGEST.sha512 : DIGEST.sha256);
    for (const sig of kat.signatures) expect(await verify(publicJwk, kat.alg, digest, fromBase64Url(sig))).toBe(true);
    expect(await verify(publicJwk, kat.alg, flip(digest), fromBase64Url(kat.signatures[0]!))).toBe(false);
    // and our own signature with the imported key
    expect(await verify(publicJwk, kat.alg, digest, await sign(privateJwk, kat.alg, digest))).toBe(true);
  });

  it.each(RSA_CIPHER_ALGS.map((a) => [a]))('decrypts a node:crypto %s ciphertext', async (alg) => {
    const plain = await decrypt(rsa().privateJwk, alg, fromBase64Url(RSA_KAT[alg]));
    expect(toBase64Url(plain)).toBe(RSA_KAT.plaintext);
  });
});

describe('encrypt and decrypt', () => {
  const cases = RSA_SIZES.flatMap((size) => RSA_CIPHER_ALGS.map((alg) => [alg, size] as const));
  it.each(cases)(
    '%s round trip with RSA-%i',
    async (alg, size) => {
      const { publicJwk, privateJwk } = await key(size);
      const plaintext = crypto.getRandomValues(new Uint8Array(32));
      const ciphertext = await encrypt(publicJwk, alg, plaintext);
      expect(ciphertext.length).toBe(size / 8);
      expect(await decrypt(privateJwk, alg, ciphertext)).toEqual(plaintext);
      // Randomized: the same plaintext never gives the same ciphertext twice.
      expect(toBase64Url(await encrypt(publicJwk, alg, plaintext))).not.toBe(toBase64Url(ciphertext));
    },
    60_000,
  );

  it.each(RSA_CIPHER_ALGS.map((a) => [a]))('%s: the longest plaintext fits, one byte more is refused', async (alg) => {
    const { publicJwk, privateJwk } = await key(2048);
    const max = alg === 'RSA-OAEP' ? 256 - 42 : alg === 'RSA-OAEP-256' ? 256 - 66 : 256 - 11;
    const longest = crypto.getRandomValues(new Uint8Array(max));
    expect(await decrypt(privateJwk, alg, await encrypt(publicJwk, alg, longest))).toEqual(longest);
    await refusal(() => encrypt(publicJwk, alg, new Uint8Array(max + 1)));
    expect(await decrypt(privateJwk, alg, await encrypt(publicJwk, alg, new Uint8Array(0)))).toEqual(new Uint8Array(0));
  });

  it.each(RSA_CIPHER_ALGS.map((a) => [a]))('%s: wrong ciphertexts fail with one generic BadParameter', async (alg) => {
    const { publicJwk, privateJwk } = await key(2048);
    const ciphertext = await encrypt(publicJwk, alg, utf8('secret'));
    const messages = new Set<string>();
    for (const bad of [
      flip(ciphertext, 100),
      flip(ciphertext, 255),
      ciphertext.subarray(1),
      new Uint8Array(256).fill(0xff), // above n
      new Uint8Array(256), // zero: no padding at all
      new Uint8Array(0),
      await encrypt(publicJwk, alg === 'RSA1_5' ? 'RSA-OAEP' : 'RSA1_5', utf8('secret')), // another padding
    ]) {
      messages.add((await refusal(() => decrypt(privateJwk, alg, bad))).message);
    }
    expect([...messages]).toEqual(['The ciphertext could not be decrypted with this key and algorithm.']);
    // and the other key cannot decrypt it
    await refusal(() => decrypt(parseImportJwk(RSA_2048).privateJwk, alg, ciphertext));
  });

  it('EC keys cannot encrypt or decrypt', async () => {
    const { publicJwk, privateJwk } = await key('P-256');
    await refusal(() => encrypt(publicJwk, 'RSA-OAEP', utf8('x')));
    await refusal(() => decrypt(privateJwk, 'RSA-OAEP', new Uint8Array(64)));
  });
});

describe('RSA1_5 padding', () => {
  const block = (header: number[], psLen: number, rest: number[], k = 64) => {
    const em = new Uint8Array(k);
    em.set(header);
    em.fill(0x5a, header.length, header.length + psLen);
    em.set(rest, header.length + psLen);
    return em;
  };

  it('decodes what it encodes, with a random nonzero PS', () => {
    const message = utf8('hello');
    const em = emePkcs1Encode(message, 64);
    expect(em.subarray(0, 2)).toEqual(new Uint8Array([0, 2]));
    expect(em.subarray(2, 64 - message.length - 1).includes(0)).toBe(false);
    expect(emePkcs1Decode(em)).toEqual(message);
    expect(emePkcs1Decode(emePkcs1Encode(new Uint8Array(0), 64))).toEqual(new Uint8Array(0));
    expect(() => emePkcs1Encode(new Uint8Array(54), 64)).toThrow();
  });

  it('refuses any malformed block', () => {
    expect(emePkcs1Decode(block([0, 2], 8, [0, 7, 7], 13))).toEqual(new Uint8Array([7, 7]));
    expect(emePkcs1Decode(block([0, 2], 7, [0, 7, 7], 12))).toBeNull(); // PS too short
    expect(emePkcs1Decode(block([0, 2], 62, []))).toBeNull(); // no separator
    expect(emePkcs1Decode(block([1, 2], 8, [0, 7]))).toBeNull();
    expect(emePkcs1Decode(block([0, 1], 8, [0, 7]))).toBeNull(); // signature padding
    expect(emePkcs1Decode(block([0, 2, 0], 8, [0, 7]))).toBeNull(); // separator right away
  });
});

describe('algorithm rules', () => {
  it('refuses RSA algorithms on EC keys and EC algorithms on RSA keys', async () => {
    const e = await refusal(() => checkAlgorithm('sign', 'RS256', { kind: 'EC', crv: 'P-256' }));
    expect(e.message).toMatch(/incompatible/);
    await refusal(() => checkAlgorithm('verify', 'ES256', { kind: 'RSA-HSM', size: 2048 }));
    await refusal(() => checkAlgorithm('encrypt', 'RSA-OAEP', { kind: 'oct-HSM', size: 256 }));
    await refusal(() => checkAlgorithm('encrypt', 'A256GCM', { kind: 'RSA', size: 2048 }));
    await refusal(() => checkAlgorithm('wrapKey', 'A256KW', { kind: 'RSA', size: 2048 }));
    // the operations themselves check too
    const digest = new Uint8Array(32);
    await refusal(async () => sign((await key(2048)).privateJwk, 'ES256', digest));
    await refusal(async () => sign((await key('P-256')).privateJwk, 'PS256', digest));
  });

  it('ES algorithms only on their curve', async () => {
    const e = await refusal(() => checkAlgorithm('sign', 'ES384', { kind: 'EC', crv: 'P-256' }));
    expect(e.message).toBe(
      "Key and signing algorithm are incompatible. The key uses curve 'P-256', and algorithm 'ES384' can only be used with curve 'P-384'.",
    );
    await refusal(() => checkAlgorithm('sign', 'ES256', { kind: 'EC-HSM', crv: 'P-256K' }));
    await refusal(() => checkAlgorithm('sign', 'ES256K', { kind: 'EC', crv: 'P-256' }));
    await refusal(() => checkAlgorithm('verify', 'ES512', { kind: 'EC', crv: 'P-384' }));
    await refusal(async () => sign((await key('P-384')).privateJwk, 'ES256', new Uint8Array(32)));
    for (const crv of CURVES) expect(checkAlgorithm('sign', ES_ALG[crv], { kind: 'EC-HSM', crv })).toBe(ES_ALG[crv]);
  });

  it('AES algorithms need a key of their size', async () => {
    const e = await refusal(() => checkAlgorithm('encrypt', 'A128GCM', { kind: 'oct-HSM', size: 256 }));
    expect(e.message).toMatch(/128-bit/);
    await refusal(() => checkAlgorithm('wrapKey', 'A256KW', { kind: 'oct-HSM', size: 192 }));
    expect(checkAlgorithm('encrypt', 'A256GCM', { kind: 'oct-HSM', size: 256 })).toBe('A256GCM');
    expect(checkAlgorithm('decrypt', 'A192CBCPAD', { kind: 'oct-HSM', size: 192 })).toBe('A192CBCPAD');
    expect(checkAlgorithm('unwrapKey', 'A128KW', { kind: 'oct-HSM', size: 128 })).toBe('A128KW');
  });

  it('refuses algorithms of another operation', async () => {
    await refusal(() => checkAlgorithm('encrypt', 'RS256', { kind: 'RSA', size: 2048 }));
    await refusal(() => checkAlgorithm('sign', 'RSA-OAEP', { kind: 'RSA', size: 2048 }));
    await refusal(() => checkAlgorithm('encrypt', 'A256KW', { kind: 'oct-HSM', size: 256 }));
    await refusal(() => checkAlgorithm('wrapKey', 'A256GCM', { kind: 'oct-HSM', size: 256 }));
    for (const op of ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey'] as const) {
      for (const alg of RSA_CIPHER_ALGS) expect(checkAlgorithm(op, alg, { kind: 'RSA-HSM', size: 3072 })).toBe(alg);
    }
  });

  it('refuses unknown or missing algorithms, never echoing long input', async () => {
    for (const alg of ['RS1', 'rs256', 'HS256', 'RSNULL', 'toString', '__proto__', 'CKM_AES_KEY_WRAP']) {
      await refusal(() => checkAlgorithm('sign', alg, { kind: 'RSA', size: 2048 }));
    }
    await refusal(() => checkAlgorithm('sign', undefined, { kind: 'RSA', size: 2048 }));
    await refusal(() => checkAlgorithm('sign', 256, { kind: 'RSA', size: 2048 }));
    const e = await refusal(() => checkAlgorithm('sign', 'X'.repeat(500), { kind: 'RSA', size: 2048 }));
    expect(e.message.length).toBeLessThan(120);
  });

  it('checks digest lengths', async () => {
    const e = await refusal(() => checkDigest('RS256', new Uint8Array(31)));
    expect(e.message).toBe("Invalid length of 'value': 31 bytes. RS256 requires 32 bytes, encoded with base64url.");
    await refusal(() => checkDigest('ES384', new Uint8Array(32)));
    await refusal(() => checkDigest('PS512', new Uint8Array(48)));
    await refusal(() => checkDigest('ES256K', new Uint8Array(64)));
    await refusal(() => checkDigest('RSA-OAEP', new Uint8Array(32)));
    for (const [alg, len] of [
      ['ES256K', 32],
      ['ES512', 64],
      ['PS384', 48],
      ['RS256', 32],
    ] as const) {
      expect(() => checkDigest(alg, new Uint8Array(len))).not.toThrow();
    }
    await refusal(async () => sign((await key(2048)).privateJwk, 'RS256', new Uint8Array(31)));
    await refusal(async () => verify((await key('P-521')).publicJwk, 'ES512', new Uint8Array(32), new Uint8Array(132)));
  });

  it('key_ops per key type', () => {
    expect(KEY_OPS).toEqual(['encrypt', 'decrypt', 'sign', 'verify', 'wrapKey', 'unwrapKey', 'import', 'export']);
    expect(defaultKeyOps('RSA')).toEqual(['encrypt', 'decrypt', 'sign', 'verify', 'wrapKey', 'unwrapKey']);
    expect(defaultKeyOps('RSA-HSM')).toEqual(defaultKeyOps('RSA'));
    expect(defaultKeyOps('EC')).toEqual(['sign', 'verify']);
    expect(defaultKeyOps('EC-HSM')).toEqual(['sign', 'verify']);
    expect(defaultKeyOps('oct-HSM')).toEqual(['encrypt', 'decrypt', 'wrapKey', 'unwrapKey']);
    expect(validKeyOps('EC').has('encrypt')).toBe(false);
    expect(validKeyOps('EC').has('wrapKey')).toBe(false);
    expect(validKeyOps('EC-HSM').has('sign')).toBe(true);
    expect(validKeyOps('oct-HSM').has('sign')).toBe(false);
    expect(validKeyOps('RSA').has('export')).toBe(true);
    for (const kind of ['RSA', 'EC', 'RSA-HSM', 'EC-HSM', 'oct-HSM'] as const) {
      for (const op of validKeyOps(kind)) expect(KEY_OPS).toContain(op);
    }
  });
});

describe('parseImportJwk', () => {
  it('normalizes: kty without -HSM, only key material, minimal RSA integers, full-width EC fields', () => {
    const nWithZero = toBase64Url(new Uint8Array([0, ...fromBase64Url(RSA_2048.n)]));
    const parsed = parseImportJwk({ ...RSA_2048, kty: 'RSA-HSM', n: nWithZero, kid: 'x', key_ops: ['sign'] });
    expect(parsed.kty).toBe('RSA');
    expect(parsed.size).toBe(2048);
    expect(parsed.privateJwk.n).toBe(RSA_2048.n);
    expect(Object.keys(parsed.privateJwk).sort()).toEqual(['d', 'dp', 'dq', 'e', 'kty', 'n', 'p', 'q', 'qi']);
    expect(parsed.publicJwk).toEqual({ kty: 'RSA', n: RSA_2048.n, e: 'AQAB' });

    const ec = EC_KAT['P-521'].jwk;
    const ecParsed = parseImportJwk({ ...ec, kty: 'EC-HSM' });
    expect(ecParsed).toMatchObject({ kty: 'EC', crv: 'P-521', publicJwk: { kty: 'EC', crv: 'P-521', x: ec.x, y: ec.y } });
    expect(ecParsed.size).toBeUndefined();
  });

  it('pads EC fields some encoders shorten', () => {
    // P-521 fields are 66 bytes whose first byte is 0 or 1; this fixture's x starts with 0.
    const ec = EC_KAT['P-521'].jwk;
    const x = fromBase64Url(ec.x);
    expect(x[0]).toBe(0);
    const parsed = parseImportJwk({ ...ec, x: toBase64Url(x.subarray(1)) });
    expect(parsed.publicJwk.x).toBe(ec.x);
    expect(parsed.privateJwk.x).toBe(ec.x);
    // Longer than the curve allows is refused, even with a leading zero.
    expect(() => parseImportJwk({ ...ec, x: toBase64Url(new Uint8Array([0, ...x])) })).toThrow(VaultError);
  });

  it('refuses keys without a private part', async () => {
    const { d: _d, ...rsaPublic } = RSA_2048;
    const e = await refusal(() => parseImportJwk(rsaPublic));
    expect(e.message).toMatch(/'d'/);
    const { d: _e, ...ecPublic } = EC_KAT['P-256'].jwk;
    await refusal(() => parseImportJwk(ecPublic));
    const { qi: _qi, ...noQi } = RSA_2048;
    await refusal(() => parseImportJwk(noQi));
  });

  it('refuses a public part that does not match the private part', async () => {
    const other = (await key(2048)).privateJwk;
    const e = await refusal(() => parseImportJwk({ ...RSA_2048, n: other.n }));
    expect(e.message).toMatch(/does not match/);
    await refusal(() => parseImportJwk({ ...RSA_2048, d: other.d }));
    await refusal(() => parseImportJwk({ ...RSA_2048, dp: other.dp }));
    await refusal(() => parseImportJwk({ ...RSA_2048, qi: other.qi }));
    await refusal(() => parseImportJwk({ ...RSA_2048, e: 'Aw' })); // e = 3 with d for 65537
    const ec = EC_KAT['P-256'].jwk;
    const otherEc = (await key('P-256')).privateJwk;
    await refusal(() => parseImportJwk({ ...ec, x: otherEc.x }));
    await refusal(() => parseImportJwk({ ...ec, d: otherEc.d }));
    await refusal(() => parseImportJwk({ ...ec, y: toBase64Url(flip(fromBase64Url(ec.y), 31)) })); // off the curve
    await refusal(() => parseImportJwk({ ...ec, d: toBase64Url(new Uint8Array(32)) })); // d = 0
    // P-256 material labelled as another curve
    await refusal(() => parseImportJwk({ ...ec, crv: 'P-256K' }));
  });

  it('refuses unknown curves, unsupported sizes and exponents, other key types', async () => {
    const e = await refusal(() => parseImportJwk({ ...EC_KAT['P-256'].jwk, crv: 'P-192' }));
    expect(e.message).toMatch(/curve 'P-192'/);
    await refusal(() => parseImportJwk({ ...EC_KAT['P-256K'].jwk, crv: 'SECP256K1' }));
    const small = await refusal(() => parseImportJwk(RSA_1024));
    expect(small.message).toMatch(/1024/);
    await refusal(() => parseImportJwk({ ...RSA_2048, e: 'AQAA' })); // even
    await refusal(() => parseImportJwk({ ...RSA_2048, e: 'AQ' })); // 1
    await refusal(() => parseImportJwk({ kty: 'oct', k: 'AAAA' }));
    await refusal(() => parseImportJwk({ ...RSA_2048, kty: 'rsa' }));
    await refusal(() => parseImportJwk(null));
    await refusal(() => parseImportJwk('{"kty":"RSA"}'));
    await refusal(() => parseImportJwk({ ...RSA_2048, n: 'not base64url!' }));
    await refusal(() => parseImportJwk({ ...RSA_2048, n: 42 }));
  });

  it('never puts key material into its messages', async () => {
    const other = (await key(2048)).privateJwk;
    const attempts: unknown[] = [
      { ...RSA_2048, n: other.n },
      { ...RSA_2048, d: other.d },
      { ...EC_KAT['P-256'].jwk, x: (await key('P-256')).publicJwk.x },
      RSA_1024,
    ];
    const secrets = [
      ...Object.values(RSA_2048),
      ...Object.values(RSA_1024),
      ...Object.values(EC_KAT['P-256'].jwk),
      other.d!,
      other.n!,
    ].filter((v) => v.length > 8);
    for (const jwk of attempts) {
      const { message } = await refusal(() => parseImportJwk(jwk));
      for (const s of secrets) expect(message).not.toContain(s.slice(0, 12));
    }
  });
});
