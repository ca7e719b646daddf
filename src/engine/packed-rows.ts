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

  /** A TEXT value given as its UTF-8 bytes (a view into the WASM heap; copied here). */
  text(bytes: Uint8Array): void {
    const n = bytes.length;
    for (let i = 0; i < n; i++) {
      if (bytes[i]! >= 0x80) {
        this.next(CELL_STRING);
        this.strings.push(textDecoder.decode(bytes));
        return;
      }
    }
    this.next(CELL_ASCII);
    if (this.asciiBytes + n > this.ascii.length) {
      const grown = new Uint8Array(Math.max(this.ascii.length * 2, this.asciiBytes + n));
      grown.set(this.ascii.subarray(0, this.asciiBytes));
      this.ascii = grown;
    }
    this.ascii.set(bytes, this.asciiBytes);
    this.asciiBytes += n;
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

/** Reads the cells back in order, calling `cell(value, column)` for each (the reader's side). */
function forEachCell(rows: PackedRows, cell: (value: SqlValue, column: number) => void): void {
  const { types, numbers, asciiLengths, strings, bigints, blobs } = rows;
  const width = rows.columns.length;
  const ascii = rows.ascii.length > 0 ? textDecoder.decode(rows.ascii) : '';
  let asciiAt = 0;
  let asciiK = 0;
  let s = 0;
  let b = 0;
  let bl = 0;
  for (let i = 0, c = 0; i < types.length; i++, c = c + 1 === width ? 0 : c + 1) {
    switch (types[i]) {
      case CELL_NUMBER:
        cell(numbers[i]!, c);
        break;
      case CELL_ASCII: {
        const n = asciiLengths[asciiK++]!;
        cell(ascii.substring(asciiAt, asciiAt + n), c);
        asciiAt += n;
        break;
      }
      case CELL_STRING:
        cell(strings[s++]!, c);
        break;
      case CELL_BIGINT:
        cell(bigints[b++]!, c);
        break;
      case CELL_BLOB:
        cell(blobs[bl++]!, c);
        break;
      default:
        cell(null, c);
    }
  }
}

/** Rows as objects keyed by column name (a later duplicate name wins). */
export function unpackRows<T>(rows: PackedRows): T[] {
  const out: T[] = new Array<T>(rows.rowCount);
  const { columns } = rows;
  const last = columns.length - 1;
  let r = 0;
  let row: Record<string, SqlValue> = {};
  forEachCell(rows, (value, c) => {
    row[columns[c]!] = value;
    if (c === last) {
      out[r++] = row as T;
      row = {};
    }
  });
  return out;
}

/** Rows as arrays of values in column order (`stmt.values()`, `raw` mode). */
export function unpackValues(rows: PackedRows): SqlValue[][] {
  const out: SqlValue[][] = new Array<SqlValue[]>(rows.rowCount);
  const width = rows.columns.length;
  let r = 0;
  let row: SqlValue[] = new Array<SqlValue>(width);
  forEachCell(rows, (value, c) => {
    row[c] = value;
    if (c === width - 1) {
      out[r++] = row;
      row = new Array<SqlValue>(width);
    }
  });
  return out;
}
