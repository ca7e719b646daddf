/**
 * The engine: one SQLite connection over Outpost's VFS, with a synchronous API.
 *
 * This is the only module (with `sqlite.ts`) that touches the WASM API. It runs inside the
 * worker in the browser and in-process under Node; `Database` (`../database.ts`) puts the async
 * public API on top of it.
 *
 * Contract
 * - `Connection.open(directory, options)` opens every file of the database, mounts them in the
 *   VFS, opens SQLite on them and sets `locking_mode=EXCLUSIVE`, `journal_mode=WAL` and
 *   `synchronous` from `durability`, in that order (EXCLUSIVE first, so that SQLite never needs
 *   shared memory for the WAL index).
 * - Every method either completes or throws `SqliteError` (SQLite's extended code and message,
 *   with the VFS's reason appended for I/O errors) or `OutpostError`. After an error the
 *   connection stays usable.
 * - Statements are prepared once and cached by SQL text (an LRU of `STATEMENT_CACHE_SIZE`).
 * - Rows leave the engine packed (`PackedRows`: column names plus one flat value array), so a
 *   query crosses the worker boundary as one structured clone rather than one object per row.
 * - Value mapping: INTEGER -> number when safe (always bigint with `intMode: 'bigint'`), REAL ->
 *   number, TEXT -> string, BLOB -> Uint8Array (a copy), NULL -> null. Binding: number (integers
 *   as INTEGER, others as REAL), bigint, string, boolean (1/0), Uint8Array/ArrayBuffer, null.
 */
import { OutpostError, SqliteError } from '../errors.js';
import type { StorageBackend, StorageDirectory } from '../opfs-vfs/backend.js';
import { MemoryBackend } from '../opfs-vfs/memory-backend.js';
import { type CaptureHooks, ChangeCapture } from './capture.js';
import { type ChangesetConflict, type ChangesetRow, type ConflictResolution, applyChangeset, decodeChangeset } from './changesets.js';
import { VFS_NAME, type OutpostVfs, type WalObserver } from '../opfs-vfs/vfs.js';
import type { BatchStatement, RunResult, SqlParam, SqlParams, SqlValue, StatementResult } from '../types.js';
import { type PackedRows, RowPacker } from './packed-rows.js';
import { loadSqlite } from './sqlite.js';
import type { Sqlite3Runtime } from './wasm-api.js';

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
  /** Called after an API call that wrote to the WAL, outside any transaction. */
  afterWrite?: (() => void) | undefined;
}

/** The full result of one statement, as a remote protocol reports it. */
export interface ExecuteResult {
  columns: string[];
  decltypes: (string | null)[];
  rows: SqlValue[][];
  changes: number;
  lastInsertRowid: bigint;
}

/**
 * SQLite's default of 1000 pages makes a burst of writes pay for checkpoints in the middle of
 * it (about a third of the time of a big INSERT ... SELECT on OPFS). Ten thousand pages (40 MB)
 * bounds the WAL; the idle checkpoint keeps it small in the steady state.
 */
const AUTOCHECKPOINT_PAGES = 10_000;
/** How long the connection must be idle after a write before it checkpoints. */
const IDLE_CHECKPOINT_MS = 1000;
/** Below this many WAL bytes an idle checkpoint is not worth its flushes. */
const IDLE_CHECKPOINT_MIN_WAL_BYTES = 1024 * 1024;

const STATEMENT_CACHE_SIZE = 64;

const SQLITE_OK = 0;
const SQLITE_ROW = 100;
const SQLITE_DONE = 101;
const SQLITE_INTEGER = 1;
const SQLITE_FLOAT = 2;
const SQLITE_TEXT = 3;
const SQLITE_BLOB = 4;
const SQLITE_OPEN_READWRITE = 0x2;
const SQLITE_OPEN_CREATE = 0x4;
const SQLITE_OPEN_EXRESCODE = 0x2000000;
const SQLITE_PREPARE_PERSISTENT = 0x1;
const SQLITE_DESERIALIZE_FREEONCLOSE = 1;
const SQLITE_DESERIALIZE_RESIZEABLE = 2;
const SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE = 1006;

/** The raw WASM exports the hot paths call (numbers in, numbers out; i64 as bigint). */
interface RawExports {
  sqlite3_step(stmt: number): number;
  sqlite3_reset(stmt: number): number;
  sqlite3_clear_bindings(stmt: number): number;
  sqlite3_finalize(stmt: number): number;
  sqlite3_column_count(stmt: number): number;
  sqlite3_column_type(stmt: number, i: number): number;
  sqlite3_column_double(stmt: number, i: number): number;
  sqlite3_column_int64(stmt: number, i: number): bigint;
  sqlite3_column_text(stmt: number, i: number): number;
  sqlite3_column_blob(stmt: number, i: number): number;
  sqlite3_column_bytes(stmt: number, i: number): number;
  sqlite3_bind_parameter_count(stmt: number): number;
  sqlite3_bind_null(stmt: number, i: number): number;
  sqlite3_bind_int(stmt: number, i: number, v: number): number;
  sqlite3_bind_int64(stmt: number, i: number, v: bigint): number;
  sqlite3_bind_double(stmt: number, i: number, v: number): number;
  sqlite3_bind_text(stmt: number, i: number, p: number, n: number, destructor: number): number;
  sqlite3_bind_blob(stmt: number, i: number, p: number, n: number, destructor: number): number;
  sqlite3_stmt_readonly(stmt: number): number;
  sqlite3_changes(db: number): number;
  sqlite3_total_changes(db: number): number;
  sqlite3_last_insert_rowid(db: number): bigint;
  sqlite3_get_autocommit(db: number): number;
  sqlite3_extended_errcode(db: number): number;
}

/** What a statement does, for change capture (see capture.ts). */
type StatementKind = 'read' | 'write' | 'ddl' | 'begin' | 'commit' | 'rollback' | 'savepoint' | 'release' | 'other';

interface Statement {
  ptr: number;
  sql: string;
  kind: StatementKind;
  /** The savepoint a SAVEPOINT or RELEASE statement names. */
  savepoint: string | null;
  columns: string[];
  /** Parameter names by index (1-based index at [i-1]); null for plain `?`. */
  paramNames: (string | null)[];
}

const textDecoder = new TextDecoder();
const textEncoder = new TextEncoder();

export class Connection {
  private readonly x: RawExports;
  private readonly cache = new Map<string, Statement>();
  private closed = false;
  private capture: ChangeCapture | null = null;
  /** The savepoint that opened the current transaction, if a SAVEPOINT did. */
  private outerSavepoint: string | null = null;

  private constructor(
    private readonly sqlite3: Sqlite3Runtime,
    private readonly vfs: OutpostVfs,
    private db: number,
    private readonly files: StorageBackend[],
    private readonly wal: WriteCounter,
    private readonly mountPath: string,
    private readonly unmount: () => void,
    private readonly directory: StorageDirectory,
    readonly options: ConnectionOptions,
  ) {
    // The raw exports are untyped; RawExports names the ones used here.
    this.x = sqlite3.wasm.exports as RawExports;
  }

  /** Opens (creating when missing) the database in `directory`. */
  static async open(directory: StorageDirectory, options: ConnectionOptions): Promise<Connection> {
    const { sqlite3, vfs } = await loadSqlite();
    const files: StorageBackend[] = [];
    try {
      const db = await directory.open('db');
      files.push(db);
      const wal = new WriteCounter(await directory.open('db-wal'));
      files.push(wal);
      const mount = vfs.mount({ db, wal }, options.walObserver);
      let pDb = 0;
      try {
        pDb = openSqlite(sqlite3, vfs, mount.path);
        const conn = new Connection(sqlite3, vfs, pDb, files, wal, mount.path, mount.unmount, directory, options);
        conn.configure();
        return conn;
      } catch (e) {
        if (pDb) sqlite3.capi.sqlite3_close_v2(pDb);
        mount.unmount();
        throw e;
      }
    } catch (e) {
      for (const f of files) f.close();
      await directory.release();
      throw e;
    }
  }

  private configure(): void {
    try {
      // The WASM build defaults to 8192-byte pages; the sync protocol's pages are 4096 bytes.
      // This only takes effect on a new, empty database.
      this.exec('PRAGMA page_size=4096');
      this.exec('PRAGMA locking_mode=EXCLUSIVE');
      const mode = this.value('PRAGMA journal_mode=WAL');
      if (mode !== 'wal') {
        throw new OutpostError(`could not switch ${this.directory.label} to WAL mode (got ${String(mode)})`, 'NOT_A_DATABASE');
      }
      this.exec(`PRAGMA synchronous=${this.options.durability === 'full' ? 'FULL' : 'NORMAL'}`);
      this.exec(`PRAGMA wal_autocheckpoint=${this.options.checkpoint === 'manual' ? 0 : AUTOCHECKPOINT_PAGES}`);
      if (this.options.cacheKiB) this.exec(`PRAGMA cache_size=-${Math.max(64, Math.floor(this.options.cacheKiB))}`);
      if (this.options.checkpoint === 'manual' || this.options.checkpointOnClose === false) {
        // Closing must not checkpoint either: the sync layer decides what reaches the main file.
        this.sqlite3.capi.sqlite3_db_config(this.db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, 0);
      }
      if (this.options.capture) this.capture = new ChangeCapture(this.sqlite3, this.db, this.options.capture);
    } catch (e) {
      if (e instanceof SqliteError && (e.code === 'SQLITE_NOTADB' || e.code.startsWith('SQLITE_CORRUPT'))) {
        throw new OutpostError(`${this.directory.label} is not a SQLite database (${e.message})`, 'NOT_A_DATABASE');
      }
      throw e;
    }
  }

  get label(): string {
    return this.directory.label;
  }

  /** True while a transaction is open on the connection. */
  get inTransaction(): boolean {
    return this.isOpen() && this.x.sqlite3_get_autocommit(this.db) === 0;
  }

  /** Runs every statement of `sql`; returns nothing. */
  exec(sql: string): void {
    this.ensureOpen();
    for (const stmt of this.statements(sql)) {
      try {
        this.guard(stmt, () => this.stepToEnd(stmt));
      } finally {
        this.sqlite3.capi.sqlite3_finalize(stmt.ptr);
      }
    }
    this.afterCall();
  }

  /** Runs one statement and returns its rows packed; at most `maxRows` rows when given. */
  query(sql: string, params: SqlParams | undefined, maxRows = Number.POSITIVE_INFINITY): PackedRows {
    const stmt = this.prepareCached(sql);
    try {
      this.bind(stmt, params);
      const packer = new RowPacker(stmt.columns);
      const n = stmt.columns.length;
      let rows = 0;
      this.guard(stmt, () => {
        for (; rows < maxRows; rows++) {
          const rc = this.x.sqlite3_step(stmt.ptr);
          if (rc === SQLITE_ROW) {
            for (let i = 0; i < n; i++) this.packColumn(packer, stmt.ptr, i);
          } else if (rc === SQLITE_DONE) break;
          else throw this.error(rc, sql);
        }
      });
      return packer.finish(rows);
    } finally {
      this.release(stmt);
      this.afterCall();
    }
  }

  /** The first value of the first row of one statement (null when there is none). */
  value(sql: string, params?: SqlParams): SqlValue {
    const stmt = this.prepareCached(sql);
    try {
      this.bind(stmt, params);
      return this.guard(stmt, () => {
        const rc = this.x.sqlite3_step(stmt.ptr);
        if (rc === SQLITE_ROW) return stmt.columns.length > 0 ? this.column(stmt.ptr, 0) : null;
        if (rc === SQLITE_DONE) return null;
        throw this.error(rc, sql);
      });
    } finally {
      this.release(stmt);
      this.afterCall();
    }
  }

  /** Runs one statement and reports everything about it (columns, types, rows, changes). */
  execute(sql: string, params: SqlParams | undefined): ExecuteResult {
    const stmt = this.prepareCached(sql);
    try {
      this.bind(stmt, params);
      const totalBefore = this.x.sqlite3_total_changes(this.db);
      const rows = this.guard(stmt, () => this.collectRows(stmt));
      const decltypes: (string | null)[] = [];
      for (let i = 0; i < stmt.columns.length; i++) decltypes.push(this.sqlite3.capi.sqlite3_column_decltype(stmt.ptr, i));
      return {
        columns: stmt.columns,
        decltypes,
        rows,
        changes: this.x.sqlite3_total_changes(this.db) - totalBefore,
        lastInsertRowid: this.x.sqlite3_last_insert_rowid(this.db),
      };
    } finally {
      this.release(stmt);
      this.afterCall();
    }
  }

  /** The database's size in pages. */
  pageCount(): number {
    return Number(this.value('PRAGMA page_count'));
  }

  /**
   * Reads raw pages (1-based numbers) of the committed database through `sqlite_dbpage`.
   * Pages past the end are left out of the result.
   */
  readPages(pageNumbers: Iterable<number>): Map<number, Uint8Array> {
    const out = new Map<number, Uint8Array>();
    const stmt = this.prepareCached('SELECT data FROM sqlite_dbpage WHERE pgno = ?');
    const heap = (): Uint8Array => this.sqlite3.wasm.heap8u();
    try {
      for (const pgno of pageNumbers) {
        this.x.sqlite3_reset(stmt.ptr);
        this.bindValue(stmt, 1, pgno);
        const rc = this.x.sqlite3_step(stmt.ptr);
        if (rc === SQLITE_ROW) {
          const p = this.x.sqlite3_column_blob(stmt.ptr, 0);
          out.set(pgno, heap().slice(p, p + this.x.sqlite3_column_bytes(stmt.ptr, 0)));
        } else if (rc !== SQLITE_DONE) throw this.error(rc, stmt.sql);
      }
      return out;
    } finally {
      this.release(stmt);
    }
  }

  /** Runs one statement for its effect. */
  run(sql: string, params: SqlParams | undefined): RunResult {
    const stmt = this.prepareCached(sql);
    try {
      this.bind(stmt, params);
      this.guard(stmt, () => this.stepToEnd(stmt));
      return this.runResult();
    } finally {
      this.release(stmt);
      this.afterCall();
    }
  }

  /** Runs the statements atomically (a transaction, or a savepoint inside one). */
  batch(statements: readonly BatchStatement[]): RunResult[] {
    this.ensureOpen();
    const nested = this.inTransaction;
    this.exec(nested ? 'SAVEPOINT outpost_batch' : 'BEGIN IMMEDIATE');
    const results: RunResult[] = [];
    try {
      for (const s of statements) {
        const { sql, params } = typeof s === 'string' ? { sql: s, params: undefined } : s;
        results.push(this.run(sql, params));
      }
      this.exec(nested ? 'RELEASE outpost_batch' : 'COMMIT');
      return results;
    } catch (e) {
      this.rollbackQuietly(nested ? 'ROLLBACK TO outpost_batch; RELEASE outpost_batch' : 'ROLLBACK');
      throw e;
    }
  }

  /** Runs every statement of `sql` and returns each one's result; stops at the first error. */
  execMany(sql: string): StatementResult[] {
    this.ensureOpen();
    const results: StatementResult[] = [];
    const statements = this.statements(sql);
    try {
      for (;;) {
        let next: IteratorResult<Statement>;
        try {
          next = statements.next();
        } catch (e) {
          // A statement that does not compile: report it where it stands, run nothing after it.
          if (!(e instanceof SqliteError)) throw e;
          results.push(failedResult(e.sql ?? sql, e, 0));
          break;
        }
        if (next.done) break;
        const result = this.stepAll(next.value);
        results.push(result);
        if (result.error) break;
      }
    } finally {
      statements.return(undefined);
      this.afterCall();
    }
    return results;
  }

  /** Runs one prepared statement to the end for execMany, then finalizes it. */
  private stepAll(stmt: Statement): StatementResult {
    const started = performance.now();
    let rows: SqlValue[][];
    const totalBefore = this.x.sqlite3_total_changes(this.db);
    try {
      try {
        rows = this.guard(stmt, () => this.collectRows(stmt));
      } catch (e) {
        if (e instanceof SqliteError) return failedResult(stmt.sql, e, performance.now() - started);
        throw e;
      }
      return {
        sql: stmt.sql,
        columns: stmt.columns,
        rows,
        // Total changes, not sqlite3_changes: that keeps the last DML's count across DDL.
        changes: this.x.sqlite3_total_changes(this.db) - totalBefore,
        timeMs: performance.now() - started,
      };
    } finally {
      this.sqlite3.capi.sqlite3_finalize(stmt.ptr);
    }
  }

  /** Steps a bound statement to the end and returns its rows as arrays. */
  private collectRows(stmt: Statement): SqlValue[][] {
    const rows: SqlValue[][] = [];
    const n = stmt.columns.length;
    for (;;) {
      const rc = this.x.sqlite3_step(stmt.ptr);
      if (rc === SQLITE_ROW) {
        const row = new Array<SqlValue>(n);
        for (let i = 0; i < n; i++) row[i] = this.column(stmt.ptr, i);
        rows.push(row);
      } else if (rc === SQLITE_DONE) return rows;
      else throw this.error(rc, stmt.sql);
    }
  }

  /** Rolls back after a failed transaction body; SQLite may already have rolled back itself. */
  rollbackQuietly(sql = 'ROLLBACK'): void {
    if (!this.inTransaction) return;
    try {
      this.exec(sql);
    } catch {
      // The connection is usable again either way: a failed ROLLBACK means SQLite already did it.
    }
  }

  /** A consistent SQLite file of the database (WAL folded in), marked as a rollback-journal file. */
  export(): Uint8Array {
    this.ensureOpen();
    this.vfs.flushWrites();
    const bytes = this.sqlite3.capi.sqlite3_js_db_export(this.db, 'main');
    // Bytes 18 and 19 (file format write/read version) say 2 for WAL; a standalone file is 1,
    // so the copy opens anywhere without looking for a -wal file.
    if (bytes.length >= 100) {
      bytes[18] = 1;
      bytes[19] = 1;
    }
    return bytes;
  }

  /**
   * Replaces the database with `bytes` after validating them. The copy goes through SQLite's
   * backup API inside one write transaction, so a failure at any point (quota included) leaves
   * the old data in place.
   */
  import(bytes: Uint8Array): void {
    this.ensureOpen();
    if (this.inTransaction) {
      throw new OutpostError('import() cannot run inside a transaction', 'INVALID_ARGUMENT');
    }
    const pageSize = validateHeader(bytes);
    const { capi, wasm } = this.sqlite3;
    const image = bytes.slice();
    image[18] = 1; // an in-memory copy cannot be in WAL mode
    image[19] = 1;
    const temp = openSqlite(this.sqlite3, null, ':memory:');
    let scratch: { db: number; unmount: () => void } | null = null;
    try {
      const p = wasm.allocFromTypedArray(image);
      const rc = capi.sqlite3_deserialize(temp, 'main', p, image.length, image.length, SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_RESIZEABLE);
      if (rc !== SQLITE_OK) throw new OutpostError(`not a SQLite database: deserialize failed (${capi.sqlite3_js_rc_str(rc)})`, 'NOT_A_DATABASE');
      let check: string;
      try {
        check = String(selectValue(this.sqlite3, temp, 'PRAGMA integrity_check'));
      } catch (e) {
        throw new OutpostError(`not a SQLite database: ${(e as Error).message}`, 'NOT_A_DATABASE');
      }
      if (check !== 'ok') throw new OutpostError(`the file failed integrity_check: ${check}`, 'NOT_A_DATABASE');
      const ownPageSize = Number(this.value('PRAGMA page_size'));
      let source = temp;
      if (pageSize !== ownPageSize) {
        // Neither a WAL database nor an in-memory one can change its page size, so the copy
        // goes through a scratch database on memory files, in rollback mode, where VACUUM can.
        scratch = this.openScratch();
        backupInto(this.sqlite3, scratch.db, temp);
        execOn(this.sqlite3, scratch.db, `PRAGMA page_size=${ownPageSize}; VACUUM;`);
        source = scratch.db;
      }
      this.vfs.flushWrites();
      try {
        backupInto(this.sqlite3, this.db, source);
      } catch (e) {
        throw e instanceof SqliteError ? this.error(e.resultCode, 'import') : e;
      }
      // Statements prepared against the old schema must not be reused.
      this.clearCache();
    } finally {
      capi.sqlite3_close_v2(temp);
      if (scratch) {
        capi.sqlite3_close_v2(scratch.db);
        scratch.unmount();
      }
      this.afterCall();
    }
  }

  /** A throwaway SQLite database on memory files mounted in Outpost's VFS. */
  private openScratch(): { db: number; unmount: () => void } {
    const mount = this.vfs.mount({ db: new MemoryBackend(), wal: new MemoryBackend() });
    try {
      return { db: openSqlite(this.sqlite3, this.vfs, mount.path), unmount: mount.unmount };
    } catch (e) {
      mount.unmount();
      throw e;
    }
  }

  /** Closes SQLite, then the files, then releases the directory's lock. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.clearCache();
    this.capture?.dispose();
    this.capture = null;
    const rc = this.sqlite3.capi.sqlite3_close_v2(this.db);
    this.db = 0;
    this.unmount();
    let failure: unknown = null;
    for (const f of this.files) {
      try {
        // NORMAL promises durability across process crashes, which needs no flush here.
        if (this.options.durability === 'full') f.flush();
        f.close();
      } catch (e) {
        failure ??= e;
      }
    }
    await this.directory.release();
    if (rc !== SQLITE_OK) throw new SqliteError(`close failed: ${this.sqlite3.capi.sqlite3_js_rc_str(rc)}`, String(this.sqlite3.capi.sqlite3_js_rc_str(rc)), rc);
    if (failure) throw failure;
  }

  isOpen(): boolean {
    return !this.closed;
  }

  // ---- statements -------------------------------------------------------------------------

  private ensureOpen(): void {
    if (this.closed) throw new OutpostError('the database is closed', 'DATABASE_CLOSED');
  }

  /** Writes out joined writes: every API call ends with all of its writes in the backend. */
  private afterCall(): void {
    if (this.closed) return;
    try {
      this.vfs.flushWrites();
    } catch (e) {
      // Only possible if a write outside a commit failed; SQLite reports commits itself.
      throw new SqliteError(`write failed: ${(e as Error).message}`, 'SQLITE_IOERR_WRITE', 778);
    }
    if (this.wal.writes !== this.walWritesSeen) {
      this.walWritesSeen = this.wal.writes;
      if (this.options.checkpoint !== 'manual') this.scheduleIdleCheckpoint();
      if (this.options.afterWrite && !this.inTransaction) this.options.afterWrite();
    }
  }

  private walWritesSeen = 0;
  private idleTimer: ReturnType<typeof setTimeout> | null = null;

  /** Checkpoints once the connection has been idle for IDLE_CHECKPOINT_MS after a write. */
  private scheduleIdleCheckpoint(): void {
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      if (this.closed || this.inTransaction || this.wal.size() < IDLE_CHECKPOINT_MIN_WAL_BYTES) return;
      try {
        // TRUNCATE also shrinks the WAL file back to zero, so OPFS usage stays small.
        this.exec('PRAGMA wal_checkpoint(TRUNCATE)');
      } catch {
        // A failed checkpoint loses nothing (the frames stay in the WAL); the next one retries.
      }
    }, IDLE_CHECKPOINT_MS);
    // Node: an idle checkpoint alone must not keep the process alive.
    (this.idleTimer as { unref?: () => void }).unref?.();
  }

  /**
   * Runs one statement's execution (`body`) under change capture: autocommit writes are
   * wrapped in BEGIN/COMMIT with their change record, and every commit point flushes the
   * record of its transaction (see capture.ts).
   */
  private guard<T>(stmt: Statement, body: () => T): T {
    const cap = this.capture;
    if (!cap || cap.suspended > 0) return body();
    const inTx = this.x.sqlite3_get_autocommit(this.db) === 0;
    switch (stmt.kind) {
      case 'write':
      case 'ddl': {
        if (inTx) {
          const result = body();
          if (stmt.kind === 'ddl') cap.noteDdl(stmt.sql);
          return result;
        }
        this.stepRaw('BEGIN');
        try {
          const result = body();
          if (stmt.kind === 'ddl') cap.noteDdl(stmt.sql);
          cap.flush();
          this.stepRaw('COMMIT');
          return result;
        } catch (e) {
          if (this.x.sqlite3_get_autocommit(this.db) === 0) this.stepRaw('ROLLBACK');
          cap.reset();
          throw e;
        }
      }
      case 'commit':
        if (inTx) cap.flush();
        return body();
      case 'rollback':
        try {
          return body();
        } finally {
          if (this.x.sqlite3_get_autocommit(this.db) !== 0) {
            this.outerSavepoint = null;
            cap.reset();
          }
        }
      case 'savepoint':
        if (!inTx) this.outerSavepoint = stmt.savepoint;
        return body();
      case 'release': {
        if (inTx && this.outerSavepoint !== null && stmt.savepoint === this.outerSavepoint) cap.flush();
        const result = body();
        if (this.x.sqlite3_get_autocommit(this.db) !== 0) this.outerSavepoint = null;
        return result;
      }
      default:
        return body();
    }
  }

  /** Steps a cached statement without capture (BEGIN/COMMIT/ROLLBACK around captured writes). */
  private stepRaw(sql: string): void {
    const stmt = this.prepareCached(sql);
    try {
      this.stepToEnd(stmt);
    } finally {
      this.release(stmt);
    }
  }

  /** Runs `fn` with change capture off (the sync layer's own writes: replay, bookkeeping). */
  withoutCapture<T>(fn: () => T): T {
    return this.capture ? this.capture.suspendWhile(fn) : fn();
  }

  /**
   * Installs (or with null removes) an authorizer: SQLite asks it about every action of every
   * statement as it is prepared (action codes from sqlite3.h; `trigger` is set inside a
   * trigger). Cached statements are dropped, so none escapes the new rules.
   */
  setAuthorizer(check: ((action: number, a: string | null, b: string | null, trigger: string | null) => boolean) | null): void {
    this.ensureOpen();
    this.clearCache();
    const rc = this.sqlite3.capi.sqlite3_set_authorizer(
      this.db,
      check ? (_ctx, action, a, b, _db, trigger) => (check(action, a || null, b || null, trigger || null) ? 0 : 1) : 0,
      0,
    );
    if (rc !== SQLITE_OK) throw this.error(rc, 'set authorizer');
  }

  /** The database's files, all writes flushed, for reading underneath SQLite (the sync layer). */
  rawFiles(): { db: StorageBackend; wal: StorageBackend } {
    this.ensureOpen();
    this.vfs.flushWrites();
    return { db: this.files[0]!, wal: this.wal };
  }

  /** A changeset's row changes, in changeset order (the sync layer's push and pending changes). */
  decodeChangeset(changeset: Uint8Array): ChangesetRow[] {
    this.ensureOpen();
    return decodeChangeset(this.sqlite3, changeset);
  }

  /** Applies a changeset, resolving each conflict with `onConflict` (the sync layer's replay). */
  applyChangeset(changeset: Uint8Array, onConflict: (conflict: ChangesetConflict) => ConflictResolution): void {
    this.ensureOpen();
    applyChangeset(this.sqlite3, this.db, changeset, onConflict);
  }

  /**
   * Closes the SQLite handle (without a checkpoint when `checkpoint: 'manual'`), lets `fn` work
   * on the raw files, then opens SQLite on them again. For the sync layer's revert and
   * bootstrap, which rewrite pages under SQLite.
   */
  withDatabaseClosed<T>(fn: (files: { db: StorageBackend; wal: StorageBackend }) => T): T {
    this.ensureOpen();
    if (this.inTransaction) throw new OutpostError('cannot rewrite the database files inside a transaction', 'INVALID_ARGUMENT');
    this.vfs.flushWrites();
    this.clearCache();
    this.capture?.dispose();
    this.capture = null;
    this.sqlite3.capi.sqlite3_close_v2(this.db);
    this.db = 0;
    try {
      return fn({ db: this.files[0]!, wal: this.wal });
    } finally {
      this.db = openSqlite(this.sqlite3, this.vfs, this.mountPath);
      this.configure();
    }
  }

  private prepareCached(sql: string): Statement {
    this.ensureOpen();
    const cached = this.cache.get(sql);
    if (cached) {
      // Re-insert to mark it most recently used.
      this.cache.delete(sql);
      this.cache.set(sql, cached);
      return cached;
    }
    const stmt = this.prepareOne(sql);
    this.cache.set(sql, stmt);
    if (this.cache.size > STATEMENT_CACHE_SIZE) {
      const [oldestSql, oldest] = this.cache.entries().next().value as [string, Statement];
      this.cache.delete(oldestSql);
      this.sqlite3.capi.sqlite3_finalize(oldest.ptr);
    }
    return stmt;
  }

  /** Prepares exactly one statement; more than one (or none) is an error. */
  private prepareOne(sql: string): Statement {
    const all = [...this.statements(sql, SQLITE_PREPARE_PERSISTENT)];
    if (all.length !== 1) {
      for (const s of all) this.sqlite3.capi.sqlite3_finalize(s.ptr);
      throw new OutpostError(
        all.length === 0
          ? 'the SQL contains no statement'
          : 'the SQL contains more than one statement; use exec() or execMany() for several',
        'INVALID_ARGUMENT',
      );
    }
    return all[0]!;
  }

  /** Prepares the statements of `sql` one by one. The caller finalizes each. */
  private *statements(sql: string, flags = 0): Generator<Statement> {
    this.ensureOpen();
    const { capi, wasm } = this.sqlite3;
    const bytes = textEncoder.encode(sql);
    const pSql = wasm.alloc(bytes.length + 1);
    const ppStmt = wasm.alloc(2 * wasm.ptr.size);
    const pzTail = ppStmt + wasm.ptr.size;
    try {
      wasm.heap8u().set(bytes, pSql);
      wasm.heap8u()[pSql + bytes.length] = 0;
      let pos = pSql;
      const end = pSql + bytes.length;
      while (pos < end) {
        const rc = capi.sqlite3_prepare_v3(this.db, pos, end - pos, flags, ppStmt, pzTail);
        const tail = wasm.peekPtr(pzTail);
        const text = stripLeadingComments(textDecoder.decode(wasm.heap8u().subarray(pos, tail)));
        if (rc !== SQLITE_OK) throw this.error(rc, text || sql);
        pos = tail;
        const ptr = wasm.peekPtr(ppStmt);
        if (!ptr) continue; // only whitespace or a comment
        yield this.describe(ptr, text);
      }
    } finally {
      wasm.dealloc(pSql);
      wasm.dealloc(ppStmt);
    }
  }

  private describe(ptr: number, sql: string): Statement {
    const { capi } = this.sqlite3;
    const columns: string[] = [];
    const n = this.x.sqlite3_column_count(ptr);
    for (let i = 0; i < n; i++) columns.push(capi.sqlite3_column_name(ptr, i) ?? `column${i}`);
    const paramNames: (string | null)[] = [];
    const p = this.x.sqlite3_bind_parameter_count(ptr);
    for (let i = 1; i <= p; i++) paramNames.push(capi.sqlite3_bind_parameter_name(ptr, i) ?? null);
    const [kind, savepoint] = classify(sql, this.x.sqlite3_stmt_readonly(ptr) !== 0);
    return { ptr, sql, kind, savepoint, columns, paramNames };
  }

  private bind(stmt: Statement, params: SqlParams | undefined): void {
    const names = stmt.paramNames;
    if (params === undefined || params === null) {
      if (names.length > 0) throw bindError(stmt, `expects ${names.length} parameter(s), got none`);
      return;
    }
    if (Array.isArray(params)) {
      const list = params as readonly SqlParam[];
      if (list.length !== names.length) {
        throw bindError(stmt, `expects ${names.length} parameter(s), got ${list.length}`);
      }
      for (let i = 0; i < list.length; i++) this.bindValue(stmt, i + 1, list[i]);
      return;
    }
    const named = params as { readonly [name: string]: SqlParam };
    for (let i = 0; i < names.length; i++) {
      const full = names[i];
      if (!full || full.startsWith('?')) {
        throw bindError(stmt, 'has positional parameters; pass an array');
      }
      const bare = full.slice(1);
      const value = Object.prototype.hasOwnProperty.call(named, bare) ? named[bare] : named[full];
      if (value === undefined) throw bindError(stmt, `is missing a value for parameter ${full}`);
      this.bindValue(stmt, i + 1, value);
    }
  }

  private bindValue(stmt: Statement, i: number, v: SqlParam | undefined): void {
    const x = this.x;
    const p = stmt.ptr;
    let rc: number;
    if (v === null) rc = x.sqlite3_bind_null(p, i);
    else if (typeof v === 'number') {
      if (Number.isInteger(v) && v >= -2147483648 && v <= 2147483647) rc = x.sqlite3_bind_int(p, i, v);
      else if (Number.isSafeInteger(v)) rc = x.sqlite3_bind_int64(p, i, BigInt(v));
      else rc = x.sqlite3_bind_double(p, i, v);
    } else if (typeof v === 'string') {
      const { wasm, capi } = this.sqlite3;
      const [ptr, n] = wasm.allocCString(v, true);
      rc = x.sqlite3_bind_text(p, i, ptr, n, capi.SQLITE_WASM_DEALLOC);
    } else if (typeof v === 'bigint') {
      if (v < -(2n ** 63n) || v >= 2n ** 63n) throw bindError(stmt, `value ${v} at parameter ${i} does not fit in 64 bits`);
      rc = x.sqlite3_bind_int64(p, i, v);
    } else if (typeof v === 'boolean') rc = x.sqlite3_bind_int(p, i, v ? 1 : 0);
    else if (v instanceof Uint8Array || v instanceof ArrayBuffer) {
      const bytes = v instanceof ArrayBuffer ? new Uint8Array(v) : v;
      const { wasm, capi } = this.sqlite3;
      // A zero-length blob still needs a non-null pointer, or SQLite binds NULL.
      const ptr = wasm.alloc(Math.max(1, bytes.length));
      wasm.heap8u().set(bytes, ptr);
      rc = x.sqlite3_bind_blob(p, i, ptr, bytes.length, capi.SQLITE_WASM_DEALLOC);
    } else {
      throw bindError(stmt, `cannot bind a value of type ${v === undefined ? 'undefined' : typeof v} at parameter ${i}`);
    }
    if (rc !== SQLITE_OK) throw this.error(rc, stmt.sql);
  }

  /** Reads column `i` of the current row straight into the packer (the hot path of query). */
  private packColumn(packer: RowPacker, stmt: number, i: number): void {
    const x = this.x;
    switch (x.sqlite3_column_type(stmt, i)) {
      case SQLITE_INTEGER: {
        if (this.options.intMode === 'bigint') return packer.bigint(x.sqlite3_column_int64(stmt, i));
        const d = x.sqlite3_column_double(stmt, i);
        // A double that is a safe integer is exact; otherwise read all 64 bits.
        return Number.isSafeInteger(d) ? packer.number(d) : packer.bigint(x.sqlite3_column_int64(stmt, i));
      }
      case SQLITE_FLOAT:
        return packer.number(x.sqlite3_column_double(stmt, i));
      case SQLITE_TEXT: {
        const p = x.sqlite3_column_text(stmt, i);
        const n = x.sqlite3_column_bytes(stmt, i);
        return packer.text(this.sqlite3.wasm.heap8u().subarray(p, p + n));
      }
      case SQLITE_BLOB: {
        const p = x.sqlite3_column_blob(stmt, i);
        const n = x.sqlite3_column_bytes(stmt, i);
        return packer.blob(this.sqlite3.wasm.heap8u().slice(p, p + n));
      }
      default:
        return packer.null();
    }
  }

  private column(stmt: number, i: number): SqlValue {
    const x = this.x;
    switch (x.sqlite3_column_type(stmt, i)) {
      case SQLITE_INTEGER: {
        if (this.options.intMode === 'bigint') return x.sqlite3_column_int64(stmt, i);
        const d = x.sqlite3_column_double(stmt, i);
        // A double that is a safe integer is exact; otherwise read all 64 bits.
        return Number.isSafeInteger(d) ? d : x.sqlite3_column_int64(stmt, i);
      }
      case SQLITE_FLOAT:
        return x.sqlite3_column_double(stmt, i);
      case SQLITE_TEXT: {
        const p = x.sqlite3_column_text(stmt, i);
        const n = x.sqlite3_column_bytes(stmt, i);
        return decodeText(this.sqlite3.wasm.heap8u(), p, n);
      }
      case SQLITE_BLOB: {
        const p = x.sqlite3_column_blob(stmt, i);
        const n = x.sqlite3_column_bytes(stmt, i);
        return this.sqlite3.wasm.heap8u().slice(p, p + n);
      }
      default:
        return null;
    }
  }

  private stepToEnd(stmt: Statement): void {
    for (;;) {
      const rc = this.x.sqlite3_step(stmt.ptr);
      if (rc === SQLITE_DONE) return;
      if (rc !== SQLITE_ROW) throw this.error(rc, stmt.sql);
    }
  }

  private runResult(): RunResult {
    return {
      changes: this.x.sqlite3_changes(this.db),
      lastInsertRowid: this.x.sqlite3_last_insert_rowid(this.db),
    };
  }

  private release(stmt: Statement): void {
    this.x.sqlite3_reset(stmt.ptr);
    this.x.sqlite3_clear_bindings(stmt.ptr);
  }

  private clearCache(): void {
    for (const s of this.cache.values()) this.sqlite3.capi.sqlite3_finalize(s.ptr);
    this.cache.clear();
  }

  /** Builds the SqliteError for `rc`, with the VFS's own reason when it has one. */
  private error(rc: number, sql: string): SqliteError {
    const { capi } = this.sqlite3;
    const extended = this.db ? this.x.sqlite3_extended_errcode(this.db) : rc;
    const code = (rc & 0xff) === (extended & 0xff) ? extended : rc;
    let message = this.db ? capi.sqlite3_errmsg(this.db) : capi.sqlite3_errstr(code);
    const io = this.vfs.takeError();
    if (io && !message.includes(io.message)) message = `${message}: ${io.message}`;
    return new SqliteError(message, capi.sqlite3_js_rc_str(code) ?? `SQLITE_${code}`, code, sql);
  }
}

/** A statement's text without the whitespace and comments SQLite skipped before it. */
function stripLeadingComments(text: string): string {
  let s = text.trim();
  for (;;) {
    if (s.startsWith('--')) {
      const nl = s.indexOf('\n');
      s = nl < 0 ? '' : s.slice(nl + 1).trimStart();
    } else if (s.startsWith('/*')) {
      const end = s.indexOf('*/');
      s = end < 0 ? '' : s.slice(end + 2).trimStart();
    } else return s;
  }
}

/** Counts the writes to a backend (the WAL), so the connection knows when it wrote. */
class WriteCounter implements StorageBackend {
  writes = 0;
  constructor(private readonly inner: StorageBackend) {}
  read(dst: Uint8Array, offset: number): number {
    return this.inner.read(dst, offset);
  }
  write(src: Uint8Array, offset: number): void {
    this.writes++;
    this.inner.write(src, offset);
  }
  size(): number {
    return this.inner.size();
  }
  truncate(sizeBytes: number): void {
    this.inner.truncate(sizeBytes);
  }
  flush(): void {
    this.inner.flush();
  }
  close(): void {
    this.inner.close();
  }
}

/** Classifies a statement by its leading keywords (comments already stripped) and readonly flag. */
function classify(sql: string, readonly: boolean): [StatementKind, string | null] {
  const m = /^([A-Za-z]+)(?:\s+([A-Za-z_"`\[\]0-9]+))?(?:\s+([A-Za-z_"`\[\]0-9]+))?/.exec(sql);
  const first = (m?.[1] ?? '').toUpperCase();
  const second = (m?.[2] ?? '').toUpperCase();
  const unquote = (name: string | undefined): string | null => (name ? name.replace(/^["`[]|["`\]]$/g, '').toLowerCase() : null);
  switch (first) {
    case 'BEGIN':
      return ['begin', null];
    case 'COMMIT':
    case 'END':
      return ['commit', null];
    case 'ROLLBACK':
      return second === 'TO' || (second === 'TRANSACTION' && (m?.[3] ?? '').toUpperCase() === 'TO') ? ['other', null] : ['rollback', null];
    case 'SAVEPOINT':
      return ['savepoint', unquote(m?.[2])];
    case 'RELEASE':
      return ['release', unquote(second === 'SAVEPOINT' ? m?.[3] : m?.[2])];
    case 'CREATE':
      return second === 'TEMP' || second === 'TEMPORARY' ? ['other', null] : ['ddl', null];
    case 'DROP':
    case 'ALTER':
      return ['ddl', null];
    case 'PRAGMA':
    case 'VACUUM':
    case 'ATTACH':
    case 'DETACH':
    case 'REINDEX':
    case 'ANALYZE':
      return ['other', null];
    default:
      return [readonly ? 'read' : 'write', null];
  }
}

function failedResult(sql: string, e: SqliteError, timeMs: number): StatementResult {
  return { sql, columns: [], rows: [], changes: 0, timeMs, error: { code: e.code, resultCode: e.resultCode, message: e.message } };
}

function bindError(stmt: Statement, what: string): OutpostError {
  return new OutpostError(`statement "${stmt.sql}" ${what}`, 'INVALID_ARGUMENT');
}

/** Decodes UTF-8 from the WASM heap; short ASCII strings skip TextDecoder's call overhead. */
function decodeText(heap: Uint8Array, p: number, n: number): string {
  if (n <= 24) {
    let s = '';
    for (let i = p, end = p + n; i < end; i++) {
      const c = heap[i]!;
      if (c >= 0x80) return textDecoder.decode(heap.subarray(p, p + n));
      s += String.fromCharCode(c);
    }
    return s;
  }
  return textDecoder.decode(heap.subarray(p, p + n));
}

/** Checks the SQLite header of a file to import; returns its page size. */
function validateHeader(bytes: Uint8Array): number {
  const magic = 'SQLite format 3\u0000';
  if (bytes.length < 100 || textDecoder.decode(bytes.subarray(0, 16)) !== magic) {
    throw new OutpostError('not a SQLite database: the file does not start with the SQLite header', 'NOT_A_DATABASE');
  }
  const raw = (bytes[16]! << 8) | bytes[17]!;
  const pageSize = raw === 1 ? 65536 : raw;
  if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) {
    throw new OutpostError(`not a SQLite database: invalid page size ${raw}`, 'NOT_A_DATABASE');
  }
  if (bytes.length % pageSize !== 0) {
    throw new OutpostError(`not a SQLite database: ${bytes.length} bytes is not a whole number of ${pageSize}-byte pages (truncated?)`, 'NOT_A_DATABASE');
  }
  return pageSize;
}

/** Opens a SQLite handle on `path` with Outpost's VFS (or the default VFS when vfs is null). */
function openSqlite(sqlite3: Sqlite3Runtime, vfs: OutpostVfs | null, path: string): number {
  const { capi, wasm } = sqlite3;
  const ppDb = wasm.alloc(wasm.ptr.size);
  try {
    const flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_EXRESCODE;
    const rc = capi.sqlite3_open_v2(path, ppDb, flags, vfs ? VFS_NAME : null);
    const pDb = wasm.peekPtr(ppDb);
    if (rc !== SQLITE_OK) {
      const message = pDb ? capi.sqlite3_errmsg(pDb) : capi.sqlite3_errstr(rc);
      const io = vfs?.takeError();
      if (pDb) capi.sqlite3_close_v2(pDb);
      throw new SqliteError(io ? `${message}: ${io.message}` : message, capi.sqlite3_js_rc_str(rc) ?? `SQLITE_${rc}`, rc, undefined);
    }
    capi.sqlite3_extended_result_codes(pDb, 1);
    return pDb;
  } finally {
    wasm.dealloc(ppDb);
  }
}

/** Copies every page of `source` into `dest` in one transaction (SQLite's backup API). */
function backupInto(sqlite3: Sqlite3Runtime, dest: number, source: number): void {
  const { capi } = sqlite3;
  const backup = capi.sqlite3_backup_init(dest, 'main', source, 'main');
  if (!backup) {
    const rc = capi.sqlite3_extended_errcode(dest);
    throw new SqliteError(capi.sqlite3_errmsg(dest), capi.sqlite3_js_rc_str(rc) ?? `SQLITE_${rc}`, rc, 'import');
  }
  const stepRc = capi.sqlite3_backup_step(backup, -1);
  const finishRc = capi.sqlite3_backup_finish(backup);
  const rc = stepRc !== SQLITE_DONE ? stepRc : finishRc;
  if (rc !== SQLITE_OK && rc !== SQLITE_DONE) {
    throw new SqliteError(capi.sqlite3_errmsg(dest), capi.sqlite3_js_rc_str(rc) ?? `SQLITE_${rc}`, rc, 'import');
  }
}

/** Runs SQL on a raw handle (used for the import's scratch databases). */
function execOn(sqlite3: Sqlite3Runtime, db: number, sql: string): void {
  const rc = sqlite3.capi.sqlite3_exec(db, sql, 0, 0, 0);
  if (rc !== SQLITE_OK) {
    throw new SqliteError(sqlite3.capi.sqlite3_errmsg(db), sqlite3.capi.sqlite3_js_rc_str(rc) ?? `SQLITE_${rc}`, rc, sql);
  }
}

function selectValue(sqlite3: Sqlite3Runtime, db: number, sql: string): SqlValue {
  const { capi, wasm } = sqlite3;
  const pp = wasm.alloc(wasm.ptr.size);
  try {
    let rc = capi.sqlite3_prepare_v2(db, sql, -1, pp, 0);
    if (rc !== SQLITE_OK) throw new SqliteError(capi.sqlite3_errmsg(db), capi.sqlite3_js_rc_str(rc) ?? '', rc, sql);
    const stmt = wasm.peekPtr(pp);
    try {
      rc = capi.sqlite3_step(stmt);
      if (rc === SQLITE_ROW) return capi.sqlite3_column_text(stmt, 0);
      if (rc === SQLITE_DONE) return null;
      throw new SqliteError(capi.sqlite3_errmsg(db), capi.sqlite3_js_rc_str(rc) ?? '', rc, sql);
    } finally {
      capi.sqlite3_finalize(stmt);
    }
  } finally {
    wasm.dealloc(pp);
  }
}
