/**
 * Live queries (`watch`, `onChange`) on every way of opening a database: Node file and memory
 * (test/live.test.ts) and a real browser worker (test-browser/live.browser.test.ts).
 *
 * No test waits a fixed time. "Did not fire" is shown with a barrier: a write to another table
 * whose `onChange` event arrives after any event the write under test could have caused (events
 * come in commit order), then one queued call, which runs after any re-query that event started.
 */
import { describe, expect, test } from 'vitest';
import type { Database, OpenOptions, Row, WatchOptions } from '../../src/types.js';
import { int, pick, rng, testSeed } from '../support/generate.js';
import { type Opener, withDb } from './suite-support.js';

export type { Opener } from './suite-support.js';

/** Every call of one watch, and promises of the next calls. */
class Calls<T> {
  readonly all: T[][] = [];
  private waiters: { pred: (rows: T[]) => boolean; resolve: (rows: T[]) => void }[] = [];
  errors: Error[] = [];
  private errorWaiters: ((e: Error) => void)[] = [];

  onRows = (rows: T[]): void => {
    this.all.push(rows);
    this.waiters = this.waiters.filter((w) => (w.pred(rows) ? (w.resolve(rows), false) : true));
  };

  onError = (e: Error): void => {
    this.errors.push(e);
    for (const w of this.errorWaiters.splice(0)) w(e);
  };

  /** The first call from now on (or the last one already made) whose rows satisfy `pred`. */
  until(pred: (rows: T[]) => boolean): Promise<T[]> {
    const last = this.all.at(-1);
    if (last && pred(last)) return Promise.resolve(last);
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }

  nextError(): Promise<Error> {
    return new Promise((resolve) => this.errorWaiters.push(resolve));
  }
}

function watch<T = Row>(db: Database, sql: string, options: WatchOptions<T> = {}): { calls: Calls<T>; stop: () => void } {
  const calls = new Calls<T>();
  const stop = db.watch<T>(sql, undefined, calls.onRows, { throttleMs: 0, onError: calls.onError, ...options });
  return { calls, stop };
}

/** Resolves once every change event of earlier commits has been seen and its re-queries ran. */
async function settle(db: Database): Promise<void> {
  await db.exec('CREATE TABLE IF NOT EXISTS barrier(n)');
  const seen = new Promise<void>((resolve) => {
    const off = db.onChange(['barrier'], () => {
      off();
      resolve();
    });
  });
  await db.run('INSERT INTO barrier VALUES (1)');
  await seen;
  await db.query('SELECT 1');
  await db.query('SELECT 1');
}


const count = (n: number) => (rows: { n: number }[]) => rows[0]?.n === n;

/**
 * `syncUrl` gives a fresh database URL on an Outpost server, for the behaviours of pulls: a
 * second client writes and pushes, the watching client pulls.
 */
export function liveSuite(name: string, open: Opener, syncUrl?: () => string): void {
  describe(`live queries: ${name}`, () => {
    if (syncUrl) {
      /** Two clients of one server database, both with table t and table other. */
      const twoClients = async (): Promise<[Database, Database]> => {
        const url = syncUrl();
        const writer = await open({ sync: { url } });
        await writer.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v); CREATE TABLE other(v)');
        await writer.push();
        const watcher = await open({ sync: { url } });
        await watcher.pull();
        return [writer, watcher];
      };

      test('fires after a pull that changed its table', async () => {
        const [writer, reader] = await twoClients();
        try {
          const { calls } = watch<{ n: number }>(reader, 'SELECT count(*) AS n FROM t');
          await calls.until(count(0));
          await writer.run('INSERT INTO t(v) VALUES (1)');
          await writer.push();
          expect(await reader.pull()).toBe(true);
          await calls.until(count(1));
        } finally {
          await writer.close();
          await reader.close();
        }
      });

      test('does not fire after a pull that changed only other tables', async () => {
        const [writer, reader] = await twoClients();
        try {
          const { calls } = watch(reader, 'SELECT * FROM t');
          await calls.until(() => true);
          await writer.run('INSERT INTO other VALUES (1)');
          await writer.push();
          expect(await reader.pull()).toBe(true);
          await settle(reader);
          expect(calls.all).toHaveLength(1);
        } finally {
          await writer.close();
          await reader.close();
        }
      });
    }

    test('watch calls onRows at once with the current rows', () =>
      withDb(open, async (db) => {
        await db.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v); INSERT INTO t(v) VALUES ('a'), ('b')");
        const { calls } = watch(db, 'SELECT v FROM t ORDER BY id');
        expect(await calls.until(() => true)).toEqual([{ v: 'a' }, { v: 'b' }]);
      }));

    const paths: [string, (db: Database) => Promise<unknown>][] = [
      ['exec', (db) => db.exec('INSERT INTO t(v) VALUES (1)')],
      ['run', (db) => db.run('INSERT INTO t(v) VALUES (?)', [1])],
      ['batch', (db) => db.batch(['INSERT INTO t(v) VALUES (1)'])],
      ['transaction', (db) => db.transaction((tx) => tx.run('INSERT INTO t(v) VALUES (1)'))],
      ['execMany', (db) => db.execMany('INSERT INTO t(v) VALUES (1)')],
      ['a nested transaction', (db) => db.transaction((tx) => tx.transaction((inner) => inner.run('INSERT INTO t(v) VALUES (1)')))],
    ];
    for (const [path, write] of paths) {
      test(`fires after a write through ${path}`, () =>
        withDb(open, async (db) => {
          await db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v)');
          const { calls } = watch<{ n: number }>(db, 'SELECT count(*) AS n FROM t');
          await calls.until(count(0));
          await write(db);
          expect(await calls.until(count(1))).toEqual([{ n: 1 }]);
        }));
    }

    test('does not fire for a write to another table', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE t(v); CREATE TABLE other(v)');
        const { calls } = watch(db, 'SELECT * FROM t');
        await calls.until(() => true);
        await db.run('INSERT INTO other VALUES (1)');
        await settle(db);
        expect(calls.all).toHaveLength(1);
      }));

    test('does not fire for a rolled-back transaction', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE t(v)');
        const { calls } = watch(db, 'SELECT * FROM t');
        await calls.until(() => true);
        await expect(
          db.transaction(async (tx) => {
            await tx.run('INSERT INTO t VALUES (1)');
            throw new Error('undo');
          }),
        ).rejects.toThrow('undo');
        await db.exec('BEGIN; INSERT INTO t VALUES (2); SAVEPOINT s; ROLLBACK');
        await settle(db);
        expect(calls.all).toHaveLength(1);
      }));

    test('does not fire for a write undone by ROLLBACK TO', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE t(v); CREATE TABLE other(v)');
        const { calls } = watch(db, 'SELECT * FROM t');
        await calls.until(() => true);
        await db.exec('BEGIN; INSERT INTO other VALUES (1); SAVEPOINT s; INSERT INTO t VALUES (1); ROLLBACK TO s; COMMIT');
        await settle(db);
        expect(calls.all).toHaveLength(1);
      }));

    test('does not fire for a write that changed no row', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE t(v)');
        const { calls } = watch(db, 'SELECT * FROM t');
        await calls.until(() => true);
        await db.run('DELETE FROM t WHERE v = 42');
        await settle(db);
        expect(calls.all).toHaveLength(1);
      }));

    const shapes: [string, string][] = [
      ['a view', 'SELECT count(*) AS n FROM pc'],
      ['a join', 'SELECT count(*) AS n FROM p JOIN c ON c.pid = p.id'],
      ['a subquery', 'SELECT count(*) AS n FROM p WHERE id IN (SELECT pid FROM c)'],
    ];
    for (const [shape, sql] of shapes) {
      for (const base of ['p', 'c']) {
        test(`a query over ${shape} reacts to its base table ${base}`, () =>
          withDb(open, async (db) => {
            await db.exec(`CREATE TABLE p(id INTEGER PRIMARY KEY); CREATE TABLE c(pid);
              CREATE VIEW pc AS SELECT p.id FROM p JOIN c ON c.pid = p.id;
              INSERT INTO p VALUES (1); INSERT INTO c VALUES (2)`);
            const { calls } = watch<{ n: number }>(db, sql);
            await calls.until(count(0));
            await db.exec(base === 'p' ? 'INSERT INTO p VALUES (2)' : 'INSERT INTO c VALUES (1)');
            await calls.until(count(1));
          }));
      }
    }

    test('fires for a table a trigger writes', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE t(v); CREATE TABLE log(v); CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO log VALUES (new.v); END');
        const { calls } = watch<{ n: number }>(db, 'SELECT count(*) AS n FROM log');
        await calls.until(count(0));
        await db.run('INSERT INTO t VALUES (1)');
        await calls.until(count(1));
      }));

    test('stops when unsubscribed', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE t(v)');
        const { calls, stop } = watch(db, 'SELECT * FROM t');
        await calls.until(() => true);
        stop();
        await db.run('INSERT INTO t VALUES (1)');
        await settle(db);
        expect(calls.all).toHaveLength(1);
      }));

    test('stops when its signal aborts', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE t(v)');
        const abort = new AbortController();
        const { calls } = watch(db, 'SELECT * FROM t', { signal: abort.signal });
        await calls.until(() => true);
        abort.abort();
        await db.run('INSERT INTO t VALUES (1)');
        await settle(db);
        expect(calls.all).toHaveLength(1);
      }));

    test('keyed rows that did not change keep their identity', () =>
      withDb(open, async (db) => {
        await db.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v); INSERT INTO t VALUES (1, 'a'), (2, 'b')");
        const { calls } = watch<{ id: number; v: string }>(db, 'SELECT id, v FROM t ORDER BY id', { key: 'id' });
        const first = await calls.until(() => true);
        await db.run("UPDATE t SET v = 'B' WHERE id = 2");
        const second = await calls.until((rows) => rows[1]?.v === 'B');
        expect(second[0]).toBe(first[0]);
        expect(second[1]).not.toBe(first[1]);
      }));

    test('a throttle coalesces a burst of 100 writes into few calls, the final rows last', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE t(v)');
        const { calls } = watch<{ n: number }>(db, 'SELECT count(*) AS n FROM t', { throttleMs: 1000 });
        await calls.until(count(0));
        for (let i = 0; i < 100; i++) await db.run('INSERT INTO t VALUES (?)', [i]);
        await calls.until(count(100));
        // Initial, at most one as the burst starts, and the trailing one.
        expect(calls.all.length).toBeLessThanOrEqual(3);
        expect(calls.all.at(-1)).toEqual([{ n: 100 }]);
      }));

    test('calls onError when its table is dropped, and recovers when it is back', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE t(v)');
        const { calls } = watch(db, 'SELECT * FROM t');
        await calls.until(() => true);
        const failed = calls.nextError();
        await db.exec('DROP TABLE t');
        expect((await failed).message).toMatch(/no such table: t/);
        await db.exec('CREATE TABLE t(v); INSERT INTO t VALUES (7)');
        expect(await calls.until((rows) => rows.length === 1)).toEqual([{ v: 7 }]);
      }));

    test('onChange reports the changed tables it asked for', () =>
      withDb(open, async (db) => {
        await db.exec('CREATE TABLE a(v); CREATE TABLE b(v)');
        const seen: string[][] = [];
        const got = new Promise<void>((resolve) =>
          db.onChange(['A', 'c'], (tables) => {
            seen.push(tables);
            resolve();
          }),
        );
        await db.run('INSERT INTO b VALUES (1)');
        await db.batch(['INSERT INTO a VALUES (1)', 'INSERT INTO b VALUES (1)']);
        await got;
        expect(seen).toEqual([['a']]);
      }));

    test('generated: random writes, several watchers, each fires exactly when its tables change', async () => {
      const seed = testSeed();
      console.log(`live generated test seed ${seed} (OUTPOST_SEED replays it)`);
      const random = rng(seed);
      await withDb(open, async (db) => {
        const tables = ['t0', 't1', 't2', 't3'];
        await db.exec(tables.map((t) => `CREATE TABLE ${t}(id INTEGER PRIMARY KEY, v)`).join(';'));
        await db.exec('CREATE VIEW v01 AS SELECT id, v FROM t0 UNION ALL SELECT id, v FROM t1');
        const queries: { sql: string; reads: string[] }[] = [
          { sql: 'SELECT id, v FROM t0 ORDER BY id', reads: ['t0'] },
          { sql: 'SELECT count(*) AS n, sum(v) AS s FROM t1', reads: ['t1'] },
          { sql: 'SELECT * FROM v01 ORDER BY id, v', reads: ['t0', 't1'] },
          { sql: 'SELECT t2.id, t3.v FROM t2 LEFT JOIN t3 ON t3.id = t2.id ORDER BY t2.id', reads: ['t2', 't3'] },
          { sql: 'SELECT id FROM t3 WHERE v > 50 ORDER BY id', reads: ['t3'] },
        ];
        const watches = queries.map((q) => ({ ...q, ...watch(db, q.sql, { key: 'id' as never }) }));
        for (const w of watches) await w.calls.until(() => true);
        for (let step = 0; step < 40; step++) {
          const before = watches.map((w) => w.calls.all.length);
          const touched = new Set<string>();
          const statements: string[] = [];
          for (let i = int(random, 1, 3); i > 0; i--) {
            const t = pick(random, tables);
            const id = int(random, 1, 8);
            const kind = int(random, 0, 2);
            statements.push(
              kind === 0
                ? `INSERT OR REPLACE INTO ${t} VALUES (${id}, ${int(random, 0, 100)})`
                : kind === 1
                  ? `UPDATE ${t} SET v = ${int(random, 0, 100)} WHERE id = ${id}`
                  : `DELETE FROM ${t} WHERE id = ${id}`,
            );
            // A statement that changes no row (an update or delete of a missing id) touches nothing.
            const exists = (await db.get(`SELECT 1 AS x FROM ${t} WHERE id = ${id}`)) !== undefined;
            if (kind === 0 || exists) touched.add(t);
          }
          const rollBack = random() < 0.2;
          if (rollBack) {
            await db.transaction(async (tx) => {
              for (const s of statements) await tx.exec(s);
              throw new Error('rolled back');
            }).catch(() => {});
            touched.clear();
          } else {
            // Each statement sees the rows as the previous left them: re-check what each touched.
            await db.transaction(async (tx) => {
              for (const s of statements) await tx.exec(s);
            });
          }
          await settle(db);
          for (const [i, w] of watches.entries()) {
            const fired = w.calls.all.length > before[i]!;
            const shouldFire = w.reads.some((t) => touched.has(t));
            if (!shouldFire) expect(fired, `seed ${seed} step ${step}: ${w.sql} fired for ${statements.join('; ')}`).toBe(false);
            expect(w.calls.all.at(-1), `seed ${seed} step ${step}: ${w.sql}`).toEqual(await db.query(w.sql));
          }
        }
      });
    });
  });
}
