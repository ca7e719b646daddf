/**
 * Outpost's byte-level VFS, registered with the WASM build's JS VFS API as `outpost`.
 *
 * Design
 * - Files are mounted, not discovered. Storage backends are asynchronous to open (OPFS) but
 *   SQLite's I/O is synchronous, so the engine opens every file of a database first and mounts
 *   them under a private prefix: `/<mount id>/db` (the main file) and `/<mount id>/db-wal`.
 *   SQLite derives the WAL name from the main name, so it finds the mounted WAL itself.
 * - Temporary files (statement journals, sorter spills, VACUUM's scratch database, temp
 *   tables) live in memory (`MemoryBackend`), and so does the rollback journal of the one
 *   transaction that switches a new database into WAL mode. Any other file that is not
 *   mounted (an ATTACHed database) cannot be opened: SQLITE_CANTOPEN with a message.
 * - WAL without shared memory: the engine sets `locking_mode=EXCLUSIVE` before WAL mode, so
 *   SQLite keeps the WAL index in heap memory and never calls xShm*. These io methods are
 *   version 1 (no xShm). A `PRAGMA journal_mode` other than WAL, or a `locking_mode` other than
 *   EXCLUSIVE, is refused through SQLITE_FCNTL_PRAGMA, since either would need a file or a
 *   shared-memory index this VFS does not provide.
 * - Locks: a mounted file is held exclusively by this worker (OPFS `readwrite` handles are
 *   exclusive; a Web Lock orders tabs), so xLock and xUnlock grant every level at once.
 * - Deleting a mounted file truncates it to zero bytes and keeps the handle: SQLite deletes the
 *   WAL after its final checkpoint, and the handle must stay open for the next open. A mounted
 *   file "exists" for xAccess when it is longer than zero bytes.
 * - Write joining: each `write()` of a backend has a fixed cost (tens of microseconds on OPFS),
 *   and SQLite writes a WAL frame as a 24-byte header followed by a page. Adjacent writes are
 *   joined in a per-file buffer (at most `WRITE_BUFFER_BYTES`) and written as one call. The
 *   buffer is written out before any read, size, truncate, sync or close of that file, with
 *   the page of a WAL commit frame (the frame header's commit field is set; a failure there
 *   still fails the COMMIT, so a full disk never leaves a commit that is not on disk), and
 *   whenever the engine finishes an API call (`flushWrites()`). A committed transaction is
 *   therefore always in the backend before the caller hears of it.
 * - Errors never cross into WASM as exceptions. Every method catches, records the error
 *   (`takeError()` hands it to the engine, which adds it to the SqliteError message) and returns
 *   the most specific code: SQLITE_FULL for `StorageFullError`, SQLITE_IOERR_READ/WRITE/FSYNC/
 *   TRUNCATE/FSTAT/CLOSE/DELETE otherwise.
 */
import {
  SQLITE_CANTOPEN,
  SQLITE_ERROR,
  SQLITE_FCNTL_COMMIT_PHASETWO,
  SQLITE_FCNTL_PRAGMA,
  SQLITE_FULL,
  SQLITE_IOCAP_POWERSAFE_OVERWRITE,
  SQLITE_IOCAP_UNDELETABLE_WHEN_OPEN,
  SQLITE_IOERR_ACCESS,
  SQLITE_IOERR_CLOSE,
  SQLITE_IOERR_DELETE,
  SQLITE_IOERR_FSTAT,
  SQLITE_IOERR_FSYNC,
  SQLITE_IOERR_READ,
  SQLITE_IOERR_SHORT_READ,
  SQLITE_IOERR_TRUNCATE,
  SQLITE_IOERR_WRITE,
  SQLITE_NOTFOUND,
  SQLITE_OK,
  SQLITE_OPEN_DELETEONCLOSE,
  SQLITE_OPEN_MAIN_DB,
  SQLITE_OPEN_MAIN_JOURNAL,
  SQLITE_OPEN_SUBJOURNAL,
  SQLITE_OPEN_TEMP_DB,
  SQLITE_OPEN_TEMP_JOURNAL,
  SQLITE_OPEN_TRANSIENT_DB,
  SQLITE_OPEN_WAL,
} from '../sqlite/constants.js';
import {
  WAL_FRAME_DB_PAGES_AFTER_COMMIT_OFFSET,
  WAL_FRAME_HEADER_BYTES,
  WAL_FRAME_PAGE_NUMBER_OFFSET,
  isWalFrameHeaderWrite,
  readUint32,
} from '../sqlite/format.js';
import type { Sqlite3Runtime } from '../sqlite/wasm-api.js';
import { type StorageBackend, StorageFullError } from './storage/backend.js';
import { MemoryBackend } from './storage/memory.js';

export const VFS_NAME = 'outpost';

/** Largest run of adjacent writes joined into one backend write. */
const WRITE_BUFFER_BYTES = 1024 * 1024;
/** A join buffer starts this small and grows; a large one is dropped when it is written out. */
const INITIAL_BUFFER_BYTES = 32 * 1024;

/** Files SQLite may keep in memory: temporary databases, journals and statement journals. */
const TEMPORARY_KINDS = SQLITE_OPEN_TEMP_DB | SQLITE_OPEN_TRANSIENT_DB | SQLITE_OPEN_TEMP_JOURNAL | SQLITE_OPEN_SUBJOURNAL;

/**
 * Sees every WAL frame header SQLite writes for one database, before the frame reaches the
 * backend: the page number (1-based) and, for a commit frame, the database size in pages after
 * the commit (0 otherwise). The sync server builds its revisions from this.
 */
export interface WalObserver {
  onWalFrame(pageNumber: number, dbSizeAfterCommit: number): void;
}

export interface VfsError {
  code: number;
  message: string;
}

/** One file SQLite has open. */
class OpenFile {
  private buffer: Uint8Array | null = null;
  private bufferOffset = 0;
  private bufferLength = 0;
  /** The buffer holds the header of a commit frame: write it out with its page. */
  private commitPending = false;

  readonly isWal: boolean;

  constructor(
    readonly path: string,
    readonly backend: StorageBackend,
    readonly flags: number,
    readonly mounted: boolean,
    private readonly observer: WalObserver | undefined,
  ) {
    this.isWal = (flags & SQLITE_OPEN_WAL) !== 0;
  }

  read(dst: Uint8Array, offset: number): number {
    this.flush();
    return this.backend.read(dst, offset);
  }

  write(src: Uint8Array, offset: number): void {
    if (this.observer && this.isWal && isWalFrameHeaderWrite(offset, src.length)) {
      this.observer.onWalFrame(readUint32(src, WAL_FRAME_PAGE_NUMBER_OFFSET), readUint32(src, WAL_FRAME_DB_PAGES_AFTER_COMMIT_OFFSET));
    }
    if (this.bufferLength > 0 && offset === this.bufferOffset + this.bufferLength && this.bufferLength + src.length <= WRITE_BUFFER_BYTES) {
      if (this.bufferLength + src.length > this.buffer!.length) {
        // Grow geometrically up to WRITE_BUFFER_BYTES: small commits keep small buffers.
        const grown = new Uint8Array(Math.min(WRITE_BUFFER_BYTES, Math.max(this.buffer!.length * 2, this.bufferLength + src.length)));
        grown.set(this.buffer!.subarray(0, this.bufferLength));
        this.buffer = grown;
      }
      this.buffer!.set(src, this.bufferLength);
      this.bufferLength += src.length;
    } else {
      this.flush();
      if (src.length >= WRITE_BUFFER_BYTES / 2 || !this.mounted) {
        this.backend.write(src, offset);
        return;
      }
      if (!this.buffer || this.buffer.length < src.length) this.buffer = new Uint8Array(Math.max(INITIAL_BUFFER_BYTES, src.length * 2));
      this.buffer.set(src, 0);
      this.bufferOffset = offset;
      this.bufferLength = src.length;
    }
    if (this.commitPending) {
      // This was the commit frame's page. SQLite treats the transaction as committed once this
      // xWrite returns, so a failure (a full disk) must surface here, not later.
      this.commitPending = false;
      this.flush();
    } else if (this.isWal && src.length === WAL_FRAME_HEADER_BYTES && readUint32(src, WAL_FRAME_DB_PAGES_AFTER_COMMIT_OFFSET) !== 0) {
      // A WAL frame header whose "database size after commit" field is set: a commit frame.
      this.commitPending = true;
    }
  }

  /** Writes the joined buffer to the backend. On failure the buffer is dropped: SQLite saw the error. */
  flush(): void {
    if (this.bufferLength === 0) return;
    const n = this.bufferLength;
    const buffer = this.buffer!;
    this.bufferLength = 0;
    this.commitPending = false;
    // Thousands of open databases must not each keep a megabyte: big buffers are transient.
    if (buffer.length > INITIAL_BUFFER_BYTES) this.buffer = null;
    this.backend.write(buffer.subarray(0, n), this.bufferOffset);
  }

  size(): number {
    this.flush();
    // Pending bytes past the end count too, but flush() already wrote them.
    return this.backend.size();
  }
}

export class OutpostVfs {
  private readonly mounts = new Map<string, StorageBackend>();
  private readonly observers = new Map<string, WalObserver>();
  private readonly files = new Map<number, OpenFile>();
  private lastError: VfsError | null = null;
  private nextMountId = 1;

  private constructor(private readonly sqlite3: Sqlite3Runtime) {}

  /** Registers the VFS with this WASM module once and returns it. */
  static install(sqlite3: Sqlite3Runtime): OutpostVfs {
    const existing = installed.get(sqlite3);
    if (existing) return existing;
    const vfs = new OutpostVfs(sqlite3);
    vfs.register();
    installed.set(sqlite3, vfs);
    return vfs;
  }

  /**
   * Mounts the files of one database; returns the path to give SQLite as the file name and a
   * function that unmounts them (call it after SQLite closed the database).
   */
  mount(files: { db: StorageBackend; wal: StorageBackend }, observer?: WalObserver): { path: string; unmount: () => void } {
    const prefix = `/${this.nextMountId++}`;
    const path = `${prefix}/db`;
    this.mounts.set(path, files.db);
    this.mounts.set(`${path}-wal`, files.wal);
    if (observer) this.observers.set(`${path}-wal`, observer);
    return {
      path,
      unmount: () => {
        this.mounts.delete(path);
        this.mounts.delete(`${path}-wal`);
        this.observers.delete(`${path}-wal`);
      },
    };
  }

  /** The error behind the last failed VFS call, once. */
  takeError(): VfsError | null {
    const e = this.lastError;
    this.lastError = null;
    return e;
  }

  /** Writes every joined write buffer out. Throws what the backend throws. */
  flushWrites(): void {
    for (const file of this.files.values()) file.flush();
  }

  private fail(e: unknown, code: number): number {
    const message = e instanceof Error ? e.message : String(e);
    if (e instanceof StorageFullError) {
      this.lastError = { code: SQLITE_FULL, message };
      return SQLITE_FULL;
    }
    this.lastError = { code, message };
    return code;
  }

  private register(): void {
    const { capi, wasm } = this.sqlite3;
    const heap = (): Uint8Array => wasm.heap8u();
    const file = (pFile: number): OpenFile => {
      const f = this.files.get(pFile);
      if (!f) throw new Error(`VFS: unknown file handle ${pFile}`);
      return f;
    };

    const io = new capi.sqlite3_io_methods();
    io.$iVersion = 1;
    const ioMethods = {
      xClose: (pFile: number): number => {
        const f = this.files.get(pFile);
        if (!f) return SQLITE_OK;
        this.files.delete(pFile);
        try {
          f.flush();
          // Mounted files belong to the engine, which closes them after SQLite is done.
          if (!f.mounted) f.backend.close();
          return SQLITE_OK;
        } catch (e) {
          return this.fail(e, SQLITE_IOERR_CLOSE);
        }
      },
      xRead: (pFile: number, pDest: number, n: number, offset: bigint | number): number => {
        try {
          const dst = heap().subarray(pDest, pDest + n);
          const got = file(pFile).read(dst, Number(offset));
          if (got < n) {
            // SQLite requires the unread tail to be zeroed on a short read.
            heap().fill(0, pDest + got, pDest + n);
            return SQLITE_IOERR_SHORT_READ;
          }
          return SQLITE_OK;
        } catch (e) {
          return this.fail(e, SQLITE_IOERR_READ);
        }
      },
      xWrite: (pFile: number, pSrc: number, n: number, offset: bigint | number): number => {
        try {
          file(pFile).write(heap().subarray(pSrc, pSrc + n), Number(offset));
          return SQLITE_OK;
        } catch (e) {
          return this.fail(e, SQLITE_IOERR_WRITE);
        }
      },
      xTruncate: (pFile: number, size: bigint | number): number => {
        try {
          const f = file(pFile);
          f.flush();
          f.backend.truncate(Number(size));
          return SQLITE_OK;
        } catch (e) {
          return this.fail(e, SQLITE_IOERR_TRUNCATE);
        }
      },
      xSync: (pFile: number, _flags: number): number => {
        try {
          const f = file(pFile);
          f.flush();
          f.backend.flush();
          return SQLITE_OK;
        } catch (e) {
          return this.fail(e, SQLITE_IOERR_FSYNC);
        }
      },
      xFileSize: (pFile: number, pSize: number): number => {
        try {
          wasm.poke64(pSize, BigInt(file(pFile).size()));
          return SQLITE_OK;
        } catch (e) {
          return this.fail(e, SQLITE_IOERR_FSTAT);
        }
      },
      // The files are held exclusively already (see the header): every lock is granted.
      xLock: (_pFile: number, _level: number): number => SQLITE_OK,
      xUnlock: (_pFile: number, _level: number): number => SQLITE_OK,
      xCheckReservedLock: (_pFile: number, pOut: number): number => {
        // No other connection can exist (see the header), so nobody else holds RESERVED.
        wasm.poke32(pOut, 0);
        return SQLITE_OK;
      },
      xFileControl: (pFile: number, op: number, pArg: number): number => {
        try {
          if (op === SQLITE_FCNTL_COMMIT_PHASETWO) {
            this.flushWrites();
            return SQLITE_OK;
          }
          if (op === SQLITE_FCNTL_PRAGMA) return this.checkPragma(pArg);
          void pFile;
          return SQLITE_NOTFOUND;
        } catch (e) {
          return this.fail(e, SQLITE_IOERR_WRITE);
        }
      },
      xSectorSize: (_pFile: number): number => 4096,
      xDeviceCharacteristics: (_pFile: number): number => SQLITE_IOCAP_UNDELETABLE_WHEN_OPEN | SQLITE_IOCAP_POWERSAFE_OVERWRITE,
    };
    this.sqlite3.vfs.installVfs({ io: { struct: io, methods: ioMethods } });

    const vfs = new capi.sqlite3_vfs();
    vfs.$iVersion = 2;
    vfs.$szOsFile = capi.sqlite3_file.structInfo.sizeof;
    vfs.$mxPathname = 512;
    const vfsMethods = {
      xOpen: (_pVfs: number, zName: number, pFile: number, flags: number, pOutFlags: number): number => {
        try {
          const name = zName ? wasm.cstrToJs(zName) : null;
          let backend: StorageBackend;
          let mounted = false;
          const mountedBackend = name === null ? undefined : this.mounts.get(name);
          if (mountedBackend) {
            backend = mountedBackend;
            mounted = true;
          } else if (name === null || (flags & (TEMPORARY_KINDS | SQLITE_OPEN_MAIN_JOURNAL)) !== 0) {
            // A rollback journal is only ever needed for the one transaction that switches a
            // database into WAL mode (the pragma guard keeps it there), which rewrites nothing
            // but page 1's header: it may live in memory.
            backend = new MemoryBackend();
          } else {
            this.lastError = {
              code: SQLITE_CANTOPEN,
              message:
                flags & SQLITE_OPEN_MAIN_DB
                  ? `cannot open ${name}: only databases opened through Outpost's open() are available (ATTACH of other files is not supported)`
                  : `cannot open ${name}: Outpost databases stay in WAL mode and keep no other files`,
            };
            return SQLITE_CANTOPEN;
          }
          this.files.set(pFile, new OpenFile(name ?? `temp:${pFile}`, backend, flags, mounted, name === null ? undefined : this.observers.get(name)));
          const s3File = new capi.sqlite3_file(pFile);
          s3File.$pMethods = io.pointer;
          s3File.dispose();
          wasm.poke32(pOutFlags, flags & ~SQLITE_OPEN_DELETEONCLOSE);
          return SQLITE_OK;
        } catch (e) {
          return this.fail(e, SQLITE_CANTOPEN);
        }
      },
      xDelete: (_pVfs: number, zName: number, _syncDir: number): number => {
        try {
          const backend = this.mounts.get(wasm.cstrToJs(zName));
          if (backend) {
            backend.truncate(0);
            backend.flush();
          }
          return SQLITE_OK;
        } catch (e) {
          return this.fail(e, SQLITE_IOERR_DELETE);
        }
      },
      xAccess: (_pVfs: number, zName: number, _flags: number, pOut: number): number => {
        try {
          const backend = this.mounts.get(wasm.cstrToJs(zName));
          wasm.poke32(pOut, backend && backend.size() > 0 ? 1 : 0);
          return SQLITE_OK;
        } catch (e) {
          wasm.poke32(pOut, 0);
          return this.fail(e, SQLITE_IOERR_ACCESS);
        }
      },
      xFullPathname: (_pVfs: number, zName: number, nOut: number, pOut: number): number => {
        return wasm.cstrncpy(pOut, zName, nOut) < nOut ? SQLITE_OK : SQLITE_CANTOPEN;
      },
      xRandomness: (_pVfs: number, nOut: number, pOut: number): number => {
        crypto.getRandomValues(heap().subarray(pOut, pOut + nOut));
        return nOut;
      },
      // Only this connection uses the files, so waiting could never help: never sleep.
      xSleep: (_pVfs: number, _micros: number): number => 0,
      xCurrentTime: (_pVfs: number, pOut: number): number => {
        wasm.poke(pOut, 2440587.5 + Date.now() / 864e5, 'double');
        return SQLITE_OK;
      },
      xCurrentTimeInt64: (_pVfs: number, pOut: number): number => {
        wasm.poke(pOut, 210866760000000 + Date.now(), 'i64');
        return SQLITE_OK;
      },
      xGetLastError: (_pVfs: number, nOut: number, pOut: number): number => {
        const e = this.lastError;
        if (e && nOut > 0) {
          const bytes = new TextEncoder().encode(e.message).subarray(0, nOut - 1);
          heap().set(bytes, pOut);
          heap()[pOut + bytes.length] = 0;
        }
        return e ? e.code : SQLITE_OK;
      },
    };
    this.sqlite3.vfs.installVfs({ vfs: { struct: vfs, methods: vfsMethods, name: VFS_NAME } });
  }

  /**
   * SQLITE_FCNTL_PRAGMA: pArg points at three C strings, [error out, pragma name, argument].
   * Refuses journal and locking modes this VFS cannot honour (see the header).
   */
  private checkPragma(pArg: number): number {
    const { wasm } = this.sqlite3;
    const ptrBytes = wasm.ptr.size;
    const pName = wasm.peekPtr(pArg + ptrBytes);
    const pValue = wasm.peekPtr(pArg + 2 * ptrBytes);
    if (!pName || !pValue) return SQLITE_NOTFOUND;
    const name = wasm.cstrToJs(pName).toLowerCase();
    const value = wasm.cstrToJs(pValue).toLowerCase().replace(/^['"]|['"]$/g, '');
    let message: string | null = null;
    if (name === 'journal_mode' && value !== 'wal') {
      message = `Outpost databases stay in WAL mode: journal_mode=${value} is not supported`;
    } else if (name === 'locking_mode' && value !== 'exclusive') {
      message = `Outpost databases use locking_mode=EXCLUSIVE (WAL without shared memory): locking_mode=${value} is not supported`;
    }
    if (message === null) return SQLITE_NOTFOUND;
    // SQLite frees the message with sqlite3_free; wasm.alloc is sqlite3_malloc in this build.
    wasm.pokePtr(pArg, wasm.allocCString(message));
    return SQLITE_ERROR;
  }
}

const installed = new WeakMap<Sqlite3Runtime, OutpostVfs>();
