/**
 * Any transaction, however large, can be pushed: one local transaction of 150,000 rows, and one
 * over the server's 32 MiB body limit, go as one server transaction over several requests of a
 * Hrana stream (batons) and arrive exactly; an answer lost in the middle of such a push neither
 * applies half nor duplicates (the server rolls the abandoned stream back, the client starts
 * over). Against a server that keeps no streams (Turso's), such a transaction is refused with
 * its size, kept and reported, and later changes still push. A single row larger than any
 * request is refused the same way.
 */
import { afterEach, expect, test } from 'vitest';
import { Database } from '../../src/database.js';
import { connectionDriver } from '../../src/driver.js';
import { MemoryDirectory } from '../../src/opfs-vfs/storage/memory.js';
import type { SyncTransport } from '../../src/protocol/transport.js';
import { HostedDatabase } from '../../src/server/hosted-database.js';
import { InProcessTransport, type NetworkFault } from '../../src/server/in-process-transport.js';
import { openSynced } from '../../src/sync/open.js';
import { int, rng, testSeed } from '../support/generate.js';
import { scratchDataDir } from '../support/networks.js';

const opened: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of opened.splice(0)) await close();
});

async function hosted(name: string, idleMs = 10_000): Promise<HostedDatabase> {
  const db = await HostedDatabase.open(scratchDataDir('outpost-large-'), name, {
    durability: 'normal',
    cacheKiB: 1024,
    limits: { statementTimeoutMs: 2000, valueBytesMax: 32 * 1024 * 1024, shareOfServer: 1 },
    streams: { idleMs, slots: { open: 0, max: 4 } },
  });
  opened.push(() => db.close());
  db.execTrusted('CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)');
  return db;
}

async function client(transport: SyncTransport): Promise<Database> {
  const { conn, engine } = await openSynced(new MemoryDirectory('large'), { durability: 'normal', intMode: 'number' }, { url: 'http://in-process/db/large', retries: 3 }, transport);
  const db = new Database('large', connectionDriver(conn, engine));
  opened.push(() => db.close());
  return db;
}

/** Count and checksums of t, the same query on both sides. */
const SUMMARY = 'SELECT count(*) AS n, sum(id) AS ids, sum(length(v)) AS bytes, sum(id * unicode(hex(substr(v, 1 + id % 64, 4)))) AS mix FROM t';

function serverSummary(db: HostedDatabase): unknown {
  const r = db.pipeline({ baton: null, requests: [{ type: 'execute', stmt: { sql: SUMMARY, want_rows: true } }] }).results[0];
  if (r?.type !== 'ok' || r.response.type !== 'execute') throw new Error('summary failed');
  const [n, ids, bytes, mix] = r.response.result.rows[0]!.map((v) => (v.type === 'integer' ? Number(v.value) : v.type === 'null' ? null : NaN));
  return { n, ids, bytes, mix };
}

async function writeOneTransaction(db: Database, rows: number, valueBytes: () => number, seed: number): Promise<void> {
  const random = rng(seed);
  await db.transaction(async (tx) => {
    for (let id = 1; id <= rows; id++) {
      const v = new Uint8Array(valueBytes());
      for (let i = 0; i < v.length; i += 97) v[i] = int(random, 0, 255);
      await tx.run('INSERT INTO t(id, v) VALUES (?, ?)', [id, v]);
    }
  });
}

test('a transaction of 150,000 rows is pushed in one server transaction and arrives exactly', async () => {
  const seed = testSeed();
  console.log(`large push seed ${seed}`);
  const server = await hosted('rows');
  const db = await client(new InProcessTransport(server));
  await db.pull();
  await writeOneTransaction(db, 150_000, () => 8, seed);
  expect(await db.push()).toBe(1);
  expect(serverSummary(server)).toEqual((await db.query(SUMMARY))[0]);
}, 300_000);

test('a transaction over the 32 MiB body limit is pushed over several requests and arrives exactly', async () => {
  const seed = testSeed();
  console.log(`large push seed ${seed}`);
  const server = await hosted('bytes');
  const db = await client(new InProcessTransport(server));
  await db.pull();
  const random = rng(seed + 1);
  await writeOneTransaction(db, 48, () => int(random, 512 * 1024, 1024 * 1024), seed);
  expect(await db.push()).toBe(1);
  const local = (await db.query<{ bytes: number }>(SUMMARY))[0]!;
  expect(local.bytes).toBeGreaterThan(32 * 1024 * 1024 * 0.7);
  expect(serverSummary(server)).toEqual(local);
}, 300_000);

test('an answer lost in the middle of a streamed push applies nothing twice and nothing half', async () => {
  const seed = testSeed();
  console.log(`large push seed ${seed}`);
  const server = await hosted('lost', 200);
  let pipelines = 0;
  // The second request of the stream runs on the server, then its answer is lost.
  const faults = (route: string): NetworkFault => (route === 'v2/pipeline' && ++pipelines === 4 ? 'lose-answer' : 'deliver');
  const db = await client(new InProcessTransport(server, { faults }));
  await db.pull();
  await writeOneTransaction(db, 60_000, () => 8, seed);
  await db.run('INSERT INTO t(id, v) VALUES (?, ?)', [1_000_000, new Uint8Array([1, 2, 3])]);
  expect(await db.push()).toBe(2);
  expect(pipelines).toBeGreaterThan(4);
  expect(serverSummary(server)).toEqual((await db.query(SUMMARY))[0]);
}, 300_000);

test('a server without streams refuses a too-large transaction with its size; it is kept and later changes push', async () => {
  const server = await hosted('nostreams');
  const inner = new InProcessTransport(server);
  // A server that ignores batons, as Turso's does: every answer without one.
  const transport: SyncTransport = {
    traffic: inner.traffic,
    pull: (req) => inner.pull(req),
    pipeline: async (req) => ({ ...(await inner.pipeline(req)), baton: null }),
  };
  const db = await client(transport);
  await db.pull();
  await writeOneTransaction(db, 30_000, () => 8, 1);
  await db.run('INSERT INTO t(id, v) VALUES (?, ?)', [1_000_000, new Uint8Array([1])]);
  await expect(db.push()).rejects.toMatchObject({ code: 'REJECTED', message: expect.stringMatching(/30000 statements and [\d.]+ MiB.*batons/) });
  expect(serverSummary(server)).toMatchObject({ n: 1, ids: 1_000_000 });
  expect((await db.pendingChanges()).filter((p) => p.rejected !== null)).toHaveLength(1);
}, 300_000);

test('a row larger than any request is refused with its size and kept', async () => {
  const server = await hosted('bigrow');
  const db = await client(new InProcessTransport(server));
  await db.pull();
  await db.run('INSERT INTO t(id, v) VALUES (1, zeroblob(9 * 1024 * 1024))');
  await db.run('INSERT INTO t(id, v) VALUES (2, x\'00\')');
  await expect(db.push()).rejects.toMatchObject({ code: 'REJECTED', table: 't', message: expect.stringMatching(/MiB \(table t\) is larger than one push request/) });
  expect(serverSummary(server)).toMatchObject({ n: 1, ids: 2 });
}, 300_000);

test("a streamed push is applied with the server's triggers off from its first request to its last", async () => {
  const server = await hosted('triggers');
  // A BEFORE trigger's log rows come first in the changeset: with triggers on, the server
  // would insert them from the push and then again when each row of t arrives.
  server.execTrusted('CREATE TABLE log(id INTEGER PRIMARY KEY, tid INTEGER)');
  server.execTrusted('CREATE TRIGGER log_t BEFORE INSERT ON t BEGIN INSERT INTO log(tid) VALUES (new.id); END');
  const db = await client(new InProcessTransport(server));
  await db.pull();
  // 12,000 rows and their 12,000 log rows: over one request's 20,000 statements, so streamed.
  await writeOneTransaction(db, 12_000, () => 4, 1);
  expect(await db.query('SELECT count(*) AS n FROM log')).toEqual([{ n: 12_000 }]);
  expect(await db.push()).toBe(1);
  const count = (): unknown => {
    const r = server.pipeline({ baton: null, requests: [{ type: 'execute', stmt: { sql: 'SELECT count(*) FROM log', want_rows: true } }] }).results[0];
    return r?.type === 'ok' && r.response.type === 'execute' ? r.response.result.rows[0]![0] : null;
  };
  expect(count()).toEqual({ type: 'integer', value: '12000' });
  // Triggers are on again for requests that are not pushes.
  server.pipeline({ baton: null, requests: [{ type: 'execute', stmt: { sql: "INSERT INTO t(id, v) VALUES (99999, x'00')" } }] });
  expect(count()).toEqual({ type: 'integer', value: '12001' });
}, 300_000);
