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
 * A small result (at most `SMALL_RESULT_CELLS` cells, such as `get()`'s one row) is instead
 * `values`, its cells as plain values in row-major order: cloning a few plain values costs a
 * fraction of cloning four typed arrays and their buffers, and allocating those arrays per call
 * was most of the engine's own time for a `SELECT 1` (issue 15). The packer starts plain and
 * turns typed at the first cell past the bound.
 *
 * `transferables(rows)` lists the buffers a sender should transfer instead of copying (none
 * for a small result, where copying is cheaper).
 *
 * Parts (issue 15): a large `query()` result leaves the engine in parts of about `PART_CELLS`
 * cells, each sent as soon as it is packed, while the engine steps on. The receiving thread
 * makes each part's objects as it arrives (`RowParts`), so the page's unpacking overlaps the
 * worker's stepping instead of following it, and the call resolves with the objects made
 * (`ObjectRows`). Every part but the last holds at least one row, and the last (the call's
 * answer) holds the rest; the rows are the parts' rows in order.
 */
import type { SqlValue } from '../types.js';

export const CELL_NULL = 0;
export const CELL_NUMBER = 1;
export const CELL_BIGINT = 2;
export const CELL_ASCII = 3;
export const CELL_STRING = 4;
export const CELL_BLOB = 5;

/** The cells of a result with many cells, packed by kind (see the header). */
export interface TypedRows {
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

/** The cells of a small result, as plain values in row-major order (see the header). */
export interface SmallRows {
  columns: string[];
  rowCount: number;
  values: SqlValue[];
}

export type PackedRows = TypedRows | SmallRows;

/** A result whose parts were made into objects as they arrived (`RowParts`, the header). */
export interface ObjectRows {
  columns: string[];
  rowCount: number;
  objects: Record<string, SqlValue>[];
}

/** What a `query()` answers on the receiving side: packed, or its parts' objects. */
export type QueryRows = PackedRows | ObjectRows;

/**
 * The cells after which a `query()` sends the rows packed so far as a part: about 13,000 rows
 * of 5 columns, half a megabyte of buffers.
 */
export const PART_CELLS = 64 * 1024;

/**
 * The most cells a result carries as plain values. Measured in Node (structuredClone, which
 * is what postMessage does on both sides): plain values cost less than the typed form up to
 * about 100 cells (2 against 10 us for one cell, 6 against 10 us for 64), and more beyond.
 */
export const SMALL_RESULT_CELLS = 64;

const textDecoder = new TextDecoder();

/** Decodes the UTF-8 in `heap[start, end)`; short ASCII strings skip TextDecoder's call overhead. */
export function decodeText(heap: Uint8Array, start: number, end: number): string {
  if (end - start <= 24) {
    let s = '';
    for (let i = start; i < end; i++) {
      const c = heap[i]!;
      if (c >= 0x80) return textDecoder.decode(heap.subarray(start, end));
      s += String.fromCharCode(c);
    }
    return s;
  }
  return textDecoder.decode(heap.subarray(start, end));
}

/** Typed arrays of no length: a packer holds these until its result outgrows plain values. */
const NO_TYPES = new Uint8Array(0);
const NO_NUMBERS = new Float64Array(0);
const NO_LENGTHS = new Uint32Array(0);

/**
 * Builds a PackedRows cell by cell (the engine's side): plain values up to
 * `SMALL_RESULT_CELLS` cells, then the typed form (the header).
 */
export class RowPacker {
  /** The cells so far while the result is small; null once it is typed. */
  private values: SqlValue[] | null = [];
  private types = NO_TYPES;
  private numbers = NO_NUMBERS;
  private cells = 0;
  private ascii = NO_TYPES;
  private asciiBytes = 0;
  private asciiLengths = NO_LENGTHS;
  private asciiCount = 0;
  private readonly strings: string[] = [];
  private readonly bigints: bigint[] = [];
  private readonly blobs: Uint8Array[] = [];

  /**
   * `hint`: start typed, with room for `cells` cells and `asciiBytes` ASCII bytes (a part after
   * the first: its size is known from the part before, so its buffers need not grow).
   */
  constructor(
    private readonly columns: string[],
    hint?: { cells: number; asciiBytes: number },
  ) {
    if (hint) this.typed(hint.cells, hint.asciiBytes);
  }

  /** Cells packed so far. */
  get cellCount(): number {
    return this.values ? this.values.length : this.cells;
  }

  /** A packer for the next part of the same result, sized from this one. */
  successor(): RowPacker {
    return new RowPacker(this.columns, { cells: Math.max(this.cells, PART_CELLS) + this.columns.length, asciiBytes: this.asciiBytes + (this.asciiBytes >> 3) });
  }

  private typed(cells: number, asciiBytes: number): void {
    this.values = null;
    this.types = new Uint8Array(cells);
    this.numbers = new Float64Array(cells);
    this.ascii = new Uint8Array(Math.max(asciiBytes, 1024));
    this.asciiLengths = new Uint32Array(Math.max(cells >> 1, 64));
  }

  /** A cell of a result still small; past the bound, the result turns typed. */
  private plain(v: SqlValue): void {
    const values = this.values!;
    values.push(v);
    if (values.length > SMALL_RESULT_CELLS) this.toTyped(values);
  }

  /** Packs the plain cells so far into the typed form, which takes every later cell. */
  private toTyped(values: SqlValue[]): void {
    this.typed(4 * SMALL_RESULT_CELLS, 1024);
    for (const v of values) {
      if (v === null) this.null();
      else if (typeof v === 'number') this.number(v);
      else if (typeof v === 'bigint') this.bigint(v);
      else if (typeof v === 'string') this.string(v);
      else this.blob(v);
    }
  }

  /** A TEXT value already decoded (only while turning typed): ASCII goes to the byte buffer. */
  private string(v: string): void {
    const n = v.length;
    for (let i = 0; i < n; i++) {
      if (v.charCodeAt(i) >= 0x80) {
        this.next(CELL_STRING);
        this.strings.push(v);
        return;
      }
    }
    this.reserveAscii(n);
    for (let i = 0; i < n; i++) this.ascii[this.asciiBytes + i] = v.charCodeAt(i);
    this.asciiCell(this.asciiBytes + n, n);
  }

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
    if (this.values) this.plain(null);
    else this.next(CELL_NULL);
  }

  number(v: number): void {
    if (this.values) return this.plain(v);
    // Take the index first: `next` may replace `this.numbers` with a larger array, and
    // `this.numbers[this.next(...)] = v` would evaluate the old array before growing it.
    const cell = this.next(CELL_NUMBER);
    this.numbers[cell] = v;
  }

  bigint(v: bigint): void {
    if (this.values) return this.plain(v);
    this.next(CELL_BIGINT);
    this.bigints.push(v);
  }

  blob(bytes: Uint8Array): void {
    if (this.values) return this.plain(bytes);
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
    if (this.values) return this.plain(decodeText(heap, start, end));
    const n = end - start;
    this.reserveAscii(n);
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
    this.asciiCell(at, n);
  }

  /** Room for `n` more ASCII bytes. */
  private reserveAscii(n: number): void {
    if (this.asciiBytes + n > this.ascii.length) {
      const grown = new Uint8Array(Math.max(this.ascii.length * 2, this.asciiBytes + n));
      grown.set(this.ascii.subarray(0, this.asciiBytes));
      this.ascii = grown;
    }
  }

  /** Ends an ASCII cell of `n` bytes, whose bytes end at `end` of the buffer. */
  private asciiCell(end: number, n: number): void {
    this.next(CELL_ASCII);
    this.asciiBytes = end;
    if (this.asciiCount === this.asciiLengths.length) {
      const grown = new Uint32Array(this.asciiLengths.length * 2);
      grown.set(this.asciiLengths);
      this.asciiLengths = grown;
    }
    this.asciiLengths[this.asciiCount++] = n;
  }

  finish(rowCount: number): PackedRows {
    if (this.values) return { columns: this.columns, rowCount, values: this.values };
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
export function transferables(rows: QueryRows): ArrayBuffer[] {
  if ('objects' in rows) return [];
  // A small result's BLOBs (one large BLOB is a small result) are its only buffers.
  const views = 'values' in rows ? rows.values.filter((v) => v instanceof Uint8Array) : [rows.types, rows.numbers, rows.ascii, rows.asciiLengths, ...rows.blobs];
  const buffers = new Set<ArrayBuffer>();
  let bytes = 0;
  for (const view of views) {
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

  constructor(private readonly rows: TypedRows) {
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

/**
 * Each row starts as a copy of this template (every column's key in order, each null) and is
 * filled in: storing into keys a row already has avoids walking shape transitions per key
 * through a lookup shared by every column name of every query. A duplicate name keeps its first
 * place and its last value, as when the keys were added one by one. In a synthetic Node test
 * (100,000 rows of 5 columns) this took 30-47 against 73-90 CPU ms; in the engine's own
 * pipeline (bench/query-cpu.ts) the difference was within the noise of a loaded machine.
 */
function rowTemplate(columns: string[]): Record<string, SqlValue> {
  const template: Record<string, SqlValue> = {};
  // A `__proto__` column's value may set a row's prototype, and later keys then behave as
  // that prototype says: such rows are built key by key from an empty template, as always.
  if (!columns.includes('__proto__')) for (const c of columns) template[c] = null;
  return template;
}

/** Rows as objects keyed by column name (a later duplicate name wins). */
export function unpackRows<T>(rows: QueryRows): T[] {
  // Made by `RowParts` from rows of this shape; the caller names their type, as for the others.
  if ('objects' in rows) return rows.objects as T[];
  const out: T[] = new Array<T>(rows.rowCount);
  const { columns } = rows;
  const width = columns.length;
  const template = rowTemplate(columns);
  if ('values' in rows) {
    const { values } = rows;
    for (let r = 0, i = 0; r < rows.rowCount; r++) {
      const row = { ...template };
      for (let c = 0; c < width; c++) row[columns[c]!] = values[i++]!;
      out[r] = row as T;
    }
    return out;
  }
  // The cursor's reads, inlined: a call per cell was a third of this loop.
  const { types, numbers, asciiLengths, strings, bigints, blobs } = rows;
  const ascii = rows.ascii.length > 0 ? textDecoder.decode(rows.ascii) : '';
  let asciiAt = 0;
  let asciiK = 0;
  let s = 0;
  let b = 0;
  let bl = 0;
  for (let r = 0, i = 0; r < rows.rowCount; r++) {
    const row = { ...template };
    for (let c = 0; c < width; c++, i++) {
      let v: SqlValue = null;
      switch (types[i]) {
        case CELL_NUMBER:
          v = numbers[i]!;
          break;
        case CELL_ASCII: {
          const at = asciiAt;
          asciiAt += asciiLengths[asciiK++]!;
          v = ascii.substring(at, asciiAt);
          break;
        }
        case CELL_STRING:
          v = strings[s++]!;
          break;
        case CELL_BIGINT:
          v = bigints[b++]!;
          break;
        case CELL_BLOB:
          v = blobs[bl++]!;
          break;
      }
      row[columns[c]!] = v;
    }
    out[r] = row as T;
  }
  return out;
}

/** Rows as arrays of values in column order (`stmt.values()`, `raw` mode). */
export function unpackValues(rows: PackedRows): SqlValue[][] {
  const out: SqlValue[][] = new Array<SqlValue[]>(rows.rowCount);
  const width = rows.columns.length;
  if ('values' in rows) {
    for (let r = 0; r < rows.rowCount; r++) out[r] = rows.values.slice(r * width, (r + 1) * width);
    return out;
  }
  const cursor = new CellCursor(rows);
  for (let r = 0; r < rows.rowCount; r++) {
    const row = new Array<SqlValue>(width);
    for (let c = 0; c < width; c++) row[c] = cursor.next();
    out[r] = row;
  }
  return out;
}

/**
 * The receiving side of a result that arrives in parts (see the header): each part is made
 * into objects as it arrives, and `finish` adds the answer's rows to them.
 */
export class RowParts {
  private readonly parts: Record<string, SqlValue>[][] = [];

  add(part: PackedRows): void {
    this.parts.push(unpackRows(part));
  }

  finish(last: QueryRows): ObjectRows {
    this.parts.push(unpackRows(last));
    const objects = ([] as Record<string, SqlValue>[]).concat(...this.parts);
    return { columns: last.columns, rowCount: objects.length, objects };
  }
}
