/**
 * Opening a connection: the options it takes, its files and VFS mount, and the settings every
 * new SQLite handle gets (connection.ts calls these when it opens, and again when the sync
 * layer reopens SQLite under it).
 *
 * Order of the settings: `page_size` (only takes effect on a new, empty database, so only set
 * while the main file is empty), then `locking_mode=EXCLUSIVE` before `journal_mode=WAL`, so
 * that SQLite never needs shared memory for the WAL index, then `synchronous` from
 * `durability`, the autocheckpoint threshold and the cache size, in one call.
 */
import { OutpostError, SqliteError } from '../errors.js';
import type { StorageBackend, StorageDirectory } from '../opfs-vfs/storage/backend.js';
import { DB_FILE, WAL_FILE } from '../opfs-vfs/storage/files.js';
import type { OutpostVfs, WalObserver } from '../opfs-vfs/vfs.js';
import { SQLITE_DBCONFIG_LOOKASIDE, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, SQLITE_OK } from '../sqlite/constants.js';
import { PAGE_BYTES } from '../sqlite/format.js';
import type { Sqlite3Runtime } from '../sqlite/wasm-api.js';
import type { SqlValue } from '../types.js';
import type { CaptureHooks } from './capture.js';
import { AUTOCHECKPOINT_PAGES, WalWriteCounter } from './checkpointer.js';
import { openSqlite } from './file-image.js';
import { closeHandle } from './guards.js';
import { loadRuntime } from './runtime.js';

export interface ConnectionOptions {
  durability: 'normal' | 'full';
  intMode: 'number' | 'bigint';
  /**
   * `'auto'` (default): checkpoint when idle, and at the latest when the WAL holds
   * `AUTOCHECKPOINT_PAGES`. `'manual'`: never on its own (the sync layer decides).
   */
  checkpoint?: 'auto' | 'manual';
  /**
   * With false, closing leaves the WAL as it is instead of checkpointing it (with its two
   * flushes); the next open recovers it. The server uses this so that evicting an idle
   * database from its cache is cheap. Default true (always false with `checkpoint: 'manual'`).
   */
  checkpointOnClose?: boolean | undefined;
  /** Sees every WAL frame header as it is written (the sync server's page tracking). */
  walObserver?: WalObserver | undefined;
  /** Page cache size in KiB (SQLite's default is 2000). */
  cacheKiB?: number | undefined;
  /**
   * Change capture (capture.ts): every committed write transaction to a table `tracks` accepts
   * is handed to `onCommit`, inside that transaction, right before it commits.
   */
  capture?: CaptureHooks | undefined;
  /**
   * With false, SQLite's lookaside allocator is off for this connection. Lookaside is a
   * per-connection pool of small allocations (about 64 KiB of WASM memory at SQLite's default,
   * allocated at open): it makes small mallocs a little cheaper, but a server that keeps
   * thousands of databases open pays it once per database. Default true.
   */
  lookaside?: boolean | undefined;
  /**
   * With false, the page cache allocates its pages one at a time from the first. By default
   * SQLite's page cache (pcache1) takes 20 pages at once, about 84 KiB of WASM memory at 4 KiB
   * pages, at its first page read, however few pages the database needs; a server that keeps
   * thousands of small databases open pays it once per database. The official build cannot
   * configure it (`SQLITE_CONFIG_PAGECACHE` takes an argument more than its exported config
   * wrappers), so the settings empty the cache after the first read, which frees that
   * allocation, and read page 1 again under a cache of 2 pages, for which pcache1 makes none
   * (`applySettings`). Default true.
   */
  pageCacheBulk?: boolean | undefined;
  /** Called after an API call that wrote to the WAL, outside any transaction. */
  afterWrite?: (() => void) | undefined;
}

/** What `openDatabase` hands to the connection it builds: SQLite open on the mounted files. */
export interface OpenedDatabase {
  sqlite3: Sqlite3Runtime;
  vfs: OutpostVfs;
  /** The SQLite handle. */
  db: number;
  /** Every file opened, the main file first. */
  files: StorageBackend[];
  wal: WalWriteCounter;
  mountPath: string;
  unmount: () => void;
}

/**
 * Opens the database's files in `directory`, mounts them in the VFS, opens SQLite on them and
 * returns what `build` makes of that. If anything fails, `build` included, everything opened so
 * far is closed again and the directory released, so a failed open holds nothing.
 */
export async function openDatabase<T>(directory: StorageDirectory, options: ConnectionOptions, build: (opened: OpenedDatabase) => T): Promise<T> {
  // The files open while SQLite may still be loading (a first open in a worker); a failure of
  // the load shows where it is awaited, unless the files failed first.
  const runtime = loadRuntime();
  runtime.catch(() => {});
  const files: StorageBackend[] = [];
  try {
    const db = await directory.open(DB_FILE);
    files.push(db);
    const wal = new WalWriteCounter(await directory.open(WAL_FILE));
    files.push(wal);
    const { sqlite3, vfs } = await runtime;
    const mount = vfs.mount({ db, wal }, options.walObserver);
    let pDb = 0;
    try {
      pDb = openSqlite(sqlite3, vfs, mount.path);
      return build({ sqlite3, vfs, db: pDb, files, wal, mountPath: mount.path, unmount: mount.unmount });
    } catch (e) {
      if (pDb) closeHandle(sqlite3, pDb);
      mount.unmount();
      throw e;
    }
  } catch (e) {
    for (const f of files) f.close();
    await directory.release();
    throw e;
  }
}

/** The statements `applySettings` runs them through (the connection's own `value`, and `settings`). */
export interface SettingsRunner {
  /**
   * Runs PRAGMAs that set something straight through `sqlite3_exec`: none of them is described,
   * tracked or cached as an API statement is (each of those costs a few microseconds of JS,
   * and a server pays them at every reopen).
   */
  settings(sql: string): void;
  value(sql: string): SqlValue;
}

/**
 * Applies the settings in the order the header gives; `label` names the database in errors.
 * `mainFileBytes` is the main file's size: `page_size` is set only while it is empty, since a
 * database already in the file keeps the page size its header gives whatever the PRAGMA says.
 */
export function applySettings(run: SettingsRunner, options: ConnectionOptions, label: string, mainFileBytes: number): void {
  // The WASM build defaults to 8192-byte pages; the sync protocol's pages are 4096 bytes. (A
  // database whose pages are all still in the WAL has an empty main file, so it gets the PRAGMA
  // too, which changes nothing for it.)
  run.settings(mainFileBytes === 0 ? `PRAGMA page_size=${PAGE_BYTES}; PRAGMA locking_mode=EXCLUSIVE` : 'PRAGMA locking_mode=EXCLUSIVE');
  const mode = run.value('PRAGMA journal_mode=WAL');
  if (mode !== 'wal') {
    throw new OutpostError(`could not switch ${label} to WAL mode (got ${String(mode)})`, 'NOT_A_DATABASE');
  }
  let sql = `PRAGMA synchronous=${options.durability === 'full' ? 'FULL' : 'NORMAL'}; PRAGMA wal_autocheckpoint=${options.checkpoint === 'manual' ? 0 : AUTOCHECKPOINT_PAGES};`;
  let cachePages = options.cacheKiB ? `-${Math.max(64, Math.floor(options.cacheKiB))}` : null;
  if (options.pageCacheBulk === false) {
    cachePages ??= String(run.value('PRAGMA cache_size'));
    // A cache of 0 pages keeps none, and pcache1 frees its bulk allocation once it holds no
    // page; under 2 pages it makes none when page 1 (`schema_version`) is read again.
    sql += ' PRAGMA cache_size=0; PRAGMA cache_size=2; PRAGMA schema_version;';
  }
  if (cachePages !== null) sql += ` PRAGMA cache_size=${cachePages};`;
  run.settings(sql);
}

/** Lookaside off (`ConnectionOptions.lookaside`), on a new handle before its first statement allocates from it. Returns SQLite's result code. */
export function applyLookaside(sqlite3: Sqlite3Runtime, db: number, options: ConnectionOptions): number {
  return options.lookaside === false ? sqlite3.capi.sqlite3_db_config(db, SQLITE_DBCONFIG_LOOKASIDE, 0, 0, 0) : SQLITE_OK;
}

/** With a manual checkpoint or `checkpointOnClose: false`, closing must not checkpoint either: the sync layer decides what reaches the main file. */
export function applyCloseSetting(sqlite3: Sqlite3Runtime, db: number, options: ConnectionOptions): void {
  if (options.checkpoint === 'manual' || options.checkpointOnClose === false) {
    sqlite3.capi.sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, 0);
  }
}

/** A file that is not a database fails its first statement: that error, said as such. */
export function notADatabase(e: unknown, label: string): unknown {
  if (e instanceof SqliteError && (e.code === 'SQLITE_NOTADB' || e.code.startsWith('SQLITE_CORRUPT'))) {
    return new OutpostError(`${label} is not a SQLite database (${e.message})`, 'NOT_A_DATABASE');
  }
  return e;
}
