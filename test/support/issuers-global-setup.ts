/**
 * Global setup of the `issuers` suite: a bridge over a fresh SoftHSM2 token (as the worker suite
 * has) and pebble. One file of its own, so this project never shares a global setup module with
 * the worker project.
 */
import type { TestProject } from 'vitest/node';
import bridgeSetup from './bridge-global-setup.js';
import pebbleSetup from './pebble-global-setup.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const stopBridge = await bridgeSetup(project);
  try {
    const stopPebble = await pebbleSetup(project);
    return async () => {
      await stopPebble();
      await stopBridge();
    };
  } catch (err) {
    await stopBridge();
    throw err;
  }
}
