/**
 * The open databases share SQLite's heap bound with every statement (heap-limit.ts), so the
 * count limit is not the only one: with a small bound and a count limit it alone would let
 * pass, requests to many databases in a seeded order keep being served (idle databases are
 * closed to make room, database-cache.ts), every row written is read back, and the databases
 * left open hold less than the open share of the bound.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { sqliteHeap } from '../../src/server/heap-limit.js';
import type { OutpostServer } from '../../src/server/server.js';
import { int, rng, testSeed } from '../support/generate.js';
import { runBatch, startServer } from '../support/server.js';

const MiB = 1024 * 1024;
const HEAP_MAX = 12 * MiB;
const DATABASES = 240;

let server: OutpostServer;
let url: string;

beforeAll(async () => {
  ({ server, url } = await startServer({ auth: false, maxHeapBytes: HEAP_MAX, maxOpenDatabases: 100_000 }));
});

afterAll(async () => {
  await server.close();
});

test('generated: requests to more databases than the heap bound holds open are all served, and idle ones are closed to make room', async () => {
  const seed = testSeed();
  const random = rng(seed);
  const written = new Map<number, number>();
  // Each database gets a table, an index and some rows, so that it holds a schema and pages.
  for (let step = 0; step < DATABASES * 3; step++) {
    const n = step < DATABASES ? step : int(random, 0, DATABASES - 1);
    const rows = int(random, 1, 20);
    const res = await runBatch(
      `${url}/db/heap-${n}`,
      '',
      'CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)',
      'CREATE INDEX IF NOT EXISTS t_v ON t(v)',
      `WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < ${rows}) INSERT INTO t(v) SELECT hex(randomblob(200)) FROM r`,
    );
    expect([res.status, res.errors], `seed ${seed}: step ${step}, database ${n}`).toEqual([200, [null, null, null]]);
    written.set(n, (written.get(n) ?? 0) + rows);
  }
  // Fewer than all were kept open: the count limit alone (100,000) would have kept every one.
  expect(server.openDatabases, `seed ${seed}`).toBeLessThan(DATABASES);
  expect((await sqliteHeap()).usedBytes, `seed ${seed}`).toBeLessThanOrEqual(HEAP_MAX);
  for (const [n, rows] of written) {
    const res = await runBatch(`${url}/db/heap-${n}`, '', 'SELECT count(*) FROM t');
    expect([res.errors, res.rows[0]], `seed ${seed}: database ${n}`).toEqual([[null], [[{ type: 'integer', value: String(rows) }]]]);
  }
});
