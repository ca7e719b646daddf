/**
 * Change capture, the engine's half: every committed local write transaction hands exactly one
 * record of what it changed to the capture hooks, from inside that same transaction, so that
 * whatever the hooks write commits (or rolls back) with it. A rolled-back transaction hands
 * nothing. What is tracked and where records go is the owner's business (the sync layer's
 * change log, sync/change-log.ts); this file knows no table names.
 *
 * Mechanism: SQLite's session extension, attached to every table the hooks track (rowid
 * tables included, through SQLITE_SESSION_OBJCONFIG_ROWID). The session records the original
 * values of each touched row and, when asked for a changeset, compares them with the rows as
 * they are now, so work undone by ROLLBACK or ROLLBACK TO leaves nothing behind. The
 * connection calls `flush()` at every commit point (before COMMIT/END, before the RELEASE that
 * ends a transaction, and around autocommit writes, which it wraps in BEGIN/COMMIT).
 *
 * A record keeps what its transaction did in statement order, as segments: row changes (a
 * changeset, with the column names of each of its tables as they were when the changes were
 * made) and DDL statements. Sessions do not see DDL, and a changeset read after a DDL would
 * describe rows by the new schema (or fail, for a renamed or dropped table), so the session is
 * cut before each DDL statement: its changeset becomes a segment, the DDL's text the next
 * one, and a fresh session records what follows. Whatever a session saw during the DDL itself
 * (ALTER TABLE rewrites rows) is dropped: the DDL's text carries it. A PRAGMA that sets
 * `user_version` or `application_id` (the header values applications own; sessions do not see
 * them either) is a segment the same way, spelled `PRAGMA user_version = N` with the value it
 * left, so that push and replay set exactly that value.
 *
 * Savepoints: a ROLLBACK TO undoes everything since its SAVEPOINT, segments included, which a
 * session cannot see for the segments already cut. So the session is also cut at each
 * SAVEPOINT, which marks the segment count; ROLLBACK TO drops the segments after its mark and
 * restarts the session (all it holds is newer than the mark); RELEASE forgets the marks.
 *
 * Capture can be suspended (`Connection.withoutCapture`, and while `onCommit` runs): nothing
 * is then recorded, so the owner's own writes (replay, bookkeeping) never become records.
 */
import { SQLITE_OK, SQLITE_SESSION_OBJCONFIG_ROWID as SESSION_OBJCONFIG_ROWID } from '../sqlite/constants.js';
import { heapBytes } from '../sqlite/heap.js';
import type { Classified } from './commit-points.js';
import { type Sqlite3Runtime, rawExports } from '../sqlite/wasm-api.js';
import { setTableFilter } from './guards.js';

/** One part of a transaction, in statement order: a DDL statement, or the row changes between two. */
export type CapturedSegment =
  | { ddl: string }
  | {
      /** A session changeset; never empty. */
      changeset: Uint8Array;
      /** The column names of each table the changeset names, in order, as when the changes were made. */
      columns: Record<string, string[]>;
    };

/** What one committed transaction changed, in statement order. */
export interface CapturedTransaction {
  segments: CapturedSegment[];
  /**
   * Every tracked table the transaction wrote, whether or not the changesets hold its rows (the
   * session skips a row whose primary key holds a NULL: the owner can look for one).
   */
  tables: string[];
}

/**
 * The owner of captured changes, passed as `ConnectionOptions.capture`.
 *
 * - `tracks(table)`: whether row changes to `table` are recorded. Asked by the session when a
 *   table is first written in a transaction; must be pure and cheap.
 * - `onCommit(record)`: called inside the committing transaction, right before the statement
 *   that commits it, with what the transaction changed; never for a transaction that changed
 *   nothing (a transaction that wrote a tracked table changed something, even when the session
 *   recorded none of its rows). Capture is suspended while it runs, so its own writes are not recorded. When it
 *   throws, the commit does not happen: the committing statement fails with that error and the
 *   transaction is rolled back, an explicit one too (commit-runner.ts says why).
 */
export interface CaptureHooks {
  tracks(table: string): boolean;
  onCommit(record: CapturedTransaction): void;
  /**
   * The schema may have changed without a commit saying so (DDL ran, captured or not; a
   * ROLLBACK or ROLLBACK TO undid some; the connection reopened): drop what was cached about
   * tables. Optional.
   */
  schemaMayHaveChanged?(): void;
}

/** What capture reads of the schema: its version (the schema cookie) and a table's column names. */
export interface SchemaReader {
  version(): number;
  /** A main-schema table's column names, in order. */
  columns(table: string): string[];
}

export class ChangeCapture {
  private session = 0;
  /** The open transaction's segments cut so far. */
  private segments: CapturedSegment[] = [];
  /** The tables the current session has attached (the filter is asked once per table). */
  private tables = new Set<string>();
  /** Every tracked table the open transaction wrote, across its sessions. */
  private touched = new Set<string>();
  /** Open savepoints, innermost last, with the segment count when each was opened. */
  private marks: { name: string; segments: number }[] = [];
  /** Open suspensions (nested `suspendWhile` calls); nothing is recorded while positive. */
  private suspensions = 0;
  /**
   * Column names already read, valid while the schema cookie is `columnsVersion`: reading them
   * for every commit cost a fifth of an autocommit write, the cookie a tenth of that.
   */
  private columnsCache = new Map<string, string[]>();
  private columnsVersion = -1;
  /**
   * The session's table filter, one function for the capture's life: it is installed once per
   * runtime and found by the handle (guards.ts `setTableFilter`), where a JS function handed to
   * each new session (one per commit) made the WASM build compile a wrapper each time.
   */
  private readonly filter = (table: string): number => {
    if (!this.hooks.tracks(table)) return 0;
    this.tables.add(table);
    this.touched.add(table);
    return 1;
  };

  constructor(
    private readonly sqlite3: Sqlite3Runtime,
    private readonly db: number,
    private readonly hooks: CaptureHooks,
    private readonly schema: SchemaReader,
  ) {
    this.start();
    this.hooks.schemaMayHaveChanged?.();
  }

  /**
   * The schema was replaced without a statement capture saw (an import): forget the column
   * names read so far, even if the new schema's cookie happens to equal the old one's.
   */
  schemaReplaced(): void {
    this.columnsVersion = -1;
    this.hooks.schemaMayHaveChanged?.();
  }

  /** How many suspensions are open: capture records nothing while this is positive. */
  get suspended(): number {
    return this.suspensions;
  }

  /**
   * Runs `fn` with capture suspended (`Connection.withoutCapture` is the only caller). The
   * session is disabled meanwhile: a suspended write must not reach a later record either (a
   * replayed DELETE left in the session turned the next INSERT of that key into an UPDATE of a
   * row the server did not have).
   */
  suspendWhile<T>(fn: () => T): T {
    if (this.suspensions++ === 0) this.enableSession(false);
    try {
      return fn();
    } finally {
      if (--this.suspensions === 0) this.enableSession(true);
    }
  }

  private enableSession(on: boolean): void {
    if (this.session) rawExports(this.sqlite3).sqlite3session_enable(this.session, on ? 1 : 0);
  }

  private start(): void {
    const { capi, wasm } = this.sqlite3;
    const pp = wasm.alloc(wasm.ptr.size);
    try {
      const rc = capi.sqlite3session_create(this.db, 'main', pp);
      if (rc !== SQLITE_OK) throw new Error(`sqlite3session_create failed (${rc})`);
      this.session = wasm.peekPtr(pp);
    } finally {
      wasm.dealloc(pp);
    }
    const pInt = wasm.alloc(4);
    try {
      wasm.poke32(pInt, 1);
      capi.sqlite3session_object_config(this.session, SESSION_OBJCONFIG_ROWID, pInt);
    } finally {
      wasm.dealloc(pInt);
    }
    setTableFilter(this.sqlite3, this.db, this.session, this.filter);
    const rc = capi.sqlite3session_attach(this.session, 0);
    if (rc !== SQLITE_OK) throw new Error(`sqlite3session_attach failed (${rc})`);
    if (this.suspensions > 0) this.enableSession(false);
  }

  /** A fresh session: what the current one recorded is forgotten. */
  private restart(): void {
    this.sqlite3.capi.sqlite3session_delete(this.session);
    this.session = 0;
    this.tables = new Set();
    this.start();
  }

  /** Forgets everything recorded so far (after a commit point or a full rollback). */
  reset(): void {
    this.segments = [];
    this.marks = [];
    this.touched = new Set();
    this.restart();
  }

  /** After DDL that capture did not record (it ran while suspended). */
  schemaChanged(): void {
    this.hooks.schemaMayHaveChanged?.();
  }

  /** After the open transaction was rolled back: forgets it, and what the hooks cached about its schema. */
  rolledBack(): void {
    this.reset();
    this.hooks.schemaMayHaveChanged?.();
  }

  /** Ends the current segment of row changes (if it has any) and starts a fresh session. */
  private cut(): void {
    // A session that attached no table has recorded nothing, and needs no restart.
    if (this.tables.size === 0) return;
    const changeset = this.changeset();
    if (changeset.length > 0) this.segments.push({ changeset, columns: this.columnsOfTables() });
    this.restart();
  }

  /** The column names of the tables the current session attached, as they are now. */
  private columnsOfTables(): Record<string, string[]> {
    const version = this.schema.version();
    if (version !== this.columnsVersion) {
      this.columnsCache.clear();
      this.columnsVersion = version;
    }
    const columns: Record<string, string[]> = {};
    for (const table of this.tables) {
      let names = this.columnsCache.get(table);
      if (!names) this.columnsCache.set(table, (names = this.schema.columns(table)));
      columns[table] = names;
    }
    return columns;
  }

  /** Before a DDL statement runs inside the open transaction: the row changes so far become a segment. */
  beforeDdl(): void {
    if (this.suspensions === 0) this.cut();
  }

  /** After a DDL statement ran: its text is the next segment; what the session saw during it is dropped. */
  afterDdl(sql: string): void {
    this.hooks.schemaMayHaveChanged?.();
    if (this.suspensions > 0) return;
    this.restart();
    this.segments.push({ ddl: sql });
  }

  /** After a statement that ran inside a transaction: a SAVEPOINT, ROLLBACK TO or RELEASE moves the marks. */
  afterSavepointStatement(stmt: Pick<Classified, 'kind' | 'savepoint'>): void {
    const name = stmt.savepoint;
    if (name === null) return;
    if (stmt.kind === 'savepoint') this.savepoint(name);
    else if (stmt.kind === 'rollback-to') this.rollbackTo(name);
    else if (stmt.kind === 'release') this.release(name);
  }

  /** After a SAVEPOINT: marks where a ROLLBACK TO it would return. */
  private savepoint(name: string): void {
    if (this.suspensions > 0) return;
    this.cut();
    this.marks.push({ name, segments: this.segments.length });
  }

  /** After a ROLLBACK TO: forgets the segments and the session content since its SAVEPOINT. */
  private rollbackTo(name: string): void {
    if (this.suspensions > 0) return;
    const i = this.marks.findLastIndex((m) => m.name === name);
    // A savepoint opened while capture was suspended has no mark, and nothing of it was recorded.
    if (i < 0) return;
    // ROLLBACK TO keeps the savepoint open: its mark stays, the inner ones go.
    this.marks.length = i + 1;
    this.segments.length = this.marks[i]!.segments;
    this.restart();
    this.hooks.schemaMayHaveChanged?.();
  }

  /** After a RELEASE that leaves the transaction open: the savepoint and those inside it are gone. */
  private release(name: string): void {
    const i = this.marks.findLastIndex((m) => m.name === name);
    if (i >= 0) this.marks.length = i;
  }

  /** Hands the open transaction's record to `onCommit`, if it changed anything. Call inside the transaction. */
  flush(): void {
    if (this.suspensions > 0) return;
    this.cut();
    const segments = this.segments;
    if (segments.length > 0 || this.touched.size > 0) this.suspendWhile(() => this.hooks.onCommit({ segments, tables: [...this.touched] }));
    this.reset();
  }

  private changeset(): Uint8Array {
    const { capi, wasm } = this.sqlite3;
    const pN = wasm.alloc(4);
    const pBuf = wasm.alloc(wasm.ptr.size);
    try {
      const rc = capi.sqlite3session_changeset(this.session, pN, pBuf);
      if (rc !== SQLITE_OK) throw new Error(`sqlite3session_changeset failed (${rc}); a table's schema may have changed under the session`);
      const n = wasm.peek32(pN);
      const p = wasm.peekPtr(pBuf);
      const out = n > 0 ? heapBytes(wasm.memory, p, n).slice() : new Uint8Array(0);
      if (p) capi.sqlite3_free(p);
      return out;
    } finally {
      wasm.dealloc(pN);
      wasm.dealloc(pBuf);
    }
  }

  dispose(): void {
    if (this.session) this.sqlite3.capi.sqlite3session_delete(this.session);
    this.session = 0;
    setTableFilter(this.sqlite3, this.db, 0, null);
  }
}
