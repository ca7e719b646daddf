/**
 * SQLite's memory in a server process is bounded (`maxHeapBytes`, heap-limit.ts): one statement
 * that holds many large values at once fails with a clear SQLITE_NOMEM Hrana error, before the
 * WASM memory (which never shrinks) grows past the bound, and every tenant is served afterwards.
 * The attacker's own database stays intact. The heap PRAGMAs stay refused to tenants, so the
 * bound cannot be lifted (or set to 1) from SQL.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { mintToken } from '../../src/server/auth.js';
import { sqliteHeap } from '../../src/server/heap-limit.js';
import type { OutpostServer } from '../../src/server/server.js';
import { type Random, int, pick, rng, testSeed } from '../support/generate.js';
import { SECRET, rawPipeline, runBatch, startServer } from '../support/server.js';

const MiB = 1024 * 1024;
const HEAP_MAX = 48 * MiB;
const VALUE_MAX = 4 * MiB;

/** `SELECT 1 UNION ALL ...` as a recursive CTE of `rows` rows, named r(i). */
const rowsOf = (rows: number): string => `WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < ${rows})`;

/** Columns of one value each, `count` of them. */
const columns = (count: number, value: (i: number) => string): string => Array.from({ length: count }, (_, i) => value(i)).join(', ');

/**
 * A statement that needs well over the heap bound at once, every value under the value limit:
 * many large values in one row, built as they are read, aggregated, recursive, or sorted.
 */
function attack(random: Random): { shape: string; sql: string } {
  const size = int(random, 256 * 1024, VALUE_MAX - 1024);
  // Enough values of `size` to need the bound two to four times over.
  const count = Math.ceil((HEAP_MAX * (2 + random() * 2)) / size);
  const shape = pick(random, ['randomblob', 'zeroblob', 'printf', 'group_concat', 'recursive', 'order by']);
  switch (shape) {
    case 'randomblob':
      return { shape, sql: `SELECT ${columns(count, () => `randomblob(${size})`)}` };
    case 'zeroblob':
      // A zeroblob is made only when it is read: the reader must not take a failed read for a value.
      return { shape, sql: `SELECT ${columns(count, () => `zeroblob(${size})`)}` };
    case 'printf':
      return { shape, sql: `SELECT ${columns(count, (i) => `printf('%.*c', ${size}, '${String.fromCharCode(97 + (i % 26))}')`)}` };
    case 'group_concat': {
      // Each aggregate stays under the value limit; together they pass the bound.
      const piece = int(random, 1024, 64 * 1024);
      const perColumn = Math.floor((VALUE_MAX - 1024) / (2 * piece + 1));
      const aggregates = Math.ceil((HEAP_MAX * 2) / (perColumn * 2 * piece));
      return { shape, sql: `${rowsOf(perColumn)} SELECT ${columns(aggregates, () => `group_concat(hex(randomblob(${piece})))`)} FROM r` };
    }
    case 'recursive': {
      // Strings that grow by `step` each row, kept whole by a sort: their sum passes the bound.
      const step = int(random, 64 * 1024, 512 * 1024);
      const rows = Math.floor((VALUE_MAX - 1024) / step);
      return { shape, sql: `WITH RECURSIVE r(i, s) AS (SELECT 0, '' UNION ALL SELECT i + 1, s || printf('%.*c', ${step}, 'x') FROM r WHERE i < ${rows}) SELECT i, s FROM r ORDER BY s DESC` };
    }
    default:
      return { shape, sql: `${rowsOf(count)} SELECT i, randomblob(${size}) AS b FROM r ORDER BY b` };
  }
}

describe('the server bounds SQLite memory (maxHeapBytes)', () => {
  let server: OutpostServer;
  let url = '';
  const tokens = new Map<string, string>();
  const token = async (db: string): Promise<string> => {
    if (!tokens.has(db)) tokens.set(db, await mintToken(SECRET, { db, role: 'write' }));
    return tokens.get(db)!;
  };

  beforeAll(async () => {
    ({ server, url } = await startServer({ maxHeapBytes: HEAP_MAX, valueBytesMax: VALUE_MAX, maxAnswerBytes: 1024 * MiB, statementTimeoutMs: 20_000, shareOfServer: 1, maxBodyBytes: 128 * MiB }));
  });
  afterAll(async () => {
    await server.close();
  });

  test('generated: statements needing more than the bound fail with SQLITE_NOMEM or a limit, the heap stays bounded, and every tenant is served after', async () => {
    const seed = testSeed();
    const random = rng(seed);
    const db = `${url}/db/attacker`;
    const victim = `${url}/db/victim`;
    expect((await runBatch(db, await token('attacker'), 'CREATE TABLE t(id INTEGER PRIMARY KEY, v)', "INSERT INTO t(v) VALUES ('kept')")).errors).toEqual([null, null]);
    expect((await runBatch(victim, await token('victim'), 'CREATE TABLE t(id INTEGER PRIMARY KEY, v)')).errors).toEqual([null]);
    let attackerRows = 1;
    let victimRows = 0;
    const before = await sqliteHeap();
    const shapes = new Map<string, number>();
    const CASES = 12;
    for (let c = 0; c < CASES; c++) {
      const { shape, sql } = attack(random);
      const what = `seed ${seed} case ${c} (${shape}): ${sql.slice(0, 160)}`;
      const inTransaction = random() < 0.5;
      const steps = inTransaction ? ['BEGIN', `INSERT INTO t(v) VALUES ('case ${c}')`, sql, 'COMMIT'] : [`INSERT INTO t(v) VALUES ('case ${c}')`, sql];
      const r = await runBatch(db, await token('attacker'), ...steps);
      expect(r.status, what).toBe(200);
      const failure = r.errors[steps.indexOf(sql)];
      expect(failure, what).toMatch(/out of memory|too big|answer limit/i);
      if (/out of memory/.test(failure!)) shapes.set(shape, (shapes.get(shape) ?? 0) + 1);
      // Out of memory, SQLite may roll back the whole transaction (its COMMIT then fails) or only the statement.
      if (!inTransaction || r.errors[3] === null) attackerRows++;
      const after = await runBatch(db, await token('attacker'), 'PRAGMA integrity_check', 'SELECT count(*) FROM t', "SELECT count(*) FROM t WHERE v = 'kept'");
      expect(after.rows, what).toEqual([[[{ type: 'text', value: 'ok' }]], [[{ type: 'integer', value: String(attackerRows) }]], [[{ type: 'integer', value: '1' }]]]);
      const served = await runBatch(victim, await token('victim'), `INSERT INTO t(v) VALUES (hex(randomblob(${int(random, 1, 64 * 1024)})))`, 'SELECT count(*) FROM t');
      victimRows++;
      expect(served.errors, what).toEqual([null, null]);
      expect(served.rows[1], what).toEqual([[{ type: 'integer', value: String(victimRows) }]]);
    }
    const after = await sqliteHeap();
    // SQLite's allocator never held more than the bound; the WASM memory grew at most by the
    // bound and the allocator's fragmentation, once, not by what the statements asked for.
    expect(after.peakBytes, `seed ${seed}`).toBeLessThanOrEqual(HEAP_MAX);
    expect(after.wasmBytes - before.wasmBytes, `seed ${seed}`).toBeLessThan(2 * HEAP_MAX);
    console.log(`heap limit: seed ${seed}, ${CASES} attacks (out of memory: ${[...shapes].map(([s, n]) => `${s} ${n}`).join(', ')}), WASM memory ${(before.wasmBytes / MiB).toFixed(0)} -> ${(after.wasmBytes / MiB).toFixed(0)} MiB, SQLite peak ${(after.peakBytes / MiB).toFixed(1)} MiB of ${HEAP_MAX / MiB}`);

  });

  test('the heap PRAGMAs stay refused, as statements and as table-valued functions, and the bound still holds after them', async () => {
    const db = `${url}/db/pragmas`;
    for (const sql of ['PRAGMA hard_heap_limit = 0', 'PRAGMA soft_heap_limit = 0', 'PRAGMA hard_heap_limit', 'SELECT * FROM pragma_hard_heap_limit', 'SELECT * FROM pragma_hard_heap_limit(0)', 'SELECT * FROM pragma_soft_heap_limit(0)']) {
      const r = await runBatch(db, await token('pragmas'), sql);
      // Refused by the sandbox, or (with an argument) by SQLite itself.
      expect(r.errors[0], sql).toMatch(/not authorized|too many arguments/i);
    }
    const r = await runBatch(db, await token('pragmas'), `SELECT ${columns(Math.ceil((2 * HEAP_MAX) / MiB), () => `randomblob(${MiB})`)}`);
    expect(r.errors[0]).toMatch(/out of memory/);
  });

  test('arguments that together pass the bound fail with SQLITE_NOMEM, not a server error, and the next request is served', async () => {
    const db = `${url}/db/arguments`;
    const big = 'a'.repeat(VALUE_MAX - 1024);
    const count = Math.ceil((1.5 * HEAP_MAX) / big.length);
    const stmt = { sql: `SELECT ${columns(count, () => 'length(?)')}`, args: Array.from({ length: count }, () => ({ type: 'text', value: big })), want_rows: true };
    const { status, json } = await rawPipeline(db, { baton: null, requests: [{ type: 'execute', stmt }] }, await token('arguments'));
    expect(status).toBe(200);
    expect(json.results[0].type).toBe('error');
    expect(json.results[0].error.code).toBe('SQLITE_NOMEM');
    expect((await runBatch(db, await token('arguments'), 'SELECT 42')).rows).toEqual([[[{ type: 'integer', value: '42' }]]]);
  });
});
