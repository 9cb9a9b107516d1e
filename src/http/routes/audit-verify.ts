/**
 * Audit chain verification, checkpoints and raw export.
 *
 * On each vault (data action Microsoft.KeyVault/vaults/auditEvents/read/action at '/'):
 *   GET /audit/verify        verifies the vault's chain in D1 against its HSM-signed checkpoints
 *   GET /audit/checkpoints   the chain's signed checkpoints, head and pruned anchor
 *   GET /audit/chain         raw chain rows as NDJSON ({seq, eventId, canonical, prevHash, hash}),
 *                            `from` (exclusive) and `limit` (≤ 5,000); `x-ekv-next-from` when more
 * On the apex, administrators, for any vault's chain (`?vault=NAME`) or the deployment's (none):
 *   GET /management/audit/verify | /management/audit/checkpoints | /management/audit/chain
 * and, public and unauthenticated:
 *   GET /audit/checkpoint-keys   the JWKS of the HSM key that signs checkpoints (read from the HSM)
 */
import type { Hono } from 'hono';
import { DEPLOYMENT_CHAIN, chainOfVault } from '../../audit/event';
import { readChainHead } from '../../audit/chain';
import { checkpointJwks, listCheckpoints, prunedAnchor, readChainRange, verifyStoredChain } from '../../audit/checkpoints';
import { AuditActions } from '../../core/data-actions';
import { badParameter } from '../../core/errors';
import { auditAs, currentVault, type AppContext, type AppEnv } from '../context';
import { adminOperation, vaultOperation } from '../operation';

const MAX_EXPORT_ROWS = 5_000;
const VAULT_NAME = /^[0-9a-zA-Z-]{1,64}$/;

const vaultRoute = (operation: string) => vaultOperation(operation, AuditActions.read, '/', false);

function vaultChain(c: AppContext): string {
  return chainOfVault(currentVault(c).vault.name);
}

/** `?vault=NAME` on the apex: that vault's chain; none: the deployment's. */
function managedChain(c: AppContext): string {
  const vault = c.req.query('vault');
  if (vault === undefined || vault === '') return DEPLOYMENT_CHAIN;
  if (!VAULT_NAME.test(vault)) throw badParameter('The vault parameter is not a valid vault name.');
  return chainOfVault(vault);
}

async function verify(c: AppContext, chain: string) {
  const { db, bridge } = c.get('services');
  c.header('cache-control', 'no-store');
  return c.json(await verifyStoredChain(db, bridge, chain));
}

async function checkpoints(c: AppContext, chain: string) {
  const { db } = c.get('services');
  const [list, head, anchor] = await Promise.all([listCheckpoints(db, chain), readChainHead(db, chain), prunedAnchor(db, chain)]);
  c.header('cache-control', 'no-store');
  return c.json({ chain, head, prunedThrough: anchor, checkpoints: list });
}

async function exportChain(c: AppContext, chain: string) {
  const { db } = c.get('services');
  const from = intParam(c.req.query('from'), 0, 'from');
  const limit = Math.min(intParam(c.req.query('limit'), MAX_EXPORT_ROWS, 'limit') || MAX_EXPORT_ROWS, MAX_EXPORT_ROWS);
  const lines: string[] = [];
  let last = from;
  for await (const row of readChainRange(db, chain, from, Number.MAX_SAFE_INTEGER, Math.min(limit, 500))) {
    lines.push(JSON.stringify({ seq: row.seq, eventId: row.eventId, canonical: row.canonical, prevHash: row.prevHash, hash: row.hash }));
    last = row.seq;
    if (lines.length >= limit) break;
  }
  const headers: Record<string, string> = { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' };
  if (lines.length >= limit) headers['x-ekv-next-from'] = String(last);
  return c.body(lines.length ? lines.join('\n') + '\n' : '', 200, headers);
}

function intParam(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw badParameter(`The ${name} parameter must be a non-negative integer.`);
  return n;
}

/** The vault host's routes. */
export function auditVerifyRoutes(app: Hono<AppEnv>): void {
  app.get('/audit/verify', vaultRoute('AuditVerify'), (c) => verify(c, vaultChain(c)));
  app.get('/audit/checkpoints', vaultRoute('AuditCheckpointList'), (c) => checkpoints(c, vaultChain(c)));
  app.get('/audit/chain', vaultRoute('AuditChainExport'), (c) => exportChain(c, vaultChain(c)));
}

/** The apex's routes: the public key set, and the administrators' view of every chain. */
export function auditVerifyApexRoutes(app: Hono<AppEnv>): void {
  app.get('/audit/checkpoint-keys', async (c) => {
    auditAs(c, 'AuditCheckpointKeys');
    c.header('cache-control', 'public, max-age=300');
    return c.json(await checkpointJwks(c.get('services').bridge));
  });
  const chainObject = (c: AppContext) => `/audit/${c.req.query('vault') ? `vaults/${String(c.req.query('vault')).slice(0, 64)}` : 'deployment'}`;
  app.get('/management/audit/verify', adminOperation('AuditVerify', chainObject), (c) => verify(c, managedChain(c)));
  app.get('/management/audit/checkpoints', adminOperation('AuditCheckpointList', chainObject), (c) => checkpoints(c, managedChain(c)));
  app.get('/management/audit/chain', adminOperation('AuditChainExport', chainObject), (c) => exportChain(c, managedChain(c)));
}
