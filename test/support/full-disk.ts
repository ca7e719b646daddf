/**
 * A disk that fills up: every file of a database lives in one `MemoryDirectory` that outlives
 * the processes, and the disk holds at most `roomBytes` bytes over all of them (null: no limit).
 * A write or truncation that would pass it throws `StorageFullError`, as a full disk or an
 * exhausted OPFS quota does; with `partialWrites`, a refused write first stores the prefix that
 * fits, as a browser that reports a short count does (the backend contract allows a prefix). Unlike `MemoryDirectory`'s per-file quota, the room
 * is shared, so whichever file grows next (the database, its WAL, the sync layer's side files)
 * meets the full disk.
 */
import { type StorageBackend, type StorageDirectory, StorageFullError } from '../../src/opfs-vfs/storage/backend.js';
import { MemoryDirectory } from '../../src/opfs-vfs/storage/memory.js';

export class FullDisk {
  private readonly files = new Map<string, StorageBackend>();
  /** The most bytes all files may hold together; null when the disk has room for anything. */
  roomBytes: number | null = null;
  /** How many writes or truncations the full disk refused. */
  refusals = 0;

  constructor(
    /** A refused write stores what fits before it throws. */
    readonly partialWrites = false,
    readonly base: MemoryDirectory = new MemoryDirectory('full-disk'),
  ) {}

  /** Bytes the files hold now. */
  usedBytes(): number {
    let n = 0;
    for (const f of this.files.values()) n += f.size();
    return n;
  }

  /** The directory a process opens its database through. */
  directory(): StorageDirectory {
    return {
      label: this.base.label,
      open: async (name: string) => this.handle(await this.file(name)),
      fileSize: (name: string) => this.base.fileSize(name),
      release: () => this.base.release(),
    };
  }

  private async file(name: string): Promise<StorageBackend> {
    let f = this.files.get(name);
    if (!f) {
      f = await this.base.open(name);
      this.files.set(name, f);
    }
    return f;
  }

  /** How many more bytes `file` may grow by; Infinity when the disk has room for anything. */
  private roomFor(file: StorageBackend, endBytes: number): number {
    const growth = endBytes - file.size();
    if (this.roomBytes === null || growth <= 0) return Number.POSITIVE_INFINITY;
    return this.roomBytes - this.usedBytes();
  }

  private refuse(growth: number): never {
    this.refusals++;
    throw new StorageFullError(`the disk is full: ${growth} more bytes do not fit in ${this.roomBytes}`);
  }

  private handle(f: StorageBackend): StorageBackend {
    return {
      read: (dst, offset) => f.read(dst, offset),
      size: () => f.size(),
      write: (src, offset) => {
        const growth = offset + src.length - f.size();
        const room = this.roomFor(f, offset + src.length);
        if (growth <= room) return f.write(src, offset);
        // The prefix that fits: up to the file's end plus the room left.
        const fits = Math.max(0, f.size() + Math.max(0, room) - offset);
        if (this.partialWrites && fits > 0) f.write(src.subarray(0, Math.min(fits, src.length)), offset);
        this.refuse(growth);
      },
      truncate: (sizeBytes) => {
        const growth = sizeBytes - f.size();
        if (growth > this.roomFor(f, sizeBytes)) this.refuse(growth);
        f.truncate(sizeBytes);
      },
      flush: () => f.flush(),
      // The files outlive a process: closing one leaves its bytes for the next.
      close: () => {},
    };
  }
}
