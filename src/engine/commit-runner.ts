/**
 * Acting at commit points: every statement a connection runs goes through `CommitRunner.run`,
 * which tracks the tables it changes (table-changes.ts, for live queries) and, under change
 * capture, does what commit-points.ts plans for it: an autocommit write is wrapped in
 * BEGIN ... COMMIT with its change record, a COMMIT (or the RELEASE that ends a transaction)
 * first writes the transaction's record, DDL is noted in statement order, a ROLLBACK drops
 * what was recorded. commit-points.ts decides; this is the only place that acts.
 *
 * Contract
 * - When capture refuses a record (a write sync cannot carry) or cannot write it, the
 *   transaction is rolled back and the error says so, as SQLite does when a commit hook vetoes
 *   a COMMIT: left open, the caller's next statements would run inside it and be lost at close.
 * - Without capture, a statement runs as it is, inside the change tracking only: that is the
 *   path of every small call, so it allocates nothing per call.
 * - The runner's own BEGIN/COMMIT/ROLLBACK go around capture and tracking (`stepRaw`).
 */
import type { SqlValue } from '../types.js';
import type { BindParams } from './binding.js';
import type { ChangeCapture } from './capture.js';
import { CommitTracker, headerPragma } from './commit-points.js';
import { type Statement, type StatementHost, resetStatement, stepToEnd } from './statements.js';
import type { ChangeTracker } from './table-changes.js';

/** What the runner needs of its connection. */
export interface RunnerConnection {
  readonly host: StatementHost;
  /** The cached prepared statement for `sql` (exactly one statement). */
  prepare(sql: string): Statement;
  /** The rows of a read made on the engine's behalf, outside capture and tracking. */
  readRows(sql: string, params: BindParams | undefined): SqlValue[][];
}

export class CommitRunner {
  private readonly commitPoints = new CommitTracker();
  /** The connection's change capture, when it has one (set and dropped by the connection). */
  capture: ChangeCapture | null = null;

  constructor(
    private readonly conn: RunnerConnection,
    private readonly changes: ChangeTracker,
  ) {}

  /** Runs one statement's execution (`body`) at the connection's commit points. */
  run<T>(stmt: Statement, body: () => T): T {
    // Without capture there is nothing to plan, so no wrapper either (the path of every small call).
    if (!this.capture) return this.changes.around(stmt, body);
    return this.changes.around(stmt, () => this.runCaptured(stmt, body));
  }

  /**
   * `run(stmt, () => stepToEnd(host, stmt))` without the closure: the path of every `run()`
   * and `exec()` statement. Without capture it steps the statement between the tracker's two
   * halves; the JIT then has one short function to optimize per call path, not three
   * (engine-calls bench: c07 costs less CPU in the suite).
   */
  step(stmt: Statement): void {
    if (this.capture || this.changes.suspended) {
      this.run(stmt, () => stepToEnd(this.conn.host, stmt));
      return;
    }
    const changesBefore = this.changes.enter(stmt);
    let ok = false;
    try {
      stepToEnd(this.conn.host, stmt);
      ok = true;
    } finally {
      this.changes.leave(stmt, changesBefore, ok);
    }
  }

  /** Runs `fn` with change capture off (the sync layer's own writes: replay, bookkeeping). */
  withoutCapture<T>(fn: () => T): T {
    return this.capture ? this.capture.suspendWhile(fn) : fn();
  }

  /** Disposes of the capture (SQLite is closing or being reopened). */
  dropCapture(): void {
    this.capture?.dispose();
    this.capture = null;
  }

  private inTransaction(): boolean {
    const { raw, db } = this.conn.host;
    return raw.sqlite3_get_autocommit(db()) === 0;
  }

  private runCaptured<T>(stmt: Statement, body: () => T): T {
    const cap = this.capture;
    if (!cap) return body();
    if (cap.suspended > 0) {
      const result = body();
      // The owner's own DDL (replay) is not recorded, but it changes the schema all the same.
      if (stmt.kind === 'ddl') cap.schemaChanged();
      return result;
    }
    try {
      switch (this.commitPoints.plan(stmt, this.inTransaction())) {
        case 'wrap':
          return this.runWrapped(cap, stmt, body);
        case 'note-ddl': {
          cap.beforeDdl();
          const result = body();
          cap.afterDdl(this.recordedText(stmt));
          return result;
        }
        case 'record-first':
          this.flushOrRollBack(cap);
          return body();
        case 'rollback':
          try {
            return body();
          } finally {
            if (!this.inTransaction()) cap.rolledBack();
          }
        case 'run': {
          const result = body();
          if (this.inTransaction()) cap.afterSavepointStatement(stmt);
          return result;
        }
      }
    } finally {
      this.commitPoints.settle(this.inTransaction());
    }
  }

  /**
   * Writes the record of a transaction about to commit. When capture refuses it (a write sync
   * cannot carry) or cannot write it, the transaction is rolled back, as SQLite does when a
   * commit hook vetoes a COMMIT: left open, the caller's next statements would run inside it
   * and be lost at close while each seemed to succeed.
   */
  private flushOrRollBack(cap: ChangeCapture): void {
    try {
      cap.flush();
    } catch (e) {
      if (this.inTransaction()) this.stepRaw('ROLLBACK');
      cap.rolledBack();
      if (e instanceof Error) e.message = `${e.message} (the transaction was rolled back)`;
      throw e;
    }
  }

  /** An autocommit write: BEGIN, the statement, its change record, COMMIT, as one transaction. */
  private runWrapped<T>(cap: ChangeCapture, stmt: Statement, body: () => T): T {
    this.stepRaw('BEGIN');
    try {
      const noted = stmt.kind === 'ddl' || stmt.kind === 'header';
      if (noted) cap.beforeDdl();
      const result = body();
      if (noted) cap.afterDdl(this.recordedText(stmt));
      cap.flush();
      this.stepRaw('COMMIT');
      return result;
    } catch (e) {
      if (this.inTransaction()) this.stepRaw('ROLLBACK');
      cap.rolledBack();
      throw e;
    }
  }

  /** A noted statement's segment: DDL as written; a header PRAGMA as the value it left (one spelling for push and replay). */
  private recordedText(stmt: Statement): string {
    const name = stmt.kind === 'header' ? headerPragma(stmt.sql) : null;
    return name ? `PRAGMA ${name} = ${String(this.conn.readRows(`PRAGMA main.${name}`, undefined)[0]?.[0])}` : stmt.sql;
  }

  /** Steps a cached statement without capture (BEGIN/COMMIT/ROLLBACK around captured writes). */
  private stepRaw(sql: string): void {
    const stmt = this.conn.prepare(sql);
    try {
      stepToEnd(this.conn.host, stmt);
    } finally {
      resetStatement(this.conn.host.raw, stmt);
    }
  }
}
