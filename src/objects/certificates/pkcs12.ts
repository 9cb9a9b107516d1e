// PKCS#12 (PFX) as certificates exchange it: the secret of an exportable certificate is a PFX of
// its chain and key, and an import may bring one. Written unencrypted inside with an HMAC-SHA-256
// integrity MAC (what Azure hands out: a PFX without a password, read with `-passin pass:`).
// Read: MACs with SHA-1/SHA-2 and bags encrypted with PBES2 (PBKDF2 + AES-CBC, what OpenSSL 3
// writes by default). The legacy RC2/3DES encryption has no WebCrypto primitive and is refused.
import { ContentInfo } from '@peculiar/asn1-cms';
import { AuthenticatedSafe, CertBag, MacData, PFX, SafeBag, SafeContents } from '@peculiar/asn1-pfx';
import { EncryptedPrivateKeyInfo } from '@peculiar/asn1-pkcs8';
import { DigestInfo } from '@peculiar/asn1-rsa';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier } from '@peculiar/asn1-x509';
import { badParameter } from '../../core/errors';
import { bs, buffer, children, concat, equalBytes } from './der';

const DATA = '1.2.840.113549.1.7.1';
const ENCRYPTED_DATA = '1.2.840.113549.1.7.6';
const KEY_BAG = '1.2.840.113549.1.12.10.1.1';
const SHROUDED_KEY_BAG = '1.2.840.113549.1.12.10.1.2';
const CERT_BAG = '1.2.840.113549.1.12.10.1.3';
const X509_CERT = '1.2.840.113549.1.9.22.1';
const PBES2 = '1.2.840.113549.1.5.13';
const PBKDF2 = '1.2.840.113549.1.5.12';

const DIGESTS: Record<string, { name: string; size: number }> = {
  '1.3.14.3.2.26': { name: 'SHA-1', size: 20 },
  '2.16.840.1.101.3.4.2.1': { name: 'SHA-256', size: 32 },
  '2.16.840.1.101.3.4.2.2': { name: 'SHA-384', size: 48 },
  '2.16.840.1.101.3.4.2.3': { name: 'SHA-512', size: 64 },
};
const HMACS: Record<string, string> = {
  '1.2.840.113549.2.7': 'SHA-1',
  '1.2.840.113549.2.9': 'SHA-256',
  '1.2.840.113549.2.10': 'SHA-384',
  '1.2.840.113549.2.11': 'SHA-512',
};
const AES_CBC: Record<string, number> = {
  '2.16.840.1.101.3.4.1.2': 128,
  '2.16.840.1.101.3.4.1.22': 192,
  '2.16.840.1.101.3.4.1.42': 256,
};
/** Iteration counts above these are refused: they would only burn the Worker's CPU time. */
const MAX_MAC_ITERATIONS = 10_000;
const MAX_PBKDF2_ITERATIONS = 100_000;
const WRITE_ITERATIONS = 2048;

const corrupt = () => badParameter('The PFX content is not a valid PKCS#12 file.');
const wrongPassword = () => badParameter('The PFX password is incorrect, or the PFX is corrupt.');

/** PKCS#12's password encoding (RFC 7292 B.1): UTF-16BE with a terminating NUL. */
function bmpPassword(password: string): Uint8Array {
  const out = new Uint8Array((password.length + 1) * 2);
  for (let i = 0; i < password.length; i++) {
    out[i * 2] = password.charCodeAt(i) >> 8;
    out[i * 2 + 1] = password.charCodeAt(i) & 0xff;
  }
  return out;
}

/** PKCS#12 key derivation (RFC 7292 appendix B.2); only the MAC key (id 3) is used here. */
async function pkcs12Kdf(
  hash: { name: string; size: number },
  password: Uint8Array,
  salt: Uint8Array,
  iterations: number,
  n: number,
): Promise<Uint8Array> {
  const v = hash.size > 32 ? 128 : 64;
  const fill = (src: Uint8Array) => {
    if (src.length === 0) return new Uint8Array(0);
    const out = new Uint8Array(v * Math.ceil(src.length / v));
    for (let i = 0; i < out.length; i++) out[i] = src[i % src.length]!;
    return out;
  };
  const D = new Uint8Array(v).fill(3);
  const I = concat(fill(salt), fill(password));
  const out = new Uint8Array(n);
  for (let done = 0; done < n;) {
    let A = concat(D, I);
    for (let r = 0; r < iterations; r++) A = new Uint8Array(await crypto.subtle.digest(hash.name, bs(A)));
    out.set(A.subarray(0, Math.min(A.length, n - done)), done);
    done += A.length;
    if (done >= n) break;
    const B = fill(A).subarray(0, v);
    for (let j = 0; j < I.length; j += v) {
      let carry = 1;
      for (let k = v - 1; k >= 0; k--) {
        const sum = I[j + k]! + B[k]! + carry;
        I[j + k] = sum & 0xff;
        carry = sum >> 8;
      }
    }
  }
  return out;
}

async function hmac(hashName: string, key: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  const k = await crypto.subtle.importKey('raw', bs(key), { name: 'HMAC', hash: hashName }, false, ['sign']);
  return new Uint8Array(await crypto.subtle.sign('HMAC', k, bs(data)));
}

const octets = (der: ArrayBuffer) => new Uint8Array(AsnConvert.parse(der, OctetString).buffer);
const octetString = (bytes: Uint8Array) => AsnConvert.serialize(new OctetString(buffer(bytes)));

/** A PFX of `certs` (leaf first) and, when given, the leaf's PKCS#8 key, MACed under `password`. */
export async function writePfx(certs: Uint8Array[], pkcs8: Uint8Array | null, password = ''): Promise<Uint8Array> {
  // No bag attributes: one key, and the leaf is the first certificate (how readers pair them).
  const bags: SafeBag[] = [];
  if (pkcs8) bags.push(new SafeBag({ bagId: KEY_BAG, bagValue: buffer(pkcs8) }));
  for (const der of certs) {
    bags.push(
      new SafeBag({
        bagId: CERT_BAG,
        bagValue: AsnConvert.serialize(new CertBag({ certId: X509_CERT, certValue: octetString(der) })),
      }),
    );
  }
  const safe = new Uint8Array(AsnConvert.serialize(new SafeContents(bags)));
  const authSafe = new Uint8Array(
    AsnConvert.serialize(new AuthenticatedSafe([new ContentInfo({ contentType: DATA, content: octetString(safe) })])),
  );
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const sha256 = DIGESTS['2.16.840.1.101.3.4.2.1']!;
  const key = await pkcs12Kdf(sha256, bmpPassword(password), salt, WRITE_ITERATIONS, 32);
  const mac = await hmac('SHA-256', key, authSafe);
  const pfx = new PFX({
    version: 3,
    authSafe: new ContentInfo({ contentType: DATA, content: octetString(authSafe) }),
    macData: new MacData({
      mac: new DigestInfo({
        digestAlgorithm: new AlgorithmIdentifier({ algorithm: '2.16.840.1.101.3.4.2.1', parameters: null }),
        digest: new OctetString(buffer(mac)),
      }),
      macSalt: new OctetString(buffer(salt)),
      iterations: WRITE_ITERATIONS,
    }),
  });
  return new Uint8Array(AsnConvert.serialize(pfx));
}

/** The certificates and private key (PKCS#8) of a PFX; BadParameter for a wrong password or bad file. */
export async function readPfx(pfxDer: Uint8Array, password: string): Promise<{ certs: Uint8Array[]; pkcs8: Uint8Array | null }> {
  let pfx: PFX;
  let authSafeBytes: Uint8Array;
  try {
    pfx = AsnConvert.parse(pfxDer, PFX);
    if (pfx.authSafe.contentType !== DATA) throw corrupt();
    authSafeBytes = octets(pfx.authSafe.content);
  } catch {
    throw corrupt();
  }
  if (pfx.macData) await verifyMac(pfx.macData, authSafeBytes, password);
  const certs: Uint8Array[] = [];
  let pkcs8: Uint8Array | null = null;
  let infos: ContentInfo[];
  try {
    infos = [...AsnConvert.parse(authSafeBytes, AuthenticatedSafe)];
  } catch {
    throw corrupt();
  }
  for (const info of infos) {
    let safe: Uint8Array;
    if (info.contentType === DATA) safe = octets(info.content);
    else if (info.contentType === ENCRYPTED_DATA) safe = await decryptEncryptedData(new Uint8Array(info.content), password);
    else continue;
    for (const bag of AsnConvert.parse(safe, SafeContents)) {
      if (bag.bagId === KEY_BAG) pkcs8 ??= new Uint8Array(bag.bagValue);
      else if (bag.bagId === SHROUDED_KEY_BAG) {
        const enc = AsnConvert.parse(bag.bagValue, EncryptedPrivateKeyInfo);
        pkcs8 ??= await pbes2Decrypt(enc.encryptionAlgorithm, new Uint8Array(enc.encryptedData.buffer), password);
      } else if (bag.bagId === CERT_BAG) {
        const cert = AsnConvert.parse(bag.bagValue, CertBag);
        if (cert.certId === X509_CERT) certs.push(octets(cert.certValue));
      }
    }
  }
  return { certs, pkcs8 };
}

async function verifyMac(macData: MacData, authSafe: Uint8Array, password: string): Promise<void> {
  const hash = DIGESTS[macData.mac.digestAlgorithm.algorithm];
  if (!hash) throw badParameter('The PFX uses an unsupported integrity algorithm.');
  if (macData.iterations > MAX_MAC_ITERATIONS) throw badParameter('The PFX integrity check uses too many iterations.');
  const salt = new Uint8Array(macData.macSalt.buffer);
  const expected = new Uint8Array(macData.mac.digest.buffer);
  // An empty password is written either as a lone NUL (OpenSSL) or as nothing at all (Windows).
  const candidates = password === '' ? [bmpPassword(''), new Uint8Array(0)] : [bmpPassword(password)];
  for (const candidate of candidates) {
    const key = await pkcs12Kdf(hash, candidate, salt, macData.iterations, hash.size);
    if (equalBytes(await hmac(hash.name, key, authSafe), expected)) return;
  }
  throw wrongPassword();
}

/** CMS EncryptedData { version, EncryptedContentInfo { type, algorithm, [0] IMPLICIT content } }. */
async function decryptEncryptedData(der: Uint8Array, password: string): Promise<Uint8Array> {
  const [, eci] = children(der);
  if (!eci) throw corrupt();
  const [, alg, content] = children(eci.der);
  if (!alg || !content) throw corrupt();
  // [0] IMPLICIT OCTET STRING: primitive (0x80), or constructed (0xa0) from OCTET STRING pieces.
  const data =
    content.tag === 0x80
      ? content.content
      : concat(...children(concat(Uint8Array.of(0x30), content.der.subarray(1))).map((c) => c.content));
  return pbes2Decrypt(AsnConvert.parse(alg.der, AlgorithmIdentifier), data, password);
}

async function pbes2Decrypt(alg: AlgorithmIdentifier, data: Uint8Array, password: string): Promise<Uint8Array> {
  if (alg.algorithm !== PBES2 || !alg.parameters) {
    throw badParameter(
      'The PFX is encrypted with a legacy algorithm (RC2 or 3DES); export it with AES (PBES2), e.g. OpenSSL 3 without -legacy.',
    );
  }
  const [kdfDer, encDer] = children(new Uint8Array(alg.parameters));
  if (!kdfDer || !encDer) throw corrupt();
  const kdf = AsnConvert.parse(kdfDer.der, AlgorithmIdentifier);
  const enc = AsnConvert.parse(encDer.der, AlgorithmIdentifier);
  const bits = AES_CBC[enc.algorithm];
  if (kdf.algorithm !== PBKDF2 || !kdf.parameters || !bits || !enc.parameters)
    throw badParameter('The PFX uses an unsupported encryption algorithm.');
  const params = children(new Uint8Array(kdf.parameters));
  const salt = params[0]?.content;
  const iterations = params[1] ? params[1].content.reduce((n, b) => n * 256 + b, 0) : 0;
  const prfDer = params.find((p, i) => i >= 2 && p.tag === 0x30);
  const prf = prfDer ? HMACS[AsnConvert.parse(prfDer.der, AlgorithmIdentifier).algorithm] : 'SHA-1';
  if (!salt || iterations < 1 || !prf) throw badParameter('The PFX uses an unsupported key derivation.');
  if (iterations > MAX_PBKDF2_ITERATIONS) throw badParameter('The PFX key derivation uses too many iterations.');
  const base = await crypto.subtle.importKey('raw', new TextEncoder().encode(password), 'PBKDF2', false, ['deriveKey']);
  const key = await crypto.subtle.deriveKey(
    { name: 'PBKDF2', salt: bs(salt), iterations, hash: prf },
    base,
    { name: 'AES-CBC', length: bits },
    false,
    ['decrypt'],
  );
  const iv = octets(enc.parameters);
  try {
    return new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-CBC', iv: bs(iv) }, key, bs(data)));
  } catch {
    throw wrongPassword();
  }
}
