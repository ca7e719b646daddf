/**
 * Change capture (src/engine/capture.ts, feeding src/sync/change-log.ts): one change record per
 * committed write transaction, whatever path wrote it, written atomically with it; none for
 * rolled-back work.
 */
import { expect, test } from 'vitest';
import { Connection } from '../src/engine/connection.js';
import { encodeChangeset } from '../src/engine/changeset-format.js';
import { textValue } from '../src/engine/stored-value.js';
import { CHANGES_TABLE, type ChangeRecord, ChangeLog, decodeRecord, recordDdl } from '../src/sync/change-log.js';
import { decodeChangeset } from '../src/sync/changeset.js';
import { MemoryDirectory } from '../src/opfs-vfs/storage/memory.js';
import type { SqlValue } from '../src/types.js';

async function captured(): Promise<Connection> {
  const { conn } = await ChangeLog.capturing(
    (capture) => Connection.open(new MemoryDirectory('memory:capture'), { durability: 'normal', intMode: 'number', checkpoint: 'manual', capture }),
    () => 0,
  );
  conn.withoutCapture(() => conn.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE r(a, b); CREATE TABLE w(k TEXT PRIMARY KEY, n) WITHOUT ROWID;'));
  return conn;
}

/** The stored records, as their segments. */
function stored(conn: Connection): ChangeRecord[] {
  const exists = conn.value(`SELECT count(*) FROM sqlite_schema WHERE name = '${CHANGES_TABLE}'`);
  if (exists === 0) return [];
  const rows = conn.execute(`SELECT id, ddl, changeset FROM ${CHANGES_TABLE} ORDER BY id`, undefined).rows;
  return rows.map(([id, ddl, cs]) => ({ id: id as number, segments: decodeRecord(ddl as string | null, cs as Uint8Array) }));
}

/** Each record's DDL, and the operations of its row changes (all segments). */
function records(conn: Connection): { id: number; ddl: string[]; ops: string[] }[] {
  return stored(conn).map((r) => ({
    id: r.id,
    ddl: recordDdl(r),
    ops: r.segments.flatMap((s) => ('ddl' in s ? [] : decodeChangeset(s.changeset).map((c) => `${c.op} ${c.table}`))),
  }));
}

/** Each record's segments in order: `ddl <sql>`, or `<op> <table>` per row change with the recorded columns of its table. */
function segments(conn: Connection): string[][] {
  return stored(conn).map((r) =>
    r.segments.flatMap((s) => ('ddl' in s ? [`ddl ${s.ddl}`] : decodeChangeset(s.changeset).map((c) => `${c.op} ${c.table}(${s.columns?.[c.table]?.join(',')})`))),
  );
}

test('an autocommit statement leaves one record', async () => {
  const conn = await captured();
  conn.run("INSERT INTO t(v) VALUES ('a')", undefined);
  conn.run("UPDATE t SET v = 'b' WHERE id = 1", undefined);
  expect(records(conn)).toEqual([
    { id: 1, ddl: [], ops: ['insert t'] },
    { id: 2, ddl: [], ops: ['update t'] },
  ]);
  await conn.close();
});

test('BEGIN ... COMMIT inside exec leaves one record for the whole transaction', async () => {
  const conn = await captured();
  conn.exec("BEGIN; INSERT INTO t(v) VALUES ('a'); INSERT INTO r VALUES (1, 2); INSERT INTO w VALUES ('k', 1); COMMIT;");
  expect(records(conn)).toEqual([{ id: 1, ddl: [], ops: expect.arrayContaining(['insert t', 'insert r', 'insert w']) }]);
  await conn.close();
});

test('a rolled-back transaction leaves none, and a rolled-back savepoint leaves out its rows', async () => {
  const conn = await captured();
  conn.exec("BEGIN; INSERT INTO t(v) VALUES ('gone'); ROLLBACK;");
  expect(records(conn)).toEqual([]);
  conn.exec("SAVEPOINT a; INSERT INTO t(v) VALUES ('kept'); SAVEPOINT b; INSERT INTO r VALUES ('gone', 0); ROLLBACK TO b; RELEASE a;");
  expect(records(conn)).toEqual([{ id: 1, ddl: [], ops: ['insert t'] }]);
  await conn.close();
});

test('writes made while capture is suspended never reach a later record', async () => {
  const conn = await captured();
  conn.run("INSERT INTO w VALUES ('k', 1)", undefined);
  // A pull's replay deletes the row with capture suspended; then the application inserts the key
  // again. The session must not have seen the delete: it would make the insert an update of a
  // row that the server no longer has.
  conn.withoutCapture(() => conn.run("DELETE FROM w WHERE k = 'k'", undefined));
  conn.run("INSERT INTO w VALUES ('k', 2)", undefined);
  expect(records(conn).map((r) => r.ops)).toEqual([['insert w'], ['insert w']]);
  await conn.close();
});

test('a failing autocommit statement leaves no record and no open transaction', async () => {
  const conn = await captured();
  conn.run("INSERT INTO w VALUES ('k', 1)", undefined);
  expect(() => conn.run("INSERT INTO w VALUES ('k', 2)", undefined)).toThrow(/UNIQUE/);
  expect(conn.inTransaction).toBe(false);
  expect(records(conn)).toHaveLength(1);
  await conn.close();
});

test('DDL is recorded in order with the row changes of its transaction', async () => {
  const conn = await captured();
  conn.exec("CREATE TABLE n(id INTEGER PRIMARY KEY, x); INSERT INTO n(x) VALUES (1);");
  conn.exec('BEGIN; ALTER TABLE n ADD COLUMN y; CREATE INDEX ni ON n(x); COMMIT;');
  conn.exec('CREATE TEMP TABLE scratch(z); INSERT INTO scratch VALUES (1);');
  expect(records(conn)).toEqual([
    { id: 1, ddl: ['CREATE TABLE n(id INTEGER PRIMARY KEY, x);'], ops: [] },
    { id: 2, ddl: [], ops: ['insert n'] },
    { id: 3, ddl: ['ALTER TABLE n ADD COLUMN y;', 'CREATE INDEX ni ON n(x);'], ops: [] },
  ]);
  await conn.close();
});

test('the transaction helper path (BEGIN IMMEDIATE / COMMIT as separate calls) and batch leave one record each', async () => {
  const conn = await captured();
  conn.exec('BEGIN IMMEDIATE');
  conn.run("INSERT INTO t(v) VALUES ('a')", undefined);
  conn.run("INSERT INTO t(v) VALUES ('b')", undefined);
  conn.exec('COMMIT');
  conn.batch(["INSERT INTO r VALUES (1, 1)", { sql: 'INSERT INTO r VALUES (?, ?)', params: [2, 2] as SqlValue[] }]);
  expect(records(conn).map((r) => r.ops.length)).toEqual([2, 2]);
  await conn.close();
});

test('rowid tables record their rowid as the first primary-key column', async () => {
  const conn = await captured();
  conn.run('INSERT INTO r(rowid, a, b) VALUES (7, ?, ?)', ['x', 'y']);
  const cs = conn.execute(`SELECT changeset FROM ${CHANGES_TABLE}`, undefined).rows[0]![0] as Uint8Array;
  expect(decodeChangeset(cs)).toEqual([{ table: 'r', op: 'insert', pk: [true, false, false], before: [], after: [{ type: 'integer', value: 7n }, textValue('x'), textValue('y')] }]);
  await conn.close();
});

test('decoded values keep their storage class: an empty blob is not NULL, a whole REAL not an INTEGER, text keeps its bytes', async () => {
  const conn = await captured();
  conn.exec("INSERT INTO r(rowid, a, b) VALUES (1, x'', NULL)");
  conn.exec("INSERT INTO r(rowid, a, b) VALUES (2, CAST(3 AS REAL), CAST(x'ff00' AS TEXT))");
  conn.exec('UPDATE r SET b = 9 WHERE rowid = 1');
  const changes = stored(conn).flatMap((r) => r.segments.flatMap((s) => ('ddl' in s ? [] : decodeChangeset(s.changeset))));
  expect(changes.map((c) => [c.op, c.before, c.after])).toEqual([
    ['insert', [], [{ type: 'integer', value: 1n }, { type: 'blob', bytes: new Uint8Array(0) }, { type: 'null' }]],
    ['insert', [], [{ type: 'integer', value: 2n }, { type: 'real', value: 3 }, { type: 'text', bytes: Uint8Array.from([0xff, 0]) }]],
    // An update carries old values for the key and the changed column, and `undefined` (not NULL) elsewhere.
    ['update', [{ type: 'integer', value: 1n }, undefined, { type: 'null' }], [undefined, undefined, { type: 'integer', value: 9n }]],
  ]);
  await conn.close();
});

test('a transaction keeps its DDL and row changes in statement order, each change with the columns of its time', async () => {
  const conn = await captured();
  conn.exec('CREATE TABLE n(id INTEGER PRIMARY KEY, x)');
  conn.exec('BEGIN; INSERT INTO n VALUES (1, 1); ALTER TABLE n ADD COLUMN y; INSERT INTO n VALUES (2, 2, 2); ALTER TABLE n DROP COLUMN x; UPDATE n SET y = 3; COMMIT;');
  expect(segments(conn)).toEqual([
    ['ddl CREATE TABLE n(id INTEGER PRIMARY KEY, x)'],
    ['insert n(id,x)', 'ddl ALTER TABLE n ADD COLUMN y;', 'insert n(id,x,y)', 'ddl ALTER TABLE n DROP COLUMN x;', 'update n(id,y)', 'update n(id,y)'],
  ]);
  await conn.close();
});

test("SQLite's table rebuild inside one transaction commits, its rows recorded before the DROP and RENAME", async () => {
  const conn = await captured();
  conn.exec("CREATE TABLE old(id INTEGER PRIMARY KEY, a, b); INSERT INTO old VALUES (1, 'x', 'y'), (2, 'z', 'w');");
  conn.exec('BEGIN; CREATE TABLE new(id INTEGER PRIMARY KEY, b); INSERT INTO new SELECT id, b FROM old; DROP TABLE old; ALTER TABLE new RENAME TO old; COMMIT;');
  expect(segments(conn).at(-1)).toEqual([
    'ddl CREATE TABLE new(id INTEGER PRIMARY KEY, b);',
    'insert new(id,b)',
    'insert new(id,b)',
    'ddl DROP TABLE old;',
    'ddl ALTER TABLE new RENAME TO old;',
  ]);
  expect(conn.execute('SELECT * FROM old ORDER BY id', undefined).rows).toEqual([
    [1, 'y'],
    [2, 'w'],
  ]);
  await conn.close();
});

test('ROLLBACK TO undoes the DDL and row changes recorded since its savepoint, even across a DDL', async () => {
  const conn = await captured();
  conn.exec(
    "BEGIN; INSERT INTO t(v) VALUES ('a'); SAVEPOINT s; INSERT INTO t(v) VALUES ('b'); CREATE TABLE z(a); INSERT INTO z VALUES (1); ROLLBACK TO s; INSERT INTO t(v) VALUES ('c'); RELEASE s; COMMIT;",
  );
  const record = stored(conn)[0]!;
  expect(recordDdl(record)).toEqual([]);
  const values = record.segments.flatMap((s) => ('ddl' in s ? [] : decodeChangeset(s.changeset).map((c) => c.after[1])));
  expect(values).toEqual([textValue('a'), textValue('c')]);
  await conn.close();
});

test("an ALTER TABLE's rewrite of rows is not recorded as row changes", async () => {
  const conn = await captured();
  conn.exec("CREATE TABLE n(id INTEGER PRIMARY KEY, x, y); INSERT INTO n VALUES (1, 'x', 'y');");
  conn.exec('ALTER TABLE n DROP COLUMN x');
  conn.exec("BEGIN; UPDATE n SET y = 'z'; ALTER TABLE n RENAME COLUMN y TO w; COMMIT;");
  expect(segments(conn).slice(-2)).toEqual([['ddl ALTER TABLE n DROP COLUMN x'], ['update n(id,y)', 'ddl ALTER TABLE n RENAME COLUMN y TO w;']]);
  await conn.close();
});

test('encodeChangeset writes what SQLite reads back: every value class, updates with unchanged columns, several tables', async () => {
  const conn = await captured();
  conn.exec("INSERT INTO r(rowid, a, b) VALUES (1, x'', NULL), (2, CAST(3 AS REAL), CAST(x'ff00' AS TEXT)), (3, -9223372036854775808, 'ünï')");
  conn.exec("INSERT INTO w VALUES ('k', randomblob(300))");
  conn.exec("BEGIN; UPDATE r SET b = 9 WHERE rowid = 1; DELETE FROM r WHERE rowid = 2; UPDATE w SET n = 1e300; INSERT INTO t(v) VALUES ('x'); COMMIT;");
  for (const record of stored(conn)) {
    for (const s of record.segments) {
      if ('ddl' in s) continue;
      const rows = decodeChangeset(s.changeset);
      expect(decodeChangeset(encodeChangeset(rows))).toEqual(rows);
    }
  }
  await conn.close();
});
