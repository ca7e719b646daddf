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
 *   checkpoint keeps its WAL small; see `HostedDatabase.open`), and under durability 'normal'
 *   flushes nothing: its revision log is left unclean, which this process and this boot trust,
 *   so a reopen writes and fsyncs nothing either. A database that stays closed `sealAfterMs`
 *   is sealed in the background, at most `SEALS_AT_ONCE` at a time (seal.ts: its files fsynced,
 *   then its log marked clean), so that a power loss starts a new generation only for the
 *   databases used in the last `sealAfterMs`. `closeAll` (the server stopping) seals every
 *   database it closes and every one still unsealed, and under 'full' waits for the markers'
 *   fsyncs.
 * - The open databases share SQLite's heap bound with every statement (heap-limit.ts), so the
 *   count is not the only limit: idle databases are also closed while SQLite's heap holds more
 *   than `heap.openBytesMax`, which leaves the rest of the bound for statements. An open that
 *   fails for memory (SQLITE_NOMEM) closes every idle database and tries once more, and so
 *   does one that fails because the process holds as many files as it may (EMFILE).
 * - Each open database holds `FILES_HELD_PER_DATABASE` file descriptor for good (its revision
 *   log's); its main file and WAL draw theirs from a pool that closes and reopens them
 *   (descriptors.ts). Both come out of the process's file limit (`fileBudget`).
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
import { RevisionLog } from './revlog.js';
import { sealClosed } from './seal.js';
import { Lru } from './lru.js';

/** How long an evicted database stays closed before its seal (a power loss costs a new generation only to databases used this recently). */
export const SEAL_AFTER_MS = 60_000;
/** Seals run at once in the background: one, since each holds a thread of libuv's pool (4 by default) for its fsyncs, which reopens need too (at two at a time and 30 s, a 10,000-database load run whose seals of the databases it had filled fell in its measured 10 s pushed 313/s against the baseline's 652). */
const SEALS_AT_ONCE = 1;
/** Seals run at once while the server stops, when nothing else needs the pool. */
const SEALS_AT_ONCE_STOPPING = 16;

/** How much of SQLite's heap the open databases may hold, and what it holds now. */
export interface HeapBudget {
  usedBytes(): number;
  openBytesMax: number;
}

export class DatabaseCache {
  /** Open databases, least recently used first (lru.ts says why not a re-inserted Map). */
  private readonly open = new Lru<string, HostedDatabase>();
  private readonly opening = new Map<string, Promise<HostedDatabase>>();
  /** Names that have opened: their files passed `refuseCaseAlias` or were created under the name. */
  private readonly ownFiles = new Set<string>();
  /**
   * Databases closed under 'normal' and not sealed since, least recently closed first, with
   * when their seal is due (`performance.now()` ms). An entry is removed when the database
   * opens again: a seal under way whose entry is gone (or replaced) writes no marker.
   */
  private readonly unsealed = new Map<string, { closedAtMs: number; dueMs: number; running: boolean }>();
  private readonly sealing = new Set<Promise<void>>();
  private sealTimer: ReturnType<typeof setTimeout> | null = null;
  /** The latest clock a `sealDue` call asked for while seals run (tests run it ahead); -Infinity when none run. */
  private sealClockMs = -Infinity;
  private readonly sealsIdle: (() => void)[] = [];
  private stopping = false;

  constructor(
    private readonly dataDir: string,
    private readonly openMax: number,
    private readonly optionsFor: (name: string) => HostedDatabaseOptions,
    /** Told of each open and each eviction (the server's metrics). */
    private readonly events: { opened?: () => void; evicted?: () => void } = {},
    private readonly heap: HeapBudget | null = null,
    private readonly sealAfterMs = SEAL_AFTER_MS,
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

  /** Closes every open database and seals it and every other one still unsealed (the server is stopping). */
  async closeAll(): Promise<void> {
    this.stopping = true;
    for (let entry = this.open.oldest(); entry; entry = this.open.oldest()) {
      const [name, db] = entry;
      this.open.delete(name);
      await this.closed(name, db);
    }
    for (const entry of this.unsealed.values()) entry.dueMs = 0;
    await this.sealDue();
    await RevisionLog.markersFlushed();
  }

  /**
   * Seals every database whose seal is due at `nowMs` (all of them once stopping), at most
   * `SEALS_AT_ONCE` at a time, and resolves when no seal is under way. Tests pass `Infinity`
   * to seal every closed database now.
   */
  sealDue(nowMs = performance.now()): Promise<void> {
    if (this.sealTimer !== null) clearTimeout(this.sealTimer);
    this.sealTimer = null;
    this.sealClockMs = Math.max(this.sealClockMs, nowMs);
    this.startSeals();
    if (this.sealing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.sealsIdle.push(resolve));
  }

  /** Starts the seals due (each one that ends starts the next); once none runs, arms the timer for the next one due. */
  private startSeals(): void {
    const atOnce = this.stopping ? SEALS_AT_ONCE_STOPPING : SEALS_AT_ONCE;
    const nowMs = Math.max(this.sealClockMs, performance.now());
    for (const [name, entry] of this.unsealed) {
      if (this.sealing.size >= atOnce || entry.dueMs > nowMs) break;
      if (entry.running) continue;
      entry.running = true;
      const seal = sealClosed(this.dataDir, name, this.optionsFor(name), entry.closedAtMs, () => this.unsealed.get(name) === entry && !this.open.has(name) && !this.opening.has(name))
        .catch(() => {}) // Left unsealed: a power loss starts a new generation, as before the seal.
        .then(() => {
          if (this.unsealed.get(name) === entry) this.unsealed.delete(name);
          this.sealing.delete(seal);
          this.startSeals();
        });
      this.sealing.add(seal);
    }
    if (this.sealing.size > 0) return;
    this.sealClockMs = -Infinity;
    for (const resolve of this.sealsIdle.splice(0)) resolve();
    this.armSealTimer();
  }

  private armSealTimer(): void {
    const first = this.unsealed.values().next();
    if (first.done || this.sealTimer !== null || this.sealing.size > 0 || this.stopping) return;
    this.sealTimer = setTimeout(() => void this.sealDue(), Math.max(0, first.value.dueMs - performance.now()));
    this.sealTimer.unref();
  }

  /** Closes `db`; under 'normal' it then waits for its seal. */
  private async closed(name: string, db: HostedDatabase): Promise<void> {
    await db.close();
    this.awaitSeal(name);
  }

  /** `name` was closed by this process (or failed to open) and, under 'normal', is left unsealed. */
  private awaitSeal(name: string): void {
    if (this.optionsFor(name).durability !== 'normal') return;
    this.unsealed.delete(name);
    const closedAtMs = performance.now();
    this.unsealed.set(name, { closedAtMs, dueMs: this.stopping ? 0 : closedAtMs + this.sealAfterMs, running: false });
    this.armSealTimer();
  }

  /** The database, pinned: a pin is taken before anything can evict it (evict() included). */
  private async get(name: string, create: boolean): Promise<HostedDatabase | null> {
    const hosted = this.open.get(name);
    if (hosted) {
      this.open.touch(name);
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
    // Before anything touches its files: a name refused here has none of its own to seal.
    if (!this.ownFiles.has(name)) refuseCaseAlias(this.fileOf(name), name);
    // Its seal, if under way, writes no marker now (the reopen trusts the log unclean: revlog.ts).
    this.unsealed.delete(name);
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
    } catch (e) {
      // Its log may be open no more, unsealed (revlog.ts: a failed open leaves it as it was, or unclean).
      this.awaitSeal(name);
      throw e;
    } finally {
      this.opening.delete(name);
    }
  }

  /** Opens `name`; when SQLite's heap is too full for it, or the process may open no more files, closes every idle database and tries once more. */
  private async openFresh(name: string): Promise<HostedDatabase> {
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
    // From the least recently used idle one, looked up again after each close (which awaits).
    for (let entry = over() ? this.open.oldest(idle) : null; entry; entry = over() ? this.open.oldest(idle) : null) {
      const [name, db] = entry;
      this.open.delete(name);
      this.events.evicted?.();
      await this.closed(name, db);
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

/**
 * File descriptors an open database holds for as long as it is open: its revision log's. Its
 * main file and WAL take theirs from the server's `DescriptorPool`, which closes the least
 * recently used ones and opens them again when needed (a few microseconds, where a database
 * reopen is about a millisecond).
 */
export const FILES_HELD_PER_DATABASE = 1;

/**
 * Descriptors kept for everything else (sockets, pull spools, logs) under the process's file
 * limit: 1,024, or a quarter of a smaller limit (a process held to 1,024 files still keeps 256
 * databases open rather than one).
 */
export const FILES_KEPT = 1024;

/** What `fileBudget` keeps for everything else under a soft limit of `soft` files. */
export function filesKept(soft: number): number {
  return Math.min(FILES_KEPT, Math.floor(soft / 4));
}

/** How a server's databases share the process's file descriptors. */
export interface FileBudget {
  /** Databases that may be open at once: `preferred`, or fewer under the file limit. */
  databases: number;
  /** Descriptors the open databases' main files and WALs may hold at once (the pool's limit). */
  pooled: number;
}

/**
 * The file budget under this process's soft limit on open files (Linux's `/proc/self/limits`;
 * Node raises it to the hard limit when it starts): the limit less `filesKept` is shared, a
 * quarter to the descriptor pool and the rest to open databases' revision logs, at most
 * `preferred` of them. Where the limit cannot be read or is unlimited, `preferred` databases and
 * a pool that holds all their files.
 */
export function fileBudget(preferred: number, limits: string | null = readProcessLimits()): FileBudget {
  const soft = limits?.match(/^Max open files\s+(\d+)\s/m)?.[1];
  if (soft === undefined) return { databases: preferred, pooled: 2 * preferred };
  const shared = Math.max(2, Number(soft) - filesKept(Number(soft)));
  const pooled = Math.max(1, Math.floor(shared / 4));
  return { databases: Math.max(1, Math.min(preferred, Math.floor((shared - pooled) / FILES_HELD_PER_DATABASE))), pooled };
}

function readProcessLimits(): string | null {
  try {
    return fs.readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return null;
  }
}

const idle = (db: HostedDatabase): boolean => db.pins === 0;
