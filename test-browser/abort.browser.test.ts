/**
 * Cancellation in a page without cross-origin isolation (Outpost's default): a call's `signal`
 * reaches a statement that is already running through the database's abort file
 * (src/worker/abort-file.ts), in this page's engine and in an engine that another tab runs.
 */
import { afterEach, expect, test } from 'vitest';
import { type Database, open } from '../src/index.js';
import { SLOW_SQL } from '../test/shared/statement-suite.js';
import { Tab, type TabKind } from './tab.js';

const unique = (prefix: string): string => `${prefix}-${crypto.randomUUID()}`;

const databases: Database[] = [];
const tabs: Tab[] = [];
afterEach(async () => {
  for (const t of tabs.splice(0)) t.terminate();
  for (const db of databases.splice(0)) await db.close().catch(() => {});
});

async function opened(name: string): Promise<Database> {
  const db = await open(name);
  databases.push(db);
  return db;
}

/** Lets the call start (its turn in line comes within a macrotask), then aborts it. */
async function abortOnceStarted(controller: AbortController): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 0));
  controller.abort();
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

test('the page under test is not cross-origin isolated', () => {
  expect(globalThis.crossOriginIsolated).toBe(false);
});

test('a signal stops a running query on OPFS; committed rows stay and the database answers', async () => {
  const db = await opened(unique('abort-opfs'));
  await db.exec('CREATE TABLE t(v); INSERT INTO t VALUES (1), (2)');
  const controller = new AbortController();
  // SLOW_SQL would run for hours: only the abort ends it.
  const slow = db.get(SLOW_SQL, [], { signal: controller.signal });
  await abortOnceStarted(controller);
  const e = await rejection(slow);
  expect(e.name).toBe('AbortError');
  expect(await db.get('SELECT 1 AS one')).toEqual({ one: 1 });
  expect(await db.query('SELECT v FROM t ORDER BY v')).toEqual([{ v: 1 }, { v: 2 }]);
  await db.run('INSERT INTO t VALUES (3)');
  expect(await db.query('SELECT v FROM t ORDER BY v')).toEqual([{ v: 1 }, { v: 2 }, { v: 3 }]);
});

test("a call with a signal runs to its end though the abort file still holds an earlier call's abort", async () => {
  const db = await opened(unique('abort-stale'));
  const controller = new AbortController();
  const slow = db.get(SLOW_SQL, [], { signal: controller.signal });
  await abortOnceStarted(controller);
  expect((await rejection(slow)).name).toBe('AbortError');
  // Long enough for the engine to read the file many times while it runs.
  const counted = await db.get<{ n: number }>('WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000) SELECT count(*) AS n FROM c', [], {
    signal: new AbortController().signal,
  });
  expect(counted).toEqual({ n: 2000000 });
});

test("a follower tab's signal stops its query in the engine another tab runs; both tabs keep working", async () => {
  const name = unique('abort-follower');
  const engine = new Tab('worker');
  tabs.push(engine);
  await engine.call({ op: 'open', name });
  await engine.call({ op: 'run', sql: 'CREATE TABLE t(v)' });
  await engine.call({ op: 'run', sql: 'INSERT INTO t VALUES (1)' });
  const follower = await opened(name);
  const controller = new AbortController();
  const slow = follower.get(SLOW_SQL, [], { signal: controller.signal });
  await abortOnceStarted(controller);
  const e = await rejection(slow);
  expect(e.name).toBe('AbortError');
  expect(await follower.get('SELECT 1 AS one')).toEqual({ one: 1 });
  await follower.run('INSERT INTO t VALUES (2)');
  expect(await engine.call({ op: 'query', sql: 'SELECT v FROM t ORDER BY v' })).toEqual([{ v: 1 }, { v: 2 }]);
});

for (const kind of ['worker', 'frame'] as TabKind[]) {
  test(`a follower tab (${kind}) aborts a query running in this page's engine; both keep working`, async () => {
    const name = unique(`abort-engine-here-${kind}`);
    const engine = await opened(name);
    await engine.exec('CREATE TABLE t(v); INSERT INTO t VALUES (1)');
    const follower = new Tab(kind);
    tabs.push(follower);
    await follower.call({ op: 'open', name });
    expect(await follower.call({ op: 'abortRunning', sql: SLOW_SQL })).toBe('AbortError');
    expect(await engine.query('SELECT v FROM t')).toEqual([{ v: 1 }]);
    await follower.call({ op: 'run', sql: 'INSERT INTO t VALUES (2)' });
    expect(await engine.query('SELECT v FROM t ORDER BY v')).toEqual([{ v: 1 }, { v: 2 }]);
  });
}
