/**
 * Change capture (src/engine/capture.ts, feeding src/sync/change-log.ts): one change record per
 * committed write transaction, whatever path wrote it, written atomically with it; none for
 * rolled-back work.
 */
import { expect, test } from 'vitest';
import { Connection } from '../src/engine/connection.js';
import { textValue } from '../src/engine/stored-value.js';
import { CHANGES_TABLE, ChangeLog } from '../src/sync/change-log.js';
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

function records(conn: Connection): { id: number; ddl: string[]; ops: string[] }[] {
  const exists = conn.value(`SELECT count(*) FROM sqlite_schema WHERE name = '${CHANGES_TABLE}'`);
  if (exists === 0) return [];
  const rows = conn.execute(`SELECT id, ddl, changeset FROM ${CHANGES_TABLE} ORDER BY id`, undefined).rows;
  return rows.map(([id, ddl, cs]) => ({
    id: id as number,
    ddl: ddl ? (JSON.parse(ddl as string) as string[]) : [],
    ops: decodeChangeset(conn, cs as Uint8Array).map((c) => `${c.op} ${c.table}`),
  }));
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
  expect(decodeChangeset(conn, cs)).toEqual([{ table: 'r', op: 'insert', pk: [true, false, false], before: [], after: [{ type: 'integer', value: 7n }, textValue('x'), textValue('y')] }]);
  await conn.close();
});
