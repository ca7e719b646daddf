/**
 * Prepared statements: splitting SQL text into statements, describing each one (columns,
 * parameter names, what it does for commit points), the LRU cache of prepared statements by
 * SQL text that every single-statement call goes through, and stepping a statement to its end.
 */
import { OutpostError, SqliteError } from '../errors.js';
import { SQLITE_DONE, SQLITE_OK, SQLITE_PREPARE_PERSISTENT, SQLITE_ROW } from '../sqlite/constants.js';
import { heapBytes } from '../sqlite/heap.js';
import type { RawExports, Sqlite3Runtime } from '../sqlite/wasm-api.js';
import type { SqlValue, StatementResult } from '../types.js';
import type { CellReader } from './cells.js';
import { type StatementKind, classify } from './commit-points.js';
import { type AccessRecorder, type TableAccess, emptyAccess } from './table-changes.js';

/** How many prepared statements a connection keeps, least recently used dropped first. */
export const STATEMENT_CACHE_SIZE = 64;

export interface Statement {
  ptr: number;
  /** The statement's text, without the comments and whitespace before it. */
  sql: string;
  kind: StatementKind;
  /** The savepoint a SAVEPOINT, RELEASE or ROLLBACK TO statement names. */
  savepoint: string | null;
  columns: string[];
  /** Parameter names by index (1-based index at [i-1]); null for plain `?`. */
  paramNames: (string | null)[];
  /** The tables it reads and writes, as SQLite's authorizer reported them (table-changes.ts). */
  access: TableAccess;
}

/** The full result of one statement, as a remote protocol reports it. */
export interface ExecuteResult {
  columns: string[];
  decltypes: (string | null)[];
  rows: SqlValue[][];
  changes: number;
  lastInsertRowid: bigint;
}

/** A statement as preparing it describes it. */
export interface StatementDescription {
  /** Parameter names by position (null for a plain `?`). */
  params: (string | null)[];
  columns: string[];
  decltypes: (string | null)[];
  readonly: boolean;
  explain: boolean;
}

/** What statement work needs from its connection. */
export interface StatementHost {
  readonly sqlite3: Sqlite3Runtime;
  readonly raw: RawExports;
  /** The open SQLite handle (it changes when the connection reopens SQLite). */
  db(): number;
  /** The SqliteError for `rc` on this connection, with the VFS's reason. */
  error(rc: number, sql: string): SqliteError;
  /** Collects the tables each prepared statement reads and writes, when the host tracks them. */
  readonly access?: AccessRecorder | undefined;
}

const textDecoder = new TextDecoder();
const textEncoder = new TextEncoder();

/** Prepares the statements of `sql` one by one. The caller finalizes each. */
export function* splitStatements(host: StatementHost, sql: string, flags = 0): Generator<Statement> {
  const { capi, wasm } = host.sqlite3;
  const bytes = textEncoder.encode(sql);
  const pSql = wasm.alloc(bytes.length + 1);
  const ppStmt = wasm.alloc(2 * wasm.ptr.size);
  const pzTail = ppStmt + wasm.ptr.size;
  try {
    const sqlBytes = heapBytes(wasm.memory, pSql, bytes.length + 1);
    sqlBytes.set(bytes);
    sqlBytes[bytes.length] = 0;
    let pos = pSql;
    const end = pSql + bytes.length;
    while (pos < end) {
      host.access?.begin();
      const rc = capi.sqlite3_prepare_v3(host.db(), pos, end - pos, flags, ppStmt, pzTail);
      const tail = wasm.peekPtr(pzTail);
      // Clamped: the tail slot is not zeroed before the call, and heapBytes throws on a range
      // outside the memory where the old subarray() clamped, so an error path that left it
      // unset still reaches host.error below.
      const text = stripLeadingComments(textDecoder.decode(heapBytes(wasm.memory, pos, Math.max(0, Math.min(tail, end) - pos))));
      if (rc !== SQLITE_OK) throw host.error(rc, text || sql);
      pos = tail;
      const ptr = wasm.peekPtr(ppStmt);
      if (!ptr) continue; // only whitespace or a comment
      yield describe(host, ptr, text);
    }
  } finally {
    wasm.dealloc(pSql);
    wasm.dealloc(ppStmt);
  }
}

function describe(host: StatementHost, ptr: number, sql: string): Statement {
  const { capi } = host.sqlite3;
  const raw = host.raw;
  const columns: string[] = [];
  const n = raw.sqlite3_column_count(ptr);
  for (let i = 0; i < n; i++) columns.push(capi.sqlite3_column_name(ptr, i) ?? `column${i}`);
  const paramNames: (string | null)[] = [];
  const p = raw.sqlite3_bind_parameter_count(ptr);
  for (let i = 1; i <= p; i++) paramNames.push(capi.sqlite3_bind_parameter_name(ptr, i) ?? null);
  const { kind, savepoint } = classify(sql, raw.sqlite3_stmt_readonly(ptr) !== 0);
  return { ptr, sql, kind, savepoint, columns, paramNames, access: host.access?.take() ?? emptyAccess() };
}

/** A statement's text without the whitespace and comments SQLite skipped before it. */
export function stripLeadingComments(text: string): string {
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

/** Clears a statement's state and bindings after a call, so the cache can hand it out again. */
export function resetStatement(raw: RawExports, stmt: Statement): void {
  raw.sqlite3_reset(stmt.ptr);
  raw.sqlite3_clear_bindings(stmt.ptr);
}

/** Prepared statements by SQL text, the least recently used finalized first. */
export class StatementCache {
  private readonly cache = new Map<string, Statement>();

  constructor(
    private readonly host: StatementHost,
    /** Also called by `clear()`: the statements prepared apart from the cache must go too. */
    private readonly onClear: () => void = () => {},
  ) {}

  /** The prepared statement for `sql`, which must hold exactly one statement. */
  get(sql: string): Statement {
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
      this.host.sqlite3.capi.sqlite3_finalize(oldest.ptr);
    }
    return stmt;
  }

  /** Finalizes every cached statement (before closing, or when the schema or rules change). */
  clear(): void {
    this.onClear();
    // The bare export: a server closing thousands of databases finalizes every cached statement of each.
    for (const s of this.cache.values()) this.host.raw.sqlite3_finalize(s.ptr);
    this.cache.clear();
  }

  /** Prepares exactly one statement; more than one (or none) is an error. */
  private prepareOne(sql: string): Statement {
    const all = [...splitStatements(this.host, sql, SQLITE_PREPARE_PERSISTENT)];
    if (all.length !== 1) {
      for (const s of all) this.host.sqlite3.capi.sqlite3_finalize(s.ptr);
      throw new OutpostError(
        all.length === 0
          ? 'the SQL contains no statement'
          : 'the SQL contains more than one statement; use exec() or execMany() for several',
        'INVALID_ARGUMENT',
      );
    }
    return all[0]!;
  }
}

/**
 * Steps a bound statement to the end, ignoring its rows. Both comparisons run on every call,
 * a write's (DONE at once) as a read's (ROW first): the JIT then has seen every operation
 * before it optimizes, and the first read after many writes does not deoptimize the per-call
 * path (it did in the classic suite, and was recompiled at the next test's cost).
 */
export function stepToEnd(host: StatementHost, stmt: Statement): void {
  for (;;) {
    const rc = host.raw.sqlite3_step(stmt.ptr);
    if (rc !== SQLITE_ROW) {
      if (rc !== SQLITE_DONE) throw host.error(rc, stmt.sql);
      return;
    }
  }
}

/**
 * Sees each cell as it is read, before the next: it may throw (a SqliteError) to stop the
 * statement, as the server does when a request's rows outgrow its answer limit. Only a
 * statement that writes nothing is observed: a write's RETURNING rows come after its changes
 * are made, so stopping it would report a failure for changes that stay.
 */
export type CellObserver = (value: SqlValue) => void;

/** Steps a bound statement to the end and returns its rows as arrays. */
export function collectRows(host: StatementHost, cells: CellReader, stmt: Statement, onCell?: CellObserver): SqlValue[][] {
  const rows: SqlValue[][] = [];
  const n = stmt.columns.length;
  const observe = onCell && host.raw.sqlite3_stmt_readonly(stmt.ptr) !== 0 ? onCell : undefined;
  for (;;) {
    const rc = host.raw.sqlite3_step(stmt.ptr);
    if (rc === SQLITE_ROW) {
      const row = new Array<SqlValue>(n);
      for (let i = 0; i < n; i++) {
        row[i] = cells.value(stmt.ptr, i);
        observe?.(row[i]!);
      }
      rows.push(row);
    } else if (rc === SQLITE_DONE) return rows;
    else throw host.error(rc, stmt.sql);
  }
}

/**
 * Runs every statement of a script in turn and reports each one (rows, changes, time, or its
 * error); stops after the first that fails, whether to compile or to run. `run` wraps each
 * statement's execution (the connection's commit points).
 */
export function runScript(
  host: StatementHost,
  cells: CellReader,
  sql: string,
  run: <T>(stmt: Statement, body: () => T) => T,
  onCell?: CellObserver,
): StatementResult[] {
  const results: StatementResult[] = [];
  const statements = splitStatements(host, sql);
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
      const result = runReported(host, cells, next.value, run, onCell);
      results.push(result);
      if (result.error) break;
    }
  } finally {
    statements.return(undefined);
  }
  return results;
}

/** Runs one prepared statement of a script to the end, then finalizes it. */
function runReported(host: StatementHost, cells: CellReader, stmt: Statement, run: <T>(stmt: Statement, body: () => T) => T, onCell?: CellObserver): StatementResult {
  const started = performance.now();
  let rows: SqlValue[][];
  const totalBefore = host.raw.sqlite3_total_changes(host.db());
  try {
    try {
      rows = run(stmt, () => collectRows(host, cells, stmt, onCell));
    } catch (e) {
      if (e instanceof SqliteError) return failedResult(stmt.sql, e, performance.now() - started);
      throw e;
    }
    return {
      sql: stmt.sql,
      columns: stmt.columns,
      rows,
      // Total changes, not sqlite3_changes: that keeps the last DML's count across DDL.
      changes: host.raw.sqlite3_total_changes(host.db()) - totalBefore,
      timeMs: performance.now() - started,
    };
  } finally {
    host.sqlite3.capi.sqlite3_finalize(stmt.ptr);
  }
}

function failedResult(sql: string, e: SqliteError, timeMs: number): StatementResult {
  return { sql, columns: [], rows: [], changes: 0, timeMs, error: { code: e.code, resultCode: e.resultCode, message: e.message } };
}
