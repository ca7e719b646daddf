/**
 * The engine: one SQLite connection over Outpost's VFS, with a synchronous API.
 *
 * Length: close to 600 lines, because the statement API, the live-query tracking and the sync and
 * server hooks all work on the connection's private state (handle, statement cache); the parts
 * that need none of it live beside it (statements, binding, cells, commit-points and
 * commit-runner, checkpointer, file-image, changesets, guards, open).
 *
 * It runs inside the worker in the browser and in-process under Node; `Database`
 * (`../database.ts`) puts the async public API on top of it.
 *
 * Contract
 * - `Connection.open(directory, options)` opens every file of the database, mounts them in the
 *   VFS, opens SQLite on them and sets `locking_mode=EXCLUSIVE`, `journal_mode=WAL` and
 *   `synchronous` from `durability`, in that order (EXCLUSIVE first, so that SQLite never needs
 *   shared memory for the WAL index): open.ts, which also holds `ConnectionOptions`.
 * - Every method either completes or throws `SqliteError` (SQLite's extended code and message,
 *   with the VFS's reason appended for I/O errors) or `OutpostError`. After an error the
 *   connection stays usable.
 * - Statements are prepared once and cached by SQL text (an LRU of `STATEMENT_CACHE_SIZE`,
 *   statements.ts). Parameters bind as binding.ts says; cells read as cells.ts says.
 * - Rows leave the engine packed (`PackedRows`, see packed-rows.ts: a few typed arrays and one
 *   ASCII buffer), so a query crosses the worker boundary as a handful of transferred buffers
 *   rather than one object per row.
 * - With change capture, every committed write transaction leaves its change record inside it:
 *   every statement runs through commit-runner.ts, which acts on what commit-points.ts decides.
 * - Checkpoints follow checkpointer.ts; export and import are file-image.ts.
 *
 * Folder: `engine/` may import `sqlite/`, `opfs-vfs/` (with `storage/`), `types.ts` and
 * `errors.ts`; nothing above it (sync, server, worker, the public API).
 */
import { OutpostError, SqliteError } from '../errors.js';
import type { StorageBackend, StorageDirectory } from '../opfs-vfs/storage/backend.js';
import type { OutpostVfs } from '../opfs-vfs/vfs.js';
import { SQLITE_DBCONFIG_ENABLE_TRIGGER, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, SQLITE_DONE, SQLITE_IOERR_WRITE, SQLITE_OK, SQLITE_ROW } from '../sqlite/constants.js';
import { sqliteError } from '../sqlite/errors.js';
import { type RawExports, type Sqlite3Runtime, rawExports } from '../sqlite/wasm-api.js';
import type { BatchStatement, RunResult, SqlParams, SqlValue, StatementResult } from '../types.js';
import { type BindParams, bindParams } from './binding.js';
import { ChangeCapture } from './capture.js';
import { type ChangesetConflict, type ConflictResolution, applyChangeset } from './changesets.js';
import { CellReader } from './cells.js';
import { IdleCheckpointer, type WalWriteCounter } from './checkpointer.js';
import { CommitRunner } from './commit-runner.js';
import { type AuthorizerRules, type ConnectionLimits, InterruptCheck, closeHandle, createScalarFunction, installAuthorizer, restrictConnection, setProgressHandler } from './guards.js';
import { DBPAGE_SQL, exportImage, hasTable, importImage, openSqlite, readPages } from './file-image.js';
import { type ConnectionOptions, applyCloseSetting, applyLookaside, applySettings, notADatabase, openDatabase } from './open.js';
import { PART_CELLS, type PackedRows, RowPacker } from './packed-rows.js';
import { PreparedStatements } from './prepared.js';
import { AccessRecorder, ChangeTracker, schemaSnapshot, tablesOfPages } from './table-changes.js';
import {
  type CellObserver,
  type ExecuteResult,
  type Statement,
  StatementCache,
  type StatementDescription,
  type StatementHost,
  collectRows,
  resetStatement,
  runScript,
  splitStatements,
  stepToEnd,
} from './statements.js';

export type { ConnectionOptions } from './open.js';
export type { ExecuteResult, StatementDescription } from './statements.js';

export class Connection {
  private readonly raw: RawExports;
  /** This connection as the statement helpers see it (statements.ts, binding.ts). */
  private readonly host: StatementHost;
  private readonly statements: StatementCache;
  /** Statements the application prepared, by handle (prepared.ts). */
  readonly prepared: PreparedStatements;
  private readonly cells: CellReader;
  /** Reads every INTEGER as bigint whatever `intMode` says: `execute(..., exact)`. */
  private readonly exactCells: CellReader;
  private readonly checkpointer: IdleCheckpointer;
  private closed = false;
  /** Runs every statement at its commit points, with change capture when configured (commit-runner.ts). */
  private readonly runner: CommitRunner;
  /** The tables each statement reads and writes, and each commit's changed tables (table-changes.ts). */
  private readonly access = new AccessRecorder();
  private readonly changes: ChangeTracker;
  /** The progress handler that stops a running call (guards.ts). */
  private readonly interrupts: InterruptCheck;
  private authorizer: AuthorizerRules | null = null;

  private constructor(
    private readonly sqlite3: Sqlite3Runtime,
    private readonly vfs: OutpostVfs,
    private db: number,
    private readonly files: StorageBackend[],
    private readonly wal: WalWriteCounter,
    private readonly mountPath: string,
    private readonly unmount: () => void,
    private readonly directory: StorageDirectory,
    readonly options: ConnectionOptions,
  ) {
    this.raw = rawExports(sqlite3);
    this.host = { sqlite3, raw: this.raw, db: () => this.db, error: (rc, sql) => this.error(rc, sql), access: this.access };
    this.changes = new ChangeTracker(this.access, { inTransaction: () => this.inTransaction, totalChanges: () => this.raw.sqlite3_total_changes(this.db) });
    this.interrupts = new InterruptCheck(sqlite3);
    this.runner = new CommitRunner({ host: this.host, prepare: (sql) => this.prepare(sql), readRows: (sql, params) => this.readRows(sql, params) }, this.changes);
    this.statements = new StatementCache(this.host, () => this.prepared.expire());
    this.cells = new CellReader(this.raw, sqlite3, options.intMode === 'bigint');
    this.exactCells = new CellReader(this.raw, sqlite3, true);
    this.prepared = new PreparedStatements({
      host: this.host,
      cells: this.cells,
      run: (stmt, body) => this.runner.run(stmt, body),
      step: (stmt) => this.runner.step(stmt),
      afterCall: () => this.afterCall(),
      ensureOpen: () => this.ensureOpen(),
    });
    this.checkpointer = new IdleCheckpointer({
      idle: () => !this.inTransaction && !this.closed,
      walBytes: () => this.wal.size(),
      checkpoint: () => this.exec('PRAGMA wal_checkpoint(TRUNCATE)'),
    });
  }

  /** Opens (creating when missing) the database in `directory` (open.ts). */
  static open(directory: StorageDirectory, options: ConnectionOptions): Promise<Connection> {
    return openDatabase(directory, options, (o) => {
      const conn = new Connection(o.sqlite3, o.vfs, o.db, o.files, o.wal, o.mountPath, o.unmount, directory, options);
      conn.configure();
      return conn;
    });
  }

  /** Settings for a new SQLite handle (open.ts), then the authorizer, interrupt check and capture, which go with the handle. */
  private configure(): void {
    try {
      this.check(applyLookaside(this.sqlite3, this.db, this.options), 'turn lookaside off');
      this.installAuthorizer();
      applySettings(this, this.options, this.directory.label, this.files[0]!.size());
      // SQLite reopened under the sync layer: the interrupt check's handler goes with the new handle.
      this.interrupts.reinstall(this.db);
      applyCloseSetting(this.sqlite3, this.db, this.options);
      if (this.options.capture) {
        this.runner.capture = new ChangeCapture(this.sqlite3, this.db, this.options.capture, {
          // The schema cookie moves with every schema change: capture caches column names by it.
          version: () => Number(this.readRows('PRAGMA main.schema_version', undefined)[0]?.[0]),
          columns: (table) => this.readRows("SELECT name FROM pragma_table_info(?, 'main') ORDER BY cid", [table]).map((row) => String(row[0])),
        });
      }
    } catch (e) {
      throw notADatabase(e, this.directory.label);
    }
  }

  get label(): string {
    return this.directory.label;
  }

  /** True while a transaction is open on the connection. */
  get inTransaction(): boolean {
    return !this.closed && this.raw.sqlite3_get_autocommit(this.db) === 0;
  }

  // ---- the statement API ----------------------------------------------------------------

  /** Setting PRAGMAs of `applySettings` (open.ts), through `sqlite3_exec`. */
  settings(sql: string): void {
    this.ensureOpen();
    const rc = this.sqlite3.capi.sqlite3_exec(this.db, sql, 0, 0, 0);
    if (rc !== SQLITE_OK) throw this.error(rc, sql);
  }

  /** Runs every statement of `sql`; returns nothing. */
  exec(sql: string): void {
    this.ensureOpen();
    for (const stmt of splitStatements(this.host, sql)) {
      try {
        this.runner.step(stmt);
      } finally {
        this.sqlite3.capi.sqlite3_finalize(stmt.ptr);
      }
    }
    this.afterCall();
  }

  /**
   * Runs one statement and returns its rows packed; at most `maxRows` rows when given. With
   * `onPart`, a large result is handed out in parts as it is read (packed-rows.ts, "Parts"):
   * the answer is then the last part.
   */
  query(sql: string, params: SqlParams | undefined, maxRows = Number.POSITIVE_INFINITY, onPart?: (rows: PackedRows) => void): PackedRows {
    const stmt = this.prepare(sql);
    try {
      bindParams(this.host, stmt, params);
      let packer = new RowPacker(stmt.columns);
      const n = stmt.columns.length;
      const { raw, cells } = this;
      let rows = 0;
      /** Rows in `packer`, the part being packed. */
      let partRows = 0;
      this.runner.run(stmt, () => {
        for (; rows < maxRows; rows++, partRows++) {
          const rc = raw.sqlite3_step(stmt.ptr);
          if (rc === SQLITE_ROW) {
            // Sent only once another row exists, so the answer (the last part) is never empty.
            if (onPart && packer.cellCount >= PART_CELLS) {
              onPart(packer.finish(partRows));
              packer = packer.successor();
              partRows = 0;
            }
            for (let i = 0; i < n; i++) cells.read(stmt.ptr, i, packer);
          } else if (rc === SQLITE_DONE) break;
          else throw this.error(rc, sql);
        }
      });
      return packer.finish(partRows);
    } finally {
      resetStatement(this.raw, stmt);
      this.afterCall();
    }
  }

  /** The first value of the first row of one statement (null when there is none). */
  value(sql: string, params?: SqlParams): SqlValue {
    const stmt = this.prepare(sql);
    try {
      bindParams(this.host, stmt, params);
      return this.runner.run(stmt, () => {
        const rc = this.raw.sqlite3_step(stmt.ptr);
        if (rc === SQLITE_ROW) return stmt.columns.length > 0 ? this.cells.value(stmt.ptr, 0) : null;
        if (rc === SQLITE_DONE) return null;
        throw this.error(rc, sql);
      });
    } finally {
      resetStatement(this.raw, stmt);
      this.afterCall();
    }
  }

  /**
   * Runs one statement and reports everything about it (columns, types, rows, changes). With
   * `exact`, every INTEGER is a bigint, so a whole REAL (a number) stays told apart from it.
   * `onCell` sees each cell as it is read and may stop the statement by throwing.
   */
  execute(sql: string, params: BindParams | undefined, exact = false, onCell?: CellObserver): ExecuteResult {
    const stmt = this.prepare(sql);
    try {
      bindParams(this.host, stmt, params);
      const totalBefore = this.raw.sqlite3_total_changes(this.db);
      const rows = this.runner.run(stmt, () => collectRows(this.host, exact ? this.exactCells : this.cells, stmt, onCell));
      const decltypes: (string | null)[] = [];
      for (let i = 0; i < stmt.columns.length; i++) decltypes.push(this.sqlite3.capi.sqlite3_column_decltype(stmt.ptr, i));
      return {
        columns: stmt.columns,
        decltypes,
        rows,
        changes: this.raw.sqlite3_total_changes(this.db) - totalBefore,
        lastInsertRowid: this.raw.sqlite3_last_insert_rowid(this.db),
      };
    } finally {
      resetStatement(this.raw, stmt);
      this.afterCall();
    }
  }

  /** Runs one statement for its effect. */
  run(sql: string, params: BindParams | undefined): RunResult {
    const stmt = this.prepare(sql);
    try {
      bindParams(this.host, stmt, params);
      this.runner.step(stmt);
      return { changes: this.raw.sqlite3_changes(this.db), lastInsertRowid: this.raw.sqlite3_last_insert_rowid(this.db) };
    } finally {
      resetStatement(this.raw, stmt);
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
      for (const [i, s] of statements.entries()) {
        try {
          results.push(typeof s === 'string' ? this.run(s, undefined) : this.run(s.sql, s.params ?? s.args));
        } catch (e) {
          if (e instanceof SqliteError) e.statementIndex = i;
          throw e;
        }
      }
      this.exec(nested ? 'RELEASE outpost_batch' : 'COMMIT');
      return results;
    } catch (e) {
      this.rollbackQuietly(nested ? 'ROLLBACK TO outpost_batch; RELEASE outpost_batch' : 'ROLLBACK');
      throw e;
    }
  }

  /**
   * Runs every statement of `sql` and returns each one's result; stops at the first error.
   * `around`, when given, wraps each statement's run (the server times each one); `onCell` is
   * as for `execute`.
   */
  execMany(sql: string, around?: <T>(sql: string, body: () => T) => T, onCell?: CellObserver): StatementResult[] {
    this.ensureOpen();
    try {
      return runScript(
        this.host,
        this.cells,
        sql,
        (stmt, body) => (around ? around(stmt.sql, () => this.runner.run(stmt, body)) : this.runner.run(stmt, body)),
        onCell,
      );
    } finally {
      this.afterCall();
    }
  }

  /** What one statement would do, from preparing it without running it (Hrana's `describe`). */
  describe(sql: string): StatementDescription {
    const stmt = this.prepare(sql);
    const decltypes = stmt.columns.map((_, i) => this.sqlite3.capi.sqlite3_column_decltype(stmt.ptr, i));
    return {
      params: stmt.paramNames,
      columns: stmt.columns,
      decltypes,
      readonly: this.raw.sqlite3_stmt_readonly(stmt.ptr) !== 0,
      explain: /^EXPLAIN\b/i.test(stmt.sql),
    };
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

  /**
   * A consistent SQLite file of the database (WAL folded in), marked as a rollback-journal
   * file, without the tables named in `without` (bookkeeping of the layers above).
   */
  export(without: readonly string[] = []): Uint8Array {
    this.ensureOpen();
    this.vfs.flushWrites();
    return exportImage(this.sqlite3, this.db, without);
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
    try {
      const pageSize = Number(this.value('PRAGMA page_size'));
      // Every page may have changed: every table before or after counts as changed.
      const allPages = (): number[] => Array.from({ length: this.pageCount() }, (_, i) => i + 1);
      this.replacingPages(() => {
        importImage({ sqlite3: this.sqlite3, vfs: this.vfs, db: this.db, pageSize, error: (rc) => this.error(rc, 'import') }, bytes);
        this.statements.clear();
      }, allPages);
      // Statements prepared against the old schema must not be reused, nor columns read from it.
      this.statements.clear();
      this.runner.capture?.schemaReplaced();
    } finally {
      this.afterCall();
    }
  }

  /**
   * Closing will not checkpoint: the WAL stays for the next open to read, as after a crash,
   * which WAL mode is safe against. For a tab going away, whose next engine waits for these
   * files (worker/seat.ts): the checkpoint's writes and flush would delay it.
   */
  skipCheckpointOnClose(): void {
    if (!this.closed) this.sqlite3.capi.sqlite3_db_config(this.db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, 0);
  }

  /** Closes SQLite, then the files, then releases the directory's lock. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.checkpointer.cancel();
    this.statements.clear();
    this.runner.dropCapture();
    const rc = closeHandle(this.sqlite3, this.db);
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
    if (rc !== SQLITE_OK) throw sqliteError(this.sqlite3, rc, { message: `close failed: ${this.sqlite3.capi.sqlite3_js_rc_str(rc)}` });
    if (failure) throw failure;
  }

  // ---- change capture (commit-runner.ts acts at the commit points) ------------------------

  /** The rows of a read made on the engine's behalf (capture's schema reads): no capture planning, no idle bookkeeping. */
  private readRows(sql: string, params: BindParams | undefined): SqlValue[][] {
    const stmt = this.prepare(sql);
    try {
      bindParams(this.host, stmt, params);
      return collectRows(this.host, this.cells, stmt);
    } finally {
      resetStatement(this.raw, stmt);
    }
  }

  /** Runs `fn` with change capture off (the sync layer's own writes: replay, bookkeeping). */
  withoutCapture<T>(fn: () => T): T {
    return this.runner.withoutCapture(fn);
  }

  // ---- hooks for the sync layer and the server ----------------------------------------------
  //
  // Contract: these work under SQLite's feet. `readPages` reads committed pages through
  // `sqlite_dbpage`; `rawFiles` hands out the mounted files with every write flushed (read
  // them, do not write them while SQLite has them open); `withDatabaseClosed` closes SQLite so
  // the callback may rewrite the files, then reopens and reconfigures; `applyChangeset` applies
  // a changeset without letting a SQLite pointer out of the engine (changesets.ts; reading
  // one needs no connection: changeset-format.ts); `setAuthorizer` installs the server's write rules.

  /** Whether main has a table or virtual table named `name`, in any case (file-image.ts `hasTable`). */
  hasTable(name: string): boolean {
    this.ensureOpen();
    return hasTable(this.sqlite3, this.db, name);
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
    return readPages(this.host, this.prepare(DBPAGE_SQL), pageNumbers);
  }

  /**
   * Installs (or with null removes) an authorizer: SQLite asks it about every action of every
   * statement as it is prepared (action codes in sqlite/constants.ts; `trigger` is set inside a
   * trigger). Cached statements are dropped, so none escapes the new rules.
   */
  setAuthorizer(check: AuthorizerRules | null): void {
    this.ensureOpen();
    this.statements.clear();
    this.authorizer = check;
  }

  /**
   * Runs `sql` as `exec` does, with the authorizer's rules off meanwhile, and keeps the cached
   * statements (the server's own statements, once per request for a read token: dropping the
   * cache each time made every statement of theirs compile again). None escapes the rules:
   * `exec` prepares and finalizes its own statements, so none prepared without the rules is
   * cached, and the cached ones, prepared under these same rules, are not stepped meanwhile.
   */
  execWithoutRules(sql: string): void {
    const rules = this.authorizer;
    this.authorizer = null;
    try {
      this.exec(sql);
    } finally {
      this.authorizer = rules;
    }
  }

  /** The one authorizer SQLite calls: it notes each statement's tables (table-changes.ts), then asks the rules above. */
  private installAuthorizer(): void {
    this.check(installAuthorizer(this.sqlite3, this.db, (action, a, b) => this.access.note(action, a, b), () => this.authorizer), 'set authorizer');
  }

  /**
   * Turns the main schema's triggers on or off (TEMP triggers fire either way). SQLite expires
   * every prepared statement when the setting changes, so none keeps the old behaviour.
   */
  setTriggersEnabled(on: boolean): void {
    this.check(this.sqlite3.capi.sqlite3_db_config(this.ensureDb(), SQLITE_DBCONFIG_ENABLE_TRIGGER, on ? 1 : 0, 0), 'enable triggers');
  }

  // ---- live queries: which tables change ----------------------------------------------------

  /** Called with the tables each committed transaction (or pull, or import) changed. */
  onTablesChanged(listener: ((tables: string[]) => void) | null): void {
    this.changes.listener = listener;
  }

  /** The tables `sql` (one statement) reads, from SQLite's authorizer (views and triggers resolved). */
  tablesRead(sql: string): string[] {
    return [...this.prepare(sql).access.reads].sort();
  }

  /**
   * Runs `fn`, which replaces pages under SQLite (a pull's apply), without tracking its
   * statements, then reports the tables that own `pages()` afterwards or whose schema entry
   * changed (table-changes.ts `tablesOfPages`).
   */
  replacingPages<T>(fn: () => T, pages: () => readonly number[]): T {
    const read = (sql: string, params?: SqlParams): SqlValue[][] => this.readRows(sql, params);
    const before = schemaSnapshot(read);
    const result = this.changes.suspendWhile(fn);
    this.changes.emit(tablesOfPages(read, pages(), before));
    return result;
  }

  // Guards for a host that runs others' SQL (engine/guards.ts says what each does).
  restrict(limits: ConnectionLimits): void {
    this.check(restrictConnection(this.sqlite3, this.ensureDb(), limits), 'restrict');
  }
  createFunction(name: string, nArgs: number, fn: (...args: unknown[]) => SqlValue): void {
    this.check(createScalarFunction(this.sqlite3, this.ensureDb(), name, nArgs, fn), `create function ${name}`);
  }
  setProgressHandler(ops: number, shouldStop: (() => boolean) | null): void {
    setProgressHandler(this.sqlite3, this.ensureDb(), ops, shouldStop);
  }

  /** The check that stops a running call (driver.ts `limited`), or null between such calls (guards.ts `InterruptCheck`). */
  setInterruptCheck(ops: number, check: (() => boolean) | null): void {
    this.interrupts.set(ops, check, () => this.ensureDb());
  }
  private ensureDb(): number {
    this.ensureOpen();
    return this.db;
  }
  private check(rc: number, what: string): void {
    if (rc !== SQLITE_OK) throw this.error(rc, what);
  }

  /** The database's files, all writes flushed, for reading underneath SQLite (the sync layer). */
  rawFiles(): { db: StorageBackend; wal: StorageBackend } {
    this.ensureOpen();
    this.vfs.flushWrites();
    return { db: this.files[0]!, wal: this.wal };
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
    this.statements.clear();
    this.runner.dropCapture();
    closeHandle(this.sqlite3, this.db);
    this.db = 0;
    try {
      return fn({ db: this.files[0]!, wal: this.wal });
    } finally {
      this.db = openSqlite(this.sqlite3, this.vfs, this.mountPath);
      this.configure();
    }
  }

  // ---- internals ----------------------------------------------------------------------------

  private ensureOpen(): void {
    if (this.closed) throw new OutpostError('the database is closed', 'DATABASE_CLOSED');
  }

  /** The cached prepared statement for `sql` (exactly one statement). */
  private prepare(sql: string): Statement {
    this.ensureOpen();
    return this.statements.get(sql);
  }

  /** Writes out joined writes: every API call ends with all of its writes in the backend. */
  private afterCall(): void {
    if (this.closed) return;
    try {
      this.vfs.flushWrites();
    } catch (e) {
      // Only possible if a write outside a commit failed; SQLite reports commits itself.
      throw sqliteError(this.sqlite3, SQLITE_IOERR_WRITE, { message: `write failed: ${(e as Error).message}` });
    }
    if (this.wal.takeWritten()) {
      if (this.options.checkpoint !== 'manual') this.checkpointer.schedule();
      if (this.options.afterWrite && !this.inTransaction) this.options.afterWrite();
    } else this.checkpointer.postpone();
  }

  /** Builds the SqliteError for `rc`, with the VFS's own reason when it has one. */
  private error(rc: number, sql: string): SqliteError {
    return sqliteError(this.sqlite3, rc, { db: this.db, sql, reason: this.vfs.takeError()?.message });
  }
}
