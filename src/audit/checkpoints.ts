/**
 * Signed checkpoints of the audit chains.
 *
 * A checkpoint says "chain C's record `seq` had hash H at time T", signed by a P-256 key that
 * lives in the HSM: ES256 over SHA-256 of the canonical JSON {chain, hash, seq, time} (RFC 8785,
 * `time` an ISO 8601 UTC string). The key is generated through the bridge under a fixed id
 * (CHECKPOINT_KEY_ID; rotated keys under ids derived from their generation), so the Worker never
 * takes its handle from D1; the current public JWK is kept in `settings` for the record, but every verification here asks the HSM for the public key
 * (POST /v1/keys/public) and trusts only that: a database administrator who swaps the stored key
 * and signs checkpoints with their own is still caught.
 *
 * The cron (src/jobs/audit.ts) checkpoints each chain whose head moved since its last checkpoint,
 * after checking the records appended since that checkpoint: a checkpoint is never signed over a
 * chain that does not verify.
 *
 * The pure parts (payload, thumbprint, signature check) are web-standard code, shared with the
 * offline verifier (scripts/audit-verify.ts).
 */
import { and, asc, desc, eq, gt, isNotNull, lte, sql } from 'drizzle-orm';
import type { BridgeClient, HsmPublicJwk } from '../crypto/bridge-client';
import { toBase64Url } from '../core/encoding';
import type { Database } from '../storage/db';
import { auditArchives, auditChainHeads, auditCheckpoints, auditRecords, settings } from '../storage/schema';
import { BridgeUnavailableError, conflict } from '../core/errors';
import { GENESIS_HASH } from './canonical';
import {
  asP256,
  CHECKPOINT_ALG,
  checkpointPayload,
  jwkThumbprint,
  verifyCheckpointSignature,
  type EcPublicJwk,
} from './checkpoint-signature';
import { readChainHead, type ChainHead } from './chain';
import { describeVerification, verifyChain, type ChainRow, type Checkpoint, type VerifyResult } from './verify';

/** The HSM id (handle) of the checkpoint key: fixed, so D1 cannot point the Worker at another key. */
export const CHECKPOINT_KEY_ID = 'a827ddfcb4d6ff204bcb703aabe33514';
/** settings row holding the key's public JWK and kid, as published (informational). */
export const CHECKPOINT_KEY_SETTING = 'audit.checkpoint-key';
/** Chains checkpointed per cron run at most (the rest wait for the next run). */
const MAX_CHAINS_PER_RUN = 200;

export { CHECKPOINT_ALG, checkpointPayload, jwkThumbprint, verifyCheckpointSignature, type EcPublicJwk };

export interface CheckpointKey {
  handle: string;
  kid: string;
  publicJwk: EcPublicJwk;
}

// ------------------------------------------------------------------------------ the HSM keys
//
// Rotation: generation 1 is CHECKPOINT_KEY_ID; generation n ≥ 2 has an id derived from n, so the
// Worker still never takes a handle from D1. The HSM's keys are the published set (old ones are
// kept for good: old checkpoints name them); the highest generation signs new checkpoints.

/** The HSM id of the checkpoint key of generation n (1: CHECKPOINT_KEY_ID). */
export async function checkpointKeyId(generation: number): Promise<string> {
  if (generation === 1) return CHECKPOINT_KEY_ID;
  const digest = new Uint8Array(
    await crypto.subtle.digest('SHA-256', new TextEncoder().encode(`ekv-checkpoint-key|${generation}`)),
  );
  return [...digest.slice(0, 16)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** How long an isolate trusts its list of checkpoint keys (another isolate may have rotated). */
const KEYS_TTL_MS = 5 * 60_000;

interface CheckpointKeys {
  /** Oldest first; the last one signs. */
  all: CheckpointKey[];
  readAt: number;
}

// Only the settled list is shared across requests: a pending load holds this request's bridge
// fetches, which another request must never await (Workers I/O belongs to the request that made
// it). Two cold requests may both ask the bridge; generating is idempotent (409, then read again).
let hsmKeys: CheckpointKeys | null = null;

async function keyOf(publicJwk: HsmPublicJwk, handle: string): Promise<CheckpointKey> {
  const jwk = asP256(publicJwk);
  return { handle, kid: await jwkThumbprint(jwk), publicJwk: jwk };
}

/** The public key of generation n from the HSM, or null when the token has none. */
async function readGeneration(bridge: BridgeClient, generation: number): Promise<CheckpointKey | null> {
  const id = await checkpointKeyId(generation);
  try {
    return await keyOf(await bridge.publicKey(id), id);
  } catch (err) {
    // IntegrityError ('HSM key'): no such key in the token (404 KeyNotFound).
    if (err instanceof BridgeUnavailableError) throw err;
    return null;
  }
}

async function readKeys(bridge: BridgeClient): Promise<CheckpointKeys> {
  const all: CheckpointKey[] = [];
  for (let generation = 1; ; generation++) {
    const key = await readGeneration(bridge, generation);
    if (key) {
      all.push(key);
      continue;
    }
    if (generation > 1) break;
    // First use: generate generation 1 (another isolate may win the race (409): then read its key).
    try {
      const made = await bridge.generateKey(CHECKPOINT_KEY_ID, { kty: 'EC', crv: 'P-256' });
      all.push(await keyOf(made.publicJwk!, CHECKPOINT_KEY_ID));
    } catch {
      all.push(await keyOf(await bridge.publicKey(CHECKPOINT_KEY_ID), CHECKPOINT_KEY_ID));
    }
  }
  return { all, readAt: Date.now() };
}

/**
 * Every checkpoint key in the HSM, oldest first (cached per isolate for KEYS_TTL_MS; `fresh`
 * asks the HSM again). Never read from D1. BridgeUnavailableError while the bridge is down.
 */
export async function hsmCheckpointKeys(bridge: BridgeClient, fresh = false): Promise<CheckpointKey[]> {
  const cached = hsmKeys;
  if (cached && !fresh && Date.now() - cached.readAt < KEYS_TTL_MS) return cached.all;
  const loaded = await readKeys(bridge);
  hsmKeys = loaded;
  return loaded.all;
}

/** The key new checkpoints are signed with: the HSM's newest. BridgeUnavailableError while the bridge is down. */
export async function hsmCheckpointKey(bridge: BridgeClient): Promise<CheckpointKey> {
  return (await hsmCheckpointKeys(bridge)).at(-1)!;
}

/**
 * Generates the next generation's key in the HSM: new checkpoints are signed with it (in other
 * isolates within KEYS_TTL_MS), old ones still verify with the keys that stay published.
 */
export async function rotateCheckpointKey(db: Database, bridge: BridgeClient, currentKid: string): Promise<CheckpointKey> {
  const keys = await hsmCheckpointKeys(bridge, true);
  // The caller names the key it replaces, so two operators (or a retry) cannot rotate twice.
  if (keys.at(-1)!.kid !== currentKid) {
    throw conflict('currentKid is not the current checkpoint key; GET /audit/checkpoint-keys shows it (the last one).');
  }
  const id = await checkpointKeyId(keys.length + 1);
  const made = await bridge.generateKey(id, { kty: 'EC', crv: 'P-256' });
  const key = await keyOf(made.publicJwk!, id);
  hsmKeys = { all: [...keys, key], readAt: Date.now() };
  const value = JSON.stringify({ handle: key.handle, kid: key.kid, publicJwk: key.publicJwk });
  await db
    .insert(settings)
    .values({ key: CHECKPOINT_KEY_SETTING, value })
    .onConflictDoUpdate({ target: settings.key, set: { value } });
  return key;
}

/** The key from the HSM, recorded in `settings` (where the published JWKS used to be read from). */
export async function ensureCheckpointKey(db: Database, bridge: BridgeClient): Promise<CheckpointKey> {
  const key = await hsmCheckpointKey(bridge);
  const value = JSON.stringify({ handle: key.handle, kid: key.kid, publicJwk: key.publicJwk });
  await db.insert(settings).values({ key: CHECKPOINT_KEY_SETTING, value }).onConflictDoNothing();
  return key;
}

/** What D1 claims the key is (for comparison only: never used to verify). */
export async function storedCheckpointKey(db: Database): Promise<CheckpointKey | null> {
  const row = await db.select().from(settings).where(eq(settings.key, CHECKPOINT_KEY_SETTING)).get();
  if (!row) return null;
  try {
    return JSON.parse(row.value) as CheckpointKey;
  } catch {
    return null;
  }
}

/** The published JWKS: every key in the HSM, oldest first (old checkpoints name old keys). */
export async function checkpointJwks(
  bridge: BridgeClient,
): Promise<{ keys: Array<EcPublicJwk & { kid: string; alg: string; use: string }> }> {
  const keys = await hsmCheckpointKeys(bridge);
  return { keys: keys.map((key) => ({ ...key.publicJwk, kid: key.kid, alg: CHECKPOINT_ALG, use: 'sig' })) };
}

/**
 * Verifies a checkpoint with the published key its kid names; a kid no HSM key has is refused
 * (after one fresh look, in case another isolate just rotated).
 */
export async function verifyWithPublishedKeys(bridge: BridgeClient, cp: Checkpoint): Promise<boolean> {
  let key = (await hsmCheckpointKeys(bridge)).find((k) => k.kid === cp.kid);
  key ??= (await hsmCheckpointKeys(bridge, true)).find((k) => k.kid === cp.kid);
  return key ? verifyCheckpointSignature(cp, key.publicJwk, key.kid) : false;
}

// ------------------------------------------------------------------------------ signing

/** Signs {chain, seq, hash, time} in the HSM. */
export async function signCheckpoint(
  bridge: BridgeClient,
  head: { chain: string; seq: number; hash: string },
  timeMs = Date.now(),
): Promise<Checkpoint> {
  const key = await hsmCheckpointKey(bridge);
  const unsigned = { chain: head.chain, seq: head.seq, hash: head.hash, time: new Date(timeMs).toISOString() };
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(checkpointPayload(unsigned))));
  const signature = await bridge.sign(key.handle, CHECKPOINT_ALG, digest);
  return { ...unsigned, alg: CHECKPOINT_ALG, kid: key.kid, signature: toBase64Url(signature) };
}

export async function storeCheckpoint(db: Database, cp: Checkpoint): Promise<void> {
  await db
    .insert(auditCheckpoints)
    .values({
      chain: cp.chain,
      seq: cp.seq,
      hash: cp.hash,
      time: String(cp.time),
      alg: cp.alg,
      kid: cp.kid,
      signature: cp.signature,
    })
    .onConflictDoNothing();
}

export async function listCheckpoints(db: Database, chain: string): Promise<Checkpoint[]> {
  return db.select().from(auditCheckpoints).where(eq(auditCheckpoints.chain, chain)).orderBy(asc(auditCheckpoints.seq)).all();
}

export async function checkpointAt(db: Database, chain: string, seq: number): Promise<Checkpoint | null> {
  return (
    (await db
      .select()
      .from(auditCheckpoints)
      .where(and(eq(auditCheckpoints.chain, chain), eq(auditCheckpoints.seq, seq)))
      .get()) ?? null
  );
}

async function latestCheckpoint(db: Database, chain: string): Promise<Checkpoint | null> {
  return (
    (await db
      .select()
      .from(auditCheckpoints)
      .where(eq(auditCheckpoints.chain, chain))
      .orderBy(desc(auditCheckpoints.seq))
      .limit(1)
      .get()) ?? null
  );
}

/** A chain's rows after `afterSeq` through `throughSeq` (inclusive), in seq order, page by page. */
export async function* readChainRange(
  db: Database,
  chain: string,
  afterSeq: number,
  throughSeq = Number.MAX_SAFE_INTEGER,
  pageSize = 500,
): AsyncGenerator<ChainRow> {
  let after = afterSeq;
  for (;;) {
    const page = await db
      .select({
        seq: auditRecords.seq,
        eventId: auditRecords.eventId,
        canonical: auditRecords.canonical,
        prevHash: auditRecords.prevHash,
        hash: auditRecords.hash,
      })
      .from(auditRecords)
      .where(and(eq(auditRecords.chain, chain), gt(auditRecords.seq, after), lte(auditRecords.seq, throughSeq)))
      .orderBy(asc(auditRecords.seq))
      .limit(pageSize)
      .all();
    yield* page;
    if (page.length < pageSize) return;
    after = page[page.length - 1]!.seq;
  }
}

/** Where the chain's rows in D1 start: after the last pruned archive, if any ({seq 0, genesis} if none). */
export async function prunedAnchor(db: Database, chain: string): Promise<ChainHead | null> {
  const row = await db
    .select({ seq: auditArchives.lastSeq, hash: auditArchives.lastHash })
    .from(auditArchives)
    .where(and(eq(auditArchives.chain, chain), isNotNull(auditArchives.prunedAt)))
    .orderBy(desc(auditArchives.lastSeq))
    .limit(1)
    .get();
  return row ?? null;
}

export interface CheckpointRun {
  created: number;
  /** Chains whose records since their last checkpoint do not verify: not signed, logged. */
  refused: string[];
  /** Chains left for the next run because the bridge is down. */
  deferred: number;
}

/**
 * Checkpoints every chain whose head moved since its last checkpoint. The records appended since
 * that checkpoint (or since the pruned anchor, or the start) are verified first; a chain that
 * does not verify is not signed. A bridge outage defers the remaining chains: each checkpoint is
 * one row written after its signature, so nothing is ever half-written.
 */
export async function checkpointMovedChains(
  db: Database,
  bridge: BridgeClient,
  now = Date.now(),
  only?: readonly string[],
): Promise<CheckpointRun> {
  const latest = sql<
    number | null
  >`(select max(${auditCheckpoints.seq}) from ${auditCheckpoints} where ${auditCheckpoints.chain} = ${auditChainHeads.chain})`;
  const moved = (
    await db
      .select({ chain: auditChainHeads.chain, seq: auditChainHeads.seq, hash: auditChainHeads.hash, checkpointed: latest })
      .from(auditChainHeads)
      .where(sql`${latest} is null or ${auditChainHeads.seq} > ${latest}`)
      .orderBy(asc(auditChainHeads.updatedAt))
      .limit(MAX_CHAINS_PER_RUN)
      .all()
  ).filter((h) => !only || only.includes(h.chain));
  const run: CheckpointRun = { created: 0, refused: [], deferred: 0 };
  for (const [i, head] of moved.entries()) {
    try {
      const result = await verifySince(db, head.chain, head);
      if (!result.ok) {
        console.error(`audit chain ${head.chain}: not checkpointed, ${describeVerification(result)}`);
        run.refused.push(head.chain);
        continue;
      }
      await storeCheckpoint(db, await signCheckpoint(bridge, head, now));
      run.created++;
    } catch (err) {
      if (!(err instanceof BridgeUnavailableError)) throw err;
      run.deferred = moved.length - i;
      break;
    }
  }
  return run;
}

/** The records since the chain's last checkpoint (or pruned anchor, or start) through `head`. */
async function verifySince(db: Database, chain: string, head: ChainHead): Promise<VerifyResult> {
  const [cp, anchor] = await Promise.all([latestCheckpoint(db, chain), prunedAnchor(db, chain)]);
  const from = [cp, anchor]
    .filter((a): a is ChainHead => a !== null)
    .reduce<ChainHead>((a, b) => (b.seq > a.seq ? { seq: b.seq, hash: b.hash } : a), { seq: 0, hash: GENESIS_HASH });
  return verifyChain(readChainRange(db, chain, from.seq, head.seq), [], undefined, { chain, head, from });
}

/** A checkpoint at exactly `seq` of the chain (made now if none), e.g. at the end of an archived period. */
export async function ensureCheckpointAt(
  db: Database,
  bridge: BridgeClient,
  chain: string,
  seq: number,
  hash: string,
  now = Date.now(),
): Promise<Checkpoint> {
  const found = await checkpointAt(db, chain, seq);
  if (found && found.hash === hash) return found;
  if (found) throw new Error(`audit chain ${chain}: the checkpoint at seq ${seq} disagrees with the record`);
  const cp = await signCheckpoint(bridge, { chain, seq, hash }, now);
  await storeCheckpoint(db, cp);
  return (await checkpointAt(db, chain, seq)) ?? cp;
}

// ------------------------------------------------------------------------------ verification

export interface ChainVerification {
  chain: string;
  ok: boolean;
  /** Last intact sequence number. */
  through: number;
  /** The last checkpoint that matched, when intact. */
  checkpoint: { seq: number; time: number | string } | null;
  /** When not intact: the first bad record and what happened to it. */
  firstBadSeq?: number;
  kind?: string;
  message: string;
  /** Records 1..prunedThrough were archived and removed from D1 (0 if none). */
  prunedThrough: number;
  checkpoints: number;
  /**
   * The HSM's current key (each checkpoint is checked with the published key its kid names), and
   * whether D1's copy matches a published key.
   */
  key: { kid: string; storedCopyMatches: boolean };
}

/**
 * Verifies a chain as stored in D1 against its checkpoints, each checked with the HSM's public
 * key. Pruned records are accounted for by their anchor, which a signed checkpoint must vouch for.
 */
export async function verifyStoredChain(db: Database, bridge: BridgeClient, chain: string): Promise<ChainVerification> {
  const keys = await hsmCheckpointKeys(bridge);
  const key = keys.at(-1)!;
  const [checkpoints, anchor, head, stored] = await Promise.all([
    listCheckpoints(db, chain),
    prunedAnchor(db, chain),
    readChainHead(db, chain),
    storedCheckpointKey(db),
  ]);
  const storedCopyMatches =
    !stored ||
    keys.some((k) => stored.kid === k.kid && stored.publicJwk?.x === k.publicJwk.x && stored.publicJwk?.y === k.publicJwk.y);
  const base = {
    chain,
    prunedThrough: anchor?.seq ?? 0,
    checkpoints: checkpoints.length,
    key: { kid: key.kid, storedCopyMatches },
  };
  if (anchor && !checkpoints.some((cp) => cp.seq === anchor.seq && cp.hash === anchor.hash)) {
    const message = `removed at sequence 1: records 1..${anchor.seq} were pruned but no checkpoint vouches for where they ended`;
    return { ...base, ok: false, through: 0, checkpoint: null, firstBadSeq: 1, kind: 'removed', message };
  }
  // Through the head read above: records appended while we verify are the next run's business,
  // not rows "past the head".
  const rows = readChainRange(db, chain, anchor?.seq ?? 0, head?.seq);
  const covered = head ? checkpoints.filter((cp) => cp.seq <= head.seq) : checkpoints;
  const result = await verifyChain(rows, covered, (cp) => verifyWithPublishedKeys(bridge, cp), {
    chain,
    head,
    from: anchor,
  });
  return verificationOf(base, result);
}

function verificationOf(
  base: Omit<ChainVerification, 'ok' | 'through' | 'checkpoint' | 'message'>,
  result: VerifyResult,
): ChainVerification {
  const message = describeVerification(result);
  if (result.ok) return { ...base, ok: true, through: result.through, checkpoint: result.checkpoint, message };
  return {
    ...base,
    ok: false,
    through: result.intactThrough,
    checkpoint: null,
    firstBadSeq: result.firstBadSeq,
    kind: result.kind,
    message,
  };
}
