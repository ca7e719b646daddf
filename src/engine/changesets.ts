/**
 * Session changesets at the pointer level: decoding one into row changes, and applying one
 * with a conflict policy the caller chooses. The WASM pointer work stays in this file, so raw
 * pointers never leave engine/; `Connection.decodeChangeset` and `Connection.applyChangeset`
 * are the only way in. Which policy replay uses is the sync layer's decision
 * (sync/changeset.ts).
 */
import {
  SQLITE_CHANGESET_ABORT,
  SQLITE_CHANGESET_CONFLICT,
  SQLITE_CHANGESET_CONSTRAINT,
  SQLITE_CHANGESET_DATA,
  SQLITE_CHANGESET_FOREIGN_KEY,
  SQLITE_CHANGESET_NOTFOUND,
  SQLITE_CHANGESET_OMIT,
  SQLITE_CHANGESET_REPLACE,
  SQLITE_BLOB,
  SQLITE_DELETE,
  SQLITE_FLOAT,
  SQLITE_INSERT,
  SQLITE_INTEGER,
  SQLITE_NULL,
  SQLITE_OK,
  SQLITE_ROW,
  SQLITE_TEXT,
  SQLITE_UPDATE,
} from '../sqlite/constants.js';
import { type RawExports, type Sqlite3Runtime, rawExports } from '../sqlite/wasm-api.js';
import type { StoredValue } from './stored-value.js';

/** The conflict kinds `sqlite3changeset_apply` reports, by their code. */
const CONFLICT_KINDS: Record<number, ChangesetConflict> = {
  [SQLITE_CHANGESET_DATA]: 'data',
  [SQLITE_CHANGESET_NOTFOUND]: 'notfound',
  [SQLITE_CHANGESET_CONFLICT]: 'conflict',
  [SQLITE_CHANGESET_CONSTRAINT]: 'constraint',
  [SQLITE_CHANGESET_FOREIGN_KEY]: 'foreign_key',
};
/** The answers a conflict handler returns, by name. */
const RESOLUTION_CODES: Record<ConflictResolution, number> = { omit: SQLITE_CHANGESET_OMIT, replace: SQLITE_CHANGESET_REPLACE, abort: SQLITE_CHANGESET_ABORT };

/**
 * One row change of a changeset. Values keep their storage class and bytes (`StoredValue`), so
 * a REAL 3.0, an empty BLOB or text that is not UTF-8 reach the other side as they were stored.
 */
export interface ChangesetRow {
  table: string;
  op: 'insert' | 'update' | 'delete';
  /** Per column: part of the primary key (for rowid tables, column 0 is the rowid). */
  pk: boolean[];
  /** Old values (update and delete); `undefined` where the changeset has none. */
  before: (StoredValue | undefined)[];
  /** New values (insert and update); `undefined` for columns an update did not change. */
  after: (StoredValue | undefined)[];
}

/**
 * Why a change did not apply cleanly (SQLITE_CHANGESET_*): `data` the row exists with other
 * values than the change expected, `notfound` the row is gone, `conflict` an insert found its
 * key taken, `constraint` and `foreign_key` the change breaks one.
 */
export type ChangesetConflict = 'data' | 'notfound' | 'conflict' | 'constraint' | 'foreign_key';

/** What to do about a conflict: leave the change out, apply it over what is there, or stop. */
export type ConflictResolution = 'omit' | 'replace' | 'abort';

/** Decodes a changeset into row changes, in changeset order. */
export function decodeChangeset(sqlite3: Sqlite3Runtime, changeset: Uint8Array): ChangesetRow[] {
  if (changeset.length === 0) return [];
  const { capi, wasm } = sqlite3;
  const raw = rawExports(sqlite3);
  const out: ChangesetRow[] = [];
  const pData = wasm.allocFromTypedArray(changeset);
  const pIter = wasm.alloc(wasm.ptr.size);
  const pTab = wasm.alloc(wasm.ptr.size);
  const pN = wasm.alloc(4);
  const pOp = wasm.alloc(4);
  const pIndirect = wasm.alloc(4);
  const pPk = wasm.alloc(wasm.ptr.size);
  const pVal = wasm.alloc(wasm.ptr.size);
  try {
    let rc = capi.sqlite3changeset_start(pIter, changeset.length, pData);
    if (rc !== SQLITE_OK) throw new Error(`invalid changeset (${rc})`);
    const it = wasm.peekPtr(pIter);
    try {
      while ((rc = capi.sqlite3changeset_next(it)) === SQLITE_ROW) {
        capi.sqlite3changeset_op(it, pTab, pN, pOp, pIndirect);
        const table = wasm.cstrToJs(wasm.peekPtr(pTab));
        const n = wasm.peek32(pN);
        const opCode = wasm.peek32(pOp);
        capi.sqlite3changeset_pk(it, pPk, pN);
        const pkPtr = wasm.peekPtr(pPk);
        const pk = [...wasm.heap8u().subarray(pkPtr, pkPtr + n)].map((b) => b !== 0);
        const op = opCode === SQLITE_INSERT ? 'insert' : opCode === SQLITE_DELETE ? 'delete' : opCode === SQLITE_UPDATE ? 'update' : null;
        if (!op) throw new Error(`unknown changeset operation ${opCode}`);
        const before: (StoredValue | undefined)[] = [];
        const after: (StoredValue | undefined)[] = [];
        for (let i = 0; i < n; i++) {
          if (op !== 'insert') {
            capi.sqlite3changeset_old(it, i, pVal);
            const v = wasm.peekPtr(pVal);
            before.push(v ? storedValue(raw, wasm.heap8u(), v) : undefined);
          }
          if (op !== 'delete') {
            capi.sqlite3changeset_new(it, i, pVal);
            const v = wasm.peekPtr(pVal);
            after.push(v ? storedValue(raw, wasm.heap8u(), v) : undefined);
          }
        }
        out.push({ table, op, pk, before, after });
      }
    } finally {
      capi.sqlite3changeset_finalize(it);
    }
  } finally {
    for (const p of [pData, pIter, pTab, pN, pOp, pIndirect, pPk, pVal]) wasm.dealloc(p);
  }
  return out;
}

/**
 * A `sqlite3_value` as its storage class and content. Text is read as the bytes the changeset
 * holds (never decoded, so invalid UTF-8 stays as it was); a zero-length blob or text has a
 * null pointer, and is still a BLOB or TEXT, never NULL.
 */
function storedValue(raw: RawExports, heap: Uint8Array, v: number): StoredValue {
  switch (raw.sqlite3_value_type(v)) {
    case SQLITE_INTEGER:
      return { type: 'integer', value: raw.sqlite3_value_int64(v) };
    case SQLITE_FLOAT:
      return { type: 'real', value: raw.sqlite3_value_double(v) };
    case SQLITE_TEXT: {
      // The pointer first: sqlite3_value_bytes is only meaningful after the conversion it may do.
      const p = raw.sqlite3_value_text(v);
      const n = raw.sqlite3_value_bytes(v);
      return { type: 'text', bytes: p ? heap.slice(p, p + n) : new Uint8Array(0) };
    }
    case SQLITE_BLOB: {
      const p = raw.sqlite3_value_blob(v);
      const n = raw.sqlite3_value_bytes(v);
      return { type: 'blob', bytes: p ? heap.slice(p, p + n) : new Uint8Array(0) };
    }
    case SQLITE_NULL:
      return { type: 'null' };
    default:
      throw new Error(`unknown value type ${raw.sqlite3_value_type(v)} in a changeset`);
  }
}

/** The operation codes of the changeset format. */
const OP_CODES = { insert: SQLITE_INSERT, update: SQLITE_UPDATE, delete: SQLITE_DELETE } as const;

/**
 * Encodes row changes as a changeset that `decodeChangeset` and `applyChangeset` read, in the
 * session extension's format: for each run of changes to one table a header (`T`, the column
 * count as a varint, one primary-key flag byte per column, the table name NUL-terminated),
 * then per change its operation code, an indirect flag (0), and its old values (update and
 * delete) and new values (insert and update). A value is a type byte and its content: 0 none,
 * 1 INTEGER (8 bytes, big-endian), 2 REAL (8 bytes, big-endian IEEE), 3 TEXT and 4 BLOB (a
 * varint length, the bytes), 5 NULL. The sync layer uses it to rewrite a change record.
 */
export function encodeChangeset(rows: readonly ChangesetRow[]): Uint8Array {
  const out: number[] = [];
  let header = '';
  for (const row of rows) {
    const rowHeader = `${row.table}\u0000${row.pk.map((k) => (k ? 1 : 0)).join('')}`;
    if (rowHeader !== header) {
      header = rowHeader;
      out.push(0x54);
      pushVarint(out, row.pk.length);
      for (const k of row.pk) out.push(k ? 1 : 0);
      for (const b of new TextEncoder().encode(row.table)) out.push(b);
      out.push(0);
    }
    out.push(OP_CODES[row.op], 0);
    if (row.op !== 'insert') for (let i = 0; i < row.pk.length; i++) pushValue(out, row.before[i]);
    if (row.op !== 'delete') for (let i = 0; i < row.pk.length; i++) pushValue(out, row.after[i]);
  }
  return Uint8Array.from(out);
}

function pushValue(out: number[], v: StoredValue | undefined): void {
  if (v === undefined) {
    out.push(0);
    return;
  }
  switch (v.type) {
    case 'null':
      out.push(5);
      return;
    case 'integer':
    case 'real': {
      const bytes = new Uint8Array(8);
      const view = new DataView(bytes.buffer);
      if (v.type === 'integer') view.setBigInt64(0, v.value);
      else view.setFloat64(0, v.value);
      out.push(v.type === 'integer' ? 1 : 2, ...bytes);
      return;
    }
    case 'text':
    case 'blob':
      out.push(v.type === 'text' ? 3 : 4);
      pushVarint(out, v.bytes.length);
      for (const b of v.bytes) out.push(b);
      return;
  }
}

/** SQLite's varint for the small lengths a changeset holds: 7 bits a byte, most significant first. */
function pushVarint(out: number[], n: number): void {
  const groups: number[] = [];
  do {
    groups.unshift(n & 0x7f);
    n = Math.floor(n / 128);
  } while (n > 0);
  groups.forEach((g, i) => out.push(i < groups.length - 1 ? g | 0x80 : g));
}

/** Applies a changeset to the database `db`, asking `onConflict` about every conflict. */
export function applyChangeset(
  sqlite3: Sqlite3Runtime,
  db: number,
  changeset: Uint8Array,
  onConflict: (conflict: ChangesetConflict) => ConflictResolution,
): void {
  if (changeset.length === 0) return;
  const { capi, wasm } = sqlite3;
  const p = wasm.allocFromTypedArray(changeset);
  try {
    const rc = capi.sqlite3changeset_apply(db, changeset.length, p, 0, (_ctx: number, code: number) => {
      const kind = CONFLICT_KINDS[code];
      // A code this build does not list: stop rather than guess.
      return kind ? RESOLUTION_CODES[onConflict(kind)] : RESOLUTION_CODES.abort;
    }, 0);
    if (rc !== SQLITE_OK) throw new Error(`applying a changeset failed (${capi.sqlite3_js_rc_str(rc) ?? rc}): ${capi.sqlite3_errmsg(db)}`);
  } finally {
    wasm.dealloc(p);
  }
}
