/**
 * What a host that runs other people's SQL (the sync server) sets on a connection: defensive
 * mode and size limits, a progress handler that can stop any statement, and JS functions its
 * own triggers call. Functions over a raw handle; `Connection` exposes each as a method.
 */
import {
  SQLITE_DBCONFIG_DEFENSIVE,
  SQLITE_DBCONFIG_TRUSTED_SCHEMA,
  SQLITE_LIMIT_LENGTH,
  SQLITE_LIMIT_SQL_LENGTH,
  SQLITE_OK,
  SQLITE_UTF8,
} from '../sqlite/constants.js';
import type { Sqlite3Runtime } from '../sqlite/wasm-api.js';
import { callbackSlots } from './callbacks.js';
import type { SqlValue } from '../types.js';

export interface ConnectionLimits {
  /** Largest TEXT or BLOB value a statement may make (SQLite refuses larger with SQLITE_TOOBIG). */
  valueBytesMax: number;
  /** Largest SQL text of one statement. */
  sqlBytesMax: number;
}

/**
 * Defensive mode (no `writable_schema`, no writes to `sqlite_dbpage` or shadow tables, so no
 * statement can corrupt the file), an untrusted schema (functions with side effects are not
 * run from views and triggers of the database itself), and upper bounds on one value and one
 * statement's text, refused before anything is allocated. Returns SQLite's result code.
 */
export function restrictConnection(sqlite3: Sqlite3Runtime, db: number, limits: ConnectionLimits): number {
  const { capi } = sqlite3;
  for (const [op, value] of [
    [SQLITE_DBCONFIG_DEFENSIVE, 1],
    [SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0],
  ] as const) {
    const rc = capi.sqlite3_db_config(db, op, value, 0);
    if (rc !== SQLITE_OK) return rc;
  }
  capi.sqlite3_limit(db, SQLITE_LIMIT_LENGTH, Math.max(1024, Math.floor(limits.valueBytesMax)));
  capi.sqlite3_limit(db, SQLITE_LIMIT_SQL_LENGTH, Math.max(1024, Math.floor(limits.sqlBytesMax)));
  return SQLITE_OK;
}

/**
 * Calls `shouldStop` about every `ops` virtual-machine steps of any statement; when it returns
 * true the statement ends with SQLITE_INTERRUPT (the connection stays usable). With null,
 * removes the handler. The server bounds how long one tenant's statement holds the process.
 */
export function setProgressHandler(sqlite3: Sqlite3Runtime, db: number, ops: number, shouldStop: (() => boolean) | null): void {
  sqlite3.capi.sqlite3_progress_handler(db, shouldStop ? ops : 0, shouldStop ? () => (shouldStop() ? 1 : 0) : 0, 0);
}

/**
 * A scalar SQL function implemented in JS. Arguments arrive as the WASM build maps them; a
 * throw fails the calling statement with the thrown message. Returns SQLite's result code.
 */
export function createScalarFunction(sqlite3: Sqlite3Runtime, db: number, name: string, nArgs: number, fn: (...args: unknown[]) => SqlValue): number {
  return sqlite3.capi.sqlite3_create_function(db, name, nArgs, SQLITE_UTF8, 0, (_ctx, ...args) => fn(...args), 0, 0);
}

/** Rules for every action of every statement as it is prepared (`Connection.setAuthorizer`): true allows it. */
export type AuthorizerRules = (action: number, a: string | null, b: string | null, trigger: string | null, dbName: string | null) => boolean;

/**
 * A connection's one authorizer: registered once (callbacks.ts), then set on each SQLite handle
 * the connection opens. Every action is first noted (`note`: the tables each statement reads and
 * writes), then asked of the current rules, if any. `dispose` after the last handle closed.
 */
export class Authorizer {
  private readonly id: number;

  constructor(
    private readonly sqlite3: Sqlite3Runtime,
    note: (action: number, a: string | null, b: string | null) => void,
    rules: () => AuthorizerRules | null,
  ) {
    this.id = callbackSlots(sqlite3).authorizer.add((action, a, b, dbName, trigger) => {
      note(action, a, b);
      const check = rules();
      return !check || check(action, a, b, trigger, dbName) ? 0 : 1;
    });
  }

  /** Sets the authorizer on handle `db`; returns SQLite's result code. */
  install(db: number): number {
    return this.sqlite3.capi.sqlite3_set_authorizer(db, callbackSlots(this.sqlite3).authorizer.pointer, this.id);
  }

  dispose(): void {
    callbackSlots(this.sqlite3).authorizer.remove(this.id);
  }
}

/**
 * The check that stops a running call (driver.ts `limited`), or null between such calls. The
 * progress handler behind it is installed once and stays: installing one costs the WASM build
 * far more than a call (about 0.8 ms), while an idle check costs next to nothing.
 */
export class InterruptCheck {
  private check: (() => boolean) | null = null;
  private ops = 0;

  constructor(private readonly sqlite3: Sqlite3Runtime) {}

  /** Sets the check; the first one installs the handler on the handle `db()` gives. */
  set(ops: number, check: (() => boolean) | null, db: () => number): void {
    this.check = check;
    if (check && this.ops === 0) {
      this.ops = ops;
      this.install(db());
    }
  }

  /** SQLite was opened again (under the sync layer): the handler goes with the new handle. */
  reinstall(db: number): void {
    if (this.ops > 0) this.install(db);
  }

  private install(db: number): void {
    setProgressHandler(this.sqlite3, db, this.ops, () => this.check?.() ?? false);
  }
}
