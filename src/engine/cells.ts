/**
 * Reading result cells: the one switch over SQLite's column types, feeding a `CellSink`.
 *
 * Two sinks exist: the `RowPacker` of packed-rows.ts (`query()`, the hot path, which packs
 * cells for the worker boundary) and `ValueSink` (one JS value at a time: `value()`,
 * `execute()`, `execMany()`). The reader allocates nothing per cell beyond the value itself: a
 * TEXT cell is handed over as a byte range of the WASM heap, a BLOB as a copy. (A range, not a
 * `subarray` view: creating a typed-array view per cell made `execute()` of 20,000 rows of
 * short strings about 50% slower. The packer makes its view itself, as it always did.)
 *
 * Value mapping: INTEGER -> number when it is a safe integer, else bigint (always bigint with
 * `intMode: 'bigint'`); REAL -> number; TEXT -> string; BLOB -> Uint8Array (a copy); NULL -> null.
 */
import { SQLITE_BLOB, SQLITE_FLOAT, SQLITE_INTEGER, SQLITE_NOMEM, SQLITE_TEXT } from '../sqlite/constants.js';
import { sqliteError } from '../sqlite/errors.js';
import type { RawExports, Sqlite3Runtime } from '../sqlite/wasm-api.js';
import type { SqlValue } from '../types.js';
import { decodeText } from './packed-rows.js';

/** Receives one cell at a time, in row-major order. */
export interface CellSink {
  null(): void;
  number(v: number): void;
  bigint(v: bigint): void;
  /** A TEXT value: its UTF-8 bytes are `heap[start, end)`, valid until the next step. */
  textAt(heap: Uint8Array, start: number, end: number): void;
  /** A BLOB value, already copied out of the heap. */
  blob(bytes: Uint8Array): void;
}

/** A sink that keeps the last cell as a JS value. */
export class ValueSink implements CellSink {
  value: SqlValue = null;

  null(): void {
    this.value = null;
  }

  number(v: number): void {
    this.value = v;
  }

  bigint(v: bigint): void {
    this.value = v;
  }

  textAt(heap: Uint8Array, start: number, end: number): void {
    this.value = decodeText(heap, start, end);
  }

  blob(bytes: Uint8Array): void {
    this.value = bytes;
  }
}

/** Reads the cells of a connection's statements. */
export class CellReader {
  private readonly valueSink = new ValueSink();

  constructor(
    private readonly raw: RawExports,
    private readonly sqlite3: Sqlite3Runtime,
    /** `intMode: 'bigint'`: every INTEGER as bigint. */
    private readonly bigints: boolean,
  ) {}

  /**
   * The WASM heap as last seen. Growing the memory detaches the old buffer, which makes this
   * view empty, so a range past its end means "look again"; asking the runtime per cell (it
   * reads `memory.buffer` each time) was a visible cost of reading many TEXT cells. An empty
   * range (p + n = 0: SQLite gives an empty BLOB a null pointer) is never past its end, so an
   * empty BLOB is made without the view, which may be detached (slicing it threw).
   */
  private heap: Uint8Array = new Uint8Array(0);

  private heapFor(end: number): Uint8Array {
    if (end > this.heap.length) this.heap = this.sqlite3.wasm.heap8u();
    return this.heap;
  }

  /** Feeds column `i` of the current row of `stmt` to `sink`. */
  read(stmt: number, i: number, sink: CellSink): void {
    const x = this.raw;
    switch (x.sqlite3_column_type(stmt, i)) {
      case SQLITE_INTEGER: {
        if (this.bigints) return sink.bigint(x.sqlite3_column_int64(stmt, i));
        const d = x.sqlite3_column_double(stmt, i);
        // A double that is a safe integer is exact; otherwise read all 64 bits.
        return Number.isSafeInteger(d) ? sink.number(d) : sink.bigint(x.sqlite3_column_int64(stmt, i));
      }
      case SQLITE_FLOAT:
        return sink.number(x.sqlite3_column_double(stmt, i));
      case SQLITE_TEXT: {
        const p = x.sqlite3_column_text(stmt, i);
        const n = x.sqlite3_column_bytes(stmt, i);
        if (p === 0 && n > 0) throw this.outOfMemory();
        return sink.textAt(this.heapFor(p + n), p, p + n);
      }
      case SQLITE_BLOB: {
        const p = x.sqlite3_column_blob(stmt, i);
        const n = x.sqlite3_column_bytes(stmt, i);
        if (p === 0 && n > 0) throw this.outOfMemory();
        return sink.blob(n === 0 ? new Uint8Array(0) : this.heapFor(p + n).slice(p, p + n));
      }
      default:
        return sink.null();
    }
  }

  /**
   * A cell SQLite could not hand over: making it (a `zeroblob` filled in as it is read) needed
   * memory the allocator refused. Its length is still reported, so reading on would copy the
   * first bytes of the heap (other data) as the value.
   */
  private outOfMemory(): Error {
    return sqliteError(this.sqlite3, SQLITE_NOMEM, { message: 'out of memory while reading a result value' });
  }

  /** Column `i` of the current row of `stmt` as a JS value. */
  value(stmt: number, i: number): SqlValue {
    this.read(stmt, i, this.valueSink);
    const v = this.valueSink.value;
    // Do not keep the last BLOB or string alive through the sink.
    this.valueSink.value = null;
    return v;
  }
}
