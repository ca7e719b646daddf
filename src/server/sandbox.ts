/**
 * What tenant SQL may do on a hosted database. The server runs SQL from every client of every
 * database in one process, over one VFS that mounts every open database's files, so a
 * statement must reach exactly its own database, leave no state on the connection for the next
 * request, and stay within limits that keep the other tenants served.
 *
 * The rules, each enforced by SQLite before a statement runs (the authorizer is asked while a
 * statement is prepared, so a refused statement does nothing):
 * - No other files: ATTACH and DETACH are refused (an ATTACH by the name under which the VFS
 *   mounts another database's files would otherwise reach it), and so is `VACUUM INTO`; a
 *   plain `VACUUM` may attach its own nameless scratch database.
 * - No state that outlives a request: no TEMP tables, views, triggers or indexes (by the TEMP
 *   keyword or by the schema name `temp.`), and no
 *   PRAGMA that sets connection state, except the few a request may change for its own
 *   duration (`foreign_keys`, `defer_foreign_keys`, `query_only`: `@libsql/client`'s `migrate`
 *   turns foreign keys off and on), which the server puts back when the request, or its
 *   stream, ends (`SessionReset`). PRAGMAs that only read (also given the name of what they
 *   read: `table_info(t)`), and the two that write the database file's own header
 *   (`user_version`, `application_id`), are allowed.
 * - No corruption: defensive mode (`Connection.restrict`) turns off `writable_schema` and writes
 *   to `sqlite_dbpage` and shadow tables, whatever the authorizer says.
 * - Bounded work: a value may be at most `valueBytesMax` bytes (a huge `zeroblob` fails at once
 *   with SQLITE_TOOBIG) and a statement runs at most `statementTimeoutMs` (SQLite's progress
 *   handler interrupts it; the connection stays usable and the transaction is rolled back by the
 *   pipeline as for any failed request). A pipeline's rows are at most `answerBytesMax`: a read
 *   past it fails with SQLITE_TOOBIG (hrana.ts `AnswerBudget`), so one request cannot build an
 *   answer of gigabytes (and encode it while every other tenant waits). What statements hold in
 *   SQLite's memory is bounded for the whole process (heap-limit.ts): past it a statement fails
 *   with SQLITE_NOMEM; the heap PRAGMAs that would move the bound are refused here.
 *
 * The server's own statements (page reads, checkpoints) pass the same rules: they only read
 * pages and checkpoint, which tenants may do too.
 */
import type { Connection } from '../engine/connection.js';
import { TURSO_SYNC_TABLE } from '../protocol/turso-tables.js';
import {
  SQLITE_ALTER_TABLE,
  SQLITE_ATTACH,
  SQLITE_CREATE_INDEX,
  SQLITE_CREATE_TABLE,
  SQLITE_CREATE_TEMP_INDEX,
  SQLITE_CREATE_TEMP_TABLE,
  SQLITE_CREATE_TEMP_TRIGGER,
  SQLITE_CREATE_TEMP_VIEW,
  SQLITE_CREATE_TRIGGER,
  SQLITE_CREATE_VIEW,
  SQLITE_CREATE_VTABLE,
  SQLITE_DETACH,
  SQLITE_DROP_TABLE,
  SQLITE_FUNCTION,
  SQLITE_PRAGMA,
} from '../sqlite/constants.js';

export interface SandboxLimits {
  /** Longest a single statement may run before it is interrupted. */
  statementTimeoutMs: number;
  /** Largest TEXT or BLOB value (and SQL text) a statement may make. */
  valueBytesMax: number;
  /** The long-run fraction of the server's time one database's statements may use (time-share.ts). */
  shareOfServer: number;
  /**
   * Most bytes of rows (text and blob bytes, 16 for any other value) one pipeline may answer
   * with (default `valueBytesMax`); past it the reading statement fails with SQLITE_TOOBIG.
   */
  answerBytesMax?: number;
}

/** PRAGMAs tenants may run without a value (reading). */
const READ_PRAGMAS = new Set([
  'application_id',
  'auto_vacuum',
  'collation_list',
  'data_version',
  'database_list',
  'encoding',
  'foreign_key_check',
  'foreign_key_list',
  'foreign_keys',
  'freelist_count',
  'function_list',
  'index_info',
  'index_list',
  'index_xinfo',
  'integrity_check',
  'journal_mode',
  'module_list',
  'page_count',
  'page_size',
  'pragma_list',
  'query_only',
  'quick_check',
  'schema_version',
  'table_info',
  'table_list',
  'table_xinfo',
  'user_version',
  'wal_checkpoint',
]);

/**
 * Reading PRAGMAs whose argument names what to read (a table, an index, a check's limit), not a
 * value to set: `PRAGMA table_info(t)` and `pragma_table_info('t')` read, as without one.
 */
const NAMED_READ_PRAGMAS = new Set(['table_info', 'table_xinfo', 'index_info', 'index_xinfo', 'index_list', 'foreign_key_list', 'foreign_key_check', 'integrity_check', 'quick_check', 'table_list']);

/** PRAGMAs that may also be given a value: they write the database's header, not the connection. */
const WRITE_PRAGMAS = new Set(['user_version', 'application_id']);

/** Connection settings a request may set for itself; `SessionReset` puts them back after it. */
const SESSION_PRAGMAS = ['foreign_keys', 'defer_foreign_keys', 'query_only'] as const;

/** Functions that could reach outside the database or hand out raw pointers. */
const REFUSED_FUNCTIONS = new Set(['load_extension', 'fts3_tokenizer', 'readfile', 'writefile', 'edit']);

/**
 * The authorizer for tenant SQL (see the header). `inner`, when given (the write rules), is
 * asked only about actions the sandbox allows.
 */
export function sandboxAuthorizer(
  clock: StatementClock,
  inner?: (action: number, a: string | null, b: string | null, trigger: string | null) => boolean,
): (action: number, a: string | null, b: string | null, trigger: string | null, dbName?: string | null) => boolean {
  return (action, a, b, trigger, dbName) => {
    switch (action) {
      case SQLITE_ATTACH:
        // A plain VACUUM attaches a nameless temporary database of its own (and detaches it).
        return clock.vacuum && a === null && !clock.readOnly;
      case SQLITE_DETACH:
        return clock.vacuum && !clock.readOnly;
      case SQLITE_CREATE_TEMP_INDEX:
      case SQLITE_CREATE_TEMP_TABLE:
      case SQLITE_CREATE_TEMP_TRIGGER:
      case SQLITE_CREATE_TEMP_VIEW:
        return false;
      // SQLite asks for the TEMP codes only when the statement says TEMP: `CREATE TABLE
      // temp.t`, `CREATE TRIGGER temp.t ... ON main.x` and the like come as the plain codes
      // with the schema `temp`, and made objects that outlived the request (a temp trigger
      // would fire on other clients' writes).
      case SQLITE_CREATE_TABLE:
      case SQLITE_CREATE_INDEX:
      case SQLITE_CREATE_TRIGGER:
      case SQLITE_CREATE_VIEW:
      case SQLITE_CREATE_VTABLE:
        if ((dbName ?? '').toLowerCase() === 'temp') return false;
        break;
      case SQLITE_PRAGMA: {
        const name = (a ?? '').toLowerCase();
        if (NAMED_READ_PRAGMAS.has(name)) return true;
        if (clock.readOnly && b !== null) return false;
        if ((SESSION_PRAGMAS as readonly string[]).includes(name)) {
          if (b !== null) clock.sessionChanged = true;
          return true;
        }
        if (b === null) return READ_PRAGMAS.has(name);
        return WRITE_PRAGMAS.has(name);
      }
      case SQLITE_FUNCTION: {
        const fn = (b ?? '').toLowerCase();
        if (REFUSED_FUNCTIONS.has(fn)) return false;
        // The ownership check (client-owners.ts) runs from the server's own triggers only.
        if (fn === 'outpost_may_write_client' && trigger === null) return false;
        break;
      }
      // The protocol's acknowledgements are guarded row by row; the table itself stays.
      // (DROP TABLE names the table first; ALTER TABLE names the schema, then the table.)
      case SQLITE_DROP_TABLE:
        if ((a ?? '').toLowerCase() === TURSO_SYNC_TABLE) return false;
        break;
      case SQLITE_ALTER_TABLE:
        if ((b ?? '').toLowerCase() === TURSO_SYNC_TABLE) return false;
        break;
    }
    return inner ? inner(action, a, b, trigger) : true;
  };
}

/**
 * The statement time limit: the progress handler asks `shouldStop`; the pipeline starts the
 * clock before each tenant statement and stops it after.
 */
export class StatementClock {
  private deadlineMs = Number.POSITIVE_INFINITY;
  private startedMs: number | null = null;
  private spentMs = 0;
  /** Whether the last interrupted statement was stopped by this clock. */
  expired = false;
  /** The running statement is a plain VACUUM (which attaches a scratch database of its own). */
  vacuum = false;
  /** A statement set one of the session PRAGMAs since the last `SessionReset`. */
  sessionChanged = false;
  /**
   * The request runs for a read token: the server holds `query_only` on for it, and the
   * authorizer refuses every PRAGMA given a value (so `query_only` cannot be turned off),
   * ATTACH and DETACH (so no VACUUM).
   */
  readOnly = false;

  constructor(private readonly timeoutMs: number) {}

  /** Starts the clock for one tenant statement, `sql`. */
  start(sql: string): void {
    this.expired = false;
    // Only `VACUUM [schema]`: `VACUUM INTO 'file'` writes a file and stays refused.
    this.vacuum = /^\s*VACUUM(\s+("main"|main))?\s*;?\s*$/i.test(sql);
    this.startedMs = performance.now();
    this.deadlineMs = this.startedMs + this.timeoutMs;
  }

  /** Stops the clock (the server's own statements have no limit). */
  stop(): void {
    if (this.startedMs !== null) this.spentMs += performance.now() - this.startedMs;
    this.startedMs = null;
    this.vacuum = false;
    this.deadlineMs = Number.POSITIVE_INFINITY;
  }

  /** The time tenant statements ran since the last call (what the database's time share is charged). */
  takeSpentMs(): number {
    const spent = this.spentMs;
    this.spentMs = 0;
    return spent;
  }

  shouldStop = (): boolean => {
    if (performance.now() <= this.deadlineMs) return false;
    this.expired = true;
    return true;
  };

  get limitMs(): number {
    return this.timeoutMs;
  }
}

/** How many VM steps pass between two looks at the clock (a few microseconds of work). */
const PROGRESS_OPS = 10_000;

/** The session settings of a connection as the server opens it (`SessionReset.capture`). */
let openingSettings: string | null = null;

/**
 * Puts the session PRAGMAs back to what they were when the database opened, once a request (or
 * its stream) that changed them ends: the next request starts from the same connection state.
 */
export class SessionReset {
  private constructor(private readonly sql: string) {}

  /**
   * Reads the settings as the server opened the connection (before the sandbox applies). They
   * are connection settings, not stored in the database file, so every connection the server
   * opens starts with the same ones: they are read at the first open only (three statements
   * compiled at every open of a database evicted and used again, about a tenth of a millisecond).
   */
  static capture(conn: Connection): SessionReset {
    // The values read are SQLite's 0 or 1 for these boolean settings.
    openingSettings ??= SESSION_PRAGMAS.map((name) => `PRAGMA ${name} = ${Number(conn.value(`PRAGMA ${name}`))};`).join(' ');
    return new SessionReset(openingSettings);
  }

  /** Restores the settings when a statement changed them; `trusted` runs SQL as the server. */
  reset(clock: StatementClock, trusted: (sql: string) => void): void {
    if (!clock.sessionChanged) return;
    trusted(this.sql);
    clock.sessionChanged = false;
  }
}

/** Applies the sandbox to a hosted database's connection; returns its clock and authorizer. */
export function applySandbox(
  conn: Connection,
  limits: SandboxLimits,
  writeRules?: (action: number, a: string | null, b: string | null, trigger: string | null) => boolean,
): { clock: StatementClock; authorizer: ReturnType<typeof sandboxAuthorizer>; session: SessionReset } {
  const session = SessionReset.capture(conn);
  conn.restrict({ valueBytesMax: limits.valueBytesMax, sqlBytesMax: limits.valueBytesMax });
  const clock = new StatementClock(limits.statementTimeoutMs);
  const authorizer = sandboxAuthorizer(clock, writeRules);
  conn.setAuthorizer(authorizer);
  conn.setProgressHandler(PROGRESS_OPS, clock.shouldStop);
  return { clock, authorizer, session };
}
