/**
 * One file SQLite has open through Outpost's VFS: write joining, the commit-frame flush and the
 * WAL observer. The VFS (`vfs.ts`) turns SQLite's pointers into the typed calls below and
 * turns what they throw into result codes; the policy is here.
 *
 * Write joining: each `write()` of a backend has a fixed cost (tens of microseconds on OPFS),
 * and SQLite writes a WAL frame as a 24-byte header followed by a page. Writes that continue
 * the previous one are joined in a buffer (at most `WRITE_BUFFER_BYTES`) and reach the backend
 * as one call. The buffer is written out:
 * - before any read, size, truncate, sync or close of this file (they must see every byte);
 * - right after the page of a WAL commit frame (a frame header whose "database size after
 *   commit" field is set). SQLite counts the transaction as committed once that xWrite
 *   returns, so a failure there (a full disk) must fail that xWrite, and with it the COMMIT;
 * - whenever the engine finishes an API call (`OutpostVfs.flushWrites()`). A file holding
 *   joined bytes is in the VFS's `joined` set while it does, so that call writes out only those
 *   files: a server with a thousand databases open must not visit every file after each call.
 * A committed transaction is therefore always in the backend before the caller hears of it,
 * and an autocommit write costs one backend write.
 *
 * Files that are not mounted (temporary files in memory) are never joined: a memory write is
 * as cheap as a copy into the buffer.
 *
 * Contract / may import: `../sqlite/` and `./storage/`.
 */
import { SQLITE_OPEN_WAL } from '../sqlite/constants.js';
import {
  WAL_FRAME_DB_PAGES_AFTER_COMMIT_OFFSET,
  WAL_FRAME_HEADER_BYTES,
  WAL_FRAME_PAGE_NUMBER_OFFSET,
  isWalFrameHeaderWrite,
  readUint32,
} from '../sqlite/format.js';
import type { StorageBackend } from './storage/backend.js';

/** Largest run of adjacent writes joined into one backend write. */
export const WRITE_BUFFER_BYTES = 1024 * 1024;
/**
 * A join buffer starts this small and grows. A file holds its buffer only while it holds
 * joined bytes: once written out, a buffer of this size becomes the realm's one spare, which
 * the next file to join takes, and a larger one is dropped. A server with thousands of
 * databases open would otherwise keep one per file it ever wrote.
 */
const INITIAL_BUFFER_BYTES = 32 * 1024;
let spareBuffer: Uint8Array | null = null;

/**
 * Sees every WAL frame header SQLite writes for one database, before the frame reaches the
 * backend: the page number (1-based) and, for a commit frame, the database size in pages after
 * the commit (0 otherwise). The sync server builds its revisions from this.
 */
export interface WalObserver {
  onWalFrame(pageNumber: number, dbSizeAfterCommit: number): void;
}

export class OpenFile {
  private buffer: Uint8Array | null = null;
  private bufferOffset = 0;
  private bufferLength = 0;
  /** The buffer holds the header of a commit frame: write it out with its page. */
  private commitPending = false;
  private readonly isWal: boolean;

  constructor(
    readonly backend: StorageBackend,
    /** SQLite's open flags for the file (which kind of file it is). */
    flags: number,
    /** Mounted files belong to the engine: the VFS never closes them, and joins their writes. */
    readonly mounted: boolean,
    private readonly observer: WalObserver | undefined,
    /** The VFS's files holding joined bytes right now (see the header); this one is in it while its buffer is. */
    private readonly joined: Set<OpenFile> | undefined = undefined,
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
      this.append(src);
    } else {
      this.flush();
      if (src.length >= WRITE_BUFFER_BYTES / 2 || !this.mounted) {
        this.backend.write(src, offset);
        return;
      }
      this.startBuffer(src, offset);
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
    this.joined?.delete(this);
    this.buffer = null;
    try {
      this.backend.write(buffer.subarray(0, n), this.bufferOffset);
    } finally {
      if (buffer.length === INITIAL_BUFFER_BYTES) spareBuffer = buffer;
    }
  }

  size(): number {
    // Pending bytes past the end count too: flush() writes them first.
    this.flush();
    return this.backend.size();
  }

  truncate(sizeBytes: number): void {
    this.flush();
    this.backend.truncate(sizeBytes);
  }

  /** xSync: every write so far, joined or not, made durable. */
  sync(): void {
    this.flush();
    this.backend.flush();
  }

  /** xClose: writes out the buffer; closes the backend unless the engine owns it (mounted). */
  close(): void {
    this.flush();
    if (!this.mounted) this.backend.close();
  }

  private append(src: Uint8Array): void {
    const buffer = this.buffer!;
    const length = this.bufferLength + src.length;
    if (length > buffer.length) {
      // Grow geometrically up to WRITE_BUFFER_BYTES: small commits keep small buffers.
      const grown = new Uint8Array(Math.min(WRITE_BUFFER_BYTES, Math.max(buffer.length * 2, length)));
      grown.set(buffer.subarray(0, this.bufferLength));
      this.buffer = grown;
    }
    this.buffer!.set(src, this.bufferLength);
    this.bufferLength = length;
  }

  private startBuffer(src: Uint8Array, offset: number): void {
    if (!this.buffer || this.buffer.length < src.length) {
      if (spareBuffer && spareBuffer.length >= src.length) {
        this.buffer = spareBuffer;
        spareBuffer = null;
      } else {
        this.buffer = new Uint8Array(Math.max(INITIAL_BUFFER_BYTES, src.length * 2));
      }
    }
    this.buffer.set(src, 0);
    this.bufferOffset = offset;
    this.bufferLength = src.length;
    this.joined?.add(this);
  }
}
