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
 * - Write joining (`open-file.ts`): each `write()` of a backend has a fixed cost (tens of
 *   microseconds on OPFS), and SQLite writes a WAL frame as a 24-byte header followed by a page.
 *   Adjacent writes are joined in a per-file buffer (at most `WRITE_BUFFER_BYTES`) and written
 *   as one call. The buffer is written out before any read, size, truncate, sync or close of
 *   that file, with the page of a WAL commit frame (the frame header's commit field is set; a
 *   failure there still fails the COMMIT, so a full disk never leaves a commit that is not on
 *   disk), and whenever the engine finishes an API call (`flushWrites()`). A committed
 *   transaction is therefore always in the backend before the caller hears of it.
 * - Errors never cross into WASM as exceptions. Every method catches, records the error
 *   (`takeError()` hands it to the engine, which adds it to the SqliteError message) and returns
 *   the most specific code: SQLITE_FULL for `StorageFullError`, SQLITE_IOERR_READ/WRITE/FSYNC/
 *   TRUNCATE/FSTAT/CLOSE/DELETE otherwise.
 *
 * Layout: this file holds the mount table, the two SQLite method tables (each a thin
 * translation from pointers to typed calls, in alphabetical order: keep them so) and the
 * error recording; `open-file.ts` holds what happens to one open file.
 *
 * Contract / may import: `../sqlite/` and `./storage/` (never the engine above it).
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
} from '../sqlite/constants.js';
import { heapBytes } from '../sqlite/heap.js';
import { HandleMap } from '../sqlite/handle-map.js';
import type { Sqlite3Runtime } from '../sqlite/wasm-api.js';
import { OpenFile, type WalObserver } from './open-file.js';
import { type StorageBackend, StorageFullError } from './storage/backend.js';
import { MemoryBackend } from './storage/memory.js';

export type { WalObserver } from './open-file.js';

export const VFS_NAME = 'outpost';

/** Files SQLite may keep in memory: temporary databases, journals and statement journals. */
const TEMPORARY_KINDS = SQLITE_OPEN_TEMP_DB | SQLITE_OPEN_TRANSIENT_DB | SQLITE_OPEN_TEMP_JOURNAL | SQLITE_OPEN_SUBJOURNAL;

/** The sector size SQLite is told: one page. */
const SECTOR_BYTES = 4096;

export interface VfsError {
  code: number;
  message: string;
}

type MethodTable = Record<string, (...args: never[]) => number>;

export class OutpostVfs {
  private readonly mounts = new Map<string, StorageBackend>();
  /** Mounted files open right now, by SQLite's file pointer, and their names: each opens once. */
  private readonly openMounted = new HandleMap<string>();
  private readonly openMountedNames = new Set<string>();
  private readonly observers = new Map<string, WalObserver>();
  /** By SQLite's file pointer: a HandleMap, since a closed file's address comes back for the next open. */
  private readonly files = new HandleMap<OpenFile>();
  /** The open files holding joined writes not yet written out (open-file.ts). */
  private readonly joined = new Set<OpenFile>();
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
    // Only files holding joined bytes: each leaves the set as its buffer is written out. Most
    // calls (reads) joined nothing, and skip making an iterator.
    if (this.joined.size === 0) return;
    for (const file of this.joined) file.flush();
  }

  /** Records why a call failed and returns its code: SQLITE_FULL for a full store, else `code`. */
  private fail(e: unknown, code: number): number {
    const message = e instanceof Error ? e.message : String(e);
    const result = e instanceof StorageFullError ? SQLITE_FULL : code;
    this.lastError = { code: result, message };
    return result;
  }

  private file(pFile: number): OpenFile {
    const f = this.files.get(pFile);
    if (!f) throw new Error(`VFS: unknown file handle ${pFile}`);
    return f;
  }

  private register(): void {
    const { capi } = this.sqlite3;
    const io = new capi.sqlite3_io_methods();
    io.$iVersion = 1; // version 1: no xShm* (see the header)
    this.sqlite3.vfs.installVfs({ io: { struct: io, methods: this.ioMethods() } });

    const vfs = new capi.sqlite3_vfs();
    vfs.$iVersion = 2;
    vfs.$szOsFile = capi.sqlite3_file.structInfo.sizeof;
    // xOpen writes the io-methods pointer straight into the struct (its only member).
    if (vfs.$szOsFile !== this.sqlite3.wasm.ptr.size) throw new Error('VFS: unexpected sqlite3_file layout');
    vfs.$mxPathname = 512;
    this.sqlite3.vfs.installVfs({ vfs: { struct: vfs, methods: this.vfsMethods(io.pointer), name: VFS_NAME } });
  }

  /** The methods of an open file. Maintenance reminder: keep them in alphabetical order. */
  private ioMethods(): MethodTable {
    const { wasm } = this.sqlite3;
    // The Memory object never changes; its buffer does, on growth: heapBytes reads it per call.
    const { memory } = wasm;
    return {
      xCheckReservedLock: (_pFile: number, pOut: number): number => {
        // No other connection can exist (see the header), so nobody else holds RESERVED.
        wasm.poke32(pOut, 0);
        return SQLITE_OK;
      },
      xClose: (pFile: number): number => {
        const f = this.files.get(pFile);
        if (!f) return SQLITE_OK;
        this.files.delete(pFile);
        const mountedName = this.openMounted.get(pFile);
        if (mountedName !== undefined) {
          this.openMounted.delete(pFile);
          this.openMountedNames.delete(mountedName);
        }
        try {
          f.close();
          return SQLITE_OK;
        } catch (e) {
          return this.fail(e, SQLITE_IOERR_CLOSE);
        }
      },
      xDeviceCharacteristics: (_pFile: number): number => SQLITE_IOCAP_UNDELETABLE_WHEN_OPEN | SQLITE_IOCAP_POWERSAFE_OVERWRITE,
      xFileControl: (_pFile: number, op: number, pArg: number): number => {
        try {
          if (op === SQLITE_FCNTL_COMMIT_PHASETWO) {
            this.flushWrites();
            return SQLITE_OK;
          }
          if (op === SQLITE_FCNTL_PRAGMA) return this.checkPragma(pArg);
          return SQLITE_NOTFOUND;
        } catch (e) {
          return this.fail(e, SQLITE_IOERR_WRITE);
        }
      },
      xFileSize: (pFile: number, pSize: number): number => {
        try {
          wasm.poke64(pSize, BigInt(this.file(pFile).size()));
          return SQLITE_OK;
        } catch (e) {
          return this.fail(e, SQLITE_IOERR_FSTAT);
        }
      },
      // The files are held exclusively already (see the header): every lock is granted.
      xLock: (_pFile: number, _level: number): number => SQLITE_OK,
      xRead: (pFile: number, pDest: number, n: number, offset: bigint | number): number => {
        try {
          // A backend never calls into WASM, so the view stays valid through the read.
          const dst = heapBytes(memory, pDest, n);
          const got = this.file(pFile).read(dst, Number(offset));
          if (got < n) {
            // SQLite requires the unread tail to be zeroed on a short read.
            dst.fill(0, got);
            return SQLITE_IOERR_SHORT_READ;
          }
          return SQLITE_OK;
        } catch (e) {
          return this.fail(e, SQLITE_IOERR_READ);
        }
      },
      xSectorSize: (_pFile: number): number => SECTOR_BYTES,
      xSync: (pFile: number, _flags: number): number => {
        try {
          this.file(pFile).sync();
          return SQLITE_OK;
        } catch (e) {
          return this.fail(e, SQLITE_IOERR_FSYNC);
        }
      },
      xTruncate: (pFile: number, size: bigint | number): number => {
        try {
          this.file(pFile).truncate(Number(size));
          return SQLITE_OK;
        } catch (e) {
          return this.fail(e, SQLITE_IOERR_TRUNCATE);
        }
      },
      xUnlock: (_pFile: number, _level: number): number => SQLITE_OK,
      xWrite: (pFile: number, pSrc: number, n: number, offset: bigint | number): number => {
        try {
          this.file(pFile).write(heapBytes(memory, pSrc, n), Number(offset));
          return SQLITE_OK;
        } catch (e) {
          return this.fail(e, SQLITE_IOERR_WRITE);
        }
      },
    };
  }

  /** The methods of the VFS itself. Maintenance reminder: keep them in alphabetical order. */
  private vfsMethods(ioPointer: number): MethodTable {
    const { wasm } = this.sqlite3;
    return {
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
      xCurrentTime: (_pVfs: number, pOut: number): number => {
        wasm.poke(pOut, 2440587.5 + Date.now() / 864e5, 'double');
        return SQLITE_OK;
      },
      xCurrentTimeInt64: (_pVfs: number, pOut: number): number => {
        wasm.poke(pOut, 210866760000000 + Date.now(), 'i64');
        return SQLITE_OK;
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
      xFullPathname: (_pVfs: number, zName: number, nOut: number, pOut: number): number => {
        return wasm.cstrncpy(pOut, zName, nOut) < nOut ? SQLITE_OK : SQLITE_CANTOPEN;
      },
      xGetLastError: (_pVfs: number, nOut: number, pOut: number): number => {
        const e = this.lastError;
        if (e && nOut > 0) {
          const bytes = new TextEncoder().encode(e.message).subarray(0, nOut - 1);
          const out = heapBytes(wasm.memory, pOut, bytes.length + 1);
          out.set(bytes);
          out[bytes.length] = 0;
        }
        return e ? e.code : SQLITE_OK;
      },
      xOpen: (_pVfs: number, zName: number, pFile: number, flags: number, pOutFlags: number): number => {
        try {
          const name = zName ? wasm.cstrToJs(zName) : null;
          const file = this.openFile(name, flags);
          if (typeof file === 'number') return file;
          this.files.set(pFile, file);
          if (name !== null && this.mounts.has(name)) {
            this.openMounted.set(pFile, name);
            this.openMountedNames.add(name);
          }
          // sqlite3_file has one member, pMethods, at offset 0 (the build's struct wrapper
          // would cost more than the rest of xOpen).
          wasm.pokePtr(pFile, ioPointer);
          wasm.poke32(pOutFlags, flags & ~SQLITE_OPEN_DELETEONCLOSE);
          return SQLITE_OK;
        } catch (e) {
          return this.fail(e, SQLITE_CANTOPEN);
        }
      },
      xRandomness: (_pVfs: number, nOut: number, pOut: number): number => {
        crypto.getRandomValues(heapBytes(wasm.memory, pOut, nOut));
        return nOut;
      },
      // Only this connection uses the files, so waiting could never help: never sleep.
      xSleep: (_pVfs: number, _micros: number): number => 0,
    };
  }

  /**
   * What xOpen opens for `name` (null: a temporary file SQLite names itself): the mounted
   * backend, a memory file, or SQLITE_CANTOPEN with the reason recorded.
   */
  private openFile(name: string | null, flags: number): OpenFile | number {
    const mounted = name === null ? undefined : this.mounts.get(name);
    if (mounted && this.openMountedNames.has(name!)) {
      // Each mounted file belongs to the one connection its database was opened with. A second
      // open can only be an ATTACH (or VACUUM INTO) naming another database's mount path: in a
      // server that hosts many tenants' databases, that would reach another tenant's files.
      this.lastError = { code: SQLITE_CANTOPEN, message: `cannot open ${name}: it is open already, by the connection it belongs to` };
      return SQLITE_CANTOPEN;
    }
    if (mounted) return new OpenFile(mounted, flags, true, this.observers.get(name!), this.joined);
    if (name === null || (flags & (TEMPORARY_KINDS | SQLITE_OPEN_MAIN_JOURNAL)) !== 0) {
      // A rollback journal is only ever needed for the one transaction that switches a
      // database into WAL mode (the pragma guard keeps it there), which rewrites nothing
      // but page 1's header: it may live in memory.
      return new OpenFile(new MemoryBackend(), flags, false, undefined);
    }
    this.lastError = {
      code: SQLITE_CANTOPEN,
      message:
        flags & SQLITE_OPEN_MAIN_DB
          ? `cannot open ${name}: only databases opened through Outpost's open() are available (ATTACH of other files is not supported)`
          : `cannot open ${name}: Outpost databases stay in WAL mode and keep no other files`,
    };
    return SQLITE_CANTOPEN;
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
    // Only journal_mode and locking_mode are checked, so a name that starts with neither letter
    // is not read: SQLite 3.51 asks every write transaction about "experimental_pragma_20251114",
    // and decoding two strings for it was about 2% of an autocommit INSERT (issue 15 profile).
    const initial = wasm.heap8u()[pName]! | 0x20;
    if (initial !== 0x6a && initial !== 0x6c) return SQLITE_NOTFOUND;
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
