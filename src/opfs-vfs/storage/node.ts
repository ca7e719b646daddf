/**
 * The Node backend: one file descriptor per file (or, given a `DescriptorPool`, the pool's,
 * which it may close and open again: descriptors.ts), read and written with positional
 * `readSync`/`writeSync` (a write in pieces of at most 64 KiB, see WRITE_PIECE_BYTES).
 * `flush()` is `fdatasync`. ENOSPC and EDQUOT become `StorageFullError`. A database at `path`
 * keeps its files beside it: `path`, `path-wal`, and for a synced database the sync layer's
 * `path-sync`, `path-revert`, `path-replay`, `path-rejected` and `path-pull-0` .. `path-pull-3`
 * (files.ts).
 */
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { type StorageBackend, type StorageDirectory, StorageFullError, assertByteOffset } from './backend.js';
import type { DescriptorPool, PooledDescriptor } from './descriptors.js';
import { nodeSuffix } from './files.js';

/**
 * The most one `pwrite` carries: a longer write is split. Linux 6.x (ext4 here) gives a write a
 * page-cache folio sized by the write, so a 1 MiB write takes a free block of 256 pages, while
 * small writes reuse small free fragments. In the Firecracker VM of issue 15 the large blocks
 * were slow at first touch (host-side faults, as far as the guest can tell): the kernel's copy
 * into them (copy_folio_from_iter_atomic) made a 200 MB bootstrap's system CPU 451–641 ms in
 * 1 MiB writes against 155–241 ms in 64 KiB writes and the official client's 288–354 ms in
 * 4 KiB writes (5 interleaved rounds). It depends on the free memory: while the Normal zone
 * had almost no free blocks of 1 MiB or more (/proc/buddyinfo) it showed; minutes later, with
 * hundreds of MiB of them, 1 MiB and 64 KiB writes cost the same (142–176 ms). 64 KiB keeps
 * the writes 16x fewer than one per page.
 */
const WRITE_PIECE_BYTES = 64 * 1024;

export class NodeFileBackend implements StorageBackend {
  /** The file's own descriptor, or null when it is closed or its descriptor comes from `pool`. */
  private fd: number | null = null;
  private readonly pooled: PooledDescriptor | null = null;
  private closed = false;

  /** With `pool`, the file's descriptor is the pool's to close and open again (descriptors.ts). */
  constructor(
    readonly path: string,
    private readonly pool: DescriptorPool | null = null,
  ) {
    // 'a+' would force appends; 'r+' fails on a missing file, so create it first without truncating.
    if (pool) this.pooled = pool.open(path);
    else this.fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
  }

  read(dst: Uint8Array, offset: number): number {
    assertByteOffset(offset, 'read offset');
    let done = 0;
    while (done < dst.length) {
      const n = fs.readSync(this.handle(), dst, done, dst.length - done, offset + done);
      if (n === 0) break;
      done += n;
    }
    return done;
  }

  write(src: Uint8Array, offset: number): void {
    assertByteOffset(offset, 'write offset');
    let done = 0;
    try {
      while (done < src.length) {
        done += fs.writeSync(this.handle(), src, done, Math.min(src.length - done, WRITE_PIECE_BYTES), offset + done);
      }
    } catch (e) {
      throw toStorageError(e, this.path);
    }
  }

  size(): number {
    return fs.fstatSync(this.handle()).size;
  }

  truncate(sizeBytes: number): void {
    assertByteOffset(sizeBytes, 'truncate size');
    try {
      fs.ftruncateSync(this.handle(), sizeBytes);
    } catch (e) {
      throw toStorageError(e, this.path);
    }
  }

  flush(): void {
    try {
      fs.fdatasyncSync(this.handle());
    } catch (e) {
      throw toStorageError(e, this.path);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.pooled) {
      this.pool!.release(this.pooled);
      return;
    }
    const fd = this.fd!;
    this.fd = null;
    fs.closeSync(fd);
  }

  private handle(): number {
    if (this.closed) throw new Error(`file is closed: ${this.path}`);
    return this.pooled ? this.pool!.fd(this.pooled) : this.fd!;
  }
}

function toStorageError(e: unknown, path: string): Error {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new StorageFullError(`disk full writing ${path} (${code})`);
  }
  return e instanceof Error ? e : new Error(String(e));
}

/**
 * The files of a database at `mainPath`: `open('db')` is the main file itself, and `db-NAME`
 * is `mainPath-NAME` beside it (`db-wal` is SQLite's own `-wal` name; see files.ts).
 */
export class NodeDirectory implements StorageDirectory {
  readonly label: string;
  private madeDir = false;

  /** With `pool`, the files' descriptors come from it (a server holding thousands of databases open). */
  constructor(
    readonly mainPath: string,
    private readonly pool: DescriptorPool | null = null,
  ) {
    this.label = nodePath.resolve(mainPath);
  }

  pathOf(name: string): string {
    return this.label + nodeSuffix(name);
  }

  async open(name: string): Promise<StorageBackend> {
    // The folder is made only when the open finds it missing: a server reopens thousands of
    // databases in folders that exist, and the mkdir was a syscall each.
    try {
      return new NodeFileBackend(this.pathOf(name), this.pool);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || this.madeDir) throw e;
    }
    fs.mkdirSync(nodePath.dirname(this.label), { recursive: true });
    this.madeDir = true;
    return new NodeFileBackend(this.pathOf(name), this.pool);
  }

  async fileSize(name: string): Promise<number | null> {
    try {
      return fs.statSync(this.pathOf(name)).size;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  async release(): Promise<void> {}
}
