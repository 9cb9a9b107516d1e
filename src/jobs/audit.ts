/**
 * The audit cron (every 5 minutes): sign a checkpoint of every chain whose head moved, archive
 * closed periods to R2, then apply retention. Each step is safe to interrupt and repeat: a bridge
 * outage defers checkpoints and archiving (nothing half-written); a retention setting below the
 * minimum is refused, and then nothing is pruned.
 */
import { archiveClosedPeriods, archiveConfig, deleteExpiredArchives, pruneArchivedRecords } from '../audit/archive';
import { checkpointMovedChains, ensureCheckpointKey } from '../audit/checkpoints';
import type { Env } from '../core/env';
import { services } from '../crypto/services';
import { BridgeUnavailableError } from '../core/errors';

export interface AuditJobRun {
  checkpoints: number;
  deferred: boolean;
  archived: number;
  prunedRecords: number;
  deletedObjects: number;
  /** Chains found not to verify (neither checkpointed nor archived). */
  refused: string[];
}

export async function runAuditJobs(env: Env, now = Date.now()): Promise<AuditJobRun> {
  const { db, bridge } = services(env);
  const run: AuditJobRun = { checkpoints: 0, deferred: false, archived: 0, prunedRecords: 0, deletedObjects: 0, refused: [] };
  try {
    await ensureCheckpointKey(db, bridge);
  } catch (err) {
    if (!(err instanceof BridgeUnavailableError)) throw err;
    return { ...run, deferred: true };
  }
  const checkpoints = await checkpointMovedChains(db, bridge, now);
  run.checkpoints = checkpoints.created;
  run.refused.push(...checkpoints.refused);
  run.deferred = checkpoints.deferred > 0;

  if (!env.AUDIT_ARCHIVE) return run;
  const config = archiveConfig(env); // throws on a refused setting: nothing archived or pruned
  if (!run.deferred) {
    const archived = await archiveClosedPeriods(db, bridge, env.AUDIT_ARCHIVE, config, now);
    run.archived = archived.archived;
    run.deferred = archived.deferred;
    run.refused.push(...archived.refused);
  }
  run.prunedRecords = (await pruneArchivedRecords(db, config, now)).records;
  run.deletedObjects = await deleteExpiredArchives(db, env.AUDIT_ARCHIVE, config, now);
  return run;
}
