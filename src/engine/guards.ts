/**
 * What a host that runs other people's SQL (the sync server) sets on a connection: defensive
 * mode and size limits, a progress handler that can stop any statement, and JS functions its
 * own triggers call. Functions over a raw handle; `Connection` exposes each as a method.
 * Also the engine's frequent C callbacks (the authorizer every connection sets, and change
 * capture's table filter), installed once per runtime (`CallbackTable`).
 */
import {
  SQLITE_DBCONFIG_DEFENSIVE,
  SQLITE_DBCONFIG_TRUSTED_SCHEMA,
  SQLITE_DENY,
  SQLITE_ERROR,
  SQLITE_LIMIT_LENGTH,
  SQLITE_LIMIT_SQL_LENGTH,
  SQLITE_OK,
  SQLITE_UTF8,
} from '../sqlite/constants.js';
import { type Sqlite3Runtime, rawExports } from '../sqlite/wasm-api.js';
import { HandleMap } from '../sqlite/handle-map.js';
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
 * JS callbacks by handle. Handing the WASM build a JS function makes it compile a small WASM
 * module for it and install that in the function table (a few tenths of a millisecond each);
 * a server that opens a database on a cache miss paid that for its authorizer, progress
 * handler and functions at every open. Instead each kind of callback is installed once per
 * runtime, with the handle (or the function's id) as its context pointer, and finds its JS
 * target in these maps. `releaseCallbacks` drops a handle's entries when it closes.
 */
interface CallbackTable {
  // By handle: a HandleMap, since a closed handle's address comes back for the next open.
  authorizers: HandleMap<AuthorizerCallback>;
  /** Change capture's session table filter, by handle (a new session at every captured commit, capture.ts). */
  tableFilters: HandleMap<(table: string) => number>;
  progress: HandleMap<() => boolean>;
  /** Scalar functions by id (their `pApp`, never reused), and the ids of each handle. */
  functions: Map<number, (...args: unknown[]) => SqlValue>;
  functionsOf: HandleMap<number[]>;
  nextFunctionId: number;
  authorizerPointer: number;
  progressPointer: number;
  functionPointer: number;
  tableFilterPointer: number;
}

type AuthorizerCallback = (action: number, a: string | null, b: string | null, dbName: string | null, trigger: string | null) => number;

/** The bare exports the callbacks are registered with (the build's wrappers would install a new WASM function per call). */
interface CallbackExports {
  sqlite3_set_authorizer(db: number, auth: number, ctx: number): number;
  sqlite3_progress_handler(db: number, ops: number, handler: number, ctx: number): void;
  sqlite3_create_function_v2(db: number, name: number, nArg: number, eTextRep: number, pApp: number, xFunc: number, xStep: number, xFinal: number, xDestroy: number): number;
  sqlite3_user_data(ctx: number): number;
}

const tables = new WeakMap<Sqlite3Runtime, CallbackTable>();

function callbackTable(sqlite3: Sqlite3Runtime): CallbackTable {
  let table = tables.get(sqlite3);
  if (table) return table;
  const { wasm, capi } = sqlite3;
  // As the build's own conversion did for the callback before: an empty string counts as none.
  const text = (p: number): string | null => (p ? wasm.cstrToJs(p) || null : null);
  const authorizers = new HandleMap<AuthorizerCallback>();
  const progress = new HandleMap<() => boolean>();
  const tableFilters = new HandleMap<(table: string) => number>();
  const functions = new Map<number, (...args: unknown[]) => SqlValue>();
  const raw = callbackExports(sqlite3);
  table = {
    authorizers,
    tableFilters,
    progress,
    functions,
    functionsOf: new HandleMap(),
    nextFunctionId: 1,
    // A handle loses its entry only as it closes, when SQLite prepares nothing; should a statement
    // get here anyway, it is denied, never let past a host's rules.
    // A throw must not unwind through WASM: it becomes the error's result code, which SQLite
    // reports as the statement's failure, as the build's own wrapper did.
    authorizerPointer: wasm.installFunction('i(pipppp)', (ctx: number, action: number, a: number, b: number, dbName: number, trigger: number) => {
      try {
        const callback = authorizers.get(ctx);
        return callback ? callback(action, text(a), text(b), text(dbName), text(trigger)) : SQLITE_DENY;
      } catch (e) {
        return resultCodeOf(e);
      }
    }),
    // int xFilter(void *ctx, const char *zTab): non-zero attaches the table. A throw must not
    // unwind through WASM: it becomes the error's result code, as the build's own wrapper did.
    tableFilterPointer: wasm.installFunction('i(pp)', (ctx: number, table: number) => {
      try {
        return tableFilters.get(ctx)?.(wasm.cstrToJs(table)) ?? 0;
      } catch (e) {
        return resultCodeOf(e);
      }
    }),
    // A check that throws stops the statement rather than unwinding through WASM.
    progressPointer: wasm.installFunction('i(p)', (ctx: number) => {
      try {
        return progress.get(ctx)?.() ? 1 : 0;
      } catch {
        return 1;
      }
    }),
    functionPointer: wasm.installFunction('v(pip)', (ctx: number, argc: number, argv: number) => {
      const fn = functions.get(raw.sqlite3_user_data(ctx));
      try {
        if (!fn) throw new Error('this function is no longer registered');
        capi.sqlite3_result_js(ctx, fn(...capi.sqlite3_values_to_js(argc, argv)));
      } catch (e) {
        capi.sqlite3_result_error_js(ctx, e);
      }
    }),
  };
  tables.set(sqlite3, table);
  return table;
}

function callbackExports(sqlite3: Sqlite3Runtime): CallbackExports {
  // `wasm.exports` is untyped; these are the C functions of the same names.
  return sqlite3.wasm.exports as CallbackExports;
}

/** Forgets the callbacks of handle `db` (it is about to close): the next handle at that address starts without them. */
export function releaseCallbacks(sqlite3: Sqlite3Runtime, db: number): void {
  const table = tables.get(sqlite3);
  if (!table) return;
  table.authorizers.delete(db);
  table.tableFilters.delete(db);
  table.progress.delete(db);
  for (const id of table.functionsOf.get(db) ?? []) table.functions.delete(id);
  table.functionsOf.delete(db);
}

/**
 * Sets `filter` as the table filter of `session`, a session of handle `db` (one filter per
 * handle: each captured commit makes a new session); with null, forgets the handle's filter.
 */
export function setTableFilter(sqlite3: Sqlite3Runtime, db: number, session: number, filter: ((table: string) => number) | null): void {
  const table = callbackTable(sqlite3);
  if (!filter) {
    table.tableFilters.delete(db);
    return;
  }
  table.tableFilters.set(db, filter);
  sqlite3.capi.sqlite3session_table_filter(session, table.tableFilterPointer, db);
}

/** What the WASM build's own callback wrappers answer for a thrown error. */
function resultCodeOf(e: unknown): number {
  const rc = (e as { resultCode?: unknown } | null)?.resultCode;
  return typeof rc === 'number' && rc !== 0 ? rc : SQLITE_ERROR;
}

/**
 * Closes handle `db` after forgetting its callbacks (`releaseCallbacks`). Returns SQLite's result
 * code. Through the bare export: the build's `capi` wrapper first resets eight hooks through its
 * argument converters and drops the JS functions it installed for the handle, and Outpost installs
 * none through it (every callback here goes through the bare exports and the tables above), so
 * that work found nothing; a server evicting databases from its cache paid it at every close.
 */
export function closeHandle(sqlite3: Sqlite3Runtime, db: number): number {
  releaseCallbacks(sqlite3, db);
  return rawExports(sqlite3).sqlite3_close_v2(db);
}

/**
 * Calls `shouldStop` about every `ops` virtual-machine steps of any statement; when it returns
 * true the statement ends with SQLITE_INTERRUPT (the connection stays usable). With null,
 * removes the handler. The server bounds how long one tenant's statement holds the process.
 */
export function setProgressHandler(sqlite3: Sqlite3Runtime, db: number, ops: number, shouldStop: (() => boolean) | null): void {
  const table = callbackTable(sqlite3);
  if (shouldStop) {
    table.progress.set(db, shouldStop);
    callbackExports(sqlite3).sqlite3_progress_handler(db, ops, table.progressPointer, db);
  } else {
    table.progress.delete(db);
    callbackExports(sqlite3).sqlite3_progress_handler(db, 0, 0, 0);
  }
}

/**
 * A scalar SQL function implemented in JS. Arguments arrive as the WASM build maps them; a
 * throw fails the calling statement with the thrown message. Returns SQLite's result code.
 */
export function createScalarFunction(sqlite3: Sqlite3Runtime, db: number, name: string, nArgs: number, fn: (...args: unknown[]) => SqlValue): number {
  const table = callbackTable(sqlite3);
  const id = table.nextFunctionId++;
  const zName = sqlite3.wasm.allocCString(name);
  try {
    const rc = callbackExports(sqlite3).sqlite3_create_function_v2(db, zName, nArgs, SQLITE_UTF8, id, table.functionPointer, 0, 0, 0);
    if (rc === SQLITE_OK) {
      table.functions.set(id, fn);
      const ids = table.functionsOf.get(db);
      if (ids) ids.push(id);
      else table.functionsOf.set(db, [id]);
    }
    return rc;
  } finally {
    // SQLite copies the name.
    sqlite3.wasm.dealloc(zName);
  }
}

/** Rules for every action of every statement as it is prepared (`Connection.setAuthorizer`): true allows it. */
export type AuthorizerRules = (action: number, a: string | null, b: string | null, trigger: string | null, dbName: string | null) => boolean;

/**
 * Installs the one authorizer SQLite calls on `db`: it hands every action to `note` (the tables
 * each statement reads and writes, table-changes.ts), then asks `rules()`, if any. Returns
 * SQLite's result code.
 */
export function installAuthorizer(
  sqlite3: Sqlite3Runtime,
  db: number,
  note: (action: number, a: string | null, b: string | null) => void,
  rules: () => AuthorizerRules | null,
): number {
  const table = callbackTable(sqlite3);
  table.authorizers.set(db, (action, a, b, dbName, trigger) => {
    note(action, a, b);
    const check = rules();
    return !check || check(action, a, b, trigger, dbName) ? 0 : 1;
  });
  return callbackExports(sqlite3).sqlite3_set_authorizer(db, table.authorizerPointer, db);
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
