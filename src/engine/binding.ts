/**
 * Binding parameters to a prepared statement: `SqlParams` (an array for positional `?`, an
 * object for named `:a`/`@a`/`$a`) to `sqlite3_bind_*`.
 *
 * Value mapping: null -> NULL; number -> INTEGER when it is a safe integer (32-bit through
 * bind_int, otherwise bind_int64), else REAL (-0 too, which keeps its sign only as a REAL); bigint -> INTEGER (it must fit in 64 bits);
 * string -> TEXT; boolean -> 1/0; Uint8Array or ArrayBuffer -> BLOB. Anything else, a missing
 * value, or a count that does not match is an `OutpostError` `INVALID_ARGUMENT`.
 *
 * Inside Outpost (the sync replay, the server's Hrana arguments) a parameter may also be a
 * `StoredValue`, bound exactly as its storage class says: a whole REAL stays REAL, text keeps
 * its bytes. The public API's types do not offer it.
 */
import { OutpostError } from '../errors.js';
import { SQLITE_OK } from '../sqlite/constants.js';
import { heapBytes } from '../sqlite/heap.js';
import type { RawExports } from '../sqlite/wasm-api.js';
import type { SqlParam } from '../types.js';
import type { Statement, StatementHost } from './statements.js';
import { type StoredValue, isStoredValue } from './stored-value.js';

/** A parameter as the engine binds it: a public `SqlParam`, or an exact `StoredValue`. */
export type BindParam = SqlParam | StoredValue;
/** `SqlParams` widened to `BindParam`: every `SqlParams` is one. */
export type BindParams = readonly BindParam[] | { readonly [name: string]: BindParam };

/** Binds `params` to `stmt` (which has no bindings yet). */
export function bindParams(host: StatementHost, stmt: Statement, params: BindParams | undefined): void {
  const names = stmt.paramNames;
  if (params === undefined || params === null) {
    if (names.length > 0) throw bindError(stmt, `expects ${names.length} parameter(s), got none`);
    return;
  }
  if (Array.isArray(params)) {
    const list = params as readonly BindParam[];
    try {
      bindList(host, stmt, ...list);
    } catch (e) {
      // More values than the call stack has room to spread (hundreds of thousands): say what is wrong.
      if (e instanceof RangeError && list.length !== names.length) throw countError(stmt, list.length);
      throw e;
    }
    return;
  }
  const named = params as { readonly [name: string]: BindParam };
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

/**
 * Binds positional values, which arrive spread into a rest array. A rest array has one shape
 * whatever the caller's array held (V8 keeps arrays of small integers, of doubles and of
 * anything apart); reading the caller's array here directly made the first array of a new
 * shape deoptimize the whole per-call path of `run()` (in the classic suite: c04's pairs of
 * integers after c01–c03's mixed triples), to be compiled again at a later call's cost.
 */
function bindList(host: StatementHost, stmt: Statement, ...list: BindParam[]): void {
  const n = stmt.paramNames.length;
  if (list.length !== n) throw countError(stmt, list.length);
  for (let i = 0; i < n; i++) bindValue(host, stmt, i + 1, list[i]);
}

function countError(stmt: Statement, got: number): OutpostError {
  return bindError(stmt, `expects ${stmt.paramNames.length} parameter(s), got ${got}`);
}

/**
 * Binds one value at parameter `i` (1-based). Numbers, strings and null, the values of almost
 * every call, are told apart first and each bound by a short function; the rest (bigint,
 * boolean, bytes, a `StoredValue`) goes through `bindOther`, so the per-call path the JIT
 * optimizes stays small and does not change when a rare kind of value comes by.
 */
export function bindValue(host: StatementHost, stmt: Statement, i: number, v: BindParam | undefined): void {
  let rc: number;
  if (typeof v === 'number') rc = bindNumber(host.raw, stmt.ptr, i, v);
  else if (typeof v === 'string') rc = bindString(host, stmt, i, v);
  else if (v === null) rc = host.raw.sqlite3_bind_null(stmt.ptr, i);
  else return bindOther(host, stmt, i, v);
  if (rc !== SQLITE_OK) throw host.error(rc, stmt.sql);
}

/**
 * A number: INTEGER when it is a safe integer (32-bit through bind_int), else REAL. -0 is a
 * whole number to JavaScript, but only a REAL keeps its sign (found by the outside adversary).
 * The -0 test runs for every number, not only for zeros: the JIT has then seen it before it
 * optimizes, and the first zero bound does not deoptimize the call path.
 */
function bindNumber(x: RawExports, p: number, i: number, v: number): number {
  if (Object.is(v, -0) || !Number.isSafeInteger(v)) return x.sqlite3_bind_double(p, i, v);
  if (v >= -2147483648 && v <= 2147483647) return x.sqlite3_bind_int(p, i, v);
  return x.sqlite3_bind_int64(p, i, BigInt(v));
}

/** The values bound less often: bigint, boolean, bytes, a `StoredValue`; anything else is refused. */
function bindOther(host: StatementHost, stmt: Statement, i: number, v: BindParam | undefined): void {
  if (isStoredValue(v)) return bindStored(host, stmt, i, v);
  const x = host.raw;
  const p = stmt.ptr;
  let rc: number;
  if (typeof v === 'bigint') {
    if (v < -(2n ** 63n) || v >= 2n ** 63n) throw bindError(stmt, `value ${v} at parameter ${i} does not fit in 64 bits`);
    rc = x.sqlite3_bind_int64(p, i, v);
  } else if (typeof v === 'boolean') rc = x.sqlite3_bind_int(p, i, v ? 1 : 0);
  else if (v instanceof Uint8Array || v instanceof ArrayBuffer) {
    rc = bindBytes(host, stmt, i, v instanceof ArrayBuffer ? new Uint8Array(v) : v, 'blob');
  } else {
    throw bindError(stmt, `cannot bind a value of type ${v === undefined ? 'undefined' : typeof v} at parameter ${i}`);
  }
  if (rc !== SQLITE_OK) throw host.error(rc, stmt.sql);
}

/** Binds a stored value as exactly its storage class and content. */
function bindStored(host: StatementHost, stmt: Statement, i: number, v: StoredValue): void {
  const x = host.raw;
  let rc: number;
  switch (v.type) {
    case 'null':
      rc = x.sqlite3_bind_null(stmt.ptr, i);
      break;
    case 'integer':
      if (v.value < -(2n ** 63n) || v.value >= 2n ** 63n) throw bindError(stmt, `value ${v.value} at parameter ${i} does not fit in 64 bits`);
      rc = x.sqlite3_bind_int64(stmt.ptr, i, v.value);
      break;
    case 'real':
      rc = x.sqlite3_bind_double(stmt.ptr, i, v.value);
      break;
    case 'text':
    case 'blob':
      rc = bindBytes(host, stmt, i, v.bytes, v.type);
      break;
  }
  if (rc !== SQLITE_OK) throw host.error(rc, stmt.sql);
}

/** Strings up to this many UTF-16 units are encoded straight into WASM memory. */
const DIRECT_STRING_UNITS = 4096;
const textEncoder = new TextEncoder();

/**
 * Binds a string as UTF-8 TEXT. A short one (most parameters) is encoded straight into a WASM
 * allocation of its worst-case size, 3 bytes per UTF-16 unit: one allocation and one pass,
 * where the build's allocCString measures, allocates and copies character by character.
 */
function bindString(host: StatementHost, stmt: Statement, i: number, v: string): number {
  if (v.length > DIRECT_STRING_UNITS) return bindBytes(host, stmt, i, textEncoder.encode(v), 'text');
  const { wasm, capi } = host.sqlite3;
  const capacity = Math.max(1, v.length * 3);
  const ptr = wasm.alloc(capacity);
  const { written } = textEncoder.encodeInto(v, heapBytes(wasm.memory, ptr, capacity));
  return host.raw.sqlite3_bind_text(stmt.ptr, i, ptr, written, capi.SQLITE_WASM_DEALLOC);
}

/** Binds bytes as a BLOB, or as TEXT taken as they are (UTF-8 or not). */
function bindBytes(host: StatementHost, stmt: Statement, i: number, bytes: Uint8Array, as: 'text' | 'blob'): number {
  const { wasm, capi } = host.sqlite3;
  // A zero-length value still needs a non-null pointer, or SQLite binds NULL.
  const ptr = wasm.alloc(Math.max(1, bytes.length));
  heapBytes(wasm.memory, ptr, bytes.length).set(bytes);
  const bind = as === 'text' ? host.raw.sqlite3_bind_text : host.raw.sqlite3_bind_blob;
  return bind(stmt.ptr, i, ptr, bytes.length, capi.SQLITE_WASM_DEALLOC);
}

function bindError(stmt: Statement, what: string): OutpostError {
  return new OutpostError(`statement "${stmt.sql}" ${what}`, 'INVALID_ARGUMENT');
}
