/**
 * The OPFS backend: one `FileSystemSyncAccessHandle` per file, in a dedicated worker.
 *
 * Layout: `<OPFS root>/outpost/<database name>/` holds `db` (the main file), `db-wal`, and the
 * sync layer's files, with those real names. Every handle is opened before SQLite opens the
 * database and held until it closes; `readwrite` handles are exclusive, so holding them is also
 * what keeps a second tab out. A Web Lock named `outpost:<name>` is taken first, so a second tab
 * waits in an orderly queue (bounded by `lockTimeoutMs`) instead of spinning on
 * `NoModificationAllowedError`, and the lock dies with the worker that held it.
 *
 * Quota: browsers report an exhausted quota in three ways, all turned into `StorageFullError`:
 * a thrown `QuotaExceededError`; a short byte count; and a bogus count such as 0xFFFFFFF8
 * (Chrome has returned a negative errno cast to unsigned instead of throwing). The browser tests
 * produce all three through `simulated-quota.ts`.
 */
import { type StorageBackend, type StorageDirectory, StorageFullError, assertByteOffset } from './backend.js';
import { type PositionalHandle, type SimulatedQuota, withSimulatedQuota } from './simulated-quota.js';

/** The subset of `FileSystemSyncAccessHandle` the backend uses (lets tests inject faults). */
export type SyncAccessHandleLike = PositionalHandle;

export class OpfsBackend implements StorageBackend {
  private closed = false;

  constructor(
    private readonly handle: SyncAccessHandleLike,
    readonly label: string,
  ) {}

  read(dst: Uint8Array, offset: number): number {
    assertByteOffset(offset, 'read offset');
    return this.handle.read(dst, { at: offset });
  }

  write(src: Uint8Array, offset: number): void {
    assertByteOffset(offset, 'write offset');
    let written: number;
    try {
      written = this.handle.write(src, { at: offset });
    } catch (e) {
      if (isQuotaError(e)) throw new StorageFullError(`storage quota exceeded writing ${this.label}`);
      throw e;
    }
    // A short or impossible count means the quota ran out part way (see the header).
    if (written !== src.length) {
      throw new StorageFullError(
        `storage quota exceeded writing ${this.label}: wrote ${written >>> 0} of ${src.length} bytes`,
      );
    }
  }

  size(): number {
    return this.handle.getSize();
  }

  truncate(sizeBytes: number): void {
    assertByteOffset(sizeBytes, 'truncate size');
    try {
      this.handle.truncate(sizeBytes);
    } catch (e) {
      if (isQuotaError(e)) throw new StorageFullError(`storage quota exceeded growing ${this.label}`);
      throw e;
    }
  }

  flush(): void {
    this.handle.flush();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.handle.close();
  }
}

function isQuotaError(e: unknown): boolean {
  return (
    typeof e === 'object' &&
    e !== null &&
    'name' in e &&
    ((e as { name: unknown }).name === 'QuotaExceededError' || (e as { name: unknown }).name === 'QuotaExceeded')
  );
}

/** Raised when OPFS is not usable here; the message says why and what to do. */
export class OpfsUnavailableError extends Error {
  override name = 'OpfsUnavailableError';
}

export const OPFS_ROOT_DIRECTORY = 'outpost';

async function rootDirectory(): Promise<FileSystemDirectoryHandle> {
  const storage = (globalThis.navigator as Navigator | undefined)?.storage;
  if (typeof storage?.getDirectory !== 'function') {
    throw new OpfsUnavailableError(
      'OPFS is not available in this context (it needs a secure context: https or localhost, and is missing in some private modes); open the database with { storage: "memory" } to run without persistence',
    );
  }
  let root: FileSystemDirectoryHandle;
  try {
    root = await storage.getDirectory();
  } catch (e) {
    throw new OpfsUnavailableError(
      `OPFS refused access (${(e as Error).message}); private browsing modes often block it. Open the database with { storage: "memory" } to run without persistence`,
    );
  }
  return root.getDirectoryHandle(OPFS_ROOT_DIRECTORY, { create: true });
}

/** Raised when another tab or worker holds the database past the lock timeout. */
export class LockTimeoutError extends Error {
  override name = 'LockTimeoutError';
}

/** The Web Lock whose holder owns the OPFS files of database `name` (and runs its engine). */
export function databaseLockName(name: string): string {
  return `outpost:${name}`;
}

/** Takes the Web Lock of a database, waiting at most `timeoutMs`. Resolves to its release. */
async function acquireLock(name: string, timeoutMs: number): Promise<() => void> {
  const locks = (globalThis.navigator as Navigator | undefined)?.locks;
  if (!locks) return () => {};
  return new Promise((resolve, reject) => {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    locks
      .request(databaseLockName(name), { mode: 'exclusive', signal: controller.signal }, () => {
        clearTimeout(timer);
        // Hold the lock until release() resolves this inner promise.
        return new Promise<void>((release) => resolve(release));
      })
      .catch((e: unknown) => {
        clearTimeout(timer);
        if ((e as Error).name === 'AbortError') {
          reject(new LockTimeoutError(`database "${name}" is held by another tab or worker`));
        } else reject(e);
      });
  });
}

export interface OpfsDirectoryOptions {
  lockTimeoutMs: number;
  simulatedQuota?: SimulatedQuota | undefined;
}

/** The OPFS directory of one database, locked for the lifetime of this object. */
export class OpfsDirectory implements StorageDirectory {
  readonly label: string;

  private constructor(
    private readonly dir: FileSystemDirectoryHandle,
    private readonly name: string,
    private readonly releaseLock: () => void,
    private readonly options: OpfsDirectoryOptions,
  ) {
    this.label = `opfs:/${OPFS_ROOT_DIRECTORY}/${name}`;
  }

  static async lock(name: string, options: OpfsDirectoryOptions): Promise<OpfsDirectory> {
    const root = await rootDirectory();
    const release = await acquireLock(name, options.lockTimeoutMs);
    return OpfsDirectory.opened(root, name, options, release);
  }

  /**
   * The directory of `name` for a caller that already holds its Web Lock (`databaseLockName`),
   * as the elected engine of several tabs does; `release` gives the lock back on `release()`.
   */
  static async locked(name: string, options: OpfsDirectoryOptions, release: () => void): Promise<OpfsDirectory> {
    let root: FileSystemDirectoryHandle;
    try {
      root = await rootDirectory();
    } catch (e) {
      release();
      throw e;
    }
    return OpfsDirectory.opened(root, name, options, release);
  }

  private static async opened(root: FileSystemDirectoryHandle, name: string, options: OpfsDirectoryOptions, release: () => void): Promise<OpfsDirectory> {
    try {
      const dir = await root.getDirectoryHandle(name, { create: true });
      return new OpfsDirectory(dir, name, release, options);
    } catch (e) {
      release();
      throw e;
    }
  }

  async open(fileName: string): Promise<StorageBackend> {
    const file = await this.dir.getFileHandle(fileName, { create: true });
    const deadline = Date.now() + this.options.lockTimeoutMs;
    // The Web Lock orders tabs, but a worker that was just terminated may still hold its
    // handles for a moment after its lock is gone (Chrome closes them asynchronously), and a
    // closing tab's engine gives its lock back before it closes its files (worker/seat.ts).
    // Nothing says when a handle is free: try again soon, the next tab's engine waits on it.
    for (let delayMs = 2; ; delayMs = Math.min(delayMs * 2, 20)) {
      try {
        // createSyncAccessHandle is declared in TypeScript's WebWorker lib only, not in DOM.
        const raw = await (file as unknown as { createSyncAccessHandle(): Promise<SyncAccessHandleLike> }).createSyncAccessHandle();
        const handle = this.options.simulatedQuota ? withSimulatedQuota(raw, this.options.simulatedQuota) : raw;
        return new OpfsBackend(handle, `${this.label}/${fileName}`);
      } catch (e) {
        if ((e as Error).name !== 'NoModificationAllowedError' || Date.now() > deadline) {
          if ((e as Error).name === 'NoModificationAllowedError') {
            throw new LockTimeoutError(`database "${this.name}" is held by another tab or worker`);
          }
          throw e;
        }
        await new Promise((r) => setTimeout(r, delayMs));
      }
    }
  }

  async fileSize(fileName: string): Promise<number | null> {
    try {
      const file = await this.dir.getFileHandle(fileName);
      return (await file.getFile()).size;
    } catch (e) {
      if ((e as Error).name === 'NotFoundError') return null;
      throw e;
    }
  }

  async release(): Promise<void> {
    this.releaseLock();
  }

  /** Removes the whole directory of database `name`, waiting for its lock first. */
  static async remove(name: string, lockTimeoutMs: number): Promise<void> {
    const root = await rootDirectory();
    const release = await acquireLock(name, lockTimeoutMs);
    try {
      await root.removeEntry(name, { recursive: true });
    } catch (e) {
      if ((e as Error).name === 'NotFoundError') return;
      if ((e as Error).name === 'NoModificationAllowedError') {
        throw new LockTimeoutError(`database "${name}" is held by another tab or worker`);
      }
      throw e;
    } finally {
      release();
    }
  }

  /** The names of the databases in OPFS. */
  static async list(): Promise<string[]> {
    const root = await rootDirectory();
    const names: string[] = [];
    // `keys()` is missing from TypeScript's DOM typings of FileSystemDirectoryHandle.
    for await (const key of (root as unknown as { keys(): AsyncIterable<string> }).keys()) names.push(key);
    return names.sort();
  }
}
