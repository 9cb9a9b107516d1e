/**
 * Audit chain verification, checkpoints and raw export.
 *
 * On each vault (data action Microsoft.KeyVault/vaults/auditEvents/read/action at '/'):
 *   GET /audit/verify        verifies the vault's chain in D1 against its HSM-signed checkpoints
 *   GET /audit/checkpoints   the chain's signed checkpoints, head and pruned anchor
 *   GET /audit/chain         raw chain rows as NDJSON ({seq, eventId, canonical, prevHash, hash}),
 *                            `from` (exclusive) and `limit` (≤ 5,000); `x-ekv-next-from` when more
 * On the apex, administrators, for a live vault's chain (`?vault=NAME`), any chain by id
 * (`?chain=ID`, deleted vaults' included) or the deployment's (none):
 *   GET /management/audit/verify | /management/audit/checkpoints | /management/audit/chain
 *   GET /management/audit/chains   every chain, with its vault id, (last known) name and head
 * and, public and unauthenticated:
 *   GET /audit/checkpoint-keys   the JWKS of the HSM key that signs checkpoints (read from the HSM)
 */
import type { Hono } from 'hono';
import { DEPLOYMENT_CHAIN, chainOfVaultName } from '../../audit/event';
import { chainExists, chainOfVault, listChains } from '../../audit/chains';
import { readChainHead } from '../../audit/chain';
import { checkpointJwks, listCheckpoints, prunedAnchor, readChainRange, verifyStoredChain } from '../../audit/checkpoints';
import { AuditActions } from '../../core/data-actions';
import { badParameter, notFound } from '../../core/errors';
import { findVault } from '../../storage/vaults';
import { auditAs, currentVault, type AppContext, type AppEnv } from '../context';
import { adminOperation, vaultOperation } from '../operation';

const MAX_EXPORT_ROWS = 5_000;
const VAULT_NAME = /^[0-9a-zA-Z-]{1,64}$/;

const vaultRoute = (operation: string) => vaultOperation(operation, AuditActions.read, '/', false);

function vaultChain(c: AppContext): Promise<string> {
  return chainOfVault(c.get('services').db, currentVault(c).vault);
}

const CHAIN_ID = /^(deployment|vault:[0-9a-z-]{1,64})$/;

/**
 * On the apex: `?vault=NAME`, the chain of the vault that has that name now; `?chain=ID`, any
 * chain by its id (as GET /management/audit/chains lists them, deleted vaults' included); none,
 * the deployment's.
 */
async function managedChain(c: AppContext): Promise<string> {
  const vault = c.req.query('vault');
  const chain = c.req.query('chain');
  if (vault && chain) throw badParameter('Give either the vault or the chain parameter, not both.');
  const db = c.get('services').db;
  if (chain) {
    if (!CHAIN_ID.test(chain)) throw badParameter('The chain parameter is not a chain id.');
    if (!(await chainExists(db, chain))) throw notFound('NotFound', `No audit chain ${chain} exists.`);
    return chain;
  }
  if (vault === undefined || vault === '') return DEPLOYMENT_CHAIN;
  if (!VAULT_NAME.test(vault)) throw badParameter('The vault parameter is not a valid vault name.');
  const found = await findVault(db, vault);
  // No vault of that name now: the chain of the name itself (a vault deleted before chains were
  // bound to ids, or requests for a name that had no vault). Deleted vaults' id chains: ?chain=.
  return found ? chainOfVault(db, found) : chainOfVaultName(vault);
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
    lines.push(
      JSON.stringify({ seq: row.seq, eventId: row.eventId, canonical: row.canonical, prevHash: row.prevHash, hash: row.hash }),
    );
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
  app.get('/audit/verify', vaultRoute('AuditVerify'), async (c) => verify(c, await vaultChain(c)));
  app.get('/audit/checkpoints', vaultRoute('AuditCheckpointList'), async (c) => checkpoints(c, await vaultChain(c)));
  app.get('/audit/chain', vaultRoute('AuditChainExport'), async (c) => exportChain(c, await vaultChain(c)));
}

/** The apex's routes: the public key set, and the administrators' view of every chain. */
export function auditVerifyApexRoutes(app: Hono<AppEnv>): void {
  app.get('/audit/checkpoint-keys', async (c) => {
    auditAs(c, 'AuditCheckpointKeys');
    c.header('cache-control', 'public, max-age=300');
    return c.json(await checkpointJwks(c.get('services').bridge));
  });
  const chainObject = (c: AppContext) =>
    `/audit/${c.req.query('chain') ? `chains/${String(c.req.query('chain')).slice(0, 80)}` : c.req.query('vault') ? `vaults/${String(c.req.query('vault')).slice(0, 64)}` : 'deployment'}`;
  app.get(
    '/management/audit/chains',
    adminOperation('AuditChainList', () => '/audit/chains'),
    async (c) => {
      c.header('cache-control', 'no-store');
      return c.json({ value: await listChains(c.get('services').db) });
    },
  );
  app.get('/management/audit/verify', adminOperation('AuditVerify', chainObject), async (c) => verify(c, await managedChain(c)));
  app.get('/management/audit/checkpoints', adminOperation('AuditCheckpointList', chainObject), async (c) =>
    checkpoints(c, await managedChain(c)),
  );
  app.get('/management/audit/chain', adminOperation('AuditChainExport', chainObject), async (c) =>
    exportChain(c, await managedChain(c)),
  );
}
