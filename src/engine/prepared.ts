/**
 * Statements the application prepared (`db.prepare`, `db.iterate`), kept by a handle the caller
 * chooses, apart from the LRU cache that single calls use (statements.ts), so none is evicted
 * under its owner.
 *
 * Contract
 * - A handle names one statement of one SQL text. A call for an unknown handle prepares it from
 *   the SQL the call carries: so a statement survives the engine being reopened (a pull or
 *   import replaces the database, another tab takes over the engine) and is simply prepared again.
 * - Cursors (iteration): `rows` with `cursor` and `start` binds and steps up to `maxRows`; later
 *   calls with the same `cursor` continue where it stopped. The statement stays mid-step between
 *   calls: other calls run meanwhile, and SQLite's rule for one connection applies (a change made
 *   meanwhile to a table being read may or may not show in later rows). A cursor ends when its
 *   statement is done, fails, is reset by `closeCursor`, or the statements expire (the database
 *   was replaced, or closed): continuing it then fails with a clear error instead of restarting.
 * - A statement that writes (`INSERT ... RETURNING`) runs to its end in its first chunk, so a
 *   write never stays half-done between calls.
 * - While a cursor is open on a statement, the statement's other calls are refused.
 */
import { OutpostError, SqliteError } from '../errors.js';
import { SQLITE_DONE, SQLITE_PREPARE_PERSISTENT, SQLITE_ROW } from '../sqlite/constants.js';
import type { ColumnInfo, RunResult, SqlParams } from '../types.js';
import { bindParams } from './binding.js';
import type { CellReader } from './cells.js';
import { type PackedRows, RowPacker } from './packed-rows.js';
import { type Statement, type StatementHost, resetStatement, splitStatements } from './statements.js';

/** What the registry needs of its connection (Connection builds it from its private state). */
export interface PreparedHost {
  readonly host: StatementHost;
  readonly cells: CellReader;
  /** Runs one statement's execution at the connection's commit points. */
  run<T>(stmt: Statement, body: () => T): T;
  /** `run(stmt, () => stepToEnd(host, stmt))` without the closure (commit-runner.ts `step`): the path of `prepare().run()`. */
  step(stmt: Statement): void;
  /** Flushes joined writes and schedules checkpoints, as every API call ends. */
  afterCall(): void;
  ensureOpen(): void;
}

export interface StatementInfo {
  columns: ColumnInfo[];
  /** Whether the statement leaves the database as it is (`sqlite3_stmt_readonly`). */
  readonly: boolean;
}

/** How `rows` steps: at most `maxRows` rows; with `cursor`, as that iteration's chunk. */
export interface RowsStep {
  maxRows?: number | undefined;
  cursor?: number | undefined;
  /** Starts the cursor (binding the parameters); without it, continues it. */
  start?: boolean | undefined;
}

interface Entry {
  sql: string;
  stmt: Statement | null;
  /** The open cursor, mid-step, if any. */
  cursor: number | null;
}

export class PreparedStatements {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly h: PreparedHost) {}

  prepare(handle: string, sql: string): StatementInfo {
    const stmt = this.statement(handle, sql);
    const { capi } = this.h.host.sqlite3;
    const columns = stmt.columns.map((name, i) => ({ name, type: capi.sqlite3_column_decltype(stmt.ptr, i) }));
    return { columns, readonly: this.h.host.raw.sqlite3_stmt_readonly(stmt.ptr) !== 0 };
  }

  /** Steps the statement: a whole call (no cursor), or one chunk of an iteration. */
  rows(handle: string, sql: string, params: SqlParams | undefined, step: RowsStep): { rows: PackedRows; done: boolean } {
    const entry = this.entry(handle, sql);
    const continuing = step.cursor !== undefined && !step.start;
    if (continuing) {
      if (entry.cursor !== step.cursor || !entry.stmt) {
        throw new OutpostError(
          'this iteration was ended under it (the database was replaced by a pull or import, closed, or moved to another tab); start it again',
          'INVALID_ARGUMENT',
        );
      }
    } else {
      this.refuseBusy(entry);
    }
    const stmt = this.statement(handle, sql);
    const { raw } = this.h.host;
    const writes = raw.sqlite3_stmt_readonly(stmt.ptr) === 0;
    const maxRows = step.cursor !== undefined && writes ? Number.POSITIVE_INFINITY : (step.maxRows ?? Number.POSITIVE_INFINITY);
    let done = false;
    try {
      if (!continuing) bindParams(this.h.host, stmt, params);
      if (step.cursor !== undefined) entry.cursor = step.cursor;
      let packer = new RowPacker(stmt.columns);
      let count = 0;
      this.h.run(stmt, () => {
        for (; count < maxRows; count++) {
          const rc = raw.sqlite3_step(stmt.ptr);
          // SQLite prepares the statement again after a schema change: its columns may differ.
          if (count === 0 && !continuing && this.refreshColumns(stmt)) packer = new RowPacker(stmt.columns);
          if (rc === SQLITE_ROW) {
            for (let i = 0; i < stmt.columns.length; i++) this.h.cells.read(stmt.ptr, i, packer);
          } else if (rc === SQLITE_DONE) {
            done = true;
            break;
          } else throw this.h.host.error(rc, stmt.sql);
        }
      });
      return { rows: packer.finish(count), done: done || step.cursor === undefined };
    } catch (e) {
      done = true;
      throw e;
    } finally {
      if (done || step.cursor === undefined) this.reset(entry);
      this.h.afterCall();
    }
  }

  run(handle: string, sql: string, params: SqlParams | undefined): RunResult {
    const entry = this.entry(handle, sql);
    this.refuseBusy(entry);
    const stmt = this.statement(handle, sql);
    const { raw } = this.h.host;
    try {
      bindParams(this.h.host, stmt, params);
      this.h.step(stmt);
      const db = this.h.host.db();
      return { changes: raw.sqlite3_changes(db), lastInsertRowid: raw.sqlite3_last_insert_rowid(db) };
    } finally {
      this.reset(entry);
      this.h.afterCall();
    }
  }

  /** Ends the cursor `cursor` if it is still open (a `break` out of the loop). */
  closeCursor(handle: string, cursor: number): void {
    const entry = this.entries.get(handle);
    if (entry && entry.cursor === cursor) this.reset(entry);
  }

  /** Finalizes the statement; unknown handles are ignored (finalizing twice is harmless). */
  finalize(handle: string): void {
    const entry = this.entries.get(handle);
    if (!entry) return;
    this.entries.delete(handle);
    if (entry.stmt) this.h.host.sqlite3.capi.sqlite3_finalize(entry.stmt.ptr);
  }

  /**
   * SQLite is about to close or the database is being replaced: finalize every statement (each
   * is prepared again on its next use) and end every cursor.
   */
  expire(): void {
    for (const entry of this.entries.values()) {
      if (entry.stmt) this.h.host.sqlite3.capi.sqlite3_finalize(entry.stmt.ptr);
      entry.stmt = null;
      entry.cursor = null;
    }
  }

  private entry(handle: string, sql: string): Entry {
    this.h.ensureOpen();
    if (typeof handle !== 'string' || typeof sql !== 'string') throw new OutpostError('a statement needs a handle and its SQL', 'INVALID_ARGUMENT');
    let entry = this.entries.get(handle);
    if (entry && entry.sql !== sql) throw new OutpostError(`statement handle ${handle} names other SQL`, 'INVALID_ARGUMENT');
    if (!entry) {
      entry = { sql, stmt: null, cursor: null };
      this.entries.set(handle, entry);
    }
    return entry;
  }

  /** The entry's prepared statement, prepared now when it has none. */
  private statement(handle: string, sql: string): Statement {
    const entry = this.entry(handle, sql);
    if (entry.stmt) return entry.stmt;
    const all = [...splitStatements(this.h.host, sql, SQLITE_PREPARE_PERSISTENT)];
    if (all.length !== 1) {
      for (const s of all) this.h.host.sqlite3.capi.sqlite3_finalize(s.ptr);
      this.entries.delete(handle);
      throw new OutpostError(
        all.length === 0 ? 'the SQL contains no statement' : 'prepare() takes one statement; this SQL contains more than one',
        'INVALID_ARGUMENT',
      );
    }
    entry.stmt = all[0]!;
    return entry.stmt;
  }

  /** Reads the statement's column names again; true when they changed. */
  private refreshColumns(stmt: Statement): boolean {
    const { capi } = this.h.host.sqlite3;
    const n = this.h.host.raw.sqlite3_column_count(stmt.ptr);
    const columns: string[] = [];
    for (let i = 0; i < n; i++) columns.push(capi.sqlite3_column_name(stmt.ptr, i) ?? `column${i}`);
    if (columns.length === stmt.columns.length && columns.every((c, i) => c === stmt.columns[i])) return false;
    stmt.columns = columns;
    return true;
  }

  private refuseBusy(entry: Entry): void {
    if (entry.cursor !== null) {
      throw new OutpostError('this statement is being iterated: finish or break out of that loop first, or prepare the SQL again', 'INVALID_ARGUMENT');
    }
  }

  private reset(entry: Entry): void {
    entry.cursor = null;
    if (entry.stmt) resetStatement(this.h.host.raw, entry.stmt);
  }
}

/** Whether `e` is SQLite's interrupt (a progress handler or `sqlite3_interrupt` stopped a statement). */
export function isInterrupt(e: unknown): boolean {
  return e instanceof SqliteError && e.code === 'SQLITE_INTERRUPT';
}
