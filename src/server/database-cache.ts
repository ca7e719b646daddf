/**
 * The databases a server has open: files `<dataDir>/<name>.db`, opened lazily and kept in an
 * LRU of at most `openMax`. Beyond that, the least recently used idle database is closed, so
 * one process serves thousands of databases in bounded memory.
 *
 * - A database in use is pinned (`acquire` ... `release`): a request or a long poll holding it
 *   never sees it closed under it. Pinned databases are skipped by eviction, so the cache may
 *   hold more than `openMax` while many are busy.
 * - Two requests for a database that is still opening share the one open.
 * - Eviction is cheap: a hosted database does not checkpoint when it closes (the idle
 *   checkpoint keeps its WAL small; see `HostedDatabase.open`).
 * - The open databases share SQLite's heap bound with every statement (heap-limit.ts), so the
 *   count is not the only limit: idle databases are also closed while SQLite's heap holds more
 *   than `heap.openBytesMax`, which leaves the rest of the bound for statements. An open that
 *   fails for memory (SQLITE_NOMEM) closes every idle database and tries once more, and so
 *   does one that fails because the process holds as many files as it may (EMFILE).
 * - Each open database holds `FILES_PER_DATABASE` file descriptors, so the server's default
 *   open limit is also bounded by the process's (`openLimitForFiles`).
 * - A database's file carries its name exactly: on a case-insensitive file system (macOS,
 *   Windows) `A.db` is `a.db`, so a token for database `A` would reach database `a`'s rows.
 *   An open whose file turns out to be another name's is refused (`refuseCaseAlias`). Once a
 *   name has opened, its file is its own (the server created it, or found it under its exact
 *   name, and never deletes a database's file), so a reopen after an eviction skips the check
 *   (`ownFiles`).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SqliteError } from '../errors.js';
import { HostedDatabase, type HostedDatabaseOptions } from './hosted-database.js';
import { HttpError } from './http.js';

/** How much of SQLite's heap the open databases may hold, and what it holds now. */
export interface HeapBudget {
  usedBytes(): number;
  openBytesMax: number;
}

export class DatabaseCache {
  /** Open databases; the Map's insertion order is the LRU order, least recent first. */
  private readonly open = new Map<string, HostedDatabase>();
  private readonly opening = new Map<string, Promise<HostedDatabase>>();
  /** Names that have opened: their files passed `refuseCaseAlias` or were created under the name. */
  private readonly ownFiles = new Set<string>();

  constructor(
    private readonly dataDir: string,
    private readonly openMax: number,
    private readonly optionsFor: (name: string) => HostedDatabaseOptions,
    /** Told of each open and each eviction (the server's metrics). */
    private readonly events: { opened?: () => void; evicted?: () => void } = {},
    private readonly heap: HeapBudget | null = null,
  ) {}

  /** Number of databases open right now. */
  get size(): number {
    return this.open.size;
  }

  /** True when the database is open or its file exists. */
  exists(name: string): boolean {
    return this.open.has(name) || fs.existsSync(this.fileOf(name));
  }

  /**
   * The database, opened (and with `create`, created) when needed, and pinned until
   * `release`. Null when it does not exist and `create` is false.
   */
  async acquire(name: string, create: boolean): Promise<HostedDatabase | null> {
    return this.get(name, create);
  }

  release(db: HostedDatabase): void {
    db.pins--;
  }

  /** Closes every open database (the server is stopping). */
  async closeAll(): Promise<void> {
    for (const db of this.open.values()) await db.close();
    this.open.clear();
  }

  /** The database, pinned: a pin is taken before anything can evict it (evict() included). */
  private async get(name: string, create: boolean): Promise<HostedDatabase | null> {
    const hosted = this.open.get(name);
    if (hosted) {
      // Re-insert: the Map's order is the LRU order.
      this.open.delete(name);
      this.open.set(name, hosted);
      hosted.pins++;
      return hosted;
    }
    const pending = this.opening.get(name);
    if (pending) {
      const db = await pending;
      db.pins++;
      return db;
    }
    if (!create && !fs.existsSync(this.fileOf(name))) return null;
    const opened = this.openFresh(name);
    this.opening.set(name, opened);
    try {
      const db = await opened;
      this.events.opened?.();
      this.open.set(name, db);
      // Pinned before evicting: with every other database pinned, the one just opened would
      // otherwise be the least recently used idle one, and be closed under its own request.
      db.pins++;
      await this.evict();
      return db;
    } finally {
      this.opening.delete(name);
    }
  }

  /** Opens `name`; when SQLite's heap is too full for it, or the process may open no more files, closes every idle database and tries once more. */
  private async openFresh(name: string): Promise<HostedDatabase> {
    if (!this.ownFiles.has(name)) refuseCaseAlias(this.fileOf(name), name);
    let db: HostedDatabase;
    try {
      db = await HostedDatabase.open(this.dataDir, name, this.optionsFor(name));
    } catch (e) {
      if (!(e instanceof SqliteError && e.code === 'SQLITE_NOMEM') && (e as NodeJS.ErrnoException).code !== 'EMFILE') throw e;
      await this.evict(true);
      db = await HostedDatabase.open(this.dataDir, name, this.optionsFor(name));
    }
    this.ownFiles.add(name);
    return db;
  }

  /**
   * Closes least-recently-used idle databases beyond the limit, or while SQLite's heap holds
   * more than the open databases' share; with `all`, every idle one.
   */
  private async evict(all = false): Promise<void> {
    const over = (): boolean => all || this.open.size > this.openMax || (this.heap !== null && this.heap.usedBytes() > this.heap.openBytesMax);
    for (const [name, db] of this.open) {
      if (!over()) break;
      if (db.pins > 0) continue;
      this.open.delete(name);
      this.events.evicted?.();
      await db.close();
    }
  }

  private fileOf(name: string): string {
    return `${this.dataDir}/${name}.db`;
  }
}

/**
 * Refuses to open `name` when its file `file` exists under a name that differs only in case
 * (the file system folds case, or a link does): that file is another database's.
 */
export function refuseCaseAlias(file: string, name: string): void {
  if (!fs.existsSync(file)) return;
  const wanted = path.basename(file);
  const real = path.basename(fs.realpathSync.native(file));
  if (real === wanted || real.toLowerCase() !== wanted.toLowerCase()) return;
  throw new HttpError(409, `database "${name}" would open the file of another database (${real}): on this server's file system, database names must differ by more than case`, 'NAME_CONFLICT');
}

/** File descriptors an open database holds: its main file, its WAL and its revision log. */
export const FILES_PER_DATABASE = 3;

/**
 * Descriptors kept for everything else (sockets, pull spools, logs) when the open limit follows
 * the process's: 1,024, or a quarter of a smaller limit (a process held to 1,024 files still
 * keeps 256 databases open rather than one).
 */
export const FILES_KEPT = 1024;

/** What `openLimitForFiles` keeps for everything else under a soft limit of `soft` files. */
export function filesKept(soft: number): number {
  return Math.min(FILES_KEPT, Math.floor(soft / 4));
}

/**
 * `preferred`, or fewer when this process may not hold that many databases' files open: on
 * Linux, its soft limit on open files (`/proc/self/limits`; Node raises it to the hard limit
 * when it starts) less `filesKept`, divided by `FILES_PER_DATABASE`. At least 1; `preferred`
 * where the limit cannot be read or is unlimited.
 */
export function openLimitForFiles(preferred: number, limits: string | null = readProcessLimits()): number {
  const soft = limits?.match(/^Max open files\s+(\d+)\s/m)?.[1];
  if (soft === undefined) return preferred;
  return Math.max(1, Math.min(preferred, Math.floor((Number(soft) - filesKept(Number(soft))) / FILES_PER_DATABASE)));
}

function readProcessLimits(): string | null {
  try {
    return fs.readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return null;
  }
}
