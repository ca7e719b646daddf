/**
 * The part of the SQLite WASM build's JS API that Outpost uses, typed as it behaves.
 *
 * The package's bundled typings disagree with the runtime in places (`wasm.ptr` is missing,
 * `cstrToJs` and the VFS method tables are typed too narrowly, `poke` with a type string is not
 * declared), so `load.ts` casts the module once to this interface and everything else is typed
 * against it. Pointers are numbers: the build is wasm32.
 *
 * Two views of the same functions: `capi` wraps each export with argument and result
 * conversion (strings in and out), and `RawExports` names the bare WASM exports, numbers in
 * and numbers out, which the engine's hot paths call to skip that conversion.
 *
 * Contract / may import: nothing internal.
 */

export interface WasmStruct {
  readonly pointer: number;
  dispose(): void;
}

export interface Sqlite3Runtime {
  capi: {
    sqlite3_vfs: new () => WasmStruct & { $iVersion: number; $szOsFile: number; $mxPathname: number };
    sqlite3_io_methods: new () => WasmStruct & { $iVersion: number };
    sqlite3_file: { new (pointer: number): WasmStruct & { $pMethods: number }; structInfo: { sizeof: number } };
    SQLITE_WASM_DEALLOC: number;
    sqlite3_open_v2(filename: string, ppDb: number, flags: number, vfs: string | null): number;
    sqlite3_close_v2(db: number): number;
    sqlite3_extended_result_codes(db: number, on: number): number;
    sqlite3_errmsg(db: number): string;
    sqlite3_extended_errcode(db: number): number;
    sqlite3_errstr(rc: number): string;
    sqlite3_js_rc_str(rc: number): string | undefined;
    sqlite3_prepare_v2(db: number, sql: string, n: number, ppStmt: number, pzTail: number): number;
    sqlite3_prepare_v3(db: number, sql: number, n: number, flags: number, ppStmt: number, pzTail: number): number;
    sqlite3_finalize(stmt: number): number;
    sqlite3_step(stmt: number): number;
    sqlite3_column_name(stmt: number, i: number): string | null;
    sqlite3_column_decltype(stmt: number, i: number): string | null;
    sqlite3_column_text(stmt: number, i: number): string | null;
    sqlite3_bind_parameter_name(stmt: number, i: number): string | null;
    sqlite3_exec(db: number, sql: string, callback: number, arg: number, errmsg: number): number;
    sqlite3_js_db_export(db: number, schema: string): Uint8Array;
    sqlite3_deserialize(db: number, schema: string, data: number, size: number, capacity: number, flags: number): number;
    sqlite3_backup_init(dest: number, destName: string, source: number, sourceName: string): number;
    sqlite3_backup_step(backup: number, pages: number): number;
    sqlite3_backup_finish(backup: number): number;
    sqlite3_db_config(db: number, op: number, value: number, out: number): number;
    /** SQLITE_DBCONFIG_LOOKASIDE: buffer (0: SQLite allocates), slot size, slot count. */
    sqlite3_db_config(db: number, op: number, buffer: number, slotBytes: number, slots: number): number;
    sqlite3_free(p: number): void;
    sqlite3_limit(db: number, category: number, value: number): number;
    /** The JS-callback form: the build converts arguments and sets the result (a throw becomes an SQL error). */
    sqlite3_create_function(
      db: number,
      name: string,
      nArg: number,
      eTextRep: number,
      pApp: number,
      xFunc: ((ctx: number, ...values: unknown[]) => unknown) | 0,
      xStep: 0,
      xFinal: 0,
    ): number;
    sqlite3_progress_handler(db: number, ops: number, handler: ((ctx: number) => number) | 0, ctx: number): void;
    sqlite3_set_authorizer(
      db: number,
      auth: ((ctx: number, action: number, a: string | 0, b: string | 0, dbName: string | 0, trigger: string | 0) => number) | 0,
      ctx: number,
    ): number;
    /** Converts a scalar function's arguments as the build's own function wrapper does. */
    sqlite3_values_to_js(argc: number, argv: number): unknown[];
    /** Sets a scalar function's result from a JS value (an Error sets an error). */
    sqlite3_result_js(ctx: number, value: unknown): void;
    sqlite3_result_error_js(ctx: number, error: unknown): void;
    sqlite3session_create(db: number, schema: string, ppSession: number): number;
    sqlite3session_object_config(session: number, op: number, pArg: number): number;
    /** A JS function (the build wraps it in a new WASM function each call) or an installed function's pointer. */
    sqlite3session_table_filter(session: number, filter: ((ctx: number, table: string) => number) | number, ctx: number): void;
    sqlite3session_attach(session: number, table: number): number;
    sqlite3session_changeset(session: number, pnChangeset: number, ppChangeset: number): number;
    sqlite3session_delete(session: number): void;
    sqlite3changeset_start(ppIter: number, n: number, pChangeset: number): number;
    sqlite3changeset_next(iter: number): number;
    sqlite3changeset_op(iter: number, pzTab: number, pnCol: number, pOp: number, pbIndirect: number): number;
    sqlite3changeset_pk(iter: number, pabPK: number, pnCol: number): number;
    sqlite3changeset_old(iter: number, i: number, ppValue: number): number;
    sqlite3changeset_new(iter: number, i: number, ppValue: number): number;
    sqlite3changeset_finalize(iter: number): number;
    sqlite3changeset_apply(
      db: number,
      n: number,
      pChangeset: number,
      filter: number,
      conflict: (ctx: number, conflict: number, iter: number) => number,
      ctx: number,
    ): number;
  };
  wasm: {
    /** The raw exports; cast once to `RawExports` (the engine's hot paths call them). */
    exports: unknown;
    ptr: { size: number };
    /** The module's memory (imported by this build); read bytes through `heap.ts`'s `heapBytes`. */
    memory: WebAssembly.Memory;
    heap8u(): Uint8Array;
    alloc(n: number): number;
    dealloc(p: number): void;
    allocCString(s: string): number;
    allocCString(s: string, returnWithLength: true): [number, number];
    allocFromTypedArray(bytes: Uint8Array): number;
    /** Installs a JS function in the function table with a signature such as 'i(pi)'; returns its pointer. */
    installFunction(signature: string, fn: (...args: never[]) => unknown): number;
    cstrToJs(p: number): string;
    cstrncpy(dst: number, src: number, n: number): number;
    peekPtr(p: number): number;
    pokePtr(p: number, v: number): void;
    poke32(p: number, v: number): void;
    peek32(p: number): number;
    poke64(p: number, v: bigint): void;
    poke(p: number, v: number, type: 'double' | 'i64'): void;
  };
  vfs: {
    installVfs(options: {
      io?: { struct: WasmStruct; methods: Record<string, (...args: never[]) => number> };
      vfs?: { struct: WasmStruct; methods: Record<string, (...args: never[]) => number>; name: string };
    }): void;
  };
}

/** The raw WASM exports the hot paths call (numbers in, numbers out; i64 as bigint). */
export interface RawExports {
  sqlite3_step(stmt: number): number;
  sqlite3_reset(stmt: number): number;
  sqlite3_clear_bindings(stmt: number): number;
  sqlite3_finalize(stmt: number): number;
  sqlite3_close_v2(db: number): number;
  /** With a null column, SQLITE_OK when `table` (any case) is a table or virtual table of `schema`, not a view; outputs may be null. */
  sqlite3_table_column_metadata(db: number, schema: number, table: number, column: number, dataType: number, collation: number, notNull: number, primaryKey: number, autoinc: number): number;
  sqlite3_column_count(stmt: number): number;
  sqlite3_column_type(stmt: number, i: number): number;
  sqlite3_column_double(stmt: number, i: number): number;
  sqlite3_column_int64(stmt: number, i: number): bigint;
  sqlite3_column_text(stmt: number, i: number): number;
  sqlite3_column_blob(stmt: number, i: number): number;
  sqlite3_column_bytes(stmt: number, i: number): number;
  sqlite3_bind_parameter_count(stmt: number): number;
  sqlite3_bind_null(stmt: number, i: number): number;
  sqlite3_bind_int(stmt: number, i: number, v: number): number;
  sqlite3_bind_int64(stmt: number, i: number, v: bigint): number;
  sqlite3_bind_double(stmt: number, i: number, v: number): number;
  sqlite3_bind_text(stmt: number, i: number, p: number, n: number, destructor: number): number;
  sqlite3_bind_blob(stmt: number, i: number, p: number, n: number, destructor: number): number;
  sqlite3_stmt_readonly(stmt: number): number;
  sqlite3_changes(db: number): number;
  sqlite3_total_changes(db: number): number;
  sqlite3_last_insert_rowid(db: number): bigint;
  sqlite3_get_autocommit(db: number): number;
  sqlite3_extended_errcode(db: number): number;
  sqlite3_value_type(value: number): number;
  sqlite3_value_int64(value: number): bigint;
  sqlite3_value_double(value: number): number;
  sqlite3_value_text(value: number): number;
  sqlite3_value_blob(value: number): number;
  sqlite3_value_bytes(value: number): number;
  sqlite3session_enable(session: number, enable: number): number;
  sqlite3_status64(op: number, pCurrent: number, pHighwater: number, resetFlag: number): number;
}

/** The raw exports of a loaded module. */
export function rawExports(sqlite3: Sqlite3Runtime): RawExports {
  // `wasm.exports` is untyped in the build's typings; RawExports names the ones Outpost calls.
  return sqlite3.wasm.exports as RawExports;
}
