/**
 * The wire format of query results: rows cross the worker boundary as a few typed arrays and
 * one byte buffer, not as one JS value per cell. Structured-cloning 500,000 separate values
 * costs more than reading them out of SQLite; cloning (or transferring) a handful of buffers
 * costs almost nothing.
 *
 * Layout, for `rowCount` rows of `columns.length` cells each, in row-major order:
 * - `types[cell]`: NULL, NUMBER (INTEGER that is a safe integer, or REAL), BIGINT, ASCII
 *   (TEXT that is pure ASCII), STRING (other TEXT), BLOB.
 * - `numbers[cell]`: the value of a NUMBER cell (0 otherwise).
 * - `ascii`: the bytes of every ASCII cell, concatenated in cell order; `asciiLengths[k]`
 *   is the length of the k-th ASCII cell. The reader decodes the whole buffer once and slices
 *   it, which is far cheaper than one TextDecoder call per value.
 * - `strings`, `bigints`, `blobs`: the other kinds, in cell order.
 *
 * `transferables(rows)` lists the buffers a sender should transfer instead of copying (none
 * for a small result, where copying is cheaper).
 */
import type { SqlValue } from '../types.js';

export const CELL_NULL = 0;
export const CELL_NUMBER = 1;
export const CELL_BIGINT = 2;
export const CELL_ASCII = 3;
export const CELL_STRING = 4;
export const CELL_BLOB = 5;

export interface PackedRows {
  columns: string[];
  rowCount: number;
  types: Uint8Array;
  numbers: Float64Array;
  ascii: Uint8Array;
  asciiLengths: Uint32Array;
  strings: string[];
  bigints: bigint[];
  blobs: Uint8Array[];
}

const textDecoder = new TextDecoder();

/** Builds a PackedRows cell by cell (the engine's side). */
export class RowPacker {
  private types = new Uint8Array(64);
  private numbers = new Float64Array(64);
  private cells = 0;
  private ascii = new Uint8Array(1024);
  private asciiBytes = 0;
  private asciiLengths = new Uint32Array(64);
  private asciiCount = 0;
  private readonly strings: string[] = [];
  private readonly bigints: bigint[] = [];
  private readonly blobs: Uint8Array[] = [];

  constructor(private readonly columns: string[]) {}

  private next(type: number): number {
    if (this.cells === this.types.length) {
      const types = new Uint8Array(this.types.length * 2);
      types.set(this.types);
      this.types = types;
      const numbers = new Float64Array(this.numbers.length * 2);
      numbers.set(this.numbers);
      this.numbers = numbers;
    }
    this.types[this.cells] = type;
    return this.cells++;
  }

  null(): void {
    this.next(CELL_NULL);
  }

  number(v: number): void {
    // Take the index first: `next` may replace `this.numbers` with a larger array, and
    // `this.numbers[this.next(...)] = v` would evaluate the old array before growing it.
    const cell = this.next(CELL_NUMBER);
    this.numbers[cell] = v;
  }

  bigint(v: bigint): void {
    this.next(CELL_BIGINT);
    this.bigints.push(v);
  }

  blob(bytes: Uint8Array): void {
    this.next(CELL_BLOB);
    this.blobs.push(bytes);
  }

  /** A TEXT value given as its UTF-8 bytes (copied here). */
  text(bytes: Uint8Array): void {
    this.textAt(bytes, 0, bytes.length);
  }

  /**
   * A TEXT value given as the UTF-8 bytes `heap[start, end)`, copied here. It copies byte by
   * byte while it checks for ASCII, with no view made per cell: a `subarray` per TEXT cell was
   * most of the garbage (and a fifth of the CPU) of a 100,000-row `query()`.
   */
  textAt(heap: Uint8Array, start: number, end: number): void {
    const n = end - start;
    if (this.asciiBytes + n > this.ascii.length) {
      const grown = new Uint8Array(Math.max(this.ascii.length * 2, this.asciiBytes + n));
      grown.set(this.ascii.subarray(0, this.asciiBytes));
      this.ascii = grown;
    }
    const ascii = this.ascii;
    let at = this.asciiBytes;
    for (let i = start; i < end; i++) {
      const c = heap[i]!;
      if (c >= 0x80) {
        // Not ASCII: the bytes copied so far past `asciiBytes` are simply overwritten later.
        this.next(CELL_STRING);
        this.strings.push(textDecoder.decode(heap.subarray(start, end)));
        return;
      }
      ascii[at++] = c;
    }
    this.next(CELL_ASCII);
    this.asciiBytes = at;
    if (this.asciiCount === this.asciiLengths.length) {
      const grown = new Uint32Array(this.asciiLengths.length * 2);
      grown.set(this.asciiLengths);
      this.asciiLengths = grown;
    }
    this.asciiLengths[this.asciiCount++] = n;
  }

  finish(rowCount: number): PackedRows {
    return {
      columns: this.columns,
      rowCount,
      types: this.types.subarray(0, this.cells),
      numbers: this.numbers.subarray(0, this.cells),
      ascii: this.ascii.subarray(0, this.asciiBytes),
      asciiLengths: this.asciiLengths.subarray(0, this.asciiCount),
      strings: this.strings,
      bigints: this.bigints,
      blobs: this.blobs,
    };
  }
}

/**
 * Below this many bytes in all, a result's buffers are copied, not transferred: each transfer
 * detaches a buffer and builds a new one on the other side, a fixed cost per buffer that is
 * more than copying a few kilobytes (a small result such as `SELECT 1` has four buffers, and
 * transferring them was a visible part of the round trip in the issue-15 profile).
 */
export const TRANSFER_MIN_BYTES = 64 * 1024;

/** The buffers of `rows` to transfer rather than copy: none for a small result. */
export function transferables(rows: PackedRows): ArrayBuffer[] {
  const buffers = new Set<ArrayBuffer>();
  let bytes = 0;
  for (const view of [rows.types, rows.numbers, rows.ascii, rows.asciiLengths, ...rows.blobs]) {
    if (view.buffer instanceof ArrayBuffer && !buffers.has(view.buffer)) {
      buffers.add(view.buffer);
      bytes += view.buffer.byteLength;
    }
  }
  return bytes < TRANSFER_MIN_BYTES ? [] : [...buffers];
}

/**
 * Reads the cells back in order (the reader's side), one `next()` per cell. A cursor object
 * rather than a callback per cell: the callback and the row it closed over were a tenth of a
 * 100,000-row `query()` on the page.
 */
class CellCursor {
  private readonly ascii: string;
  private asciiAt = 0;
  private asciiK = 0;
  private s = 0;
  private b = 0;
  private bl = 0;
  private i = 0;

  constructor(private readonly rows: PackedRows) {
    this.ascii = rows.ascii.length > 0 ? textDecoder.decode(rows.ascii) : '';
  }

  next(): SqlValue {
    const rows = this.rows;
    const i = this.i++;
    switch (rows.types[i]) {
      case CELL_NUMBER:
        return rows.numbers[i]!;
      case CELL_ASCII: {
        const n = rows.asciiLengths[this.asciiK++]!;
        const at = this.asciiAt;
        this.asciiAt = at + n;
        return this.ascii.substring(at, at + n);
      }
      case CELL_STRING:
        return rows.strings[this.s++]!;
      case CELL_BIGINT:
        return rows.bigints[this.b++]!;
      case CELL_BLOB:
        return rows.blobs[this.bl++]!;
      default:
        return null;
    }
  }
}

/** Rows as objects keyed by column name (a later duplicate name wins). */
export function unpackRows<T>(rows: PackedRows): T[] {
  const out: T[] = new Array<T>(rows.rowCount);
  const { columns } = rows;
  const width = columns.length;
  const cursor = new CellCursor(rows);
  for (let r = 0; r < rows.rowCount; r++) {
    const row: Record<string, SqlValue> = {};
    for (let c = 0; c < width; c++) row[columns[c]!] = cursor.next();
    out[r] = row as T;
  }
  return out;
}

/** Rows as arrays of values in column order (`stmt.values()`, `raw` mode). */
export function unpackValues(rows: PackedRows): SqlValue[][] {
  const out: SqlValue[][] = new Array<SqlValue[]>(rows.rowCount);
  const width = rows.columns.length;
  const cursor = new CellCursor(rows);
  for (let r = 0; r < rows.rowCount; r++) {
    const row = new Array<SqlValue>(width);
    for (let c = 0; c < width; c++) row[c] = cursor.next();
    out[r] = row;
  }
  return out;
}
