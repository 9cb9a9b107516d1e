/**
 * The compliance report's anchor in the audit trail: per relevant chain, the latest signed
 * checkpoint or else the chain head, so the state a report describes can be placed in the
 * tamper-evident record of what was done. Read apart from the check snapshot: it describes the
 * trail, not the vault state the checks judge.
 */
import { and, inArray, sql } from 'drizzle-orm';
import { DEPLOYMENT_CHAIN } from '../audit/event';
import type { Database } from '../storage/db';
import { auditChainHeads, auditCheckpoints } from '../storage/schema';
import { AUDIT_ANCHOR_CONTROLS, type ControlRef } from './controls';

export interface ChainAnchor {
  chain: string;
  /** 'signed-checkpoint' when a signed checkpoint anchors the chain, else 'unsigned head'. */
  kind: 'signed-checkpoint' | 'unsigned head' | 'empty';
  seq: number;
  hash: string | null;
  /** The chain's head when the anchor is a checkpoint behind it. */
  headSeq: number;
  checkpoint?: { time: string | number; alg: string; kid: string; signature: string };
}

export interface AuditAnchor {
  /** The weakest anchor among the chains: 'signed-checkpoint' only when every chain has one. */
  kind: 'signed-checkpoint' | 'unsigned head' | 'empty';
  chains: ChainAnchor[];
  controls: readonly ControlRef[];
  note: string;
}

/**
 * Where the report stands in the audit trail. For each chain (the given ones, or every chain when
 * null): the latest signed checkpoint if checkpoints are kept, else the chain head (seq, hash),
 * marked 'unsigned head'. A chain without records is 'empty' (seq 0).
 */
export async function auditAnchor(db: Database, chains: string[] | null): Promise<AuditAnchor> {
  const [heads, checkpoints] = await Promise.all([
    db
      .select()
      .from(auditChainHeads)
      .where(chains ? inArray(auditChainHeads.chain, chains) : undefined)
      .orderBy(auditChainHeads.chain)
      .all(),
    // The latest checkpoint of each chain.
    db
      .select()
      .from(auditCheckpoints)
      .where(
        and(
          chains ? inArray(auditCheckpoints.chain, chains) : undefined,
          sql`${auditCheckpoints.seq} = (select max(c2.seq) from ${auditCheckpoints} as c2 where c2.chain = ${auditCheckpoints.chain})`,
        ),
      )
      .all(),
  ]);
  const headOf = new Map(heads.map((h) => [h.chain, h]));
  const checkpointOf = new Map(checkpoints.map((c) => [c.chain, c]));
  // The deployment's chain always, then every other chain that has records or checkpoints.
  const names = chains ?? [
    DEPLOYMENT_CHAIN,
    ...[...new Set([...heads.map((h) => h.chain), ...checkpoints.map((c) => c.chain)])]
      .filter((c) => c !== DEPLOYMENT_CHAIN)
      .sort(),
  ];
  const anchors: ChainAnchor[] = names.map((chain) => {
    const head = headOf.get(chain);
    const cp = checkpointOf.get(chain);
    const headSeq = head?.seq ?? 0;
    if (cp) {
      return {
        chain,
        kind: 'signed-checkpoint',
        seq: cp.seq,
        hash: cp.hash,
        headSeq: Math.max(headSeq, cp.seq),
        checkpoint: { time: cp.time, alg: cp.alg, kid: cp.kid, signature: cp.signature },
      };
    }
    return head
      ? { chain, kind: 'unsigned head', seq: head.seq, hash: head.hash, headSeq }
      : { chain, kind: 'empty', seq: 0, hash: null, headSeq: 0 };
  });
  const nonEmpty = anchors.filter((a) => a.kind !== 'empty');
  const kind: AuditAnchor['kind'] =
    nonEmpty.length === 0
      ? 'empty'
      : nonEmpty.every((a) => a.kind === 'signed-checkpoint')
        ? 'signed-checkpoint'
        : 'unsigned head';
  const notes: Record<AuditAnchor['kind'], string> = {
    'signed-checkpoint':
      "Made against the latest signed checkpoint of each chain (ES256 by the HSM's checkpoint key; the report does not re-verify the signature: " +
      'verifyChain does). Records after a checkpoint (headSeq > seq) are covered by the next one.',
    'unsigned head':
      'Made against the latest signed checkpoint where a chain has one, and otherwise the chain head (seq and hash) as stored: ' +
      'an unsigned head places the report in the hash chain but is not signed; a later checkpoint covering that seq confirms it.',
    empty: 'No audit records yet in the relevant chains.',
  };
  return { kind, chains: anchors, controls: AUDIT_ANCHOR_CONTROLS, note: notes[kind] };
}
