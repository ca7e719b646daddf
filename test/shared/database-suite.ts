/**
 * The public API's behaviours, run against every way of opening a database: Node file and
 * memory (test/database.test.ts), and OPFS and memory in a real browser worker
 * (test-browser/database.browser.test.ts).
 */
import sqlite3InitModule from '@sqlite.org/sqlite-wasm';
import { describe, expect, test } from 'vitest';
import { PART_CELLS } from '../../src/engine/packed-rows.js';
import { OutpostError, SqliteError } from '../../src/errors.js';
import type { Database, OpenOptions, SqlValue } from '../../src/types.js';
import { int, rng, sqlValue, testSeed } from '../support/generate.js';
import { type Opener, withDb, rejection } from './suite-support.js';

/** A SQLite file made outside Outpost (stock SQLite on its memory VFS), with any page size. */
async function foreignFile(pageSize: number, sql: string): Promise<Uint8Array> {
  const init = sqlite3InitModule as unknown as () => Promise<{
    oo1: { DB: new (name: string) => { exec(sql: string): void; close(): void; pointer: number } };
    capi: { sqlite3_js_db_export(db: number): Uint8Array };
  }>;
  const sqlite3 = await init();
  const db = new sqlite3.oo1.DB(':memory:');
  try {
    db.exec(`PRAGMA page_size=${pageSize}; ${sql}`);
    return sqlite3.capi.sqlite3_js_db_export(db.pointer);
  } finally {
    db.close();
  }
}

export type { Opener } from './suite-support.js';



export function databaseSuite(name: string, open: Opener): void {
  describe(`database: ${name}`, () => {
    test('runs in WAL mode with 4096-byte pages', () =>
      withDb(open, async (db) => {
        expect(await db.get('PRAGMA journal_mode')).toEqual({ journal_mode: 'wal' });
        expect(await db.get('PRAGMA page_size')).toEqual({ page_size: 4096 });
        expect(await db.get('PRAGMA locking_mode')).toEqual({ locking_mode: 'exclusive' });
      }));

    test('durability sets synchronous', async () => {
      await withDb(open, async (db) => expect(await db.get('PRAGMA synchronous')).toEqual({ synchronous: 1 }));
      await withDb(open, async (db) => expect(await db.get('PRAGMA synchronous')).toEqual({ synchronous: 2 }), { durability: 'full' });
    });

    test('refuses to leave WAL mode', () =>
      withDb(open, async (db) => {
        const e = await rejection(db.exec('PRAGMA journal_mode=DELETE'));
        expect(e).toBeInstanceOf(SqliteError);
        expect(e.message).toMatch(/WAL/);
        expect(await db.get('PRAGMA journal_mode')).toEqual({ journal_mode: 'wal' });
      }));

    test('maps every storage class to its JS type', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE t(i INTEGER, r REAL, s TEXT, b BLOB, n)');
        await db.run('INSERT INTO t VALUES (?, ?, ?, ?, ?)', [42, 1.5, 'héllo ☃', new Uint8Array([0, 1, 255]), null]);
        const row = await db.get('SELECT * FROM t');
        expect(row).toEqual({ i: 42, r: 1.5, s: 'héllo ☃', b: new Uint8Array([0, 1, 255]), n: null });
        expect(row!.b).toBeInstanceOf(Uint8Array);
      }));

    test('many rows of mixed kinds come back in order', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE m(a, b, c)');
        const expected: { a: unknown; b: unknown; c: unknown }[] = [];
        await db.transaction(async (tx) => {
          for (let i = 0; i < 300; i++) {
            const row = {
              a: i % 3 === 0 ? null : i % 3 === 1 ? `ascii ${i}` : `ünïcødé ${i} 🎉`,
              b: i % 2 ? 2n ** 60n + BigInt(i) : i / 4,
              c: i % 5 === 0 ? new Uint8Array([i & 255]) : i % 5 === 1 ? '' : `t${i}`,
            };
            expected.push(row);
            await tx.run('INSERT INTO m VALUES (:a, :b, :c)', row);
          }
        });
        expect(await db.query('SELECT a, b, c FROM m ORDER BY rowid')).toEqual(expected);
      }));

    test('integers beyond 2^53 come back as bigint, exactly', () =>
      withDb(open, async (db) => {
        const row = await db.get<{ big: unknown; neg: unknown; safe: unknown }>(
          'SELECT 9007199254740993 AS big, -9223372036854775808 AS neg, 9007199254740991 AS safe',
        );
        expect(row).toEqual({ big: 9007199254740993n, neg: -9223372036854775808n, safe: 9007199254740991 });
      }));

    test("intMode 'bigint' returns every integer as bigint", () =>
      withDb(
        open,
        async (db) => {
          expect(await db.get('SELECT 1 AS one, 2.5 AS real')).toEqual({ one: 1n, real: 2.5 });
        },
        { intMode: 'bigint' },
      ));

    test('binds bigint, boolean, ArrayBuffer and empty blobs', () =>
      withDb(open, async (db) => {
        const row = await db.get('SELECT ? AS a, ? AS t, ? AS f, ? AS buf, typeof(?) AS empty', [
          2n ** 62n,
          true,
          false,
          new Uint8Array([7, 8]).buffer,
          new Uint8Array(0),
        ]);
        expect(row).toEqual({ a: 2n ** 62n, t: 1, f: 0, buf: new Uint8Array([7, 8]), empty: 'blob' });
      }));

    test('numbers bind as INTEGER when whole and REAL otherwise', () =>
      withDb(open, async (db) => {
        expect(await db.get('SELECT typeof(?) AS a, typeof(?) AS b, typeof(?) AS c', [3, 3.25, 2 ** 40])).toEqual({
          a: 'integer',
          b: 'real',
          c: 'integer',
        });
      }));

    test('binds positional ? and ?NNN parameters', () =>
      withDb(open, async (db) => {
        expect(await db.get('SELECT ? AS a, ? AS b', [1, 'x'])).toEqual({ a: 1, b: 'x' });
        expect(await db.get('SELECT ?2 AS a, ?1 AS b', ['one', 'two'])).toEqual({ a: 'two', b: 'one' });
      }));

    test('binds :name, @name and $name parameters, keys with or without the prefix', () =>
      withDb(open, async (db) => {
        expect(await db.get('SELECT :a AS a, @b AS b, $c AS c', { a: 1, b: 2, c: 3 })).toEqual({ a: 1, b: 2, c: 3 });
        expect(await db.get('SELECT :a AS a', { ':a': 'prefixed' })).toEqual({ a: 'prefixed' });
      }));

    test('a missing or extra parameter is a clear error', () =>
      withDb(open, async (db) => {
        const missing = await rejection(db.get('SELECT :a, :b', { a: 1 }));
        expect(missing).toBeInstanceOf(OutpostError);
        expect(missing.message).toMatch(/:b/);
        const count = await rejection(db.get('SELECT ?', [1, 2]));
        expect((count as OutpostError).code).toBe('INVALID_ARGUMENT');
        const none = await rejection(db.get('SELECT ?'));
        expect(none.message).toMatch(/expects 1 parameter/);
      }));

    test('run reports changes and the last rowid', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v)');
        expect(await db.run('INSERT INTO t(v) VALUES (1), (2)')).toEqual({ changes: 2, lastInsertRowid: 2n });
        expect((await db.run('UPDATE t SET v = v + 1')).changes).toBe(2);
      }));

    test('get returns the first row or undefined', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE t(v); INSERT INTO t VALUES (1), (2);');
        expect(await db.get('SELECT v FROM t ORDER BY v')).toEqual({ v: 1 });
        expect(await db.get('SELECT v FROM t WHERE v > 5')).toBeUndefined();
      }));

    test('exec runs many statements', () =>
      withDb(open, async (db) => {
        await db.exec(`CREATE TABLE a(x); INSERT INTO a VALUES (1); -- a comment
          INSERT INTO a VALUES (2);`);
        expect(await db.query('SELECT x FROM a ORDER BY x')).toEqual([{ x: 1 }, { x: 2 }]);
      }));

    test('query refuses more than one statement', () =>
      withDb(open, async (db) => {
        const e = await rejection(db.query('SELECT 1; SELECT 2'));
        expect((e as OutpostError).code).toBe('INVALID_ARGUMENT');
      }));

    test('execMany returns one result per statement', () =>
      withDb(open, async (db) => {
        const results = await db.execMany('CREATE TABLE t(v); INSERT INTO t VALUES (1),(2); SELECT v FROM t ORDER BY v;');
        expect(results.map((r) => r.changes)).toEqual([0, 2, 0]);
        expect(results[2]!.columns).toEqual(['v']);
        expect(results[2]!.rows).toEqual([[1], [2]]);
      }));

    test('execMany reports a failing statement in place and runs nothing after it', () =>
      withDb(open, async (db) => {
        const results = await db.execMany('CREATE TABLE t(v UNIQUE); INSERT INTO t VALUES (1); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);');
        expect(results).toHaveLength(3);
        expect(results[2]!.error).toMatchObject({ code: 'SQLITE_CONSTRAINT_UNIQUE' });
        expect(results[2]!.sql).toBe('INSERT INTO t VALUES (1);');
        expect(await db.query('SELECT v FROM t')).toEqual([{ v: 1 }]);
        const syntax = await db.execMany('SELECT 1; SELEC 2; SELECT 3');
        expect(syntax).toHaveLength(2);
        expect(syntax[1]!.error?.message).toMatch(/syntax error/);
      }));

    test('a constraint violation is a SqliteError with the extended code', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE t(v UNIQUE)');
        await db.run('INSERT INTO t VALUES (1)');
        const e = await rejection(db.run('INSERT INTO t VALUES (1)'));
        expect(e).toBeInstanceOf(SqliteError);
        expect((e as SqliteError).code).toBe('SQLITE_CONSTRAINT_UNIQUE');
        expect((e as SqliteError).resultCode).toBe(2067);
        expect((e as SqliteError).sql).toBe('INSERT INTO t VALUES (1)');
        expect(e.message).toMatch(/UNIQUE constraint failed: t.v/);
      }));

    test('malformed SQL is a SqliteError and the database stays usable', () =>
      withDb(open, async (db) => {
        const e = await rejection(db.query('SELEC 1'));
        expect(e).toBeInstanceOf(SqliteError);
        expect((e as SqliteError).code).toBe('SQLITE_ERROR');
        expect(e.message).toMatch(/syntax error/);
        expect(await db.get('SELECT 1 AS one')).toEqual({ one: 1 });
      }));

    test('a transaction commits when its callback resolves', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE t(v)');
        const value = await db.transaction(async (tx) => {
          await tx.run('INSERT INTO t VALUES (1)');
          await tx.run('INSERT INTO t VALUES (2)');
          return 'done';
        });
        expect(value).toBe('done');
        expect(await db.get('SELECT count(*) AS n FROM t')).toEqual({ n: 2 });
      }));

    test('a transaction rolls back when its callback throws', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE t(v)');
        const e = await rejection(
          db.transaction(async (tx) => {
            await tx.run('INSERT INTO t VALUES (1)');
            throw new Error('boom');
          }),
        );
        expect(e.message).toBe('boom');
        expect(await db.get('SELECT count(*) AS n FROM t')).toEqual({ n: 0 });
      }));

    test('other callers wait for a transaction and never interleave', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE t(v)');
        let outsideDone = false;
        let outside: Promise<unknown> = Promise.resolve();
        await db.transaction(async (tx) => {
          await tx.run("INSERT INTO t VALUES ('tx-1')");
          outside = db.run("INSERT INTO t VALUES ('outside')").then(() => {
            outsideDone = true;
          });
          await new Promise((r) => setTimeout(r, 30));
          expect(outsideDone).toBe(false);
          await tx.run("INSERT INTO t VALUES ('tx-2')");
        });
        await outside;
        expect(await db.query('SELECT v FROM t ORDER BY rowid')).toEqual([{ v: 'tx-1' }, { v: 'tx-2' }, { v: 'outside' }]);
      }));

    test('a nested transaction is a savepoint', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE t(v)');
        await db.transaction(async (tx) => {
          await tx.run('INSERT INTO t VALUES (1)');
          await rejection(
            tx.transaction(async (inner) => {
              await inner.run('INSERT INTO t VALUES (2)');
              throw new Error('inner fails');
            }),
          );
          await tx.run('INSERT INTO t VALUES (3)');
        });
        expect(await db.query('SELECT v FROM t ORDER BY v')).toEqual([{ v: 1 }, { v: 3 }]);
      }));

    test('the tx object fails after its transaction ended', () =>
      withDb(open, async (db) => {
        let saved: { run(sql: string): Promise<unknown> } | null = null;
        await db.transaction(async (tx) => {
          saved = tx;
        });
        const e = await rejection(saved!.run('SELECT 1'));
        expect(e.message).toMatch(/already ended/);
      }));

    test('a batch is atomic', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE t(v UNIQUE)');
        const ok = await db.batch(['INSERT INTO t VALUES (1)', { sql: 'INSERT INTO t VALUES (?)', params: [2] }]);
        expect(ok.map((r) => r.changes)).toEqual([1, 1]);
        const e = await rejection(db.batch(['INSERT INTO t VALUES (3)', 'INSERT INTO t VALUES (1)']));
        expect((e as SqliteError).code).toBe('SQLITE_CONSTRAINT_UNIQUE');
        expect(await db.query('SELECT v FROM t ORDER BY v')).toEqual([{ v: 1 }, { v: 2 }]);
      }));

    test('export gives a standalone SQLite file with the WAL folded in', () =>
      withDb(open, async (db) => {
        await db.exec("CREATE TABLE t(v); INSERT INTO t VALUES ('exported');");
        const bytes = await db.export();
        expect(new TextDecoder().decode(bytes.subarray(0, 15))).toBe('SQLite format 3');
        expect(bytes[18]).toBe(1);
        expect(bytes.length % 4096).toBe(0);
        await withDb(open, async (other) => {
          await other.import(bytes);
          expect(await other.query('SELECT v FROM t')).toEqual([{ v: 'exported' }]);
          expect(await other.get('PRAGMA journal_mode')).toEqual({ journal_mode: 'wal' });
          expect(await other.get('PRAGMA integrity_check')).toEqual({ integrity_check: 'ok' });
        });
      }));

    test('import converts a file with another page size', () =>
      withDb(open, async (db) => {
        const bytes = await foreignFile(1024, "CREATE TABLE t(v); INSERT INTO t VALUES ('small pages');");
        expect([bytes[16], bytes[17]]).toEqual([4, 0]);
        await db.import(bytes);
        expect(await db.query('SELECT v FROM t')).toEqual([{ v: 'small pages' }]);
        expect(await db.get('PRAGMA page_size')).toEqual({ page_size: 4096 });
      }));

    test('import refuses a file that is not SQLite and keeps the old data', () =>
      withDb(open, async (db) => {
        await db.exec("CREATE TABLE t(v); INSERT INTO t VALUES ('kept');");
        for (const bad of [new TextEncoder().encode('hello, not a database'), new Uint8Array(8192)]) {
          const e = await rejection(db.import(bad));
          expect(e).toBeInstanceOf(OutpostError);
          expect((e as OutpostError).code).toBe('NOT_A_DATABASE');
        }
        const good = await db.export();
        const truncated = await rejection(db.import(good.subarray(0, good.length - 100)));
        expect(truncated.message).toMatch(/truncated|whole number/);
        expect(await db.query('SELECT v FROM t')).toEqual([{ v: 'kept' }]);
      }));

    test('import refuses a corrupt file and keeps the old data', () =>
      withDb(open, async (db) => {
        await db.exec("CREATE TABLE t(v); INSERT INTO t VALUES ('kept');");
        const image = await db.export();
        const corrupt = image.slice();
        // Scribble over the second page (the table's b-tree page) past its header.
        corrupt.fill(0xab, 4096, 8192);
        const e = await rejection(db.import(corrupt));
        expect((e as OutpostError).code).toBe('NOT_A_DATABASE');
        expect(await db.query('SELECT v FROM t')).toEqual([{ v: 'kept' }]);
      }));

    test('a closed database refuses calls', async () => {
      const db = await open();
      await db.close();
      expect(db.closed).toBe(true);
      const e = await rejection(db.query('SELECT 1'));
      expect((e as OutpostError).code).toBe('DATABASE_CLOSED');
      await db.close();
    });

    test('generated results of every size and kind come back exactly as stored', () =>
      withDb(open, async (db) => {
        const seed = testSeed();
        const random = rng(seed);
        for (let round = 0; round < 6; round++) {
          // Sizes around the packed-row buffers' growth points (64, 128, 256, ... cells).
          const columns = int(random, 1, 7);
          const rows = [int(random, 0, 5), int(random, 60, 70), int(random, 120, 300), int(random, 1000, 3000)][round % 4]!;
          const names = Array.from({ length: columns }, (_, i) => `c${i}`);
          await db.exec(`DROP TABLE IF EXISTS g; CREATE TABLE g(${names.join(', ')})`);
          const expected: SqlValue[][] = [];
          await db.transaction(async (tx) => {
            for (let r = 0; r < rows; r++) {
              const values = names.map(() => sqlValue(random));
              expected.push(values);
              await tx.run(`INSERT INTO g VALUES (${names.map(() => '?').join(', ')})`, values);
            }
          });
          const got = await db.query<Record<string, SqlValue>>(`SELECT ${names.join(', ')} FROM g ORDER BY rowid`);
          const context = `seed ${seed} (replay with OUTPOST_SEED=${seed}), round ${round}, ${rows} rows x ${columns} columns`;
          expect(got.length, context).toBe(rows);
          for (let r = 0; r < rows; r++) {
            for (let c = 0; c < columns; c++) {
              const want = expected[r]![c]!;
              const have = got[r]![names[c]!];
              if (typeof want === 'bigint' && Number.isSafeInteger(Number(want))) expect(have, `${context}, cell ${r}.${c}`).toBe(Number(want));
              else expect(have, `${context}, cell ${r}.${c}`).toEqual(want);
            }
          }
          const many = await db.execMany(`SELECT ${names.join(', ')} FROM g ORDER BY rowid`);
          expect(many[0]!.rows.length, context).toBe(rows);
          expect(many[0]!.rows, context).toEqual(got.map((row) => names.map((n) => row[n])));
        }
      }));

    test('a result of several parts comes back cell for cell as SQLite holds it (generated)', () =>
      withDb(open, async (db) => {
        const seed = testSeed();
        const random = rng(seed);
        const names = ['a', 'b', 'c', 'd', 'e', 'f'];
        // Past PART_CELLS (packed-rows.ts) three times over (the id, each value and its type),
        // so a large result leaves the engine in parts where the engine serves another thread:
        // the parts' seams fall at random rows.
        const rows = Math.ceil((3 * PART_CELLS) / (2 * names.length + 1)) + int(random, 0, 2000);
        const expected: SqlValue[][] = [];
        for (let r = 0; r < rows; r++) {
          // Long ASCII text is rarer early on: a later part outgrows the buffers sized from the one before.
          const long = r > rows / 2 ? 0.02 : 0.002;
          expected.push(names.map(() => (random() < long ? 'z'.repeat(int(random, 1000, 3000)) : sqlValue(random))));
        }
        await db.exec(`CREATE TABLE p(id INTEGER PRIMARY KEY, ${names.join(', ')})`);
        const insert = `INSERT INTO p VALUES (?, ${names.map(() => '?').join(', ')})`;
        await db.batch(expected.map((values, r) => ({ sql: insert, params: [r, ...values] })));
        const types = names.map((n) => `typeof(${n}) AS t_${n}`).join(', ');
        const got = await db.query<Record<string, SqlValue>>(`SELECT id, ${names.join(', ')}, ${types} FROM p ORDER BY id`);
        const context = `seed ${seed} (replay with OUTPOST_SEED=${seed}), ${rows} rows`;
        expect(got.length, context).toBe(rows);
        const sqliteType = (v: SqlValue): string => (v === null ? 'null' : typeof v === 'string' ? 'text' : v instanceof Uint8Array ? 'blob' : typeof v === 'bigint' || (Number.isSafeInteger(v) && !Object.is(v, -0)) ? 'integer' : 'real');
        for (let r = 0; r < rows; r++) {
          const row = got[r]!;
          if (row.id !== r) expect(row.id, `${context}, row ${r}`).toBe(r);
          for (let c = 0; c < names.length; c++) {
            const stored = expected[r]![c]!;
            // What the API gives for it: an INTEGER within 2^53 is a number.
            const want = typeof stored === 'bigint' && Number.isSafeInteger(Number(stored)) ? Number(stored) : stored;
            const have = row[names[c]!];
            const same = want instanceof Uint8Array ? have instanceof Uint8Array && have.length === want.length && have.every((b, i) => b === want[i]) : Object.is(have, want);
            // expect() only on a difference: one per cell would be most of the test's time.
            if (!same) expect(have, `${context}, cell ${r}.${names[c]}`).toEqual(want);
            if (row[`t_${names[c]}`] !== sqliteType(stored)) expect(row[`t_${names[c]}`], `${context}, type of ${r}.${names[c]}`).toBe(sqliteType(stored));
          }
        }
      }));

    test('10,000 rows in one transaction pass integrity_check', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL)');
        await db.transaction(async (tx) => {
          for (let i = 0; i < 10_000; i++) await tx.run('INSERT INTO t(name, score) VALUES (?, ?)', [`name ${i}`, i / 3]);
        });
        expect(await db.get('SELECT count(*) AS n, sum(id) AS s FROM t')).toEqual({ n: 10_000, s: 50_005_000 });
        expect(await db.get('PRAGMA integrity_check')).toEqual({ integrity_check: 'ok' });
      }));
  });
}
