/**
 * Which chain holds a vault's audit trail: bound to the vault's id, never its name, so a vault
 * re-created under a deleted vault's name starts a chain of its own and its Auditor never reads
 * the deleted vault's records. A vault's chain is 'vault:{id}'; vaults older than this keep the
 * chain they had ('vault:{name}', bound to their id by migration 0012) — records, hashes,
 * checkpoints and archives all name their chain, so chains are never renamed.
 *
 * The binding of each vault id to its chain is registered (audit_chain_vaults) the first time the
 * consumer appends for the vault, with the vault's name, so administrators can still find, verify
 * and export the trail of a vault that was deleted.
 */
import { eq, inArray } from 'drizzle-orm';
import type { Database } from '../storage/db';
import { auditChainHeads, auditChainVaults, vaults } from '../storage/schema';
import { chainOfVaultName, DEPLOYMENT_CHAIN, type AuditEvent } from './event';

export const chainOfVaultId = (vaultId: string): string => `vault:${vaultId.toLowerCase()}`;

// A vault id's chain never changes once registered: each isolate keeps what it learnt (bounded).
const known = new Map<string, string>();
const MAX_KNOWN = 10_000;
function remember(vaultId: string, chain: string): void {
  if (known.size >= MAX_KNOWN) known.clear();
  known.set(vaultId, chain);
}

/** The chains of these vault ids (registered ones as registered, the rest 'vault:{id}'). */
async function chainsOfIds(db: Database, ids: readonly string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const missing = [...new Set(ids)].filter((id) => {
    const chain = known.get(id);
    if (chain) out.set(id, chain);
    return !chain;
  });
  if (missing.length > 0) {
    const rows = await db
      .select({ vaultId: auditChainVaults.vaultId, chain: auditChainVaults.chain })
      .from(auditChainVaults)
      .where(inArray(auditChainVaults.vaultId, missing))
      .all();
    for (const r of rows) {
      out.set(r.vaultId, r.chain);
      remember(r.vaultId, r.chain);
    }
  }
  for (const id of ids) if (!out.has(id)) out.set(id, chainOfVaultId(id));
  return out;
}

/** The chain of a vault (for reading its trail). */
export async function chainOfVault(db: Database, vault: { id: string }): Promise<string> {
  return (await chainsOfIds(db, [vault.id])).get(vault.id)!;
}

/**
 * The chain each event of a batch goes to, registering vault chains not registered yet:
 *  - an event that knows its vault's id: that vault's chain;
 *  - one that names a vault host only (refused before the vault was looked up): the live vault of
 *    that name if it existed when the request arrived, else the chain of the name itself, which no
 *    vault reads (vault chains are named by id);
 *  - the apex and unknown hosts: the deployment's chain.
 */
export async function chainsOfEvents(db: Database, events: readonly AuditEvent[]): Promise<string[]> {
  const byName = new Map<string, { id: string; createdAt: number } | null>();
  const names = [...new Set(events.filter((e) => !e.vaultId && e.vault).map((e) => e.vault!.toLowerCase()))];
  if (names.length > 0) {
    const rows = await db
      .select({ id: vaults.id, name: vaults.name, createdAt: vaults.createdAt })
      .from(vaults)
      .where(inArray(vaults.name, names))
      .all();
    for (const r of rows) byName.set(r.name, { id: r.id, createdAt: r.createdAt });
  }
  const idOf = (e: AuditEvent): string | null => {
    // No vault host: the deployment's chain, whatever vault an apex route looked up.
    if (!e.vault) return null;
    if (e.vaultId) return e.vaultId.toLowerCase();
    const live = e.vault ? byName.get(e.vault.toLowerCase()) : undefined;
    // Vault created_at is Unix seconds: a vault created after the request is not the one it meant.
    return live && live.createdAt <= Math.floor(e.time / 1000) ? live.id : null;
  };
  const ids = events.map(idOf);
  const chains = await chainsOfIds(
    db,
    ids.filter((id): id is string => id !== null),
  );
  const fresh = new Map<string, string>();
  events.forEach((e, i) => {
    const id = ids[i];
    if (id && !known.has(id) && e.vault) fresh.set(id, e.vault.toLowerCase());
  });
  if (fresh.size > 0) {
    const now = Date.now();
    const inserts = [...fresh].map(([vaultId, vaultName]) =>
      db
        .insert(auditChainVaults)
        .values({ vaultId, chain: chains.get(vaultId)!, vaultName, createdAt: now })
        .onConflictDoNothing(),
    );
    await db.batch(inserts as unknown as [(typeof inserts)[0]]);
    for (const id of fresh.keys()) remember(id, chains.get(id)!);
  }
  return events.map((e, i) => {
    const id = ids[i];
    if (id) return chains.get(id)!;
    return e.vault ? chainOfVaultName(e.vault) : DEPLOYMENT_CHAIN;
  });
}

export interface ChainListing {
  chain: string;
  /** The vault whose trail it is (null: the deployment's, or a vault name no vault had). */
  vaultId: string | null;
  /** The vault's name, or its last known name once deleted. */
  vaultName: string | null;
  /** Whether the vault still exists. */
  live: boolean;
  head: { seq: number; hash: string; updatedAt: number } | null;
}

/** Every chain: the deployment's, every vault's (deleted vaults' included), with their heads. */
export async function listChains(db: Database): Promise<ChainListing[]> {
  const [heads, registered, live] = await Promise.all([
    db.select().from(auditChainHeads).all(),
    db.select().from(auditChainVaults).all(),
    db.select({ id: vaults.id, name: vaults.name }).from(vaults).all(),
  ]);
  const liveById = new Map(live.map((v) => [v.id, v.name]));
  const byChain = new Map(registered.map((r) => [r.chain, r]));
  const headOf = new Map(heads.map((h) => [h.chain, h]));
  const names = [...new Set([DEPLOYMENT_CHAIN, ...heads.map((h) => h.chain), ...registered.map((r) => r.chain)])];
  return names
    .map((chain): ChainListing => {
      const h = headOf.get(chain);
      const head = h ? { seq: h.seq, hash: h.hash, updatedAt: h.updatedAt } : null;
      const reg = byChain.get(chain);
      if (reg)
        return {
          chain,
          vaultId: reg.vaultId,
          vaultName: liveById.get(reg.vaultId) ?? reg.vaultName,
          live: liveById.has(reg.vaultId),
          head,
        };
      if (chain === DEPLOYMENT_CHAIN) return { chain, vaultId: null, vaultName: null, live: true, head };
      // 'vault:{name}' chains not bound to a vault: of vaults deleted before migration 0012, or of
      // requests for a vault name that had no vault.
      return {
        chain,
        vaultId: null,
        vaultName: chain.startsWith('vault:') ? chain.slice('vault:'.length) : null,
        live: false,
        head,
      };
    })
    .sort((a, b) => (a.chain === DEPLOYMENT_CHAIN ? -1 : b.chain === DEPLOYMENT_CHAIN ? 1 : a.chain < b.chain ? -1 : 1));
}

/** Whether `chain` is a chain this deployment has (for administrators addressing one by id). */
export async function chainExists(db: Database, chain: string): Promise<boolean> {
  if (chain === DEPLOYMENT_CHAIN) return true;
  const [head, reg] = await db.batch([
    db.select({ chain: auditChainHeads.chain }).from(auditChainHeads).where(eq(auditChainHeads.chain, chain)),
    db.select({ chain: auditChainVaults.chain }).from(auditChainVaults).where(eq(auditChainVaults.chain, chain)),
  ]);
  return head.length > 0 || reg.length > 0;
}
