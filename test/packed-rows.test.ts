/** The wire format of query results: what the engine packs, the page unpacks unchanged. */
import { expect, test } from 'vitest';
import { RowPacker, SMALL_RESULT_CELLS, TRANSFER_MIN_BYTES, transferables, unpackRows, unpackValues } from '../src/engine/packed-rows.js';
import type { SqlValue } from '../src/types.js';
import { int, pick, rng, sqlValue, testSeed } from './support/generate.js';

const encoder = new TextEncoder();

/** Packs `rows` as the engine does, each TEXT cell given as a range of a larger "heap". */
function pack(columns: string[], rows: SqlValue[][], random: () => number): ReturnType<RowPacker['finish']> {
  const packer = new RowPacker(columns);
  for (const row of rows) {
    for (const v of row) {
      if (v === null) packer.null();
      else if (typeof v === 'number') packer.number(v);
      else if (typeof v === 'bigint') packer.bigint(v);
      else if (v instanceof Uint8Array) packer.blob(v);
      else {
        const bytes = encoder.encode(v);
        const before = int(random, 0, 8);
        const heap = new Uint8Array(before + bytes.length + int(random, 0, 8)).fill(0xff);
        heap.set(bytes, before);
        packer.textAt(heap, before, before + bytes.length);
      }
    }
  }
  return packer.finish(rows.length);
}

test('rows of every kind of value come back as they were packed, as objects and as arrays (generated)', () => {
  const seed = testSeed();
  console.log(`packed-rows seed ${seed} (OUTPOST_SEED=${seed} replays)`);
  const random = rng(seed);
  for (let round = 0; round < 100; round++) {
    const width = int(random, 1, 6);
    const columns = Array.from({ length: width }, (_, i) => `c${i}`);
    const rows = Array.from({ length: int(random, 0, 120) }, () =>
      // Now and then a long ASCII value, past the packer's first buffer.
      Array.from({ length: width }, () => (random() < 0.02 ? 'y'.repeat(int(random, 1000, 5000)) : sqlValue(random))),
    );
    const packed = pack(columns, rows, random);
    expect(unpackValues(packed)).toEqual(rows);
    expect(unpackRows(packed)).toEqual(rows.map((row) => Object.fromEntries(columns.map((name, i) => [name, row[i]]))));
  }
});

test('a later column with the same name wins in row objects', () => {
  const packed = pack(['a', 'a'], [[1, 'two']], rng(1));
  expect(unpackRows(packed)).toEqual([{ a: 'two' }]);
});

test('results on both sides of the small-result bound keep every value, and only large buffers are transferred (generated)', () => {
  const seed = testSeed();
  console.log(`packed-rows bound seed ${seed} (OUTPOST_SEED=${seed} replays)`);
  const random = rng(seed);
  for (let round = 0; round < 200; round++) {
    const width = int(random, 1, 4);
    const columns = Array.from({ length: width }, (_, i) => `c${i}`);
    // Cell counts around the bound, where the packer turns from plain values to typed arrays.
    const cells = SMALL_RESULT_CELLS + int(random, -6, 6);
    const rows = Array.from({ length: Math.max(0, Math.floor(cells / width)) }, () => Array.from({ length: width }, () => sqlValue(random)));
    const packed = pack(columns, rows, random);
    expect('values' in packed).toBe(rows.length * width <= SMALL_RESULT_CELLS);
    expect(unpackValues(packed)).toEqual(rows);
    expect(unpackRows(packed)).toEqual(rows.map((row) => Object.fromEntries(columns.map((name, i) => [name, row[i]]))));
  }
  // One large BLOB is a small result, and its buffer is still transferred, not copied.
  const big = pack(['b'], [[new Uint8Array(TRANSFER_MIN_BYTES)]], random);
  expect('values' in big && transferables(big)).toHaveLength(1);
  expect(transferables(pack(['n'], [[1]], random))).toEqual([]);
});

test('rows built from a shared shape have the keys, order and values of rows built key by key, for any column names (generated)', () => {
  const seed = testSeed();
  console.log(`packed-rows shape seed ${seed} (OUTPOST_SEED=${seed} replays)`);
  const random = rng(seed);
  // Duplicates, integer-like names (which objects order first), and names of Object.prototype.
  // (A `__proto__` column keeps the key-by-key rows, whose value may even set the prototype.)
  const names = ['id', 'x', 'id', '0', '10', '2', 'constructor', 'toString', 'é', '', 'a b'];
  for (let round = 0; round < 100; round++) {
    const width = int(random, 1, 7);
    // Column names as the engine gives them: decoded from UTF-8, not literals.
    const columns = Array.from({ length: width }, () => new TextDecoder().decode(encoder.encode(pick(random, names))));
    const rows = Array.from({ length: int(random, 0, 40) }, () => Array.from({ length: width }, () => sqlValue(random)));
    const got = unpackRows<Record<string, SqlValue>>(pack(columns, rows, random));
    expect(got.length).toBe(rows.length);
    for (let r = 0; r < rows.length; r++) {
      const want: Record<string, SqlValue> = {};
      for (let c = 0; c < width; c++) want[columns[c]!] = rows[r]![c]!;
      const row = got[r]!;
      expect(Object.getPrototypeOf(row)).toBe(Object.getPrototypeOf(want));
      expect(Object.keys(row)).toEqual(Object.keys(want));
      for (const k of Object.keys(want)) expect(row[k]).toEqual(want[k]);
    }
  }
});
