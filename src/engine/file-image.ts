/**
 * Whole-database images: export and import, and the SQLite handles they need (the connection's
 * own, an in-memory copy, a scratch database on memory files); and raw pages of the committed
 * database, read through `sqlite_dbpage` (the sync server's page reads).
 *
 * Import is all or nothing. The image is validated (header, `integrity_check` on an in-memory
 * copy), brought to the connection's page size if it differs, and copied with SQLite's backup
 * API, which writes the whole database in one transaction: a failure at any point (a full
 * store included) leaves the old data in place.
 */
import { OutpostError, SqliteError } from '../errors.js';
import { MemoryBackend } from '../opfs-vfs/storage/memory.js';
import { type OutpostVfs, VFS_NAME } from '../opfs-vfs/vfs.js';
import {
  SQLITE_DESERIALIZE_FREEONCLOSE,
  SQLITE_DESERIALIZE_RESIZEABLE,
  SQLITE_DONE,
  SQLITE_OK,
  SQLITE_OPEN_CREATE,
  SQLITE_OPEN_EXRESCODE,
  SQLITE_OPEN_READWRITE,
  SQLITE_ROW,
} from '../sqlite/constants.js';
import { sqliteError } from '../sqlite/errors.js';
import { markRollbackMode, validateHeader } from '../sqlite/format.js';
import { heapBytes } from '../sqlite/heap.js';
import { type Sqlite3Runtime, rawExports } from '../sqlite/wasm-api.js';
import type { SqlValue } from '../types.js';
import { bindValue } from './binding.js';
import { type Statement, type StatementHost, resetStatement } from './statements.js';

/** Opens a SQLite handle on `path` with Outpost's VFS (or the default VFS when vfs is null). */
export function openSqlite(sqlite3: Sqlite3Runtime, vfs: OutpostVfs | null, path: string): number {
  const { capi, wasm } = sqlite3;
  const ppDb = wasm.alloc(wasm.ptr.size);
  try {
    const flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_EXRESCODE;
    const rc = capi.sqlite3_open_v2(path, ppDb, flags, vfs ? VFS_NAME : null);
    const pDb = wasm.peekPtr(ppDb);
    if (rc !== SQLITE_OK) {
      const error = sqliteError(sqlite3, rc, { db: pDb, reason: vfs?.takeError()?.message });
      if (pDb) capi.sqlite3_close_v2(pDb);
      throw error;
    }
    capi.sqlite3_extended_result_codes(pDb, 1);
    return pDb;
  } finally {
    wasm.dealloc(ppDb);
  }
}

/**
 * A consistent SQLite file of database `db` (WAL folded in), marked as a rollback-journal file,
 * without the tables named in `without` (Outpost's own bookkeeping, which means nothing
 * outside this database: they are dropped from an in-memory copy, only when present).
 */
export function exportImage(sqlite3: Sqlite3Runtime, db: number, without: readonly string[] = []): Uint8Array {
  let bytes = sqlite3.capi.sqlite3_js_db_export(db, 'main');
  // The file format bytes say WAL; a standalone file says rollback journal, so the copy opens
  // anywhere without looking for a -wal file.
  markRollbackMode(bytes);
  const present = without.filter((table) => Number(selectValue(sqlite3, db, `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ${quote(table)}`)) > 0);
  if (present.length > 0) bytes = dropTables(sqlite3, bytes, present);
  return bytes;
}

/** `image` with `tables` dropped, through an in-memory copy. */
function dropTables(sqlite3: Sqlite3Runtime, image: Uint8Array, tables: readonly string[]): Uint8Array {
  const { capi, wasm } = sqlite3;
  const temp = openSqlite(sqlite3, null, ':memory:');
  try {
    const p = wasm.allocFromTypedArray(image);
    const rc = capi.sqlite3_deserialize(temp, 'main', p, image.length, image.length, SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_RESIZEABLE);
    if (rc !== SQLITE_OK) throw sqliteError(sqlite3, rc, { db: temp });
    for (const table of tables) execOn(sqlite3, temp, `DROP TABLE ${quote(table)}`);
    const bytes = capi.sqlite3_js_db_export(temp, 'main');
    markRollbackMode(bytes);
    return bytes;
  } finally {
    capi.sqlite3_close_v2(temp);
  }
}

/** A table name as an SQL string literal (also valid where an identifier is expected). */
const quote = (name: string): string => `'${name.replaceAll("'", "''")}'`;

/** The connection an image is imported into. */
export interface ImportTarget {
  sqlite3: Sqlite3Runtime;
  vfs: OutpostVfs;
  db: number;
  /** The target's page size; the image is converted to it. */
  pageSize: number;
  /** The SqliteError for a failed copy into the target (with the VFS's reason). */
  error(rc: number): SqliteError;
}

/** Replaces the target database with the validated image `bytes` (see the header). */
export function importImage(target: ImportTarget, bytes: Uint8Array): void {
  const header = validateHeader(bytes);
  if ('invalid' in header) throw new OutpostError(`not a SQLite database: ${header.invalid}`, 'NOT_A_DATABASE');
  const { sqlite3, vfs } = target;
  const image = bytes.slice();
  markRollbackMode(image); // an in-memory copy cannot be in WAL mode
  const temp = openSqlite(sqlite3, null, ':memory:');
  let scratch: { db: number; unmount: () => void } | null = null;
  try {
    deserializeChecked(sqlite3, temp, image);
    let source = temp;
    if (header.pageSize !== target.pageSize) {
      // Neither a WAL database nor an in-memory one can change its page size, so the copy
      // goes through a scratch database on memory files, in rollback mode, where VACUUM can.
      scratch = openScratch(sqlite3, vfs);
      backupInto(sqlite3, scratch.db, temp);
      execOn(sqlite3, scratch.db, `PRAGMA page_size=${target.pageSize}; VACUUM;`);
      source = scratch.db;
    }
    vfs.flushWrites();
    try {
      backupInto(sqlite3, target.db, source);
    } catch (e) {
      throw e instanceof SqliteError ? target.error(e.resultCode) : e;
    }
  } finally {
    sqlite3.capi.sqlite3_close_v2(temp);
    if (scratch) {
      sqlite3.capi.sqlite3_close_v2(scratch.db);
      scratch.unmount();
    }
  }
}

/** Loads `image` into the in-memory database `db` and checks that it is a sound database. */
function deserializeChecked(sqlite3: Sqlite3Runtime, db: number, image: Uint8Array): void {
  const { capi, wasm } = sqlite3;
  const p = wasm.allocFromTypedArray(image);
  const rc = capi.sqlite3_deserialize(db, 'main', p, image.length, image.length, SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_RESIZEABLE);
  if (rc !== SQLITE_OK) throw new OutpostError(`not a SQLite database: deserialize failed (${capi.sqlite3_js_rc_str(rc)})`, 'NOT_A_DATABASE');
  let check: string;
  try {
    check = String(selectValue(sqlite3, db, 'PRAGMA integrity_check'));
  } catch (e) {
    throw new OutpostError(`not a SQLite database: ${(e as Error).message}`, 'NOT_A_DATABASE');
  }
  if (check !== 'ok') throw new OutpostError(`the file failed integrity_check: ${check}`, 'NOT_A_DATABASE');
}

/** A throwaway SQLite database on memory files mounted in Outpost's VFS. */
function openScratch(sqlite3: Sqlite3Runtime, vfs: OutpostVfs): { db: number; unmount: () => void } {
  const mount = vfs.mount({ db: new MemoryBackend(), wal: new MemoryBackend() });
  try {
    return { db: openSqlite(sqlite3, vfs, mount.path), unmount: mount.unmount };
  } catch (e) {
    mount.unmount();
    throw e;
  }
}

/** Copies every page of `source` into `dest` in one transaction (SQLite's backup API). */
function backupInto(sqlite3: Sqlite3Runtime, dest: number, source: number): void {
  const { capi } = sqlite3;
  const backup = capi.sqlite3_backup_init(dest, 'main', source, 'main');
  if (!backup) throw sqliteError(sqlite3, capi.sqlite3_extended_errcode(dest), { db: dest, sql: 'import' });
  const stepRc = capi.sqlite3_backup_step(backup, -1);
  const finishRc = capi.sqlite3_backup_finish(backup);
  const rc = stepRc !== SQLITE_DONE ? stepRc : finishRc;
  if (rc !== SQLITE_OK && rc !== SQLITE_DONE) throw sqliteError(sqlite3, rc, { db: dest, sql: 'import' });
}

/** Runs SQL on a raw handle (used for the import's scratch databases). */
function execOn(sqlite3: Sqlite3Runtime, db: number, sql: string): void {
  const rc = sqlite3.capi.sqlite3_exec(db, sql, 0, 0, 0);
  if (rc !== SQLITE_OK) throw sqliteError(sqlite3, rc, { db, sql });
}

/** The first column of the first row of `sql` on a raw handle, as text (null without a row). */
function selectValue(sqlite3: Sqlite3Runtime, db: number, sql: string): SqlValue {
  const { capi, wasm } = sqlite3;
  const pp = wasm.alloc(wasm.ptr.size);
  try {
    let rc = capi.sqlite3_prepare_v2(db, sql, -1, pp, 0);
    if (rc !== SQLITE_OK) throw sqliteError(sqlite3, rc, { db, sql });
    const stmt = wasm.peekPtr(pp);
    try {
      rc = capi.sqlite3_step(stmt);
      if (rc === SQLITE_ROW) return capi.sqlite3_column_text(stmt, 0);
      if (rc === SQLITE_DONE) return null;
      throw sqliteError(sqlite3, rc, { db, sql });
    } finally {
      capi.sqlite3_finalize(stmt);
    }
  } finally {
    wasm.dealloc(pp);
  }
}

/**
 * Whether the main database of handle `db` has a table or virtual table named `name` (SQLite's
 * name lookup: any case; a view does not count), from the loaded schema without compiling a
 * statement (the server asks at every open of a database).
 */
export function hasTable(sqlite3: Sqlite3Runtime, db: number, name: string): boolean {
  const zMain = sqlite3.wasm.allocCString('main');
  const zName = sqlite3.wasm.allocCString(name);
  try {
    return rawExports(sqlite3).sqlite3_table_column_metadata(db, zMain, zName, 0, 0, 0, 0, 0, 0) === SQLITE_OK;
  } finally {
    sqlite3.wasm.dealloc(zName);
    sqlite3.wasm.dealloc(zMain);
  }
}

/** The statement `readPages` steps, prepared (and cached) by the connection. */
export const DBPAGE_SQL = 'SELECT data FROM sqlite_dbpage WHERE pgno = ?';

/**
 * Reads raw pages (1-based numbers) of the committed database with `stmt`, a prepared
 * `DBPAGE_SQL`. Pages past the end are left out of the result.
 */
export function readPages(host: StatementHost, stmt: Statement, pageNumbers: Iterable<number>): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>();
  const { raw } = host;
  try {
    for (const pgno of pageNumbers) {
      raw.sqlite3_reset(stmt.ptr);
      bindValue(host, stmt, 1, pgno);
      const rc = raw.sqlite3_step(stmt.ptr);
      if (rc === SQLITE_ROW) {
        const p = raw.sqlite3_column_blob(stmt.ptr, 0);
        out.set(pgno, heapBytes(host.sqlite3.wasm.memory, p, raw.sqlite3_column_bytes(stmt.ptr, 0)).slice());
      } else if (rc !== SQLITE_DONE) throw host.error(rc, stmt.sql);
    }
    return out;
  } finally {
    resetStatement(raw, stmt);
  }
}
