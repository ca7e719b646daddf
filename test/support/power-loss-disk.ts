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
 *
 * Files written through `node:fs` calls (the server's revision log: `logFiles()`) live on the
 * same disk, named by path, and lose power the same way. Their names are a folder's entries: a
 * file created or renamed is durable by name only once its folder is fsynced (a rename keeps
 * the old entry or the new, whole), so a loss keeps the durable entries plus a seeded subset,
 * in order, of the later creations and renames.
 *
 * An fsync off the event loop (`LogFiles.fsync`) completes a seeded number of event-loop turns
 * after its call (0 to 3), and then flushes the changes made before the call that are still
 * unflushed (of a folder: every entry made so far); if the power goes (or the process dies)
 * first, it flushed nothing.
 */
import type { StorageBackend, StorageDirectory } from '../../src/opfs-vfs/storage/backend.js';
import { MemoryBackend, MemoryDirectory } from '../../src/opfs-vfs/storage/memory.js';
import type { LogFiles } from '../../src/server/revlog.js';
import type { Random } from './generate.js';

type Change = { kind: 'write'; bytes: Uint8Array; offset: number } | { kind: 'truncate'; sizeBytes: number };

interface DiskFile {
  /** The file's name: a database file's (`db-wal`, prefixed by `process`'s `database`), or the path it was created at (a renamed log keeps its `.tmp` one). */
  name: string;
  /** The shared bytes (what a reader sees now). */
  live: StorageBackend;
  /** The bytes at the last flush. */
  durable: Uint8Array;
  /** The changes since then, in order. */
  unflushed: Change[];
}

/** A folder entry made since the folder's last fsync: `path` names `file` now (a rename also removes `from`). */
interface NameChange {
  path: string;
  file: DiskFile;
  from: string | null;
}

export class PowerLossDisk {
  private readonly files = new Map<string, DiskFile>();
  /** Files reached by path through `logFiles()`, as the folder names them now, and as it names them durably. */
  private readonly names = new Map<string, DiskFile>();
  private durableNames = new Map<string, DiskFile>();
  private unflushedNames: NameChange[] = [];
  /** Every file reached by path, however named (a truncated or renamed-over one may come back). */
  private readonly pathFiles = new Set<DiskFile>();
  private readonly alive = new Set<{ dead: boolean }>();
  private changesLeft: number | null = null;
  /** Changes made by live processes since the disk was made. */
  changes = 0;
  losses = 0;

  constructor(
    private readonly random: Random,
    readonly base: MemoryDirectory = new MemoryDirectory('power-loss-disk'),
  ) {}

  /**
   * The directory a new process opens its database through; `database` prefixes its files'
   * names, so that several databases share the disk (and its power) without sharing files.
   */
  process(database = ''): StorageDirectory & { readonly dead: boolean } {
    const life = { dead: false };
    this.alive.add(life);
    return {
      label: this.base.label,
      get dead() {
        return life.dead;
      },
      open: async (name: string) => this.handle(await this.file(database + name), life),
      fileSize: (name: string) => this.base.fileSize(database + name),
      release: () => this.base.release(),
    };
  }

  /** Arms a power loss at the `changes`-th next write or truncation (1: the next one). */
  lossAt(changes: number): void {
    this.changesLeft = Math.max(1, changes);
  }

  /** Everything written so far reaches the device (a clean shutdown and a while). */
  settle(): void {
    for (const f of [...this.files.values(), ...this.pathFiles]) {
      f.durable = snapshot(f.live);
      f.unflushed = [];
    }
    this.durableNames = new Map(this.names);
    this.unflushedNames = [];
  }

  /** The processes die, the machine runs on: every write they made stays, and it is the same boot. */
  killProcesses(): void {
    for (const life of this.alive) life.dead = true;
    this.alive.clear();
  }

  /**
   * The power goes now: every process dies, and each file keeps its durable bytes and some of
   * the rest. With `keep`, the test chooses instead of the seed: a file (and a folder entry)
   * named `n` keeps all of its unflushed changes when `keep(n)`, and none otherwise.
   */
  loseNow(keep?: (name: string) => boolean): void {
    const kept = (name: string): boolean => (keep ? keep(name) : this.random() >= 0.5);
    for (const life of this.alive) life.dead = true;
    this.alive.clear();
    this.changesLeft = null;
    this.losses++;
    this.names.clear();
    for (const [path, f] of this.durableNames) this.names.set(path, f);
    for (const change of this.unflushedNames) {
      if (!kept(change.path)) continue;
      this.names.set(change.path, change.file);
      if (change.from !== null && this.names.get(change.from) === change.file) this.names.delete(change.from);
    }
    this.durableNames = new Map(this.names);
    this.unflushedNames = [];
    for (const f of [...this.files.values(), ...this.pathFiles]) {
      f.live.truncate(0);
      f.live.write(f.durable, 0);
      for (const change of f.unflushed) {
        if (!kept(f.name)) continue;
        if (change.kind === 'write') f.live.write(change.bytes, change.offset);
        else f.live.truncate(change.sizeBytes);
      }
      f.durable = snapshot(f.live);
      f.unflushed = [];
    }
  }

  /**
   * The `node:fs` calls of the server's revision log (revlog.ts `LogFiles`) for the process
   * that opened `directory` (from `process()`): once it is dead, they change nothing.
   */
  logFiles(directory: { readonly dead: boolean }): LogFiles {
    const open = new Map<number, { file: DiskFile | null; path: string }>();
    let nextFd = 1000;
    const fileOf = (fd: number): DiskFile | null => {
      const entry = open.get(fd);
      if (!entry) throw new Error(`EBADF: fd ${fd}`);
      return entry.file;
    };
    const create = (path: string): DiskFile => {
      const file: DiskFile = { name: path, live: new MemoryBackend(), durable: new Uint8Array(0), unflushed: [] };
      this.pathFiles.add(file);
      this.names.set(path, file);
      this.unflushedNames.push({ path, file, from: null });
      return file;
    };
    const changeBy = (): boolean => !directory.dead && this.change();
    return {
      openExisting: (path) => {
        const file = this.names.get(path);
        if (!file) return null;
        const fd = nextFd++;
        open.set(fd, { file, path });
        return { fd, bytes: snapshot(file.live) };
      },
      openSync: (path, flags) => {
        const fd = nextFd++;
        if (flags === 'r') {
          open.set(fd, { file: null, path });
          return fd;
        }
        let file = flags === 'a' ? this.names.get(path) : undefined;
        // A dead process creates nothing: it writes through a handle that changes nothing.
        if (!file) file = directory.dead ? { name: path, live: new MemoryBackend(), durable: new Uint8Array(0), unflushed: [] } : create(path);
        open.set(fd, { file, path });
        return fd;
      },
      writeSync: (fd, bytes) => {
        const file = fileOf(fd)!;
        if (!changeBy()) return bytes.length;
        const offset = file.live.size();
        file.live.write(bytes, offset);
        file.unflushed.push({ kind: 'write', bytes: bytes.slice(), offset });
        return bytes.length;
      },
      ftruncateSync: (fd, length) => {
        const file = fileOf(fd)!;
        if (!changeBy()) return;
        file.live.truncate(length);
        file.unflushed.push({ kind: 'truncate', sizeBytes: length });
      },
      fsyncSync: (fd) => {
        const file = fileOf(fd);
        if (directory.dead) return;
        if (file === null) {
          this.durableNames = new Map(this.names);
          this.unflushedNames = [];
          return;
        }
        file.durable = snapshot(file.live);
        file.unflushed = [];
      },
      fsync: async (fd) => {
        const file = fileOf(fd);
        const covered = new Set(file?.unflushed);
        for (let turns = Math.floor(this.random() * 4); turns > 0; turns--) await new Promise((resolve) => setImmediate(resolve));
        if (directory.dead || !open.has(fd)) return;
        if (file === null) {
          // A folder: every entry made so far is durable (the call's own, and later ones the
          // device may have written back early anyway).
          this.durableNames = new Map(this.names);
          this.unflushedNames = [];
          return;
        }
        // Changes flush in order: those the call covers and no later flush took lead the list.
        let n = 0;
        while (n < file.unflushed.length && covered.has(file.unflushed[n]!)) n++;
        const device = new MemoryBackend();
        device.write(file.durable, 0);
        for (const change of file.unflushed.slice(0, n)) {
          if (change.kind === 'write') device.write(change.bytes, change.offset);
          else device.truncate(change.sizeBytes);
        }
        file.durable = snapshot(device);
        file.unflushed = file.unflushed.slice(n);
      },
      closeSync: (fd) => {
        open.delete(fd);
      },
      // A power loss is a new boot: a log the process left open is not trusted across it.
      bootId: () => this.losses.toString(16).padStart(32, '0'),
      renameSync: (from, to) => {
        const file = this.names.get(from);
        if (!file) throw Object.assign(new Error(`ENOENT: ${from}`), { code: 'ENOENT' });
        if (!changeBy()) return;
        this.names.set(to, file);
        this.names.delete(from);
        this.unflushedNames.push({ path: to, file, from });
      },
    };
  }

  private async file(name: string): Promise<DiskFile> {
    let f = this.files.get(name);
    if (!f) {
      const live = await this.base.open(name);
      f = this.files.get(name) ?? { name, live, durable: snapshot(live), unflushed: [] };
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
