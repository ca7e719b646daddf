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
 * ends a transaction, and around autocommit writes, which it wraps in BEGIN/COMMIT). DDL is not
 * seen by sessions: the connection notes each CREATE/DROP/ALTER statement's text, and the
 * record keeps them in order.
 *
 * Capture can be suspended (`Connection.withoutCapture`, and while `onCommit` runs): nothing
 * is then recorded, so the owner's own writes (replay, bookkeeping) never become records.
 */
import { SQLITE_OK, SQLITE_SESSION_OBJCONFIG_ROWID as SESSION_OBJCONFIG_ROWID } from '../sqlite/constants.js';
import { type Sqlite3Runtime, rawExports } from '../sqlite/wasm-api.js';

/** What one committed transaction changed. */
export interface CapturedTransaction {
  /** The transaction's DDL statements, in order (sessions do not see DDL). */
  ddl: string[];
  /** The session changeset of its row changes; empty when it changed no rows. */
  changeset: Uint8Array;
}

/**
 * The owner of captured changes, passed as `ConnectionOptions.capture`.
 *
 * - `tracks(table)`: whether row changes to `table` are recorded. Asked by the session when a
 *   table is first written in a transaction; must be pure and cheap.
 * - `onCommit(record)`: called inside the committing transaction, right before the statement
 *   that commits it, with what the transaction changed; never for a transaction that changed
 *   nothing. Capture is suspended while it runs, so its own writes are not recorded. When it
 *   throws, the commit does not happen: the committing statement fails with that error (an
 *   autocommit write is rolled back; an explicit transaction stays open).
 */
export interface CaptureHooks {
  tracks(table: string): boolean;
  onCommit(record: CapturedTransaction): void;
}

export class ChangeCapture {
  private session = 0;
  private ddl: string[] = [];
  /** Open suspensions (nested `suspendWhile` calls); nothing is recorded while positive. */
  private suspensions = 0;

  constructor(
    private readonly sqlite3: Sqlite3Runtime,
    private readonly db: number,
    private readonly hooks: CaptureHooks,
  ) {
    this.start();
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
    capi.sqlite3session_table_filter(this.session, (_ctx: number, table: string) => (this.hooks.tracks(table) ? 1 : 0), 0);
    const rc = capi.sqlite3session_attach(this.session, 0);
    if (rc !== SQLITE_OK) throw new Error(`sqlite3session_attach failed (${rc})`);
    if (this.suspensions > 0) this.enableSession(false);
  }

  /** Forgets everything recorded so far (after a commit point or a full rollback). */
  reset(): void {
    this.sqlite3.capi.sqlite3session_delete(this.session);
    this.session = 0;
    this.ddl = [];
    this.start();
  }

  noteDdl(sql: string): void {
    if (this.suspensions === 0) this.ddl.push(sql);
  }

  /** Hands the open transaction's record to `onCommit`, if it changed anything. Call inside the transaction. */
  flush(): void {
    if (this.suspensions > 0) return;
    const changeset = this.changeset();
    const ddl = this.ddl;
    if (changeset.length > 0 || ddl.length > 0) this.suspendWhile(() => this.hooks.onCommit({ ddl, changeset }));
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
      const out = n > 0 ? wasm.heap8u().slice(p, p + n) : new Uint8Array(0);
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
  }
}
