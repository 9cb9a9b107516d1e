/** Checks: the latest version of every live key and secret has an expiry (a bounded lifetime). */
import { collector, vaultPath, type CheckOutcome } from '../findings';
import { vaultNameOf, type ComplianceSnapshot } from '../snapshot';

export function expiryCheck(snapshot: ComplianceSnapshot): CheckOutcome {
  const out = collector();
  for (const k of snapshot.keys) {
    out.count('key-no-expiry');
    if (k.exp !== null) continue;
    const v = vaultNameOf(snapshot, k.vaultId);
    out.add(
      'key-no-expiry',
      { type: 'key', id: `${vaultPath(v)}/keys/${k.name}`, vault: v, name: k.name },
      `Key ${k.name} in ${v} has no expiry`,
      'Its latest version has no exp: its cryptoperiod is unbounded.',
      `Set attributes.exp on the key (PATCH /keys/${k.name}), or give its rotation policy an expiryTime so rotated versions expire.`,
    );
  }
  for (const s of snapshot.secrets) {
    out.count('secret-no-expiry');
    if (s.exp !== null) continue;
    const v = vaultNameOf(snapshot, s.vaultId);
    out.add(
      'secret-no-expiry',
      { type: 'secret', id: `${vaultPath(v)}/secrets/${s.name}`, vault: v, name: s.name },
      `Secret ${s.name} in ${v} has no expiry`,
      'Its latest version has no exp: nothing forces the value to be changed.',
      `Set attributes.exp (PATCH /secrets/${s.name}/{version}) and rotate the value before it.`,
    );
  }
  return out;
}
