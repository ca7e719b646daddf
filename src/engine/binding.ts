/**
 * Binding parameters to a prepared statement: `SqlParams` (an array for positional `?`, an
 * object for named `:a`/`@a`/`$a`) to `sqlite3_bind_*`.
 *
 * Value mapping: null -> NULL; number -> INTEGER when it is a safe integer (32-bit through
 * bind_int, otherwise bind_int64), else REAL; bigint -> INTEGER (it must fit in 64 bits);
 * string -> TEXT; boolean -> 1/0; Uint8Array or ArrayBuffer -> BLOB. Anything else, a missing
 * value, or a count that does not match is an `OutpostError` `INVALID_ARGUMENT`.
 */
import { OutpostError } from '../errors.js';
import { SQLITE_OK } from '../sqlite/constants.js';
import type { SqlParam, SqlParams } from '../types.js';
import type { Statement, StatementHost } from './statements.js';

/** Binds `params` to `stmt` (which has no bindings yet). */
export function bindParams(host: StatementHost, stmt: Statement, params: SqlParams | undefined): void {
  const names = stmt.paramNames;
  if (params === undefined || params === null) {
    if (names.length > 0) throw bindError(stmt, `expects ${names.length} parameter(s), got none`);
    return;
  }
  if (Array.isArray(params)) {
    const list = params as readonly SqlParam[];
    if (list.length !== names.length) {
      throw bindError(stmt, `expects ${names.length} parameter(s), got ${list.length}`);
    }
    for (let i = 0; i < list.length; i++) bindValue(host, stmt, i + 1, list[i]);
    return;
  }
  const named = params as { readonly [name: string]: SqlParam };
  for (let i = 0; i < names.length; i++) {
    const full = names[i];
    if (!full || full.startsWith('?')) {
      throw bindError(stmt, 'has positional parameters; pass an array');
    }
    const bare = full.slice(1);
    const value = Object.prototype.hasOwnProperty.call(named, bare) ? named[bare] : named[full];
    if (value === undefined) throw bindError(stmt, `is missing a value for parameter ${full}`);
    bindValue(host, stmt, i + 1, value);
  }
}

/** Binds one value at parameter `i` (1-based). */
export function bindValue(host: StatementHost, stmt: Statement, i: number, v: SqlParam | undefined): void {
  const x = host.raw;
  const p = stmt.ptr;
  let rc: number;
  if (v === null) rc = x.sqlite3_bind_null(p, i);
  else if (typeof v === 'number') {
    if (Number.isInteger(v) && v >= -2147483648 && v <= 2147483647) rc = x.sqlite3_bind_int(p, i, v);
    else if (Number.isSafeInteger(v)) rc = x.sqlite3_bind_int64(p, i, BigInt(v));
    else rc = x.sqlite3_bind_double(p, i, v);
  } else if (typeof v === 'string') {
    const { wasm, capi } = host.sqlite3;
    const [ptr, n] = wasm.allocCString(v, true);
    rc = x.sqlite3_bind_text(p, i, ptr, n, capi.SQLITE_WASM_DEALLOC);
  } else if (typeof v === 'bigint') {
    if (v < -(2n ** 63n) || v >= 2n ** 63n) throw bindError(stmt, `value ${v} at parameter ${i} does not fit in 64 bits`);
    rc = x.sqlite3_bind_int64(p, i, v);
  } else if (typeof v === 'boolean') rc = x.sqlite3_bind_int(p, i, v ? 1 : 0);
  else if (v instanceof Uint8Array || v instanceof ArrayBuffer) {
    const bytes = v instanceof ArrayBuffer ? new Uint8Array(v) : v;
    const { wasm, capi } = host.sqlite3;
    // A zero-length blob still needs a non-null pointer, or SQLite binds NULL.
    const ptr = wasm.alloc(Math.max(1, bytes.length));
    wasm.heap8u().set(bytes, ptr);
    rc = x.sqlite3_bind_blob(p, i, ptr, bytes.length, capi.SQLITE_WASM_DEALLOC);
  } else {
    throw bindError(stmt, `cannot bind a value of type ${v === undefined ? 'undefined' : typeof v} at parameter ${i}`);
  }
  if (rc !== SQLITE_OK) throw host.error(rc, stmt.sql);
}

function bindError(stmt: Statement, what: string): OutpostError {
  return new OutpostError(`statement "${stmt.sql}" ${what}`, 'INVALID_ARGUMENT');
}
