/**
 * A large `query()` leaves the engine in parts (packed-rows.ts, "Parts"): each part crosses as
 * postMessage sends it (a structured clone with its buffers transferred) and is made into
 * objects on arrival (`RowParts`). The rows must be those of one unparted result, cell for cell.
 */
import { expect, test } from 'vitest';
import { Connection } from '../src/engine/connection.js';
import { PART_CELLS, type PackedRows, RowParts, transferables, unpackRows } from '../src/engine/packed-rows.js';
import { MemoryDirectory } from '../src/opfs-vfs/storage/memory.js';
import type { SqlValue } from '../src/types.js';
import { int, rng, sqlValue, testSeed } from './support/generate.js';

let opened = 0;
const openConnection = (): Promise<Connection> => Connection.open(new MemoryDirectory(`memory:query-parts-${opened++}`), { durability: 'normal', intMode: 'number' });

/** What postMessage does to a message: a structured clone, its buffers moved. */
const posted = (rows: PackedRows): PackedRows => structuredClone(rows, { transfer: transferables(rows) });

test('a result sent in parts gives the rows of the same result sent whole, and every part but the last is large (generated)', async () => {
  const seed = testSeed();
  console.log(`query-parts seed ${seed} (OUTPOST_SEED=${seed} replays)`);
  const random = rng(seed);
  const conn = await openConnection();
  try {
    for (let round = 0; round < 3; round++) {
      const width = int(random, 3, 9);
      const names = Array.from({ length: width }, (_, i) => `c${i}`);
      // From just under one part to several, so the seams fall at varying rows.
      const rows = int(random, Math.floor((0.8 * PART_CELLS) / width), Math.ceil((2.6 * PART_CELLS) / width));
      conn.exec(`DROP TABLE IF EXISTS g; CREATE TABLE g(${names.join(', ')})`);
      conn.batch(
        Array.from({ length: rows }, (_, r) => ({
          sql: `INSERT INTO g VALUES (${names.map(() => '?').join(', ')})`,
          // Long ASCII text in the later rows: a part outgrows buffers sized from the one before.
          params: names.map(() => (r > rows / 2 && random() < 0.01 ? 'q'.repeat(int(random, 500, 4000)) : sqlValue(random))),
        })),
      );
      const sql = `SELECT ${names.join(', ')} FROM g ORDER BY rowid`;
      const context = `seed ${seed} (OUTPOST_SEED=${seed} replays), round ${round}, ${rows} rows x ${width}`;
      const receiving = new RowParts();
      const partRows: number[] = [];
      const last = conn.query(sql, undefined, Number.POSITIVE_INFINITY, (part) => {
        partRows.push(part.rowCount);
        // A part is sent once it holds PART_CELLS cells, at a row's end.
        expect(part.rowCount * width, context).toBeGreaterThanOrEqual(PART_CELLS);
        expect(part.rowCount * width, context).toBeLessThan(PART_CELLS + width);
        receiving.add(posted(part));
      });
      expect(last.rowCount, context).toBeGreaterThan(0);
      expect(partRows.length, context).toBe(Math.floor((rows - 1) / Math.ceil(PART_CELLS / width)));
      const got = unpackRows<Record<string, SqlValue>>(receiving.finish(posted(last)));
      const whole = conn.execute(sql, undefined).rows;
      expect(got.length, context).toBe(rows);
      for (let r = 0; r < rows; r++) {
        const want = whole[r]!;
        const have = got[r]!;
        for (let c = 0; c < width; c++) {
          const a = have[names[c]!]!;
          const b = want[c]!;
          const same = a instanceof Uint8Array && b instanceof Uint8Array ? a.length === b.length && a.every((x, i) => x === b[i]) : Object.is(a, b);
          // expect() only on a difference: one per cell would be most of the test's time.
          if (!same) expect(a, `${context}, cell ${r}.${c}`).toEqual(b);
        }
      }
    }
  } finally {
    await conn.close();
  }
});

test('a query stopped by an error after some parts were sent rejects, and sends no part after it', async () => {
  const conn = await openConnection();
  try {
    const rows = Math.ceil((2.5 * PART_CELLS) / 2);
    conn.exec(`CREATE TABLE n(i INTEGER PRIMARY KEY, v); WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ${rows}) INSERT INTO n SELECT i, i FROM s`);
    let parts = 0;
    // abs() of the smallest integer overflows: an error in the last row, after two parts.
    conn.run('UPDATE n SET v = -9223372036854775808 WHERE i = ?', [rows]);
    expect(() => conn.query('SELECT i, abs(v) FROM n ORDER BY i', undefined, Number.POSITIVE_INFINITY, () => parts++)).toThrow(/integer overflow/);
    expect(parts).toBe(2);
  } finally {
    await conn.close();
  }
});

test('an empty BLOB reads as one after the WASM memory grew since the last cell read', async () => {
  const conn = await openConnection();
  try {
    // A TEXT cell keeps the reader's view of the heap; the large value then grows the memory,
    // which detaches that view, and the empty BLOB is the next cell read.
    expect(conn.value("SELECT 'text'")).toBe('text');
    expect(conn.value('SELECT length(randomblob(64 * 1024 * 1024))')).toBe(64 * 1024 * 1024);
    expect(conn.value("SELECT x''")).toEqual(new Uint8Array(0));
    expect(unpackRows(conn.query("SELECT x'' AS e, 'after' AS t", undefined))).toEqual([{ e: new Uint8Array(0), t: 'after' }]);
  } finally {
    await conn.close();
  }
});
