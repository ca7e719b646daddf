/**
 * `pageCacheBulk: false` (engine/open.ts): a connection's page cache takes its pages one at a
 * time instead of SQLite's first bulk allocation of 20 pages, and every setting still holds.
 * Generated: databases of random schemas, sizes, cache sizes and durabilities, some left with
 * every page in the WAL (an empty main file), reopened with and without the bulk allocation.
 */
import { expect, test } from 'vitest';
import { Connection, type ConnectionOptions } from '../src/engine/connection.js';
import { loadRuntime } from '../src/engine/runtime.js';
import { NodeDirectory } from '../src/opfs-vfs/storage/node.js';
import { sqliteHeap } from '../src/server/heap-limit.js';
import { int, rng, testSeed } from './support/generate.js';
import { tempDir } from './support/server.js';

/** What SQLite's db_status accounts for on `conn`: its cache's pages, its schema and its statements. */
async function accounted(conn: Connection): Promise<number> {
  const { sqlite3 } = await loadRuntime();
  const db = (conn as unknown as { db: number }).db;
  const out = sqlite3.wasm.alloc(8);
  try {
    let bytes = 0;
    // SQLITE_DBSTATUS_CACHE_USED, _SCHEMA_USED, _STMT_USED.
    for (const op of [1, 2, 3]) {
      (sqlite3.wasm.exports as unknown as { sqlite3_db_status(db: number, op: number, cur: number, hi: number, reset: number): number }).sqlite3_db_status(db, op, out, out + 4, 0);
      bytes += Number(sqlite3.wasm.peek32(out));
    }
    return bytes;
  } finally {
    sqlite3.wasm.dealloc(out);
  }
}

test('generated: without the bulk allocation a reopened connection holds no page-cache memory beyond its pages, and its settings and rows are as with it', async () => {
  const seed = testSeed();
  console.log(`page cache bulk seed=${seed}`);
  const random = rng(seed);
  const dir = tempDir('outpost-pcache-');
  for (let round = 0; round < 16; round++) {
    const file = `${dir}/db${round}.db`;
    const tables = int(random, 1, 6);
    const rows = int(random, 0, 60);
    const durability = random() < 0.5 ? 'full' : 'normal';
    // Left unchekpointed, every page stays in the WAL and the main file is empty at the reopen.
    const create = await Connection.open(new NodeDirectory(file), { durability, intMode: 'number', checkpointOnClose: random() < 0.5 });
    for (let t = 0; t < tables; t++) create.exec(`CREATE TABLE t${t}(id INTEGER PRIMARY KEY, v TEXT)`);
    create.batch(Array.from({ length: rows }, (_, i) => ({ sql: `INSERT INTO t${i % tables}(v) VALUES (?)`, params: ['x'.repeat(int(random, 0, 400))] })));
    await create.close();

    const bulk = random() < 0.3;
    const cacheKiB = random() < 0.3 ? undefined : int(random, 64, 8192);
    const options: ConnectionOptions = { durability, intMode: 'number', lookaside: false, pageCacheBulk: bulk, cacheKiB, checkpointOnClose: false };
    const before = (await sqliteHeap()).usedBytes;
    const conn = await Connection.open(new NodeDirectory(file), options);
    try {
      let count = 0;
      for (let t = 0; t < tables; t++) count += Number(conn.value(`SELECT count(*) FROM t${t}`));
      const unaccounted = (await sqliteHeap()).usedBytes - before - (await accounted(conn));
      const label = { round, bulk, tables, rows, cacheKiB };
      // The rest is the WAL index (32 KiB) and the connection's own structures (about 12 KiB);
      // the bulk allocation is 20 pages, over 80 KiB, of which only the pages in use count.
      if (!bulk) expect({ ...label, unaccounted: unaccounted < 64 * 1024 }).toEqual({ ...label, unaccounted: true });
      expect({ ...label, count }).toEqual({ ...label, count: rows });
      expect({
        ...label,
        pageSize: conn.value('PRAGMA page_size'),
        journal: conn.value('PRAGMA journal_mode'),
        locking: conn.value('PRAGMA locking_mode'),
        synchronous: conn.value('PRAGMA synchronous'),
        cache: conn.value('PRAGMA cache_size'),
      }).toEqual({
        ...label,
        pageSize: 4096,
        journal: 'wal',
        locking: 'exclusive',
        synchronous: durability === 'full' ? 2 : 1,
        cache: cacheKiB === undefined ? expect.any(Number) : -Math.max(64, cacheKiB),
      });
      conn.exec(`INSERT INTO t0(v) VALUES ('after')`);
      expect(conn.value('SELECT count(*) FROM t0 WHERE v = ?', ['after'])).toBe(1);
    } finally {
      await conn.close();
    }
  }
});

test('without the bulk allocation and without a cache size, the cache keeps the size SQLite gave it', async () => {
  const dir = tempDir('outpost-pcache-');
  const sizes: unknown[] = [];
  for (const pageCacheBulk of [true, false]) {
    const conn = await Connection.open(new NodeDirectory(`${dir}/${String(pageCacheBulk)}.db`), { durability: 'normal', intMode: 'number', pageCacheBulk });
    sizes.push(conn.value('PRAGMA cache_size'));
    await conn.close();
  }
  expect(sizes[1]).toBe(sizes[0]);
});
