/**
 * Staging files: the pages of a pull, written to a file in the database's folder as they
 * arrive, so that a large pull (a live database's bootstrap, a big incremental pull) never sits
 * in memory whole. The apply (apply.ts, step c) reads them back one page at a time.
 *
 * A staging file is scratch, never part of the database: nothing in the sync state points to
 * it, and the apply has read every page it needs from it before step d records the revision
 * (page 1, which step e needs again, is kept in memory and in the sync state). So one left
 * behind by a crash, at any point, is thrown away at the next open, and the database is at the
 * revision its sync state records (recovery.ts finishes or undoes an interrupted apply).
 *
 * Files: `db-pull-0` .. `db-pull-<STAGING_SLOTS-1>` (Node: `path-pull-0`, ...). Each download
 * in flight takes one slot; the handles stay open for the engine's life and a released slot is
 * emptied (truncated to zero), so a live replica's steady long polls do not reopen files. When
 * every slot is taken (several tabs pulling at once), a download keeps its pages in memory as
 * before.
 *
 * Memory databases: the slots are memory files of the database's memory directory, so staging
 * holds the pull once, in one buffer that grows by doubling, instead of a map of page arrays,
 * and the buffer is given back when the slot is emptied. It is bounded by the pull's size, like
 * the memory database itself: there is no disk to put it on.
 */
import type { StorageBackend, StorageDirectory } from '../opfs-vfs/storage/backend.js';
import { PULL_FILES } from '../opfs-vfs/storage/files.js';
import { PAGE_BYTES } from '../protocol/pull-updates.js';
import { invariant } from './invariant.js';
import { PageRun } from './page-run.js';

/** How many downloads may stage at once; more wait in memory. */
export const STAGING_SLOTS = PULL_FILES.length;

/** The staging file of slot `slot`. */
export function stagingFileName(slot: number): string {
  return PULL_FILES[slot]!;
}

/** The pages of one pull, as the apply reads them: a `Map` (tests, an empty rebase), `MemoryPages` or `StagedPages`. */
export interface PageSet {
  readonly size: number;
  keys(): IterableIterator<number>;
  /**
   * The page's bytes. With `into` (a page-sized buffer), a staging file reads the page into it
   * and returns it, so that a caller reading many pages one after another (the apply) makes no
   * garbage per page; a page not in a file (in memory, or not yet written) comes back as before.
   */
  get(pageNumber: number, into?: Uint8Array): Uint8Array | undefined;
  /** Gives back what holds the pages (a staging slot); called once the pull applied or was dropped. */
  release?(): void;
}

/** Where a download puts pages as they arrive. */
export interface PageCollector extends PageSet {
  add(pageNumber: number, page: Uint8Array): void;
  /** Forgets pages past `dbPages` (the database shrank while a bootstrap downloaded). */
  dropPast(dbPages: number): void;
  /** Called once the download is complete, before the apply reads a page. */
  finish(): void;
  release(): void;
}

/** Pages held in memory: the download when every staging slot is taken. */
export class MemoryPages implements PageCollector {
  private readonly pages = new Map<number, Uint8Array>();

  add(pageNumber: number, page: Uint8Array): void {
    this.pages.set(pageNumber, page);
  }

  dropPast(dbPages: number): void {
    for (const p of [...this.pages.keys()]) if (p > dbPages) this.pages.delete(p);
  }

  finish(): void {}

  get size(): number {
    return this.pages.size;
  }

  keys(): IterableIterator<number> {
    return this.pages.keys();
  }

  get(pageNumber: number): Uint8Array | undefined {
    return this.pages.get(pageNumber);
  }

  release(): void {
    this.pages.clear();
  }
}

/**
 * The order in which step c writes pages, and which it writes: pages past the new size are
 * left out (the truncate drops them), and page 1 (the schema) goes last, because once it
 * changes SQLite re-reads the schema, which must by then find every page it points to.
 */
export function applyOrder(pageNumbers: Iterable<number>, dbPages: number): number[] {
  const ordered = [...pageNumbers].filter((p) => p >= 1 && p <= Math.max(1, dbPages)).sort((a, b) => a - b);
  if (ordered[0] === 1) ordered.push(ordered.shift()!);
  return ordered;
}

/** The staging slots of one database, opened on first use and closed with the engine. */
export class PullStaging {
  private readonly files = new Map<number, StorageBackend>();
  private readonly taken = new Set<number>();
  private closed = false;

  constructor(private readonly directory: StorageDirectory) {}

  /** Empties every staging file a crash left behind (call at open, before any download). */
  async discardLeftovers(): Promise<void> {
    for (let slot = 0; slot < STAGING_SLOTS; slot++) {
      if (((await this.directory.fileSize(stagingFileName(slot))) ?? 0) === 0) continue;
      const file = await this.file(slot);
      file.truncate(0);
    }
  }

  /** A free slot's pages, or null when every slot is taken (the caller keeps pages in memory). */
  async take(): Promise<StagedPages | null> {
    if (this.closed) return null;
    let slot = 0;
    while (slot < STAGING_SLOTS && this.taken.has(slot)) slot++;
    if (slot === STAGING_SLOTS) return null;
    this.taken.add(slot);
    try {
      const file = await this.file(slot);
      // A slot is emptied when released; one that is not was written behind our back.
      if (file.size() !== 0) file.truncate(0);
      return new StagedPages(file, () => this.release(slot));
    } catch (e) {
      this.taken.delete(slot);
      throw e;
    }
  }

  /** How many slots are taken (tests: none after every pull applied or failed). */
  get inUse(): number {
    return this.taken.size;
  }

  /** Closes every slot's file; pages staged and not applied are lost (the pull never applied). */
  close(): void {
    this.closed = true;
    for (const file of this.files.values()) {
      try {
        file.truncate(0);
      } catch {
        // Closing: the next open empties it.
      }
      file.close();
    }
    this.files.clear();
    this.taken.clear();
  }

  private async file(slot: number): Promise<StorageBackend> {
    let file = this.files.get(slot);
    if (!file) {
      file = await this.directory.open(stagingFileName(slot));
      if (this.closed) {
        file.close();
        throw new Error('the database closed');
      }
      this.files.set(slot, file);
    }
    return file;
  }

  private release(slot: number): void {
    if (!this.taken.delete(slot)) return;
    const file = this.files.get(slot);
    if (file) file.truncate(0);
  }
}

/**
 * One pull's pages in a staging file: appended as they arrive (gathered into 1 MiB writes),
 * found again through an index of page number to position. A page sent twice (a bootstrap's
 * chunks and its final pull) is read from its last copy.
 */
export class StagedPages implements PageCollector {
  /** Page number to its slot in the file (0-based, in pages). */
  private readonly index = new Map<number, number>();
  /** The pages gathered for the next write (page-run.ts). */
  private readonly run = new PageRun();
  private written = 0;
  private released = false;

  constructor(
    private readonly file: StorageBackend,
    private readonly onRelease: () => void,
  ) {}

  /** Stages one page (a copy: `page` may be a view into a network buffer). */
  add(pageNumber: number, page: Uint8Array): void {
    invariant(!this.released, 'no page is staged into a released staging file');
    invariant(page.length === PAGE_BYTES, `a staged page is ${PAGE_BYTES} bytes, not ${page.length}`);
    this.index.set(pageNumber, this.written + this.run.count);
    this.run.add(page);
    if (this.run.full) this.endRun();
  }

  dropPast(dbPages: number): void {
    for (const p of [...this.index.keys()]) if (p > dbPages) this.index.delete(p);
  }

  /** Writes what is gathered; the apply calls `get` only after this. */
  finish(): void {
    this.endRun();
  }

  get size(): number {
    return this.index.size;
  }

  keys(): IterableIterator<number> {
    return this.index.keys();
  }

  get(pageNumber: number, into?: Uint8Array): Uint8Array | undefined {
    const slot = this.index.get(pageNumber);
    if (slot === undefined) return undefined;
    invariant(!this.released, 'no page is read from a released staging file');
    if (slot >= this.written) return this.run.page(slot - this.written);
    invariant(into === undefined || into.length === PAGE_BYTES, `a staged page is read into ${PAGE_BYTES} bytes, not ${into?.length}`);
    const page = into ?? new Uint8Array(PAGE_BYTES);
    const n = this.file.read(page, slot * PAGE_BYTES);
    invariant(n === PAGE_BYTES, `staged page ${pageNumber} reads ${n} of ${PAGE_BYTES} bytes`);
    return page;
  }

  /** Empties the staging file and gives its slot back. Idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.index.clear();
    this.onRelease();
  }

  private endRun(): void {
    if (this.run.count === 0) return;
    this.file.write(this.run.bytes(), this.written * PAGE_BYTES);
    this.written += this.run.count;
    this.run.clear();
  }
}

/** Gives a staging slot when one is free, pages in memory otherwise. */
export type CollectorSource = () => Promise<PageCollector>;

/** Every download in memory (no database folder: tests, and the default). */
export const inMemory: CollectorSource = async () => new MemoryPages();

/** Downloads into `staging`'s slots, in memory when every slot is taken. */
export function staged(staging: PullStaging): CollectorSource {
  return async () => (await staging.take()) ?? new MemoryPages();
}
