/**
 * The nonces of accepted requests, on disk, so that a request captured before a restart cannot be
 * replayed after it: the in-memory ReplayCache starts empty, while a signed request stays
 * acceptable for MAX_CLOCK_SKEW_SECONDS, and a signed /v1/unwrap answers a plaintext data key.
 *
 * Layout: the state directory holds append-only segments `nonces-<n>.log`, one line
 * "<nonce> <timestamp>" per accepted request, segment n holding the timestamps of one window
 * [n·W, (n+1)·W). A segment whose newest possible timestamp is outside the window can no longer
 * matter and is deleted whole, so nothing is ever rewritten. A nonce is written and fsync'd before
 * its request is answered; concurrent requests share one write and one fsync (group commit).
 *
 * Bridges that share a state directory (same host) learn each other's nonces when they start,
 * but a running bridge only knows the nonces it accepted itself and those on disk at its start.
 */
import { mkdir, open, readdir, readFile, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { MAX_CLOCK_SKEW_SECONDS } from '../../bridge-protocol/index.js';
import { ConfigError } from './config.js';

const SEGMENT_NAME = /^nonces-(\d{1,12})\.log$/;
const LINE = /^([A-Za-z0-9_-]{16,64}) (\d{1,12})$/;

export interface JournalEntry {
  nonce: string;
  /** The request's timestamp, seconds. */
  timestamp: number;
}

export interface NonceJournalOptions {
  /** Seconds a request stays acceptable either side of now; default MAX_CLOCK_SKEW_SECONDS. */
  windowSeconds?: number;
  /** Clock in milliseconds; injectable for tests. */
  now?: () => number;
}

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class NonceJournal {
  private readonly segments = new Map<number, FileHandle>();
  private pending = new Map<number, string[]>();
  private waiters: Waiter[] = [];
  private flushing: Promise<void> | undefined;
  private closed = false;

  private constructor(
    readonly dir: string,
    /** Entries on disk at open whose timestamps are still acceptable: seed the replay cache with them. */
    readonly recovered: JournalEntry[],
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

    const journal = new NonceJournal(dir, [], windowSeconds, now);
    const nowSeconds = now() / 1000;
    for (const name of await readdir(dir)) {
      const m = SEGMENT_NAME.exec(name);
      if (!m) continue;
      const path = join(dir, name);
      if (journal.isStale(Number(m[1]), nowSeconds)) {
        await unlink(path).catch(() => {}); // another bridge on this directory may have deleted it first
        continue;
      }
      // Lines that do not parse are the tail of a write cut short by a crash: that request was never
      // answered, and every write starts on a new line, so no complete line is lost with it.
      for (const line of (await readFile(path, 'utf8')).split('\n')) {
        const entry = LINE.exec(line);
        if (!entry) continue;
        const timestamp = Number(entry[2]);
        if (timestamp >= nowSeconds - windowSeconds - 1) journal.recovered.push({ nonce: entry[1]!, timestamp });
      }
    }
    // Fail at startup, not on the first request, when the directory cannot be written.
    try {
      await journal.segment(journal.bucketOf(Math.floor(nowSeconds)));
    } catch (err) {
      throw problem('cannot be written', err);
    }
    return journal;
  }

  /** Resolves once the nonce is on disk (fsync'd); only then may its request be answered. */
  record(nonce: string, timestamp: number): Promise<void> {
    if (this.closed) return Promise.reject(new Error('nonce journal is closed'));
    const bucket = this.bucketOf(timestamp);
    const lines = this.pending.get(bucket) ?? [];
    lines.push(`${nonce} ${timestamp}`);
    this.pending.set(bucket, lines);
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject });
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

  /** True when every timestamp segment `bucket` can hold is outside the window (with a second to spare). */
  private isStale(bucket: number, nowSeconds: number): boolean {
    return (bucket + 1) * this.windowSeconds + this.windowSeconds + 1 < nowSeconds;
  }

  private async flush(): Promise<void> {
    while (this.waiters.length > 0) {
      const batch = this.pending;
      const waiters = this.waiters;
      this.pending = new Map();
      this.waiters = [];
      try {
        for (const [bucket, lines] of batch) {
          const handle = await this.segment(bucket);
          try {
            // The leading newline ends any line a crash left unfinished.
            await handle.write(`\n${lines.join('\n')}\n`);
            await handle.datasync();
          } catch (err) {
            this.segments.delete(bucket);
            await handle.close().catch(() => {});
            throw err;
          }
        }
        for (const w of waiters) w.resolve();
      } catch (err) {
        for (const w of waiters) w.reject(err);
      }
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
