/** Check: every RSA key in use (latest version) gives at least 112-bit security. */
import { fromBase64Url } from '../../core/encoding';
import { Thresholds as T } from '../controls';
import { collector, vaultPath, type CheckOutcome } from '../findings';
import { vaultNameOf, type ComplianceSnapshot } from '../snapshot';

export function weakKeysCheck(snapshot: ComplianceSnapshot): CheckOutcome {
  const out = collector();
  for (const k of snapshot.keys) {
    if (k.kty !== 'RSA' && k.kty !== 'RSA-HSM') continue;
    out.count('key-size-weak');
    const bits = k.keySize ?? modulusBits(k.publicJwk);
    if (bits === null || bits >= T.minRsaBits) continue;
    const v = vaultNameOf(snapshot, k.vaultId);
    out.add(
      'key-size-weak',
      { type: 'key', id: `${vaultPath(v)}/keys/${k.name}`, vault: v, name: k.name },
      `Key ${k.name} in ${v} is RSA ${bits} bits`,
      `RSA ${bits} gives less than 112 bits of security; NIST has disallowed RSA below ${T.minRsaBits} bits for signatures and key establishment since 2014.`,
      `Create a replacement of at least RSA ${T.minRsaBits} (3072 for use beyond 2030), re-encrypt or re-sign with it, then disable and delete this key.`,
    );
  }
  return out;
}

/** An RSA key's size from its public JWK's modulus, when the row has no key_size. */
export function modulusBits(publicJwk: string | null): number | null {
  if (!publicJwk) return null;
  try {
    const n = (JSON.parse(publicJwk) as { n?: unknown }).n;
    if (typeof n !== 'string') return null;
    const bytes = fromBase64Url(n);
    let i = 0;
    while (i < bytes.length && bytes[i] === 0) i++;
    if (i === bytes.length) return null;
    return (bytes.length - i) * 8 - Math.clz32(bytes[i]!) + 24;
  } catch {
    return null;
  }
}
