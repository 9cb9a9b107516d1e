/**
 * What keeps a request captured before a restart from being replayed after it: the in-memory
 * ReplayCache starts empty, while a signed request stays acceptable for MAX_CLOCK_SKEW_SECONDS,
 * and a signed /v1/unwrap answers a plaintext data key.
 *
 * What is kept is a floor, not the nonces: before a request is answered, a timestamp at least as
 * high as its own is on disk (written and fsync'd), and a bridge that starts refuses every request
 * timestamped at or below the highest one it finds. So every request answered before a restart or
 * crash is refused after it, as when each nonce was written; so is any request timestamped at or
 * below the floor that was captured and never delivered. Timestamps are whole seconds, so the disk is written once per second in
 * which requests arrive (group commit merges the requests waiting meanwhile), not once a request:
 * the first request of a second waits for the fsync, the others are already covered.
 * The price: after a restart, requests timestamped at or below the last covered second are refused
 * (401) until the clock passes it; a restart takes longer than that second, unless a client's clock
 * runs ahead of the others', whose requests then wait out the lead (at most the 60 s window).
 *
 * Layout: the state directory holds append-only segments `nonces-<n>.log`, one timestamp a line,
 * segment n holding the timestamps of one window [n·W, (n+1)·W). A segment whose newest possible
 * timestamp is outside the window can no longer matter and is deleted whole, so nothing is ever
 * rewritten. Lines "<nonce> <timestamp>" of bridges that journalled every nonce count by their
 * timestamp, so an upgrade keeps refusing what they accepted.
 *
 * Bridges that share a state directory (same host) start from the highest floor any of them
 * wrote, but a running bridge only knows the requests it accepted itself and the floor at its start.
 */
import { mkdir, open, readdir, readFile, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { MAX_CLOCK_SKEW_SECONDS } from '../../bridge-protocol/index.js';
import { ConfigError } from './config.js';

const SEGMENT_NAME = /^nonces-(\d{1,12})\.log$/;
/** A timestamp, after the nonce that earlier versions wrote with it. */
const LINE = /^(?:[A-Za-z0-9_-]{16,64} )?(\d{1,12})$/;

export interface NonceJournalOptions {
  /** Seconds a request stays acceptable either side of now; default MAX_CLOCK_SKEW_SECONDS. */
  windowSeconds?: number;
  /** Clock in milliseconds; injectable for tests. */
  now?: () => number;
}

interface Waiter {
  timestamp: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class NonceJournal {
  private readonly segments = new Map<number, FileHandle>();
  /** The highest timestamp this journal wrote and fsync'd; requests up to it need no write. */
  private durable = -Infinity;
  /** The highest timestamp asked for: the next write covers it. */
  private wanted = -Infinity;
  private waiters: Waiter[] = [];
  private flushing: Promise<void> | undefined;
  private closed = false;

  private constructor(
    readonly dir: string,
    /**
     * The highest timestamp on disk at open (-Infinity when none is still acceptable): a request
     * timestamped at or below it may have been answered before, so the replay cache refuses it.
     */
    readonly floor: number,
    private readonly windowSeconds: number,
    private readonly now: () => number,
  ) {}

  /**
   * Opens (creating it, mode 0700) the state directory, deletes stale segments and reads the rest.
   * Refuses, as a ConfigError, a directory that others could write (they could erase the record and
   * reopen replays), that belongs to another user, or that this process cannot write.
   */
  static async open(stateDir: string, options: NonceJournalOptions = {}): Promise<NonceJournal> {
    const dir = resolve(stateDir);
    const windowSeconds = options.windowSeconds ?? MAX_CLOCK_SKEW_SECONDS;
    const now = options.now ?? Date.now;
    const problem = (what: string, err?: unknown) =>
      new ConfigError(`BRIDGE_STATE_DIR (${dir}) ${what}${err ? ` (${(err as NodeJS.ErrnoException).code ?? 'error'})` : ''}`);
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw problem('cannot be created', err);
    }
    const info = await stat(dir);
    if (!info.isDirectory()) throw problem('is not a directory');
    if (info.mode & 0o022) {
      throw problem('is writable by group or others, who could erase the record of used nonces: chmod go-w it');
    }
    if (process.getuid && info.uid !== process.getuid()) throw problem('belongs to another user');

    const nowSeconds = now() / 1000;
    let floor = -Infinity;
    for (const name of await readdir(dir)) {
      const m = SEGMENT_NAME.exec(name);
      if (!m) continue;
      const path = join(dir, name);
      if (isStale(Number(m[1]), nowSeconds, windowSeconds)) {
        await unlink(path).catch(() => {}); // another bridge on this directory may have deleted it first
        continue;
      }
      // Lines that do not parse are the tail of a write cut short by a crash: that request was never
      // answered, and every write starts on a new line, so no complete line is lost with it.
      for (const line of (await readFile(path, 'utf8')).split('\n')) {
        const entry = LINE.exec(line);
        if (entry) floor = Math.max(floor, Number(entry[1]));
      }
    }
    // A floor older than the window refuses nothing the timestamp check does not refuse already.
    const journal = new NonceJournal(dir, floor >= nowSeconds - windowSeconds - 1 ? floor : -Infinity, windowSeconds, now);
    // Fail at startup, not on the first request, when the directory cannot be written.
    try {
      await journal.segment(journal.bucketOf(Math.floor(nowSeconds)));
    } catch (err) {
      throw problem('cannot be written', err);
    }
    return journal;
  }

  /**
   * Resolves once a floor at or above `timestamp` (a request's, seconds) is on disk; only then may
   * the request be answered. At once when an earlier write covers it already.
   */
  record(timestamp: number): Promise<void> {
    if (this.closed) return Promise.reject(new Error('nonce journal is closed'));
    if (timestamp <= this.durable) return Promise.resolve();
    if (timestamp > this.wanted) this.wanted = timestamp;
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ timestamp, resolve, reject });
      this.flushing ??= this.flush();
    });
  }

  /** Waits for pending writes, then closes the segments. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flushing;
    for (const handle of this.segments.values()) await handle.close().catch(() => {});
    this.segments.clear();
  }

  private bucketOf(timestamp: number): number {
    return Math.floor(timestamp / this.windowSeconds);
  }

  private isStale(bucket: number, nowSeconds: number): boolean {
    return isStale(bucket, nowSeconds, this.windowSeconds);
  }

  private async flush(): Promise<void> {
    while (this.waiters.length > 0) {
      // Requests that arrive while this write is under way and that it covers are answered with it.
      const target = this.wanted;
      let failure: { err: unknown } | undefined;
      try {
        const bucket = this.bucketOf(target);
        const handle = await this.segment(bucket);
        try {
          // The leading newline ends any line a crash left unfinished; the digits of a line cut
          // short read as a lower floor, and the line before it still covers every answered request.
          await handle.write(`\n${target}\n`);
          await handle.datasync();
        } catch (err) {
          this.segments.delete(bucket);
          await handle.close().catch(() => {});
          throw err;
        }
        if (target > this.durable) this.durable = target;
      } catch (err) {
        failure = { err };
      }
      const waiting: Waiter[] = [];
      for (const w of this.waiters) {
        if (w.timestamp > target) waiting.push(w);
        else if (failure) w.reject(failure.err);
        else w.resolve();
      }
      this.waiters = waiting;
      await this.prune();
    }
    this.flushing = undefined;
  }

  /** The open segment of a bucket; a new one is made durable in the directory before use. */
  private async segment(bucket: number): Promise<FileHandle> {
    const open_ = this.segments.get(bucket);
    if (open_) return open_;
    const path = join(this.dir, `nonces-${bucket}.log`);
    let handle: FileHandle;
    let created = true;
    try {
      handle = await open(path, 'ax', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      handle = await open(path, 'a', 0o600); // another bridge on this directory, or an earlier run
      created = false;
    }
    if (created) {
      const dir = await open(this.dir, 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    }
    this.segments.set(bucket, handle);
    return handle;
  }

  /** Closes and deletes the segments this process opened that can no longer matter. */
  private async prune(): Promise<void> {
    const nowSeconds = this.now() / 1000;
    for (const [bucket, handle] of this.segments) {
      if (!this.isStale(bucket, nowSeconds)) continue;
      this.segments.delete(bucket);
      await handle.close().catch(() => {});
      await unlink(join(this.dir, `nonces-${bucket}.log`)).catch(() => {});
    }
  }
}

/** True when every timestamp segment `bucket` can hold is outside the window (with a second to spare). */
function isStale(bucket: number, nowSeconds: number, windowSeconds: number): boolean {
  return (bucket + 1) * windowSeconds + windowSeconds + 1 < nowSeconds;
}
