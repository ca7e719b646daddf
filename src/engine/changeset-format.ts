/**
 * The session extension's changeset format, read and written in plain JS: no SQLite, no WASM
 * heap. A service worker (or any code without a connection) can turn change records into push
 * batches with it, and the sync layer decodes records for push and replay without a round
 * trip through the engine per value. Pure: imports only the `StoredValue` type.
 *
 * Layout (SQLite's sqlite3session.c, "changeset format"): for each run of changes to one table
 * a header (`T`, the column count as a varint, one byte per column holding its 1-based place in
 * the primary key or 0, the table name NUL-terminated), then per change its operation code (SQLITE_INSERT 18, SQLITE_UPDATE 23,
 * SQLITE_DELETE 9), an indirect flag byte (1 when a trigger or a foreign-key action made the
 * change), and its old values (update and delete) then its new values (insert and update). A
 * value is a type byte and its content: 0 none (a column an update did not touch), 1 INTEGER
 * (8 bytes, big-endian two's complement), 2 REAL (8 bytes, big-endian IEEE 754), 3 TEXT and 4
 * BLOB (a varint length, the bytes; text is kept as bytes, never decoded), 5 NULL. Varints are
 * SQLite's: 7 bits a byte, most significant first, the high bit set on all but the last (the
 * ninth byte, if reached, carries 8 bits).
 *
 * `encodeChangeset(decodeChangeset(c))` gives `c` back byte for byte for any changeset SQLite
 * writes (test/changeset-format.test.ts checks that over generated ones).
 */
import type { StoredValue } from './stored-value.js';

/**
 * One row change of a changeset. Values keep their storage class and bytes (`StoredValue`), so
 * a REAL 3.0, an empty BLOB or text that is not UTF-8 reach the other side as they were stored.
 */
export interface ChangesetRow {
  table: string;
  op: 'insert' | 'update' | 'delete';
  /** Per column: part of the primary key (for rowid tables, column 0 is the rowid). */
  pk: boolean[];
  /**
   * Per column: its place in the primary key, 1-based (0 for other columns), as the changeset
   * header holds it. SQLite applies a changeset to a table only when these match the table's
   * key exactly, so a composite key declared out of column order (`PRIMARY KEY (b, a)`) needs
   * them. Absent (the decoder leaves it out unless it differs), `pk` numbers the key columns in
   * column order.
   */
  keyPositions?: number[];
  /** Old values (update and delete); `undefined` where the changeset has none. */
  before: (StoredValue | undefined)[];
  /** New values (insert and update); `undefined` for columns an update did not change. */
  after: (StoredValue | undefined)[];
  /** Made by a trigger or a foreign-key action rather than by a statement; absent means false. */
  indirect?: boolean;
}

const TABLE_HEADER = 0x54; // 'T'
const PATCHSET_HEADER = 0x50; // 'P'
const OP_INSERT = 18;
const OP_UPDATE = 23;
const OP_DELETE = 9;
const OP_CODES = { insert: OP_INSERT, update: OP_UPDATE, delete: OP_DELETE } as const;
const VALUE_NONE = 0;
const VALUE_INTEGER = 1;
const VALUE_REAL = 2;
const VALUE_TEXT = 3;
const VALUE_BLOB = 4;
const VALUE_NULL = 5;

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Why a changeset could not be read: it names the byte where reading stopped. */
export class ChangesetFormatError extends Error {
  override name = 'ChangesetFormatError';
}

/** Decodes a changeset into row changes, in changeset order. Throws `ChangesetFormatError` on bytes SQLite would not write. */
export function decodeChangeset(changeset: Uint8Array): ChangesetRow[] {
  return new ChangesetReader(changeset).rows();
}

interface TableHeader {
  name: string;
  keyPositions: number[];
  /** The key's places differ from numbering its columns in column order. */
  outOfOrder: boolean;
}

class ChangesetReader {
  private at = 0;
  private readonly view: DataView;

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  rows(): ChangesetRow[] {
    const out: ChangesetRow[] = [];
    let table: TableHeader | null = null;
    while (this.at < this.bytes.length) {
      const code = this.byte();
      if (code === TABLE_HEADER) {
        table = this.tableHeader();
        continue;
      }
      if (code === PATCHSET_HEADER) this.fail('a patchset, not a changeset');
      if (!table) this.fail('a change before any table header');
      out.push(this.change(code, table));
    }
    return out;
  }

  private tableHeader(): TableHeader {
    const columns = this.varint();
    if (columns < 1 || columns > 32767) this.fail(`a table of ${columns} columns`);
    const keyPositions: number[] = [];
    for (let i = 0; i < columns; i++) keyPositions.push(this.byte());
    const end = this.bytes.indexOf(0, this.at);
    if (end < 0) this.fail('a table name without its terminating NUL');
    let name: string;
    try {
      name = strictUtf8.decode(this.bytes.subarray(this.at, end));
    } catch {
      this.fail('a table name that is not UTF-8');
    }
    this.at = end + 1;
    let next = 0;
    const outOfOrder = keyPositions.some((p) => p !== (p === 0 ? 0 : ++next));
    return { name, keyPositions, outOfOrder };
  }

  private change(code: number, table: TableHeader): ChangesetRow {
    const op = code === OP_INSERT ? 'insert' : code === OP_UPDATE ? 'update' : code === OP_DELETE ? 'delete' : this.fail(`operation code ${code}`);
    const indirect = this.byte() !== 0;
    const n = table.keyPositions.length;
    const before = op === 'insert' ? [] : this.values(n);
    const after = op === 'delete' ? [] : this.values(n);
    const pk = table.keyPositions.map((p) => p !== 0);
    const row: ChangesetRow = { table: table.name, op, pk, before, after };
    if (table.outOfOrder) row.keyPositions = [...table.keyPositions];
    if (indirect) row.indirect = true;
    return row;
  }

  private values(n: number): (StoredValue | undefined)[] {
    const out: (StoredValue | undefined)[] = [];
    for (let i = 0; i < n; i++) out.push(this.value());
    return out;
  }

  private value(): StoredValue | undefined {
    const type = this.byte();
    switch (type) {
      case VALUE_NONE:
        return undefined;
      case VALUE_NULL:
        return { type: 'null' };
      case VALUE_INTEGER:
        return { type: 'integer', value: this.view.getBigInt64(this.take(8)) };
      case VALUE_REAL:
        return { type: 'real', value: this.view.getFloat64(this.take(8)) };
      case VALUE_TEXT:
      case VALUE_BLOB: {
        const length = this.varint();
        const start = this.take(length);
        // A copy: the caller may keep values long after the changeset's buffer is reused.
        const bytes = this.bytes.slice(start, start + length);
        return type === VALUE_TEXT ? { type: 'text', bytes } : { type: 'blob', bytes };
      }
      default:
        return this.fail(`value type ${type}`);
    }
  }

  private byte(): number {
    const b = this.bytes[this.at];
    if (b === undefined) this.fail('the end of the changeset inside a change');
    this.at++;
    return b;
  }

  /** Advances past `n` bytes and returns where they start. */
  private take(n: number): number {
    if (this.at + n > this.bytes.length) this.fail(`the end of the changeset inside a ${n}-byte value`);
    const start = this.at;
    this.at += n;
    return start;
  }

  private varint(): number {
    let n = 0;
    for (let i = 0; i < 9; i++) {
      const b = this.byte();
      if (i === 8) return n * 256 + b;
      n = n * 128 + (b & 0x7f);
      if ((b & 0x80) === 0) break;
    }
    if (!Number.isSafeInteger(n)) this.fail('a length past 2^53');
    return n;
  }

  private fail(what: string): never {
    throw new ChangesetFormatError(`invalid changeset: ${what} at byte ${this.at} of ${this.bytes.length}`);
  }
}

/**
 * Encodes row changes as a changeset, in the format `decodeChangeset` and SQLite read. Changes
 * to one table next to each other share its header, as SQLite writes them.
 */
export function encodeChangeset(rows: readonly ChangesetRow[]): Uint8Array {
  const out = new ByteWriter();
  let header = '';
  for (const row of rows) {
    const positions = keyPositionsOf(row);
    const rowHeader = `${row.table}\u0000${positions.join(',')}`;
    if (rowHeader !== header) {
      header = rowHeader;
      out.byte(TABLE_HEADER);
      out.varint(positions.length);
      for (const p of positions) out.byte(p);
      out.bytes(utf8.encode(row.table));
      out.byte(0);
    }
    out.byte(OP_CODES[row.op]);
    out.byte(row.indirect ? 1 : 0);
    if (row.op !== 'insert') for (let i = 0; i < row.pk.length; i++) out.value(row.before[i]);
    if (row.op !== 'delete') for (let i = 0; i < row.pk.length; i++) out.value(row.after[i]);
  }
  return out.result();
}

/** Each column's 1-based place in the key (0 for others): as recorded, or numbered in column order. */
function keyPositionsOf(row: ChangesetRow): number[] {
  if (row.keyPositions) {
    if (row.keyPositions.length !== row.pk.length || row.keyPositions.some((p, i) => (p !== 0) !== row.pk[i])) {
      throw new ChangesetFormatError(`invalid change to ${row.table}: its key positions disagree with its key columns`);
    }
    return row.keyPositions;
  }
  let next = 0;
  return row.pk.map((k) => (k ? ++next : 0));
}

/** A growable byte buffer. */
class ByteWriter {
  private buffer = new Uint8Array(256);
  private view = new DataView(this.buffer.buffer);
  private length = 0;

  byte(b: number): void {
    this.room(1);
    this.buffer[this.length++] = b;
  }

  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buffer.set(b, this.length);
    this.length += b.length;
  }

  value(v: StoredValue | undefined): void {
    if (v === undefined) return this.byte(VALUE_NONE);
    switch (v.type) {
      case 'null':
        return this.byte(VALUE_NULL);
      case 'integer':
        this.byte(VALUE_INTEGER);
        this.room(8);
        this.view.setBigInt64(this.length, v.value);
        this.length += 8;
        return;
      case 'real':
        this.byte(VALUE_REAL);
        this.room(8);
        this.view.setFloat64(this.length, v.value);
        this.length += 8;
        return;
      case 'text':
      case 'blob':
        this.byte(v.type === 'text' ? VALUE_TEXT : VALUE_BLOB);
        this.varint(v.bytes.length);
        return this.bytes(v.bytes);
    }
  }

  /** SQLite's varint for lengths below 2^56 (all a changeset holds): 7 bits a byte, most significant first. */
  varint(n: number): void {
    const groups: number[] = [];
    do {
      groups.unshift(n % 128);
      n = Math.floor(n / 128);
    } while (n > 0);
    groups.forEach((g, i) => this.byte(i < groups.length - 1 ? g | 0x80 : g));
  }

  result(): Uint8Array {
    return this.buffer.slice(0, this.length);
  }

  private room(n: number): void {
    if (this.length + n <= this.buffer.length) return;
    const grown = new Uint8Array(Math.max(this.buffer.length * 2, this.length + n));
    grown.set(this.buffer.subarray(0, this.length));
    this.buffer = grown;
    this.view = new DataView(grown.buffer);
  }
}
