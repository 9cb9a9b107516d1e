/**
 * Global setup of the `worker` suite's event-delivery tests: webhook receivers on 127.0.0.1
 * (test/support/webhook-receiver.ts), which the Worker in workerd delivers to and whose control
 * endpoints the tests use; plus a loopback URL where nothing listens.
 */
import { randomBytes } from 'node:crypto';
import type { TestProject } from 'vitest/node';
import { deadUrl, startWebhookReceiver } from './webhook-receiver.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const controlToken = randomBytes(24).toString('base64url');
  const host = await startWebhookReceiver({ controlToken });
  project.provide('webhookReceiver', { url: host.baseUrl, controlToken, deadUrl: await deadUrl() });
  return () => host.close();
}
