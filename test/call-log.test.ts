/**
 * Applied call ids (src/worker/call-log.ts): a follower's write call leaves a record exactly
 * when it commits, the record is never captured for sync, and the table stays small.
 */
import { expect, test } from 'vitest';
import { connectionDriver } from '../src/driver.js';
import { Connection } from '../src/engine/connection.js';
import { CALLS_TABLE } from '../src/sync/calls-table.js';
import { CHANGES_TABLE, ChangeLog } from '../src/sync/change-log.js';
import { MemoryDirectory } from '../src/opfs-vfs/storage/memory.js';
import { CallLog } from '../src/worker/call-log.js';
import { int, rng, testSeed } from './support/generate.js';

async function synced(): Promise<{ conn: Connection; calls: CallLog; driver: ReturnType<typeof connectionDriver> }> {
  const { conn } = await ChangeLog.capturing(
    (capture) => Connection.open(new MemoryDirectory(`memory:calls-${crypto.randomUUID()}`), { durability: 'normal', intMode: 'number', checkpoint: 'manual', capture }),
    () => 0,
  );
  conn.withoutCapture(() => conn.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)'));
  return { conn, calls: new CallLog(conn), driver: connectionDriver(conn) };
}

const never = (): void => {
  throw new Error('the call was expected to be recorded');
};

const count = (conn: Connection, sql: string): number => Number(conn.value(sql));

test('an autocommit write commits with its record and result, and the record is not a change to sync', async () => {
  const { conn, calls, driver } = await synced();
  const value = await calls.run('a', 1, 1, 'run', () => driver.run("INSERT INTO t(v) VALUES ('x')", undefined), never);
  expect(value).toEqual({ changes: 1, lastInsertRowid: 1n });
  expect(conn.inTransaction).toBe(false);
  expect(calls.applied('a', [1, 2], ['run', 'run'])).toEqual([{ callId: 1, value: { changes: 1, lastInsertRowid: 1n } }]);
  // One change record, for the user's row only.
  expect(count(conn, `SELECT count(*) FROM ${CHANGES_TABLE}`)).toBe(1);
  await calls.run('a', 2, 2, 'run', () => driver.run("UPDATE t SET v = 'z'", undefined), never);
  expect(count(conn, `SELECT count(*) FROM ${CHANGES_TABLE}`)).toBe(2);
  await conn.close();
});

test('a write that fails leaves no record and loses nothing', async () => {
  const { conn, calls, driver } = await synced();
  await driver.run("INSERT INTO t(id, v) VALUES (1, 'x')", undefined);
  let told = 0;
  const failed = calls.run('a', 1, 1, 'run', () => driver.run("INSERT INTO t(id, v) VALUES (1, 'y')", undefined), () => told++);
  await expect(failed).rejects.toThrow(/UNIQUE/);
  expect(told).toBe(1);
  expect(calls.applied('a', [1], ['run'])).toEqual([]);
  expect(await driver.query('SELECT v FROM t', undefined).then(() => count(conn, 'SELECT count(*) FROM t'))).toBe(1);
  expect(conn.inTransaction).toBe(false);
  await conn.close();
});

test('a call that cannot run inside a transaction runs as sent, and the follower is told it is unrecorded', async () => {
  const { conn, calls, driver } = await synced();
  let told = 0;
  await calls.run('a', 1, 1, 'exec', () => driver.exec("BEGIN; INSERT INTO t(v) VALUES ('x'); COMMIT"), () => told++);
  expect(told).toBe(1);
  expect(count(conn, 'SELECT count(*) FROM t')).toBe(1);
  await calls.run('a', 2, 2, 'exec', () => driver.exec('VACUUM'), () => told++);
  expect(told).toBe(2);
  await conn.close();
});

test("inside the caller's transaction the record commits with its COMMIT and goes with its ROLLBACK", async () => {
  const { conn, calls, driver } = await synced();
  await driver.exec('BEGIN IMMEDIATE');
  await calls.run('a', 1, 1, 'run', () => driver.run("INSERT INTO t(v) VALUES ('x')", undefined), never);
  await calls.run('a', 2, 2, 'exec', () => driver.exec('COMMIT'), never);
  await driver.exec('BEGIN IMMEDIATE');
  await calls.run('a', 3, 3, 'run', () => driver.run("INSERT INTO t(v) VALUES ('y')", undefined), never);
  await driver.rollback();
  expect(calls.applied('a', [2, 3], ['exec', 'run'])).toEqual([{ callId: 2, value: undefined }]);
  await conn.close();
});

test('the table is created again when something dropped it', async () => {
  const { conn, calls, driver } = await synced();
  await calls.run('a', 1, 1, 'run', () => driver.run("INSERT INTO t(v) VALUES ('x')", undefined), never);
  conn.withoutCapture(() => conn.exec(`DROP TABLE ${CALLS_TABLE}`));
  await calls.run('a', 2, 2, 'run', () => driver.run("INSERT INTO t(v) VALUES ('y')", undefined), never);
  expect(calls.applied('a', [1, 2], ['run', 'run']).map((a) => a.callId)).toEqual([2]);
  await conn.close();
});

test('records stay bounded: answered calls and dead followers are deleted (generated)', async () => {
  const seed = testSeed();
  console.log(`call-log seed ${seed} (OUTPOST_SEED replays it)`);
  const random = rng(seed);
  const { conn, calls, driver } = await synced();
  const next = new Map<string, number>();
  const clients = ['a', 'b', 'c'];
  for (let i = 0; i < 400; i++) {
    const client = clients[int(random, 0, clients.length - 1)]!;
    const callId = (next.get(client) ?? 0) + 1;
    next.set(client, callId);
    // The follower's oldest unanswered call: this one, or sometimes one a little older.
    const keepFrom = Math.max(1, callId - int(random, 0, 3));
    await calls.run(client, callId, keepFrom, 'run', () => driver.run('INSERT INTO t(v) VALUES (?)', [client]), never);
  }
  for (const client of clients) expect(count(conn, `SELECT count(*) FROM ${CALLS_TABLE} WHERE client = '${client}'`), client).toBeLessThanOrEqual(32 + 4);
  calls.forget((client) => client === 'a');
  expect(count(conn, `SELECT count(DISTINCT client) FROM ${CALLS_TABLE}`)).toBe(1);
  await conn.close();
});

test('export() leaves the records out, and the rest of the database in', async () => {
  const { conn, calls, driver } = await synced();
  await calls.run('a', 1, 1, 'run', () => driver.run("INSERT INTO t(v) VALUES ('x')", undefined), never);
  expect(count(conn, `SELECT count(*) FROM sqlite_schema WHERE name = '${CALLS_TABLE}'`)).toBe(1);
  const image = await driver.export();
  const copy = await Connection.open(new MemoryDirectory(`memory:calls-copy-${crypto.randomUUID()}`), { durability: 'normal', intMode: 'number' });
  copy.import(image);
  expect(count(copy, `SELECT count(*) FROM sqlite_schema WHERE name = '${CALLS_TABLE}'`)).toBe(0);
  expect(copy.value('SELECT v FROM t')).toBe('x');
  expect(copy.value('PRAGMA integrity_check')).toBe('ok');
  // The live database keeps them: a follower may still ask about its calls.
  expect(count(conn, `SELECT count(*) FROM ${CALLS_TABLE}`)).toBe(1);
  await copy.close();
  await conn.close();
});
