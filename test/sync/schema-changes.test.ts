/**
 * Schema changes between a write and its push or replay: a change always applies to the table
 * and column it was made to, or is refused and reported (SyncError REJECTED naming the table
 * and column, kept in pendingChanges); never moved to another column, never lost. One named
 * test per case of the issue, against the Outpost server. The generated cases are in
 * schema-fuzz.test.ts.
 */
import { describe, expect, test } from 'vitest';
import { SyncError } from '../../src/errors.js';
import type { Database } from '../../src/types.js';
import { contents, schemaOf } from './schema-compare.js';
import { syncClientsOfOneServer } from '../support/sync-clients.js';

const clients = syncClientsOfOneServer('outpost-schema-');
const client = (db: string): Promise<Database> => clients.client(db);

/** Two clients of a fresh database whose table `t` both have. */
async function pair(db: string, ddl: string, rows: string): Promise<{ a: Database; b: Database }> {
  const a = await client(db);
  await a.exec(ddl);
  await a.exec(rows);
  await a.push();
  const b = await client(db);
  await b.pull();
  return { a, b };
}

/** A's tables as B has them after a push and a pull. */
async function expectSameAfterSync(a: Database, b: Database): Promise<void> {
  await a.push();
  await b.pull();
  expect(await schemaOf(b)).toEqual(await schemaOf(a));
  expect(await contents(b)).toEqual(await contents(a));
}

async function rejection(op: Promise<unknown>): Promise<SyncError> {
  const error = await op.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SyncError);
  expect((error as SyncError).code).toBe('REJECTED');
  return error as SyncError;
}

describe('changes made before a later schema change of the same client', () => {
  test('a pending update lands in its own column after a later DROP COLUMN', async () => {
    const { a, b } = await pair('drop-column', 'CREATE TABLE t(id INTEGER PRIMARY KEY, a, b, c)', "INSERT INTO t VALUES (1, 'a1', 'b1', 'c1')");
    await a.exec("UPDATE t SET c = 'C' WHERE id = 1");
    await a.exec('ALTER TABLE t DROP COLUMN b');
    await expectSameAfterSync(a, b);
    expect(await b.query('SELECT * FROM t')).toEqual([{ id: 1, a: 'a1', c: 'C' }]);
  });

  test('an insert made before a DROP COLUMN keeps every value in its column', async () => {
    const { a, b } = await pair('drop-column-insert', 'CREATE TABLE t(id INTEGER PRIMARY KEY, a, b, c)', 'SELECT 1');
    await a.exec("INSERT INTO t VALUES (2, 'a2', 'b2', 'c2')");
    await a.exec('ALTER TABLE t DROP COLUMN a');
    await expectSameAfterSync(a, b);
    expect(await b.query('SELECT * FROM t')).toEqual([{ id: 2, b: 'b2', c: 'c2' }]);
  });

  test('RENAME COLUMN between capture and push', async () => {
    const { a, b } = await pair('rename-column', 'CREATE TABLE t(id INTEGER PRIMARY KEY, a, b)', "INSERT INTO t VALUES (1, 'a1', 'b1')");
    await a.exec("UPDATE t SET b = 'B' WHERE id = 1");
    await a.exec('ALTER TABLE t RENAME COLUMN b TO bb');
    await a.exec("INSERT INTO t(id, a, bb) VALUES (2, 'a2', 'bb2')");
    await expectSameAfterSync(a, b);
    expect(await b.query('SELECT * FROM t ORDER BY id')).toEqual([
      { id: 1, a: 'a1', bb: 'B' },
      { id: 2, a: 'a2', bb: 'bb2' },
    ]);
  });

  test('DROP + CREATE of the table between capture and push', async () => {
    const { a, b } = await pair('drop-create', 'CREATE TABLE t(id INTEGER PRIMARY KEY, a, b)', "INSERT INTO t VALUES (1, 'a1', 'b1')");
    await a.exec("INSERT INTO t VALUES (2, 'a2', 'b2')");
    await a.exec('DROP TABLE t');
    await a.exec('CREATE TABLE t(x, y, z, id INTEGER PRIMARY KEY)');
    await a.exec("INSERT INTO t VALUES ('x', 'y', 'z', 7)");
    await expectSameAfterSync(a, b);
    expect(await b.query('SELECT * FROM t')).toEqual([{ x: 'x', y: 'y', z: 'z', id: 7 }]);
  });

  const rebuild = [
    'CREATE TABLE t_new(id INTEGER PRIMARY KEY, b TEXT NOT NULL, a)',
    'INSERT INTO t_new(id, b, a) SELECT id, coalesce(b, \'\'), a FROM t',
    'DROP TABLE t',
    'ALTER TABLE t_new RENAME TO t',
  ];

  test("SQLite's table-rebuild migration in autocommit keeps the rows", async () => {
    const { a, b } = await pair('rebuild-autocommit', 'CREATE TABLE t(id INTEGER PRIMARY KEY, a, b)', "INSERT INTO t VALUES (1, 'a1', 'b1'), (2, 'a2', NULL)");
    await a.exec("UPDATE t SET a = 'A1' WHERE id = 1");
    for (const sql of rebuild) await a.exec(sql);
    await expectSameAfterSync(a, b);
    expect(await b.query('SELECT * FROM t ORDER BY id')).toEqual([
      { id: 1, b: 'b1', a: 'A1' },
      { id: 2, b: '', a: 'a2' },
    ]);
  });

  test("SQLite's table-rebuild migration inside one transaction commits and syncs", async () => {
    const { a, b } = await pair('rebuild-transaction', 'CREATE TABLE t(id INTEGER PRIMARY KEY, a, b)', "INSERT INTO t VALUES (1, 'a1', 'b1'), (2, 'a2', NULL)");
    await a.transaction(async (tx) => {
      for (const sql of rebuild) await tx.exec(sql);
      await tx.exec("INSERT INTO t VALUES (3, 'b3', 'a3')");
    });
    await expectSameAfterSync(a, b);
    expect(await b.query('SELECT * FROM t ORDER BY id')).toEqual([
      { id: 1, b: 'b1', a: 'a1' },
      { id: 2, b: '', a: 'a2' },
      { id: 3, b: 'b3', a: 'a3' },
    ]);
  });

  test('a pull in between replays the pending schema changes and rows in statement order', async () => {
    const { a, b } = await pair('replay-order', 'CREATE TABLE t(id INTEGER PRIMARY KEY, a, b)', "INSERT INTO t VALUES (1, 'a1', 'b1')");
    await a.exec("UPDATE t SET b = 'B' WHERE id = 1");
    await a.exec('ALTER TABLE t DROP COLUMN a');
    await a.transaction(async (tx) => {
      for (const sql of ['CREATE TABLE t_new(b, id INTEGER PRIMARY KEY)', 'INSERT INTO t_new SELECT b, id FROM t', 'DROP TABLE t', 'ALTER TABLE t_new RENAME TO t']) await tx.exec(sql);
    });
    // Someone else writes, so that A's pull brings a new image and replays A's pending records on it.
    await b.exec('CREATE TABLE other(x)');
    await b.push();
    const before = { schema: await schemaOf(a, ['t']), rows: await contents(a, ['t']) };
    await a.pull();
    expect({ schema: await schemaOf(a, ['t']), rows: await contents(a, ['t']) }).toEqual(before);
    await expectSameAfterSync(a, b);
    expect(await b.query('SELECT * FROM t')).toEqual([{ b: 'B', id: 1 }]);
  });
});

describe("changes pending while another client changes the schema", () => {
  test('a pending update of a column another client dropped is refused and reported, never moved', async () => {
    const { a, b } = await pair('other-drop', 'CREATE TABLE t(id INTEGER PRIMARY KEY, a, b, c)', "INSERT INTO t VALUES (1, 'a1', 'b1', 'c1')");
    await a.exec("UPDATE t SET b = 'B' WHERE id = 1");
    await a.exec("INSERT INTO t VALUES (2, 'a2', NULL, 'c2')");
    await b.exec('ALTER TABLE t DROP COLUMN b');
    await b.push();
    const error = await rejection(a.pull());
    expect(error.table).toBe('t');
    expect(error.message).toMatch(/column b of table t no longer exists/);
    const pending = await a.pendingChanges();
    const refused = pending.filter((c) => c.rejected !== null);
    expect(refused.map((c) => c.mutations[0]?.after)).toEqual([{ b: 'B' }]);
    // The insert, whose dropped column was NULL, replays and pushes; the refused update is not sent.
    await a.push();
    await b.pull();
    expect(await b.query('SELECT * FROM t ORDER BY id')).toEqual([
      { id: 1, a: 'a1', c: 'c1' },
      { id: 2, a: 'a2', c: 'c2' },
    ]);
    expect(await a.query('SELECT * FROM t ORDER BY id')).toEqual(await b.query('SELECT * FROM t ORDER BY id'));
    // Dropped by the application, it is gone for good.
    await a.dropPendingChange(refused[0]!.changeId);
    expect((await a.pendingChanges()).filter((c) => c.rejected !== null)).toEqual([]);
  });

  test('a pending insert with a value for a column another client dropped is refused', async () => {
    const { a, b } = await pair('other-drop-insert', 'CREATE TABLE t(id INTEGER PRIMARY KEY, a, b)', 'SELECT 1');
    await a.exec("INSERT INTO t VALUES (1, 'a1', 'b1')");
    await b.exec('ALTER TABLE t DROP COLUMN b');
    await b.push();
    const error = await rejection(a.pull());
    expect(error.message).toMatch(/column b of table t/);
    expect(await a.query('SELECT * FROM t')).toEqual([]);
    expect((await a.pendingChanges()).map((c) => c.rejected !== null)).toEqual([true]);
    // Refused once, it is not reported again by the next pull, and stays pending.
    await b.exec('CREATE TABLE other(x)');
    await b.push();
    await a.pull();
    expect((await a.pendingChanges()).map((c) => c.rejected !== null)).toEqual([true]);
  });

  test('a pending update of a column another client renamed is refused', async () => {
    const { a, b } = await pair('other-rename', 'CREATE TABLE t(id INTEGER PRIMARY KEY, a, b)', "INSERT INTO t VALUES (1, 'a1', 'b1')");
    await a.exec("UPDATE t SET b = 'B' WHERE id = 1");
    await b.exec('ALTER TABLE t RENAME COLUMN b TO bb');
    await b.push();
    const error = await rejection(a.pull());
    expect(error.message).toMatch(/column b of table t/);
    expect(await a.query('SELECT * FROM t')).toEqual([{ id: 1, a: 'a1', bb: 'b1' }]);
  });

  test('a pending change to a table another client dropped is refused', async () => {
    const { a, b } = await pair('other-drop-table', 'CREATE TABLE t(id INTEGER PRIMARY KEY, a)', "INSERT INTO t VALUES (1, 'a1')");
    await a.exec("UPDATE t SET a = 'A' WHERE id = 1");
    await b.exec('DROP TABLE t');
    await b.push();
    const error = await rejection(a.pull());
    expect(error.message).toMatch(/table t no longer exists/);
  });

  test('a pending update follows its column by name when another client recreated the table with the columns reordered', async () => {
    const { a, b } = await pair('other-reorder', 'CREATE TABLE t(id INTEGER PRIMARY KEY, a, b)', "INSERT INTO t VALUES (1, 'a1', 'b1')");
    await a.exec("UPDATE t SET b = 'B' WHERE id = 1");
    await b.transaction(async (tx) => {
      for (const sql of ['CREATE TABLE t_new(b, a, id INTEGER PRIMARY KEY)', 'INSERT INTO t_new SELECT b, a, id FROM t', 'DROP TABLE t', 'ALTER TABLE t_new RENAME TO t']) await tx.exec(sql);
    });
    await b.push();
    await a.pull();
    expect(await a.query('SELECT * FROM t')).toEqual([{ b: 'B', a: 'a1', id: 1 }]);
    await expectSameAfterSync(a, b);
  });

  test('a pending insert replays by name when another client added a column', async () => {
    const { a, b } = await pair('other-add', 'CREATE TABLE t(id INTEGER PRIMARY KEY, a)', 'SELECT 1');
    await a.exec("INSERT INTO t VALUES (1, 'a1')");
    await b.exec("ALTER TABLE t ADD COLUMN d DEFAULT 'dd'");
    await b.push();
    await a.pull();
    expect(await a.query('SELECT * FROM t')).toEqual([{ id: 1, a: 'a1', d: 'dd' }]);
    await expectSameAfterSync(a, b);
  });

  test('a pending update of a table keyed out of column order survives a replay by name and the replays after it', async () => {
    const { a, b } = await pair('other-add-composite', 'CREATE TABLE t(a, b, v, PRIMARY KEY (b, a))', "INSERT INTO t VALUES (1, 'x', 'v1')");
    await a.exec("UPDATE t SET v = 'V' WHERE a = 1 AND b = 'x'");
    await b.exec('ALTER TABLE t ADD COLUMN d');
    await b.push();
    await a.pull();
    await b.exec('CREATE TABLE other(x)');
    await b.push();
    // This replay reads the record the first one rewrote by name.
    await a.pull();
    expect(await a.query('SELECT a, b, v FROM t')).toEqual([{ a: 1, b: 'x', v: 'V' }]);
    await expectSameAfterSync(a, b);
  });
});

test('a change record of the first format (DDL first, columns by the schema at push time) still pushes', async () => {
  const { a, b } = await pair('old-format', 'CREATE TABLE t(id INTEGER PRIMARY KEY, v)', 'SELECT 1');
  // The pull drops the acknowledged CREATE TABLE record, so the insert's is the only one.
  await a.pull();
  await a.exec("INSERT INTO t VALUES (1, 'one')");
  // Rewrite the record as the first format held it: no DDL (NULL), its one changeset as is.
  await a.exec("UPDATE _outpost_changes SET ddl = NULL WHERE ddl LIKE '{%'");
  expect(await a.query('SELECT count(*) AS n FROM _outpost_changes WHERE ddl IS NULL')).toEqual([{ n: 1 }]);
  await expectSameAfterSync(a, b);
  expect(await b.query('SELECT * FROM t')).toEqual([{ id: 1, v: 'one' }]);
});
