/**
 * Which tables a statement reads and writes, and which tables each commit changed: the engine's
 * half of live queries (`Database.watch` and `onChange`).
 *
 * Tables come from SQLite, not from the SQL text: the connection's authorizer sees every action
 * of every statement as SQLite compiles it, with views, triggers and foreign-key actions
 * already resolved, so a statement over a view reads the view and its base tables, and a write
 * that fires a trigger or an ON DELETE CASCADE writes those tables too. `AccessRecorder`
 * collects those actions per prepared statement (also when SQLite re-prepares one after a
 * schema change).
 *
 * `ChangeTracker` turns the statements that ran into one set of changed tables per committed
 * transaction. A statement's write set counts when it changed rows (`sqlite3_total_changes`
 * moved) or was DDL; savepoints keep a copy of the set, so `ROLLBACK TO` forgets what was
 * written since; a `ROLLBACK` (or an error that rolled the transaction back) drops the set; a
 * transaction that ends any other way emits it to the listener, once, after its commit.
 * Exactness: per table, never per row. A write statement that changed rows counts for every
 * table it could write (a trigger whose WHEN clause was false still counts).
 */
import {
  SQLITE_ALTER_TABLE,
  SQLITE_CREATE_INDEX,
  SQLITE_CREATE_TABLE,
  SQLITE_CREATE_TEMP_INDEX,
  SQLITE_CREATE_TEMP_TABLE,
  SQLITE_CREATE_TEMP_TRIGGER,
  SQLITE_CREATE_TEMP_VIEW,
  SQLITE_CREATE_TRIGGER,
  SQLITE_CREATE_VIEW,
  SQLITE_CREATE_VTABLE,
  SQLITE_DELETE,
  SQLITE_DROP_INDEX,
  SQLITE_DROP_TABLE,
  SQLITE_DROP_TEMP_INDEX,
  SQLITE_DROP_TEMP_TABLE,
  SQLITE_DROP_TEMP_TRIGGER,
  SQLITE_DROP_TEMP_VIEW,
  SQLITE_DROP_TRIGGER,
  SQLITE_DROP_VIEW,
  SQLITE_DROP_VTABLE,
  SQLITE_INSERT,
  SQLITE_READ,
  SQLITE_UPDATE,
} from '../sqlite/constants.js';
import type { SqlValue } from '../types.js';
import type { Classified } from './commit-points.js';

/** What the tracker needs of a prepared statement (statements.ts's Statement has it). */
export interface TrackedStatement extends Classified {
  access: TableAccess;
}

/** The tables one statement reads and writes, by name (`sqlite_master` is `sqlite_schema`). */
export interface TableAccess {
  reads: Set<string>;
  writes: Set<string>;
}

export function emptyAccess(): TableAccess {
  return { reads: new Set(), writes: new Set() };
}

/** Actions whose first argument is the table written. */
const WRITES_FIRST = new Set([
  SQLITE_INSERT,
  SQLITE_UPDATE,
  SQLITE_DELETE,
  SQLITE_CREATE_TABLE,
  SQLITE_CREATE_TEMP_TABLE,
  SQLITE_DROP_TABLE,
  SQLITE_DROP_TEMP_TABLE,
  SQLITE_CREATE_VIEW,
  SQLITE_CREATE_TEMP_VIEW,
  SQLITE_DROP_VIEW,
  SQLITE_DROP_TEMP_VIEW,
  SQLITE_CREATE_VTABLE,
  SQLITE_DROP_VTABLE,
]);

/** Actions whose second argument is the table changed (indexes, triggers, ALTER TABLE). */
const WRITES_SECOND = new Set([
  SQLITE_CREATE_INDEX,
  SQLITE_CREATE_TEMP_INDEX,
  SQLITE_DROP_INDEX,
  SQLITE_DROP_TEMP_INDEX,
  SQLITE_CREATE_TRIGGER,
  SQLITE_CREATE_TEMP_TRIGGER,
  SQLITE_DROP_TRIGGER,
  SQLITE_DROP_TEMP_TRIGGER,
  SQLITE_ALTER_TABLE,
]);

/** The schema table's one name: SQLite reports `sqlite_master`, users write `sqlite_schema`. */
export function tableName(name: string): string {
  const lower = name.toLowerCase();
  return lower === 'sqlite_master' || lower === 'sqlite_temp_master' || lower === 'sqlite_temp_schema' ? 'sqlite_schema' : name;
}

/**
 * Collects the authorizer's actions into the access of the statement being compiled.
 *
 * The authorizer only speaks while SQLite compiles. A prepare brackets itself with
 * `begin`/`take`, and the set is made on the first action noted, so a call whose statement was
 * not (re)compiled allocates nothing (the per-call path of small statements is measured). While
 * a statement runs (`running`), a re-prepare (SQLite does one after a schema change, or for a
 * bound LIKE pattern) notes straight into that statement's own access: the tracker then has no
 * branch of its own for it, which the JIT would meet for the first time at some later call and
 * deoptimize the per-call path for.
 */
export class AccessRecorder {
  /** What the prepare under way noted so far; null when nothing yet (or no prepare is under way). */
  private preparing: TableAccess | null = null;
  private inPrepare = false;
  /** The running statement's access, which a re-prepare adds to. */
  private statement: TableAccess | null = null;

  /** Called by the connection's authorizer for every action; never refuses anything. */
  note(action: number, a: string | null, b: string | null): void {
    if (action === SQLITE_READ) {
      if (a) this.noted()?.reads.add(tableName(a));
    } else if (WRITES_FIRST.has(action)) {
      if (a) this.noted()?.writes.add(tableName(a));
    } else if (WRITES_SECOND.has(action)) {
      if (b) this.noted()?.writes.add(tableName(b));
    }
  }

  /** Before a prepare: forgets what was noted, so other prepares' actions do not leak in. */
  begin(): void {
    this.preparing = null;
    this.inPrepare = true;
  }

  /** What was noted since `begin`, or null when nothing was. */
  take(): TableAccess | null {
    const taken = this.preparing;
    this.preparing = null;
    this.inPrepare = false;
    return taken;
  }

  /** The access a statement about to run adds to when SQLite re-prepares it; null after it ran. */
  running(access: TableAccess | null): void {
    this.statement = access;
    // A prepare that failed never reached its `take`: it is over all the same.
    this.inPrepare = false;
  }

  private noted(): TableAccess | null {
    if (!this.inPrepare) return this.statement;
    this.preparing ??= emptyAccess();
    return this.preparing;
  }
}

/** What the tracker reads of its connection around a statement. */
export interface TrackedConnection {
  inTransaction(): boolean;
  totalChanges(): number;
}

export class ChangeTracker {
  /** Tables written by the open transaction so far. */
  private pending = new Set<string>();
  /** Open savepoints, innermost last, with a copy of `pending` when each was opened. */
  private marks: { name: string; pending: Set<string> }[] = [];
  private suspensions = 0;
  listener: ((tables: string[]) => void) | null = null;

  constructor(
    private readonly recorder: AccessRecorder,
    private readonly conn: TrackedConnection,
  ) {}

  /** Runs one statement's execution, then records what it wrote and emits at its commit. */
  around<T>(stmt: TrackedStatement, body: () => T): T {
    if (this.suspensions > 0) return body();
    const changesBefore = this.enter(stmt);
    let ok = false;
    try {
      const result = body();
      ok = true;
      return result;
    } finally {
      this.leave(stmt, changesBefore, ok);
    }
  }

  /** While true, statements run untracked (`suspendWhile`): callers of `enter` check it first. */
  get suspended(): boolean {
    return this.suspensions > 0;
  }

  /**
   * `around` in two halves, for a caller that runs its statement without a closure (the
   * per-call path of `run()` and `exec()`): `enter` before the statement, returning the change
   * count `leave` compares with, and `leave` after it, also when it threw (`ok` false).
   */
  enter(stmt: TrackedStatement): number {
    // SQLite may prepare the statement again as it runs, and the authorizer sees it again.
    this.recorder.running(stmt.access);
    return this.conn.totalChanges();
  }

  leave(stmt: TrackedStatement, changesBefore: number, ok: boolean): void {
    this.recorder.running(null);
    // A failed statement inside a transaction may keep some of its changes (ON CONFLICT FAIL).
    // A statement that writes no table has nothing to add, so a read skips the second count.
    const writes = stmt.access.writes;
    if (writes.size > 0) {
      // Both tests run for every write (the first DDL must not meet an unseen comparison).
      const changed = this.conn.totalChanges() !== changesBefore;
      const ddl = stmt.kind === 'ddl';
      if (changed || (ok && ddl)) for (const t of writes) this.pending.add(t);
    }
    if (ok && stmt.savepoint !== null) this.savepoints(stmt);
    if (!this.conn.inTransaction()) this.ended(ok && stmt.kind !== 'rollback');
  }

  /** Runs `fn` without recording (the sync layer reports what an apply changed itself). */
  suspendWhile<T>(fn: () => T): T {
    this.suspensions++;
    try {
      return fn();
    } finally {
      this.suspensions--;
    }
  }

  /** Emits `tables` as changed (a pull, an import), unless empty. */
  emit(tables: Iterable<string>): void {
    const list = [...new Set(tables)].sort();
    if (list.length > 0) this.listener?.(list);
  }

  private savepoints(stmt: TrackedStatement): void {
    const name = stmt.savepoint;
    if (name === null) return;
    const at = this.marks.map((m) => m.name).lastIndexOf(name);
    if (stmt.kind === 'savepoint') this.marks.push({ name, pending: new Set(this.pending) });
    else if (stmt.kind === 'rollback-to' && at >= 0) {
      this.pending = new Set(this.marks[at]!.pending);
      this.marks.length = at + 1;
    } else if (stmt.kind === 'release' && at >= 0) this.marks.length = at;
  }

  private ended(committed: boolean): void {
    // Most calls are a statement in autocommit that wrote nothing: nothing to drop or emit.
    // Both sizes are read on every call, so the JIT has seen both before it optimizes (with
    // `&&`, the first transaction that wrote nothing deoptimized the per-call path).
    if (this.pending.size + this.marks.length === 0) return;
    const written = this.pending;
    this.pending = new Set();
    this.marks = [];
    if (committed) this.emit(written);
  }
}

/** A row of `sqlite_schema`, as far as telling tables' changes apart needs. */
type SchemaRows = Map<string, string>;

/** What reads a connection's rows for the functions below. */
export type ReadRows = (sql: string, params?: readonly (string | number)[]) => SqlValue[][];

/** Every schema entry: name -> its table, root page and SQL, to compare before and after. */
export function schemaSnapshot(read: ReadRows): SchemaRows {
  const rows = read('SELECT name, tbl_name, rootpage, sql FROM sqlite_schema');
  return new Map(rows.map((r) => [String(r[0]), `${String(r[1])}\u0000${String(r[2])}\u0000${String(r[3])}`]));
}

/**
 * The tables a wholesale page replacement changed (a pull; an import): every table or index
 * owning one of `pages` now (`dbstat`), mapped to its table, plus every table whose schema
 * entry appeared, disappeared or changed. A page freed by the replacement belongs to no table
 * afterwards; the table that lost it changed a page it still owns (a parent or its root), or
 * its schema entry.
 */
export function tablesOfPages(read: ReadRows, pages: readonly number[], before: SchemaRows): Set<string> {
  const after = schemaSnapshot(read);
  const owner = (name: string, rows: SchemaRows): string => tableName(rows.get(name)?.split('\u0000')[0] ?? name);
  const changed = new Set<string>();
  for (const [name, entry] of after) if (before.get(name) !== entry) changed.add(owner(name, after));
  for (const name of before.keys()) if (!after.has(name)) changed.add(owner(name, before));
  if (changed.size > 0) changed.add('sqlite_schema');
  if (pages.length > 0) {
    const names = read('SELECT DISTINCT name FROM dbstat WHERE pageno IN (SELECT value FROM json_each(?))', [JSON.stringify(pages)]);
    for (const [name] of names) if (name !== null) changed.add(owner(String(name), after));
  }
  return changed;
}
