/**
 * The bridge's PKCS#11 class (`Hsm`) opened in the benchmark's own process, on the token the
 * running bridge uses. SoftHSM2's file object store may be opened by several processes at once;
 * both find the same KEK (by label), which `run.ts` checks by unwrapping, in process, a blob the
 * bridge wrapped over HTTP.
 */
import { DEFAULTS } from '../../hsm-bridge/src/config.js';
import { findSoftHsmModule } from '../../hsm-bridge/dev/softhsm.js';
import type { Hsm } from '../../hsm-bridge/src/hsm.js';

export interface InProcessHsmOptions {
  /** softhsm2.conf of the token (SOFTHSM2_CONF); must be set before the module is loaded. */
  confPath: string;
  tokenLabel: string;
  pin: string;
  /** Same pool size as the bridge process gets, so the comparison is like for like. */
  sessionPoolSize: number;
}

/** The session pool size the bridge process runs with (it inherits our environment). */
export function bridgeSessionPoolSize(): number {
  const raw = process.env.HSM_SESSION_POOL;
  return raw && /^\d+$/.test(raw) ? Number(raw) : DEFAULTS.sessionPoolSize;
}

export async function openInProcessHsm(opts: InProcessHsmOptions): Promise<Hsm> {
  const module = process.env.PKCS11_MODULE || findSoftHsmModule();
  if (!module) throw new Error('SoftHSM2 module not found (set PKCS11_MODULE)');
  // SoftHSM reads SOFTHSM2_CONF from the process environment at C_Initialize.
  process.env.SOFTHSM2_CONF = opts.confPath;
  // Imported here so that loading the rest of the benchmark never loads a PKCS#11 module.
  const { Hsm } = await import('../../hsm-bridge/src/hsm.js');
  return Hsm.open({
    pkcs11Module: module,
    tokenLabel: opts.tokenLabel,
    pin: opts.pin,
    // The stack starts the bridge with HSM_KEK_LABEL empty, i.e. the default label.
    kekLabel: DEFAULTS.kekLabel,
    sessionPoolSize: opts.sessionPoolSize,
  });
}
