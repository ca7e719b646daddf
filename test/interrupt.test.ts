/**
 * The engine's side of stopping a running statement (driver.ts `EngineLimits`): the abort flag
 * is a SharedArrayBuffer another thread writes while this one is busy inside SQLite, as the
 * page does for a cross-origin isolated browser worker. Here a worker thread plays the page, so
 * the statement really is running when the flag changes. And a SyncError NETWORK keeps fetch's
 * error as its cause.
 */
import { Worker } from 'node:worker_threads';
import { expect, test } from 'vitest';
import { connectionDriver, sharedAbortFlag } from '../src/driver.js';
import { Connection } from '../src/engine/connection.js';
import { unpackRows } from '../src/engine/packed-rows.js';
import { AbortError, SyncError } from '../src/errors.js';
import { open } from '../src/node/index.js';
import { MemoryDirectory } from '../src/opfs-vfs/storage/memory.js';
import { SLOW_SQL } from './shared/statement-suite.js';

/** Waits 30 ms on its own thread, then writes `abortId` into the flag and reports when it did. */
const PAGE = `
const { parentPort, workerData } = require('node:worker_threads');
const view = new Int32Array(workerData.flag);
Atomics.wait(view, 1, 0, 30);
const at = performance.timeOrigin + performance.now();
Atomics.store(view, 0, workerData.abortId);
parentPort.postMessage(at);
`;

test('a running statement stops when another thread writes its abort id into the flag; the connection stays usable', async () => {
  const conn = await Connection.open(new MemoryDirectory('memory:interrupt'), { durability: 'normal', intMode: 'number' });
  const flag = new SharedArrayBuffer(8);
  const driver = connectionDriver(conn, null, sharedAbortFlag(new Int32Array(flag)));
  const abortId = 4242;
  const page = new Worker(PAGE, { eval: true, workerData: { flag, abortId } });
  const abortedAt = new Promise<number>((resolve) => page.once('message', resolve));
  try {
    let error: unknown = null;
    try {
      await driver.query(SLOW_SQL, undefined, undefined, { abortId });
    } catch (e) {
      error = e;
    }
    const stoppedAt = performance.timeOrigin + performance.now();
    expect(error).toBeInstanceOf(AbortError);
    expect((error as Error).message).toMatch(/aborted/);
    console.log(`abort flag to stop: ${(stoppedAt - (await abortedAt)).toFixed(2)} ms`);
    // Another call id is not stopped by the flag left behind.
    expect(unpackRows(await driver.query('SELECT count(*) AS n FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) SELECT x FROM c)', undefined, undefined, { abortId: 7 }))).toEqual([{ n: 100000 }]);
  } finally {
    await page.terminate();
    await driver.close();
  }
});

test('a timeoutMs stops the statement at its deadline (measured: deadline to stop)', async () => {
  const db = await open(':memory:', { storage: 'memory' });
  try {
    const timeoutMs = 50;
    const started = performance.now();
    const e = await db.get(SLOW_SQL, [], { timeoutMs }).catch((x: unknown) => x);
    expect((e as Error).name).toBe('AbortError');
    console.log(`timeoutMs ${timeoutMs}: stopped ${(performance.now() - started - timeoutMs).toFixed(2)} ms after the deadline`);
    expect(await db.get('SELECT 1 AS one')).toEqual({ one: 1 });
  } finally {
    await db.close();
  }
});

test('a SyncError NETWORK keeps the fetch error as its cause', async () => {
  const refused = new TypeError('fetch failed');
  const db = await open(':memory:', {
    storage: 'memory',
    sync: { url: 'http://127.0.0.1:9/db/x', retries: 0, fetch: () => Promise.reject(refused) },
  }).catch((e: unknown) => e);
  const error = db instanceof Error ? db : await (db as Awaited<ReturnType<typeof open>>).pull().catch((e: unknown) => e);
  expect(error).toBeInstanceOf(SyncError);
  expect((error as SyncError).code).toBe('NETWORK');
  expect((error as Error).cause).toBe(refused);
});
