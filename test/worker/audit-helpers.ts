/**
 * Helpers for the audit tests: well-formed audit messages, batches, and running the real consumer
 * over them.
 */
import { createExecutionContext, createMessageBatch, getQueueResult } from 'cloudflare:test';
import type { AuditEvent } from '../../src/audit/event';
import type { AuditRecord } from '../../src/audit/record';
import type { Env } from '../../src/core/env';
import worker from '../../src/index';
import { env } from './helpers';
import { rows, sleep } from './identity-helpers';

/** A valid audit message, as the middleware would queue it. */
export function auditEvent(overrides: Partial<AuditEvent> = {}): AuditEvent {
  const vault = overrides.vault === undefined ? 'somevault' : overrides.vault;
  return {
    v: 2,
    id: crypto.randomUUID(),
    time: Date.now(),
    vault,
    tenantId: '11111111-2222-4333-8444-555555555555',
    operation: 'SecretGet',
    apiVersion: '7.6',
    caller: { tid: '11111111-2222-4333-8444-555555555555', oid: crypto.randomUUID(), appid: crypto.randomUUID() },
    objectId: '/secrets/x',
    requestUri: `https://${vault ?? 'x'}.vault.localhost/secrets/x?api-version=7.6`,
    status: 200,
    errorCode: null,
    durationMs: 3,
    clientIp: '203.0.113.7',
    correlationId: crypto.randomUUID(),
    clientInfo: 'azsdk-js-keyvault-secrets/4.12.0',
    authorization: { by: 'rbac', assignmentId: crypto.randomUUID(), roleDefinitionId: '4633458b-17de-408a-b874-0445c86b69e6' },
    authorizationModel: 'rbac',
    ...overrides,
  };
}

export function batchOf(bodies: unknown[], queue = 'ekv-audit', attempts = 1): MessageBatch<unknown> {
  return createMessageBatch<unknown>(
    queue,
    bodies.map((body, i) => ({ id: `msg-${i}-${crypto.randomUUID()}`, timestamp: new Date(), attempts, body })),
  );
}

/** Runs the Worker's queue handler on a batch and reports what it acknowledged and retried. */
export async function consume(batch: MessageBatch<unknown>, e: Env = env) {
  const ctx = createExecutionContext();
  const queue = worker.queue as ExportedHandlerQueueHandler<Env, unknown>;
  await queue(batch, e, ctx);
  const result = await getQueueResult(batch, ctx);
  return {
    ...result,
    ackedIds: new Set(result.explicitAcks),
    retriedIds: new Set((result.retryMessages as { msgId: string }[]).map((m) => m.msgId)),
  };
}

export interface StoredRecord {
  chain: string;
  seq: number;
  event_id: string;
  canonical: string;
  prev_hash: string;
  hash: string;
  time: number;
  operation: string;
  caller_appid: string | null;
  caller_oid: string | null;
  object_id: string | null;
  status: number;
  result: string;
  error_code: string | null;
  correlation_id: string | null;
  client_ip: string | null;
}

export const chainRows = (chain: string) => rows<StoredRecord>('select * from audit_records where chain = ? order by seq', chain);
export const recordOf = (row: StoredRecord) => JSON.parse(row.canonical) as AuditRecord;

/** The chain of a live vault's trail: named by the vault's id, never its name (src/audit/chains.ts). */
export async function vaultChainOf(name: string): Promise<string> {
  const [vault] = await rows<{ id: string }>('select id from vaults where name = ?', name.toLowerCase());
  if (!vault) throw new Error(`no vault ${name}`);
  return `vault:${vault.id}`;
}

export async function rowOfEvent(eventId: string): Promise<StoredRecord | undefined> {
  return (await rows<StoredRecord>('select * from audit_records where event_id = ?', eventId))[0];
}

/** Waits for the real queue to deliver a request's event to the real consumer. */
export async function persisted(correlationId: string, expected = 1, timeoutMs = 8000): Promise<StoredRecord[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await rows<StoredRecord>('select * from audit_records where correlation_id = ?', correlationId);
    if (found.length >= expected || Date.now() > deadline) return found;
    await sleep(100);
  }
}

let n = 0;
/** A chain of its own for a test (a vault name nothing else uses). */
export const freshVault = (prefix = 'ch') =>
  `${prefix}${Date.now().toString(36)}${(n++).toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
