/** RSA paddings from RFC 8017, over a digest the caller computed (Azure sends digests). */
import { fromHex, randomBytes, timingSafeEqual } from '../../core/encoding';
import { digestLength, type HashName } from './algorithms';
import { concat } from './bytes';

const hash = async (name: HashName, data: Uint8Array) => new Uint8Array(await crypto.subtle.digest(name, data as BufferSource));

/** DER prefix of DigestInfo { AlgorithmIdentifier(hash, NULL), OCTET STRING digest } (RFC 8017 §9.2 note 1). */
const DIGEST_INFO: Record<'SHA-256' | 'SHA-384' | 'SHA-512', Uint8Array> = {
  'SHA-256': hex('3031300d060960864801650304020105000420'),
  'SHA-384': hex('3041300d060960864801650304020205000430'),
  'SHA-512': hex('3051300d060960864801650304020305000440'),
};

function hex(text: string): Uint8Array {
  return fromHex(text);
}

/** EMSA-PKCS1-v1_5: 00 01 FF…FF 00 DigestInfo, k bytes. Deterministic, so also the verifier's reference. */
export function emsaPkcs1(hashName: HashName, digest: Uint8Array, k: number): Uint8Array {
  const prefix = DIGEST_INFO[hashName as keyof typeof DIGEST_INFO];
  if (!prefix) throw new Error('unsupported hash for PKCS#1 v1.5 signatures');
  const t = concat(prefix, digest);
  if (k < t.length + 11) throw new Error('RSA modulus too short for this digest');
  const em = new Uint8Array(k).fill(0xff);
  em[0] = 0x00;
  em[1] = 0x01;
  em[k - t.length - 1] = 0x00;
  em.set(t, k - t.length);
  return em;
}

async function mgf1(hashName: HashName, seed: Uint8Array, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  const counter = new Uint8Array(4);
  for (let done = 0, i = 0; done < length; i++) {
    new DataView(counter.buffer).setUint32(0, i);
    const block = await hash(hashName, concat(seed, counter));
    out.set(block.subarray(0, Math.min(block.length, length - done)), done);
    done += block.length;
  }
  return out;
}

/**
 * EMSA-PSS-ENCODE (RFC 8017 §9.1.1) with MGF1 over the same hash and a salt as long as the hash,
 * as RFC 7518 defines PS256/384/512. Returns the k-byte block for the raw private operation.
 */
export async function emsaPssEncode(hashName: HashName, digest: Uint8Array, modBits: number): Promise<Uint8Array> {
  const hLen = digestLength(hashName);
  const sLen = hLen;
  const emBits = modBits - 1;
  const emLen = Math.ceil(emBits / 8);
  if (emLen < hLen + sLen + 2) throw new Error('RSA modulus too short for this digest');
  const salt = randomBytes(sLen);
  const h = await hash(hashName, concat(new Uint8Array(8), digest, salt));
  const db = new Uint8Array(emLen - hLen - 1);
  db[db.length - sLen - 1] = 0x01;
  db.set(salt, db.length - sLen);
  const mask = await mgf1(hashName, h, db.length);
  for (let i = 0; i < db.length; i++) db[i]! ^= mask[i]!;
  db[0]! &= 0xff >>> (8 * emLen - emBits);
  const em = concat(db, h, new Uint8Array([0xbc]));
  // The raw operation takes k bytes; emLen is k - 1 when modBits ≡ 1 (mod 8).
  const k = Math.ceil(modBits / 8);
  return k === emLen ? em : concat(new Uint8Array(k - emLen), em);
}

/** EMSA-PSS-VERIFY (RFC 8017 §9.1.2), salt length = hash length; `block` is s^e mod n, k bytes. */
export async function emsaPssVerify(
  hashName: HashName,
  digest: Uint8Array,
  block: Uint8Array,
  modBits: number,
): Promise<boolean> {
  const hLen = digestLength(hashName);
  const sLen = hLen;
  const emBits = modBits - 1;
  const emLen = Math.ceil(emBits / 8);
  if (emLen < hLen + sLen + 2) return false;
  // Leading bytes beyond emLen must be zero (I2OSP(m, emLen) would fail otherwise).
  for (let i = 0; i < block.length - emLen; i++) if (block[i] !== 0) return false;
  const em = block.subarray(block.length - emLen);
  if (em[emLen - 1] !== 0xbc) return false;
  const maskedDb = em.subarray(0, emLen - hLen - 1);
  const h = em.subarray(emLen - hLen - 1, emLen - 1);
  const topMask = 0xff >>> (8 * emLen - emBits);
  if ((maskedDb[0]! & ~topMask) !== 0) return false;
  const mask = await mgf1(hashName, h, maskedDb.length);
  const db = maskedDb.map((b, i) => b ^ mask[i]!);
  db[0]! &= topMask;
  const psLen = emLen - hLen - sLen - 2;
  for (let i = 0; i < psLen; i++) if (db[i] !== 0) return false;
  if (db[psLen] !== 0x01) return false;
  const salt = db.subarray(db.length - sLen);
  const h2 = await hash(hashName, concat(new Uint8Array(8), digest, salt));
  return timingSafeEqual(h, h2);
}

/** EME-PKCS1-v1_5 encoding (RFC 8017 §7.2.1): 00 02 PS(random, nonzero, ≥ 8) 00 M, k bytes. */
export function emePkcs1Encode(message: Uint8Array, k: number): Uint8Array {
  if (message.length > k - 11) throw new Error('message too long');
  const psLen = k - message.length - 3;
  const ps = new Uint8Array(psLen);
  // Draw random bytes and keep the nonzero ones until PS is full.
  for (let filled = 0; filled < psLen;) {
    for (const b of randomBytes(psLen - filled + 16)) {
      if (b !== 0 && filled < psLen) ps[filled++] = b;
    }
  }
  return concat(new Uint8Array([0x00, 0x02]), ps, new Uint8Array([0x00]), message);
}

/**
 * EME-PKCS1-v1_5 decoding (RFC 8017 §7.2.2). Returns null on any malformation, without saying
 * which: every byte is examined whatever the outcome and all checks are folded into one flag,
 * so the work done does not depend on where the padding is wrong (Bleichenbacher). The final
 * success/failure is itself an oracle, inherent to RSA1_5, which Azure keeps for compatibility.
 */
export function emePkcs1Decode(em: Uint8Array): Uint8Array | null {
  let bad = em[0]! | (em[1]! ^ 0x02);
  let sepIndex = 0;
  let looking = 1; // 1 until the first zero byte after the 00 02 header
  for (let i = 2; i < em.length; i++) {
    const isZero = ((em[i]! - 1) >>> 31) & 1; // 1 when em[i] === 0
    const hit = isZero & looking;
    sepIndex |= -hit & i;
    looking &= ~hit & 1;
  }
  bad |= looking; // no separator
  bad |= (sepIndex - 10) >>> 31; // PS shorter than 8 bytes
  if (bad !== 0) return null;
  return em.slice(sepIndex + 1);
}
