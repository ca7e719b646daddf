/**
 * How a synced database is handled by the app around it: opened without its sync options,
 * imported over, or found with its main file gone. Each case once lost or corrupted data.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { OutpostError } from '../../src/errors.js';
import { open } from '../../src/node/index.js';
import type { OutpostServer } from '../../src/server/server.js';
import type { Database } from '../../src/types.js';
import { batch, rawPipeline, startServer, tempDir } from '../support/server.js';

let server: OutpostServer;
let base: string;
const dir = tempDir('outpost-handling-');
let n = 0;

beforeAll(async () => {
  ({ server, url: base } = await startServer({ auth: false }));
});
afterAll(() => server.close());

async function seeded(db: string): Promise<string> {
  const url = `${base}/db/${db}`;
  await rawPipeline(url, batch('CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)', "INSERT INTO t(v) VALUES ('from the server')"));
  return url;
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

test('a synced database opened without its sync options stays synced: its writes are captured and pushed', async () => {
  const url = await seeded('nosync');
  const path = join(dir, `c${++n}.db`);
  const synced = await open(path, { sync: { url } });
  await synced.run("INSERT INTO t(v) VALUES ('synced write')");
  await synced.close();
  // Opened as a plain database (the playground did this on reload): no network, but capture on.
  const plain = await open(path);
  await plain.run("INSERT INTO t(v) VALUES ('written without sync options')");
  expect((await plain.syncStatus())?.pendingChanges).toBe(2);
  await plain.close();
  const again = await open(path, { sync: { url } });
  await again.sync();
  const expected = [{ v: 'from the server' }, { v: 'synced write' }, { v: 'written without sync options' }];
  expect(await again.query('SELECT v FROM t ORDER BY id')).toEqual(expected);
  expect(await again.get('PRAGMA integrity_check')).toEqual({ integrity_check: 'ok' });
  expect((await again.syncStatus())?.pendingChanges).toBe(0);
  await again.close();
  // Another client sees both writes.
  const other = await open(join(dir, `c${++n}.db`), { sync: { url } });
  expect(await other.query('SELECT v FROM t ORDER BY id')).toEqual(expected);
  await other.close();
});

test('import() on a synced database is refused and its pending changes stay', async () => {
  const url = await seeded('noimport');
  const db: Database = await open(join(dir, `c${++n}.db`), { sync: { url } });
  await db.run("INSERT INTO t(v) VALUES ('pending')");
  const other = await open(':memory:');
  await other.exec('CREATE TABLE x(y)');
  const image = await other.export();
  await other.close();
  const e = await rejection(db.import(image));
  expect((e as OutpostError).code).toBe('INVALID_ARGUMENT');
  expect((await db.syncStatus())?.pendingChanges).toBe(1);
  await db.push();
  await db.pull();
  expect(await db.query('SELECT v FROM t ORDER BY id')).toEqual([{ v: 'from the server' }, { v: 'pending' }]);
  await db.close();
});

test('a lost database file beside a surviving sync state bootstraps again instead of opening broken', async () => {
  const url = await seeded('lostfile');
  const path = join(dir, `c${++n}.db`);
  const first = await open(path, { sync: { url } });
  await first.run("INSERT INTO t(v) VALUES ('pushed')");
  await first.push();
  await first.close();
  rmSync(path);
  rmSync(`${path}-wal`, { force: true });
  const again = await open(path, { sync: { url } });
  expect(await again.query('SELECT v FROM t ORDER BY id')).toEqual([{ v: 'from the server' }, { v: 'pushed' }]);
  expect(await again.get('PRAGMA integrity_check')).toEqual({ integrity_check: 'ok' });
  // New writes still reach the server, under ids it has not seen.
  await again.run("INSERT INTO t(v) VALUES ('after')");
  expect(await again.push()).toBe(1);
  await again.close();
});

test('after a power loss takes the last local commits, new writes never reuse a change id the server acknowledged', async () => {
  const url = await seeded('powerloss');
  const path = join(dir, `c${++n}.db`);
  const db = await open(path, { sync: { url } });
  await db.close();
  // What the disk held before the write (durability 'normal' does not flush each commit).
  const before = new Map([path, `${path}-wal`].map((f) => [f, existsSync(f) ? readFileSync(f) : null]));
  const writer = await open(path, { sync: { url } });
  await writer.run("INSERT INTO t(id, v) VALUES (100, 'acknowledged')");
  expect(await writer.push()).toBe(1);
  await writer.close();
  // Power loss: the database and its WAL lose that commit; the flushed sync state survives.
  for (const [f, bytes] of before) {
    if (bytes) writeFileSync(f, bytes);
    else rmSync(f, { force: true });
  }
  const after = await open(path, { sync: { url } });
  // (A different row: the same auto-assigned id would be the separate conflict case of two inserts.)
  await after.run("INSERT INTO t(id, v) VALUES (200, 'written after the power loss')");
  expect(await after.push()).toBe(1);
  await after.pull();
  expect(await after.query('SELECT v FROM t ORDER BY id')).toEqual([{ v: 'from the server' }, { v: 'acknowledged' }, { v: 'written after the power loss' }]);
  await after.close();
});

test("a user's tables named like the sync layer's own (_outpost_*, turso_sync_*) sync like any other", async () => {
  const url = `${base}/db/lookalike`;
  const a = await open(join(dir, `c${++n}.db`), { sync: { url } });
  await a.exec("CREATE TABLE _outpost_notes(id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE turso_sync_log(id INTEGER PRIMARY KEY, v TEXT)");
  await a.exec("INSERT INTO _outpost_notes(v) VALUES ('mine'); INSERT INTO turso_sync_log(v) VALUES ('also mine')");
  expect(await a.push()).toBeGreaterThan(0);
  const b = await open(join(dir, `c${++n}.db`), { sync: { url } });
  expect(await b.query('SELECT v FROM _outpost_notes')).toEqual([{ v: 'mine' }]);
  expect(await b.query('SELECT v FROM turso_sync_log')).toEqual([{ v: 'also mine' }]);
  await b.exec("UPDATE _outpost_notes SET v = 'changed by b'");
  await b.push();
  await a.pull();
  expect(await a.query('SELECT v FROM _outpost_notes')).toEqual([{ v: 'changed by b' }]);
  await a.close();
  await b.close();
});
