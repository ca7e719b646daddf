/**
 * A disk that outlives the processes using it, for crash simulations. The files live in a base
 * `StorageDirectory` (memory files that persist across opens, or Node files); each simulated
 * process opens them through its own view (`process()`). `crash()` kills every process so far:
 * from that instant their handles drop writes, truncations and flushes, so nothing a dead
 * process does reaches the files, while reads and closes still work.
 *
 * That is what lets a test abandon a database the way a crash does and still release it: the
 * dead process's connection can be closed (freeing its SQLite handle, its VFS mount, its file
 * descriptors) without closing doing anything a crash would not have done. A process crash
 * (not a power loss) keeps every write that reached the storage: the VFS flushes its write
 * buffer at each commit, so a commit is in the files when it returns.
 *
 * `crashAt(n)` arms a crash point: the process dies at its n-th next change to the files (a
 * write or a truncation; that change is lost), wherever the code is at that moment, in the
 * middle of a commit, an apply or a recovery. The code then runs on against dead handles; its
 * results mean nothing, and a test waits for it to end before the next process opens.
 */
import type { StorageBackend, StorageDirectory } from '../../src/opfs-vfs/storage/backend.js';
import { MemoryDirectory } from '../../src/opfs-vfs/storage/memory.js';

export class CrashDisk {
  /** Processes that have not crashed yet. */
  private readonly alive = new Set<{ dead: boolean }>();
  crashes = 0;
  /** Changes to the files left before the armed crash point; null when none is armed. */
  private changesLeft: number | null = null;

  constructor(readonly base: StorageDirectory = new MemoryDirectory('crash-disk')) {}

  /** The directory a new process opens the database through; `dead` once it crashed. */
  process(): StorageDirectory & { readonly dead: boolean } {
    const life = { dead: false };
    this.alive.add(life);
    const base = this.base;
    return {
      label: base.label,
      get dead() {
        return life.dead;
      },
      open: async (name: string) => severable(await base.open(name), life, () => this.change()),
      fileSize: (name: string) => base.fileSize(name),
      release: () => base.release(),
    };
  }

  /** Every process so far dies: its handles stop changing the files. */
  crash(): void {
    for (const life of this.alive) life.dead = true;
    this.alive.clear();
    this.crashes++;
    this.changesLeft = null;
  }

  /** Arms a crash point: the processes die at the `changes`-th next write or truncation (1: the next). */
  crashAt(changes: number): void {
    this.changesLeft = Math.max(1, changes);
  }

  /** Counts one change by a live process; false when the crash point is reached (the change is lost). */
  private change(): boolean {
    if (this.changesLeft === null) return true;
    if (--this.changesLeft > 0) return true;
    this.crash();
    return false;
  }

  /** The whole of file `name` as it is now. */
  async read(name: string): Promise<Uint8Array> {
    const file = await this.base.open(name);
    try {
      const bytes = new Uint8Array(file.size());
      file.read(bytes, 0);
      return bytes;
    } finally {
      file.close();
    }
  }
}

/**
 * A handle whose changes stop reaching `file` once `life.dead` is set; `change()` counts each
 * change of a live process and may end its life right there.
 */
function severable(file: StorageBackend, life: { dead: boolean }, change: () => boolean): StorageBackend {
  return {
    read: (dst, offset) => file.read(dst, offset),
    size: () => file.size(),
    write: (src, offset) => {
      if (!life.dead && change()) file.write(src, offset);
    },
    truncate: (sizeBytes) => {
      if (!life.dead && change()) file.truncate(sizeBytes);
    },
    flush: () => {
      if (!life.dead) file.flush();
    },
    close: () => file.close(),
  };
}
