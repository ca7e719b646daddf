/**
 * The statement API (prepare, iterate, the sql tag), per-call cancellation, transaction modes and
 * the error fields, on every way of opening a database: Node file and memory
 * (test/statement.test.ts), OPFS (shared between tabs) and memory in a real browser worker
 * (test-browser/statement.browser.test.ts).
 *
 * No test waits a fixed time: a call is held in line by a transaction that waits on a promise
 * the test resolves, and a slow statement is a recursive CTE that would run for minutes.
 */
import { describe, expect, test } from 'vitest';
import { AbortError, OutpostError, SqliteError } from '../../src/errors.js';
import type { Database, OpenOptions, SqlValue } from '../../src/types.js';
import { int, rng, sqlValue, testSeed } from '../support/generate.js';
import { type Opener, withDb, rejection } from './suite-support.js';

export type { Opener } from './suite-support.js';

/** A statement that runs for minutes unless something stops it. */
/** The numbers 1 to the last parameter, as `value` (this SQLite build has no generate_series). */
const SERIES = 'WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < ?) SELECT value FROM s';

export const SLOW_SQL = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000000000) SELECT count(*) AS n FROM c';



async function filled(db: Database, rows: number): Promise<void> {
  await db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)');
  await db.run(`INSERT INTO t SELECT value, printf(?, value) FROM (${SERIES})`, ['row %d', rows]);
}

/** Holds the database's line until `release()`: a transaction waiting on a promise. */
function holdLine(db: Database): { release: () => void; done: Promise<void> } {
  let release: () => void = () => {};
  const held = new Promise<void>((r) => (release = r));
  const done = db.transaction(() => held);
  return { release, done };
}

/** What a backend can do beyond the common contract. */
export interface StatementBackend {
  /** A call's `signal` reaches a statement while it runs (an engine on another thread with the abort flag). */
  signalStopsRunning?: boolean;
}

/** Lets the call start (its turn in line comes within a macrotask), then aborts it. */
async function abortOnceStarted(controller: AbortController): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 0));
  controller.abort();
}

export function statementSuite(name: string, open: Opener, backend: StatementBackend = {}): void {
  describe(`statements: ${name}`, () => {
    test('a prepared statement runs all, get, values and run with new parameters each time', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)');
        const insert = await db.prepare('INSERT INTO t(v) VALUES (?)');
        expect(await insert.run(['a'])).toEqual({ changes: 1, lastInsertRowid: 1n });
        expect(await insert.run(['b'])).toEqual({ changes: 1, lastInsertRowid: 2n });
        const select = await db.prepare<{ id: number; v: string }>('SELECT id, v FROM t WHERE id >= :min ORDER BY id');
        expect(await select.all({ min: 1 })).toEqual([
          { id: 1, v: 'a' },
          { id: 2, v: 'b' },
        ]);
        expect(await select.get({ min: 2 })).toEqual({ id: 2, v: 'b' });
        expect(await select.get({ min: 3 })).toBeUndefined();
        expect(await select.values({ min: 1 })).toEqual([
          [1, 'a'],
          [2, 'b'],
        ]);
      }));

    test('columns() gives each result column its name and declared type', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, price REAL, data BLOB, loose)');
        const stmt = await db.prepare('SELECT id, name AS label, price, data, loose, 1 + 1 AS two FROM t');
        expect(stmt.columns()).toEqual([
          { name: 'id', type: 'INTEGER' },
          { name: 'label', type: 'TEXT' },
          { name: 'price', type: 'REAL' },
          { name: 'data', type: 'BLOB' },
          { name: 'loose', type: null },
          { name: 'two', type: null },
        ]);
      }));

    test('prepare rejects SQL that does not compile, and more than one statement', () =>
      withDb(open, async (db) => {
        const bad = await rejection(db.prepare('SELECT * FROM missing'));
        expect(bad).toBeInstanceOf(SqliteError);
        expect(bad.message).toMatch(/no such table/);
        const two = await rejection(db.prepare('SELECT 1; SELECT 2'));
        expect(two).toBeInstanceOf(OutpostError);
        expect(two.message).toMatch(/more than one/);
        expect(await db.get('SELECT 1 AS one')).toEqual({ one: 1 });
      }));

    test('a finalized statement refuses every call with STATEMENT_FINALIZED; finalizing twice is harmless', () =>
      withDb(open, async (db) => {
        const stmt = await db.prepare('SELECT 1 AS one');
        expect(await stmt.get()).toEqual({ one: 1 });
        await stmt.finalize();
        await stmt.finalize();
        expect(stmt.finalized).toBe(true);
        for (const call of [stmt.all(), stmt.get(), stmt.run(), stmt.values()]) {
          const e = await rejection(call);
          expect(e).toBeInstanceOf(OutpostError);
          expect((e as OutpostError).code).toBe('STATEMENT_FINALIZED');
        }
        expect(() => stmt.iterate()).toThrow(/finalized/);
      }));

    test('a statement of a closed database rejects with DATABASE_CLOSED', async () => {
      const db = await open();
      const stmt = await db.prepare('SELECT 1 AS one');
      await db.close();
      const e = await rejection(stmt.all());
      expect((e as OutpostError).code).toBe('DATABASE_CLOSED');
      await stmt.finalize();
    });

    test('a statement keeps working after the schema changes under it', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE t(a)');
        const stmt = await db.prepare('SELECT * FROM t');
        await db.exec('ALTER TABLE t ADD COLUMN b; INSERT INTO t VALUES (1, 2)');
        expect(await stmt.all()).toEqual([{ a: 1, b: 2 }]);
      }));

    test('iterate streams every row in order across chunks', () =>
      withDb(open, async (db) => {
        await filled(db, 2500);
        const seen: number[] = [];
        for await (const row of db.iterate<{ id: number; v: string }>('SELECT id, v FROM t ORDER BY id')) {
          expect(row.v).toBe(`row ${row.id}`);
          seen.push(row.id);
        }
        expect(seen).toEqual(Array.from({ length: 2500 }, (_, i) => i + 1));
      }));

    test('other calls run between the chunks of an iteration', () =>
      withDb(open, async (db) => {
        await filled(db, 2500);
        await db.exec('CREATE TABLE log(n)');
        let count = 0;
        for await (const _row of db.iterate('SELECT id FROM t')) {
          if (++count % 1000 === 0) await db.run('INSERT INTO log VALUES (?)', [count]);
        }
        expect(count).toBe(2500);
        expect(await db.query('SELECT n FROM log')).toEqual([{ n: 1000 }, { n: 2000 }]);
      }));

    test('break ends the iteration; the statement is free for its next call', () =>
      withDb(open, async (db) => {
        await filled(db, 3000);
        const stmt = await db.prepare<{ id: number }>('SELECT id FROM t ORDER BY id');
        for await (const row of stmt.iterate()) {
          if (row.id === 1500) break;
        }
        expect((await stmt.all()).length).toBe(3000);
        for await (const row of db.iterate<{ id: number }>('SELECT id FROM t ORDER BY id')) {
          if (row.id === 10) break;
        }
        expect(await db.get('SELECT count(*) AS n FROM t')).toEqual({ n: 3000 });
      }));

    test("a statement being iterated refuses its other calls until the loop ends", () =>
      withDb(open, async (db) => {
        await filled(db, 2500);
        const stmt = await db.prepare('SELECT id FROM t');
        const rows = stmt.iterate();
        await rows.next();
        const e = await rejection(stmt.all());
        expect(e.message).toMatch(/being iterated/);
        await rows.return?.(undefined);
        expect((await stmt.all()).length).toBe(2500);
      }));

    test('iterating a statement that writes runs it to its end at once', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v)');
        const ids: number[] = [];
        for await (const row of db.iterate<{ id: number }>(`INSERT INTO t(v) SELECT value FROM (${SERIES}) RETURNING id`, [1500])) {
          ids.push(row.id);
          if (ids.length === 3) break;
        }
        expect(ids).toEqual([1, 2, 3]);
        expect(await db.get('SELECT count(*) AS n FROM t')).toEqual({ n: 1500 });
      }));

    test('iterate inside a transaction sees the transaction', () =>
      withDb(open, async (db) => {
        await filled(db, 10);
        const count = await db.transaction(async (tx) => {
          await tx.run('DELETE FROM t WHERE id > 5');
          let n = 0;
          for await (const _row of tx.iterate('SELECT * FROM t')) n++;
          return n;
        });
        expect(count).toBe(5);
      }));

    test('the sql tag binds every value as a parameter, never as SQL text', () =>
      withDb(open, async (db) => {
        await db.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'one'), (2, 'two')");
        const id = 2;
        expect(await db.sql`SELECT v FROM t WHERE id = ${id}`).toEqual([{ v: 'two' }]);
        const hostile = "x' OR '1'='1";
        expect(await db.sql`SELECT v FROM t WHERE v = ${hostile}`).toEqual([]);
        expect(await db.sql`SELECT ${'?'} AS q, ${null} AS n, ${new Uint8Array([1, 2])} AS b`).toEqual([{ q: '?', n: null, b: new Uint8Array([1, 2]) }]);
        await db.transaction(async (tx) => {
          expect(await tx.sql`SELECT count(*) AS n FROM t WHERE id <= ${5}`).toEqual([{ n: 2 }]);
        });
      }));

    test('transaction takes a mode: deferred, immediate or exclusive', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE t(v)');
        for (const mode of ['deferred', 'immediate', 'exclusive'] as const) {
          await db.transaction((tx) => tx.run('INSERT INTO t VALUES (?)', [mode]), { mode });
        }
        expect(await db.query('SELECT v FROM t')).toEqual([{ v: 'deferred' }, { v: 'immediate' }, { v: 'exclusive' }]);
        const e = await rejection(db.transaction(async () => {}, { mode: 'later' as 'deferred' }));
        expect((e as OutpostError).code).toBe('INVALID_ARGUMENT');
      }));

    test('a failing batch names the statement that failed; items take args as well as params', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY)');
        const e = await rejection(db.batch([{ sql: 'INSERT INTO t VALUES (?)', args: [1] }, { sql: 'INSERT INTO t VALUES (?)', params: [2] }, { sql: 'INSERT INTO t VALUES (?)', args: [1] }]));
        expect(e).toBeInstanceOf(SqliteError);
        expect((e as SqliteError).statementIndex).toBe(2);
        expect((e as SqliteError).code).toBe('SQLITE_CONSTRAINT_PRIMARYKEY');
        expect(await db.query('SELECT id FROM t')).toEqual([]);
        await db.batch([{ sql: 'INSERT INTO t VALUES (?)', args: [7] }]);
        expect(await db.query('SELECT id FROM t')).toEqual([{ id: 7 }]);
      }));

    test('SqliteError carries rawCode beside resultCode', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY)');
        await db.run('INSERT INTO t VALUES (1)');
        const e = (await rejection(db.run('INSERT INTO t VALUES (1)'))) as SqliteError;
        expect(e.resultCode).toBe(1555);
        expect(e.rawCode).toBe(1555);
      }));

    test('a call whose signal is already aborted rejects with AbortError and never runs', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE t(v)');
        const controller = new AbortController();
        controller.abort();
        const e = await rejection(db.run('INSERT INTO t VALUES (1)', [], { signal: controller.signal }));
        expect(e.name).toBe('AbortError');
        expect(e).toBeInstanceOf(AbortError);
        expect(await db.query('SELECT * FROM t')).toEqual([]);
      }));

    test('a queued call aborted before it starts never runs', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE t(v)');
        const line = holdLine(db);
        const controller = new AbortController();
        const queued = db.run('INSERT INTO t VALUES (?)', ['queued'], { signal: controller.signal });
        const after = db.run('INSERT INTO t VALUES (?)', ['after']);
        controller.abort(new Error('user left'));
        const e = await rejection(queued);
        expect(e.name).toBe('AbortError');
        expect(e.message).toMatch(/user left/);
        line.release();
        await line.done;
        await after;
        expect(await db.query('SELECT v FROM t')).toEqual([{ v: 'after' }]);
      }));

    test('timeoutMs stops a slow statement in the engine; only it stops and the database stays usable', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE t(v)');
        const slow = db.get(SLOW_SQL, [], { timeoutMs: 50 });
        const next = db.run('INSERT INTO t VALUES (1)');
        const e = await rejection(slow);
        expect(e.name).toBe('AbortError');
        expect(e.message).toMatch(/timeoutMs/);
        await next;
        expect(await db.query('SELECT v FROM t')).toEqual([{ v: 1 }]);
        expect(await db.get('SELECT 1 AS one', [], { timeoutMs: 10_000 })).toEqual({ one: 1 });
      }));

    test('an aborted call inside a transaction rolls the whole transaction back', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE t(v)');
        let later: Error | null = null;
        const e = await rejection(
          db.transaction(async (tx) => {
            await tx.run('INSERT INTO t VALUES (1)');
            await tx.get(SLOW_SQL, [], { timeoutMs: 20 }).catch(() => {});
            later = await rejection(tx.run('INSERT INTO t VALUES (2)'));
          }),
        );
        expect(e.name).toBe('AbortError');
        expect(later!.name).toBe('AbortError');
        expect(await db.query('SELECT v FROM t')).toEqual([]);
        await db.run('INSERT INTO t VALUES (3)');
        expect(await db.query('SELECT v FROM t')).toEqual([{ v: 3 }]);
      }));

    test.runIf(backend.signalStopsRunning)('a signal stops a statement that is already running; the database stays usable', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE t(v); INSERT INTO t VALUES (1)');
        const controller = new AbortController();
        // SLOW_SQL would run for hours: only the abort ends it.
        const slow = db.get(SLOW_SQL, [], { signal: controller.signal });
        await abortOnceStarted(controller);
        const e = await rejection(slow);
        expect(e.name).toBe('AbortError');
        expect(e).toBeInstanceOf(AbortError);
        expect(await db.query('SELECT v FROM t')).toEqual([{ v: 1 }]);
      }));

    test.runIf(backend.signalStopsRunning)('a signal that stops a running statement in a transaction rolls the transaction back', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE t(v)');
        const controller = new AbortController();
        const e = await rejection(
          db.transaction(async (tx) => {
            await tx.run('INSERT INTO t VALUES (1)');
            const slow = tx.get(SLOW_SQL, [], { signal: controller.signal });
            await abortOnceStarted(controller);
            await slow;
          }),
        );
        expect(e.name).toBe('AbortError');
        expect(await db.query('SELECT v FROM t')).toEqual([]);
        await db.run('INSERT INTO t VALUES (2)');
        expect(await db.query('SELECT v FROM t')).toEqual([{ v: 2 }]);
      }));

    test('aborting between chunks of an iteration stops it with AbortError', () =>
      withDb(open, async (db) => {
        await filled(db, 5000);
        const controller = new AbortController();
        let count = 0;
        const e = await rejection(
          (async () => {
            for await (const _row of db.iterate('SELECT * FROM t', [], { signal: controller.signal })) {
              if (++count === 10) controller.abort();
            }
          })(),
        );
        expect(e.name).toBe('AbortError');
        expect(count).toBe(1000);
        expect(await db.get('SELECT count(*) AS n FROM t')).toEqual({ n: 5000 });
      }));

    test('generated: prepare, values and iterate give what query gives, for random tables', () =>
      withDb(open, async (db) => {
        const seed = testSeed();
        console.log(`statements generated seed=${seed}`);
        const random = rng(seed);
        for (let table = 0; table < 8; table++) {
          const width = int(random, 1, 5);
          const rows = int(random, 0, 2600);
          const columns = Array.from({ length: width }, (_, i) => `c${i}`);
          await db.exec(`CREATE TABLE g${table}(${columns.join(', ')})`);
          const insert = await db.prepare(`INSERT INTO g${table} VALUES (${columns.map(() => '?').join(', ')})`);
          const values: SqlValue[][] = Array.from({ length: rows }, () => columns.map(() => sqlValue(random)));
          await db.transaction(async (tx) => {
            const txInsert = await tx.prepare(`INSERT INTO g${table} VALUES (${columns.map(() => '?').join(', ')})`);
            for (const row of values) await txInsert.run(row);
          });
          await insert.finalize();
          const sql = `SELECT * FROM g${table} WHERE rowid % ? != 0 ORDER BY rowid`;
          const skip = int(random, 2, 7);
          const expected = await db.query(sql, [skip]);
          const stmt = await db.prepare(sql);
          expect(await stmt.all([skip]), `seed ${seed} table ${table}`).toEqual(expected);
          expect(await stmt.values([skip]), `seed ${seed} table ${table}`).toEqual(expected.map((r) => columns.map((c) => r[c])));
          const streamed = [];
          for await (const row of stmt.iterate([skip])) streamed.push(row);
          expect(streamed, `seed ${seed} table ${table}`).toEqual(expected);
          const direct = [];
          for await (const row of db.iterate(sql, [skip])) direct.push(row);
          expect(direct, `seed ${seed} table ${table}`).toEqual(expected);
          await stmt.finalize();
        }
      }));
  });
}
