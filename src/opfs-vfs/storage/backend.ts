/**
 * The storage backend contract: one open file of one database, addressed by byte offset.
 *
 * The VFS (`vfs.ts`) is the only caller. It runs inside SQLite's synchronous I/O callbacks, so
 * every method here is synchronous; whatever is asynchronous about a store (opening an OPFS
 * access handle, creating a directory) happens before SQLite opens the database, in a
 * `StorageDirectory`.
 *
 * Contract of every implementation (`opfs.ts`, `node.ts`, `memory.ts`;
 * one suite, `test/shared/backend-suite.ts`, runs against all three: memory and Node in
 * `test/backends.test.ts`, OPFS in `test-browser/backends.browser.test.ts`):
 * - `read(dst, offset)` fills `dst` from `offset` and returns the number of bytes it read; past
 *   the end of the file it reads fewer (zero at or beyond the end). Never throws for a short read.
 * - `write(src, offset)` writes all of `src` at `offset`, growing the file as needed (a gap reads
 *   as zeros). It either writes every byte or throws: `StorageFullError` when the store is out of
 *   space or quota, any other error for other failures. A failed write may have written a prefix.
 * - `size()` is the file's length in bytes; `truncate(n)` sets it (shrinks or zero-extends).
 * - `flush()` makes every completed write durable (as durable as the store allows).
 * - `close()` releases the file; no method may be called afterwards. Idempotent.
 *
 * Folder: `storage/` is the bottom of the VFS layer: this contract, the backends (`memory.ts`,
 * `node.ts`, `opfs.ts`), the Node backend's descriptor pool (`descriptors.ts`, over `recency-list.ts`), test-only
 * fault injection (`simulated-quota.ts`) and a database's file names (`files.ts`). Contract / may import: nothing outside `storage/`.
 */

export interface StorageBackend {
  read(dst: Uint8Array, offset: number): number;
  write(src: Uint8Array, offset: number): void;
  size(): number;
  truncate(sizeBytes: number): void;
  flush(): void;
  close(): void;
}

/**
 * The files of one database, opened ahead of time. `open` and `remove` may be asynchronous
 * (OPFS); everything a `StorageBackend` does afterwards is synchronous.
 */
export interface StorageDirectory {
  /** A short label for messages, e.g. `opfs:/outpost/notes` or a Node path. */
  readonly label: string;
  /** Opens (creating when missing) the file `name` of this database. */
  open(name: string): Promise<StorageBackend>;
  /** The size in bytes of the file `name`, or null when it does not exist; never creates it. */
  fileSize(name: string): Promise<number | null>;
  /** Releases whatever the directory holds (locks); files opened through it must be closed first. */
  release(): Promise<void>;
}

/** The store is out of space or quota. The VFS turns it into `SQLITE_FULL`. */
export class StorageFullError extends Error {
  override name = 'StorageFullError';
}

/** Asserts a byte offset or length the VFS hands over is a safe non-negative integer. */
export function assertByteOffset(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(`${what} must be a non-negative safe integer, got ${n}`);
  }
}
