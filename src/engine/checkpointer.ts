/**
 * Checkpoint policy with `checkpoint: 'auto'`: SQLite's own autocheckpoint as the late bound,
 * and an idle checkpoint that keeps the WAL small in the steady state. The WAL write counter
 * tells the connection whether an API call wrote to the WAL at all.
 */
import type { StorageBackend } from '../opfs-vfs/storage/backend.js';

/**
 * SQLite's default of 1000 pages makes a burst of writes pay for checkpoints in the middle of
 * it (about a third of the time of a big INSERT ... SELECT on OPFS). Ten thousand pages (40 MB)
 * bounds the WAL; the idle checkpoint keeps it small in the steady state.
 */
export const AUTOCHECKPOINT_PAGES = 10_000;
/** How long the connection must be idle after a write before it checkpoints. */
export const IDLE_CHECKPOINT_MS = 1000;
/** Below this many WAL bytes an idle checkpoint is not worth its flushes. */
export const IDLE_CHECKPOINT_MIN_WAL_BYTES = 1024 * 1024;

/**
 * Counts the writes to a backend (the WAL), so the connection knows when it wrote, and keeps
 * its size: every write and truncate of the WAL comes through here (the connection holds its
 * files alone), so after one `size()` from the backend the rest follow from them. SQLite asks
 * for the WAL's size at transactions and the idle checkpoint at each of its timers; each was
 * an fstat (about 3% of a server's time under load). After a write or truncate that threw,
 * the next `size()` asks the backend again (a failed write may have written part).
 */
export class WalWriteCounter implements StorageBackend {
  private writes = 0;
  private writesSeen = 0;
  private knownSize: number | null = null;

  constructor(private readonly inner: StorageBackend) {}

  /** Whether the WAL was written since the last call. */
  takeWritten(): boolean {
    if (this.writes === this.writesSeen) return false;
    this.writesSeen = this.writes;
    return true;
  }

  read(dst: Uint8Array, offset: number): number {
    return this.inner.read(dst, offset);
  }

  write(src: Uint8Array, offset: number): void {
    this.writes++;
    const before = this.knownSize;
    this.knownSize = null;
    this.inner.write(src, offset);
    if (before !== null) this.knownSize = Math.max(before, offset + src.length);
  }

  size(): number {
    this.knownSize ??= this.inner.size();
    return this.knownSize;
  }

  truncate(sizeBytes: number): void {
    this.knownSize = null;
    this.inner.truncate(sizeBytes);
    this.knownSize = sizeBytes;
  }

  flush(): void {
    this.inner.flush();
  }

  close(): void {
    this.inner.close();
  }
}

/** What the idle checkpoint needs from its connection. */
export interface CheckpointTarget {
  /** Open and outside any transaction. */
  idle(): boolean;
  walBytes(): number;
  /** Runs `PRAGMA wal_checkpoint(TRUNCATE)`. */
  checkpoint(): void;
}

/**
 * Checkpoints once the connection has been idle for IDLE_CHECKPOINT_MS after a write: no call
 * at all (reads included) in that time, so the checkpoint runs in idle time, not in front of a
 * caller's next statement.
 *
 * Calls only note their time: one timer runs per quiet period and, when it fires early, waits
 * out the rest. Re-arming a timer at every call cost a worker tens of microseconds a call
 * (clearTimeout and setTimeout were 5% of 5,000 indexed SELECTs in the issue-15 profile).
 */
export class IdleCheckpointer {
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** A write since the last checkpoint attempt. */
  private pending = false;
  private lastCallAt = 0;

  constructor(private readonly target: CheckpointTarget) {}

  /** After every API call that wrote to the WAL. */
  schedule(): void {
    this.pending = true;
    this.lastCallAt = performance.now();
    if (this.timer === null) this.arm(IDLE_CHECKPOINT_MS);
  }

  /** After a call that did not write: a pending idle checkpoint waits for a full quiet period again. */
  postpone(): void {
    if (this.pending) this.lastCallAt = performance.now();
  }

  cancel(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.pending = false;
  }

  private arm(delayMs: number): void {
    this.timer = setTimeout(() => this.fire(), delayMs);
    // Node: an idle checkpoint alone must not keep the process alive.
    (this.timer as { unref?: () => void }).unref?.();
  }

  private fire(): void {
    this.timer = null;
    const quietMs = performance.now() - this.lastCallAt;
    if (quietMs < IDLE_CHECKPOINT_MS) {
      this.arm(IDLE_CHECKPOINT_MS - quietMs);
      return;
    }
    this.pending = false;
    if (!this.target.idle() || this.target.walBytes() < IDLE_CHECKPOINT_MIN_WAL_BYTES) return;
    try {
      // TRUNCATE also shrinks the WAL file back to zero, so OPFS usage stays small.
      this.target.checkpoint();
    } catch {
      // A failed checkpoint loses nothing (the frames stay in the WAL); the next one retries.
    }
  }
}
