/**
 * A disk that loses power, for crash tests that a process crash (crash-disk.ts: every write
 * that reached the storage stays) does not cover. Each file has what the device holds for sure
 * (`durable`: its bytes at the last flush) and the writes and truncations since then, which
 * sit in the OS's cache. `lossAt(n)` arms a power loss at the n-th next change: that change and
 * every later one of the processes so far are dropped, and each file is put back to its durable
 * bytes plus a seeded random subset (kept in order) of its unflushed changes, since a device
 * may write back any of them, in any order, before the power goes. A flush is the only barrier.
 *
 * The files live in a `MemoryDirectory` that outlives the processes: a new process opens them
 * through `process()` after the loss.
 */
import type { StorageBackend, StorageDirectory } from '../../src/opfs-vfs/storage/backend.js';
import { MemoryDirectory } from '../../src/opfs-vfs/storage/memory.js';
import type { Random } from './generate.js';

type Change = { kind: 'write'; bytes: Uint8Array; offset: number } | { kind: 'truncate'; sizeBytes: number };

interface DiskFile {
  /** The shared bytes (what a reader sees now). */
  live: StorageBackend;
  /** The bytes at the last flush. */
  durable: Uint8Array;
  /** The changes since then, in order. */
  unflushed: Change[];
}

export class PowerLossDisk {
  private readonly files = new Map<string, DiskFile>();
  private readonly alive = new Set<{ dead: boolean }>();
  private changesLeft: number | null = null;
  /** Changes made by live processes since the disk was made. */
  changes = 0;
  losses = 0;

  constructor(
    private readonly random: Random,
    readonly base: MemoryDirectory = new MemoryDirectory('power-loss-disk'),
  ) {}

  /** The directory a new process opens its database through. */
  process(): StorageDirectory & { readonly dead: boolean } {
    const life = { dead: false };
    this.alive.add(life);
    return {
      label: this.base.label,
      get dead() {
        return life.dead;
      },
      open: async (name: string) => this.handle(await this.file(name), life),
      fileSize: (name: string) => this.base.fileSize(name),
      release: () => this.base.release(),
    };
  }

  /** Arms a power loss at the `changes`-th next write or truncation (1: the next one). */
  lossAt(changes: number): void {
    this.changesLeft = Math.max(1, changes);
  }

  /** Everything written so far reaches the device (a clean shutdown and a while). */
  settle(): void {
    for (const f of this.files.values()) {
      f.durable = snapshot(f.live);
      f.unflushed = [];
    }
  }

  /** The power goes now: every process dies, and each file keeps its durable bytes and some of the rest. */
  loseNow(): void {
    for (const life of this.alive) life.dead = true;
    this.alive.clear();
    this.changesLeft = null;
    this.losses++;
    for (const f of this.files.values()) {
      f.live.truncate(0);
      f.live.write(f.durable, 0);
      for (const change of f.unflushed) {
        if (this.random() < 0.5) continue;
        if (change.kind === 'write') f.live.write(change.bytes, change.offset);
        else f.live.truncate(change.sizeBytes);
      }
      f.durable = snapshot(f.live);
      f.unflushed = [];
    }
  }

  private async file(name: string): Promise<DiskFile> {
    let f = this.files.get(name);
    if (!f) {
      const live = await this.base.open(name);
      f = this.files.get(name) ?? { live, durable: snapshot(live), unflushed: [] };
      this.files.set(name, f);
    }
    return f;
  }

  /** Counts one change of a live process; false when the power went at it (the change is lost). */
  private change(): boolean {
    this.changes++;
    if (this.changesLeft === null || --this.changesLeft > 0) return true;
    this.loseNow();
    return false;
  }

  private handle(f: DiskFile, life: { dead: boolean }): StorageBackend {
    return {
      read: (dst, offset) => f.live.read(dst, offset),
      size: () => f.live.size(),
      write: (src, offset) => {
        if (life.dead || !this.change()) return;
        f.live.write(src, offset);
        f.unflushed.push({ kind: 'write', bytes: src.slice(), offset });
      },
      truncate: (sizeBytes) => {
        if (life.dead || !this.change()) return;
        f.live.truncate(sizeBytes);
        f.unflushed.push({ kind: 'truncate', sizeBytes });
      },
      flush: () => {
        if (life.dead) return;
        f.durable = snapshot(f.live);
        f.unflushed = [];
      },
      close: () => {},
    };
  }
}

function snapshot(file: StorageBackend): Uint8Array {
  const bytes = new Uint8Array(file.size());
  file.read(bytes, 0);
  return bytes;
}
