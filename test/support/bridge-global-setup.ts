/**
 * Global setup of the `worker` suite: a fresh SoftHSM2 token and a real HSM bridge process on a
 * free port, shared by every Worker test file through `inject('bridgeUrl' | 'bridgeSecret')`.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { ensureSoftHsmToken, findSoftHsmModule, startBridgeProcess } from '../../hsm-bridge/dev/softhsm.js';

const TOKEN_LABEL = 'ekv-worker-tests';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const pkcs11Module = findSoftHsmModule();
  if (!pkcs11Module) throw new Error('SoftHSM2 is not installed (apt-get install softhsm2); the worker tests need it');
  const dir = await mkdtemp(join(tmpdir(), 'ekv-bridge-'));
  try {
    const token = await ensureSoftHsmToken({ dir, label: TOKEN_LABEL });
    const secret = randomBytes(36).toString('base64url'); // 48 characters
    const bridge = await startBridgeProcess({
      env: {
        SOFTHSM2_CONF: token.confPath,
        HSM_TOKEN_LABEL: TOKEN_LABEL,
        HSM_PIN_FILE: token.pinFile,
        BRIDGE_HMAC_SECRET: secret,
        BRIDGE_HOST: '127.0.0.1',
        BRIDGE_STATE_DIR: join(dir, 'bridge-state'),
        // Overrides the developer's own settings, which may point at a real HSM.
        PKCS11_MODULE: pkcs11Module,
        HSM_PIN: '',
        BRIDGE_HMAC_SECRET_FILE: '',
        HSM_KEK_LABEL: '',
      },
      port: 0,
    });
    project.provide('bridgeUrl', bridge.url);
    project.provide('bridgeSecret', secret);
    return async () => {
      await bridge.stop();
      await rm(dir, { recursive: true, force: true });
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
