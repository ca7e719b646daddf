/**
 * The calls of a database opened alone (worker/call-port.ts): one port, integer ids, answers
 * matched to their calls, and every call settled when the worker goes.
 */
import { expect, test } from 'vitest';
import { OutpostError } from '../src/errors.js';
import { deleteDatabase, open } from '../src/index.js';
import { openInWorker } from '../src/worker/client.js';
import { unpackRows } from '../src/engine/packed-rows.js';
import { int, rng, testSeed } from '../test/support/generate.js';

const request = (name: string) => ({ name, storage: 'memory' as const, durability: 'normal' as const, intMode: 'number' as const, lockTimeoutMs: 1000 });

test('calls sent without waiting each get their own answer, in order (generated)', async () => {
  const seed = testSeed();
  console.log(`call-port seed ${seed}`);
  const random = rng(seed);
  const conn = await openInWorker(request(`call-port-${crypto.randomUUID()}`));
  try {
    const d = conn.driver;
    await d.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v)');
    // Inserts and reads interleaved, none awaited before the next is sent.
    const expected: number[] = [];
    const calls: Promise<unknown>[] = [];
    let rows = 0;
    for (let i = 0; i < 300; i++) {
      if (random() < 0.6) {
        rows++;
        calls.push(d.run('INSERT INTO t(v) VALUES (?)', [int(random, 0, 1e6)]));
        expected.push(-1);
      } else {
        calls.push(d.query('SELECT count(*) AS n FROM t', undefined).then((p) => unpackRows<{ n: number }>(p)[0]!.n));
        expected.push(rows);
      }
    }
    const answers = await Promise.all(calls);
    answers.forEach((answer, i) => {
      if (expected[i]! >= 0) expect(answer).toBe(expected[i]);
      else expect((answer as { changes: number }).changes).toBe(1);
    });
  } finally {
    await conn.driver.close();
  }
});

test('an error crosses with its class and code, and the next call is answered', async () => {
  const db = await open(`call-port-${crypto.randomUUID()}`, { storage: 'memory' });
  try {
    await expect(db.run('INSERT INTO missing VALUES (1)')).rejects.toMatchObject({ name: 'SqliteError', code: 'SQLITE_ERROR' });
    expect(await db.get('SELECT 1 AS one')).toEqual({ one: 1 });
  } finally {
    await db.close();
  }
});

test('terminating the worker settles the running call and every later one', async () => {
  const conn = await openInWorker(request(`call-port-${crypto.randomUUID()}`));
  const long = conn.driver.query('WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000000) SELECT count(*) FROM c', undefined);
  conn.terminate();
  await expect(long).rejects.toBeInstanceOf(OutpostError);
  await expect(conn.driver.query('SELECT 1', undefined)).rejects.toMatchObject({ code: 'DATABASE_CLOSED' });
});

test('a memory database is its own: gone once closed, and apart from the OPFS database of its name', async () => {
  const name = `call-port-${crypto.randomUUID()}`;
  const memory = await open(name, { storage: 'memory' });
  await memory.exec('CREATE TABLE kept(x)');
  // The OPFS database of the same name is another database (a memory one used to run on it).
  const opfs = await open(name);
  try {
    expect(await opfs.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'kept'")).toEqual([]);
  } finally {
    await opfs.close();
    await memory.close();
    await deleteDatabase(name);
  }
  const again = await open(name, { storage: 'memory' });
  try {
    expect(await again.query("SELECT name FROM sqlite_master WHERE type = 'table'")).toEqual([]);
  } finally {
    await again.close();
  }
});
