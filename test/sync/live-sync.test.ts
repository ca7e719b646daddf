/**
 * Live sync (`sync: { live: true }`) under Node, against a real Outpost server on 127.0.0.1:
 * clients converge with no sync calls, a write reaches another client's `watch` through the
 * server, going offline pauses and `online` resumes, and `close()` leaves no request behind.
 * Every wait is on an event (a watch callback, a progress event), never a sleep.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { SyncError } from '../../src/errors.js';
import { open } from '../../src/node/index.js';
import type { OutpostServer } from '../../src/server/server.js';
import { backoffMs } from '../../src/sync/live.js';
import { openSynced } from '../../src/sync/open.js';
import { NodeDirectory } from '../../src/opfs-vfs/storage/node.js';
import type { Database, SyncOptions, SyncProgress } from '../../src/types.js';
import { watchUntil as until } from '../support/watch.js';
import { int, rng, testSeed } from '../support/generate.js';
import { startServer, tempDir } from '../support/server.js';

let server: OutpostServer;
let base = '';
const dir = tempDir('outpost-live-');
let n = 0;
const opened: Database[] = [];

beforeAll(async () => {
  ({ server, url: base } = await startServer({ auth: false }));
});
afterAll(async () => {
  for (const db of opened) if (!db.closed) await db.close();
  await server.close();
});

async function liveClient(db: string, extra: Partial<SyncOptions> = {}): Promise<Database> {
  const handle = await open(join(dir, `c${++n}.db`), { sync: { url: `${base}/db/${db}`, live: true, ...extra } });
  opened.push(handle);
  return handle;
}

/** A fetch that counts requests, and those still in flight. */
function countingFetch(): { fetch: typeof fetch; started: number; inFlight: number; settled(): Promise<void> } {
  let waiters: (() => void)[] = [];
  const counts = {
    started: 0,
    inFlight: 0,
    fetch: undefined as unknown as typeof fetch,
    /** Resolves when no request is in flight. */
    settled: (): Promise<void> => (counts.inFlight === 0 ? Promise.resolve() : new Promise((resolve) => waiters.push(resolve))),
  };
  counts.fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    counts.started++;
    counts.inFlight++;
    try {
      return await fetch(input, init);
    } finally {
      counts.inFlight--;
      if (counts.inFlight === 0) {
        for (const w of waiters) w();
        waiters = [];
      }
    }
  }) as typeof fetch;
  return counts;
}

test('two live clients converge with no sync calls (seeded writes on both sides)', async () => {
  const seed = testSeed();
  console.log(`live convergence seed ${seed}`);
  const random = rng(seed);
  const a = await liveClient('converge');
  const b = await liveClient('converge');
  await a.exec('CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, who TEXT, v INTEGER)');
  await until(b, "SELECT name FROM sqlite_schema WHERE name = 't'", (rows) => rows.length === 1);
  const writes = int(random, 5, 20);
  for (let i = 0; i < writes; i++) {
    const [db, who] = random() < 0.5 ? [a, 'a'] : [b, 'b'];
    await db.run('INSERT INTO t(id, who, v) VALUES (?, ?, ?)', [i + 1, who, int(random, 0, 1000)]);
  }
  const all = (rows: unknown[]): boolean => rows.length === writes;
  const [rowsA, rowsB] = await Promise.all([until(a, 'SELECT * FROM t ORDER BY id', all), until(b, 'SELECT * FROM t ORDER BY id', all)]);
  expect(rowsB).toEqual(rowsA);
  await until(a, 'SELECT 1', () => true);
  const pendingDrained = async (db: Database): Promise<void> =>
    new Promise((resolve) => {
      const check = (s: { pendingChanges: number } | null): void => {
        if (s?.pendingChanges === 0) {
          stop();
          resolve();
        }
      };
      const stop = db.onSyncStatus(check);
      void db.syncStatus().then(check);
    });
  await Promise.all([pendingDrained(a), pendingDrained(b)]);
});

test("a write in one client reaches another client's watch through the server", async () => {
  const a = await liveClient('watch');
  const b = await liveClient('watch');
  await a.exec('CREATE TABLE IF NOT EXISTS notes(id INTEGER PRIMARY KEY, body TEXT)');
  await until(b, "SELECT name FROM sqlite_schema WHERE name = 'notes'", (rows) => rows.length === 1);
  const seen = until<{ body: string }>(b, 'SELECT body FROM notes', (rows) => rows.length === 1);
  await a.run('INSERT INTO notes(body) VALUES (?)', ['hello from a']);
  expect(await seen).toEqual([{ body: 'hello from a' }]);
});

test('a live open bootstraps in the background and reports its progress', async () => {
  await server.execTrusted('progress', "CREATE TABLE big(id INTEGER PRIMARY KEY, pad TEXT); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) INSERT INTO big(pad) SELECT printf('%.500c', 'x') FROM n");
  const db = await liveClient('progress');
  const events: SyncProgress[] = [];
  const idleAfterApply = new Promise<void>((resolve) =>
    db.onSyncProgress((p) => {
      events.push(p);
      if (p.phase === 'idle' && events.some((e) => e.phase === 'apply')) resolve();
    }),
  );
  await idleAfterApply;
  const bootstrap = events.find((e) => e.phase === 'bootstrap');
  expect(bootstrap).toBeDefined();
  expect(bootstrap!.pagesDone).toBe(bootstrap!.pagesTotal);
  expect(bootstrap!.bytes).toBeGreaterThan(0);
  expect(await db.get<{ n: number }>('SELECT count(*) AS n FROM big')).toEqual({ n: 200 });
});

test('a first progress listener added after a live bootstrap ended still hears that bootstrap', async () => {
  await server.execTrusted('progress-late', 'CREATE TABLE t(id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1)');
  const db = await liveClient('progress-late');
  // The bootstrap has ended and been applied once the row is there: nobody listened to it.
  await until<{ id: number }>(db, 'SELECT id FROM t', (rows) => rows.length === 1);
  const phases: string[] = [];
  // The replay may cross a thread, so it is awaited: it ends with the idle after the apply.
  await new Promise<void>((resolve) =>
    db.onSyncProgress((p) => {
      phases.push(p.phase);
      if (p.phase === 'idle' && phases.includes('apply')) resolve();
    }),
  );
  expect(phases).toContain('bootstrap');
  // Only the first listener hears the replay: a second one hears nothing of a download that ended.
  const later: string[] = [];
  db.onSyncProgress((p) => later.push(p.phase));
  expect(later).toEqual([]);
});

test('offline pauses live sync; online resumes it', async () => {
  const events = new EventTarget();
  const scope = globalThis as unknown as Record<string, unknown>;
  const saved = { add: scope.addEventListener, remove: scope.removeEventListener, navigator: Object.getOwnPropertyDescriptor(globalThis, 'navigator') };
  let onLine = true;
  scope.addEventListener = events.addEventListener.bind(events);
  scope.removeEventListener = events.removeEventListener.bind(events);
  Object.defineProperty(globalThis, 'navigator', { value: { get onLine() { return onLine; } }, configurable: true });
  try {
    const counts = countingFetch();
    const a = await liveClient('offline', { fetch: counts.fetch });
    const b = await liveClient('offline');
    await a.exec('CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)');
    await until(b, "SELECT name FROM sqlite_schema WHERE name = 't'", (rows) => rows.length === 1);
    onLine = false;
    events.dispatchEvent(new Event('offline'));
    // The long poll in flight is aborted, and not retried while offline.
    await counts.settled();
    const before = counts.started;
    await a.run("INSERT INTO t(v) VALUES ('written offline')");
    expect((await a.syncStatus())!.pendingChanges).toBe(1);
    const seen = until<{ v: string }>(b, 'SELECT v FROM t', (rows) => rows.length === 1);
    expect(counts.started).toBe(before);
    onLine = true;
    events.dispatchEvent(new Event('online'));
    expect(await seen).toEqual([{ v: 'written offline' }]);
  } finally {
    scope.addEventListener = saved.add;
    scope.removeEventListener = saved.remove;
    if (saved.navigator) Object.defineProperty(globalThis, 'navigator', saved.navigator);
    else delete scope.navigator;
  }
});

test('offline with no online event (a worker under DevTools emulation), live sync resumes when navigator.onLine turns true', async () => {
  const scope = globalThis as unknown as Record<string, unknown>;
  const saved = Object.getOwnPropertyDescriptor(globalThis, 'navigator');
  let onLine = true;
  Object.defineProperty(globalThis, 'navigator', { value: { get onLine() { return onLine; } }, configurable: true });
  try {
    const a = await liveClient('no-events');
    const b = await liveClient('no-events');
    await a.exec('CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)');
    await until(b, "SELECT name FROM sqlite_schema WHERE name = 't'", (rows) => rows.length === 1);
    onLine = false;
    await a.run("INSERT INTO t(v) VALUES ('written offline')");
    // At least the offline write (the CREATE too, until its own pull comes back).
    expect((await a.syncStatus())!.pendingChanges).toBeGreaterThanOrEqual(1);
    const seen = until<{ v: string }>(b, 'SELECT v FROM t', (rows) => rows.length === 1);
    // No event at all: only the offline re-check can notice.
    onLine = true;
    expect(await seen).toEqual([{ v: 'written offline' }]);
  } finally {
    if (saved) Object.defineProperty(globalThis, 'navigator', saved);
    else delete scope.navigator;
  }
});

test('a server that is down is retried with backoff and live sync resumes when it is back', async () => {
  const state = { down: false, failures: 0, recovered: () => {} };
  const recovered = new Promise<void>((resolve) => (state.recovered = resolve));
  const flaky = (async (input: RequestInfo | URL, init?: RequestInit) => {
    if (state.down) {
      if (++state.failures === 2) state.down = false;
      throw new TypeError('fetch failed: connect ECONNREFUSED');
    }
    if (state.failures > 0) state.recovered();
    return fetch(input, init);
  }) as typeof fetch;
  const a = await liveClient('flaky', { fetch: flaky, retries: 0 });
  const b = await liveClient('flaky');
  await b.exec('CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)');
  await until(a, "SELECT name FROM sqlite_schema WHERE name = 't'", (rows) => rows.length === 1);
  state.down = true;
  await a.run("INSERT INTO t(v) VALUES ('while down')");
  await recovered;
  expect(await until(b, 'SELECT v FROM t', (rows) => rows.length === 1)).toEqual([{ v: 'while down' }]);
});

test("the backoff waits at least as long as the server's Retry-After asks", () => {
  const busy = new SyncError('busy', 'HTTP', 429);
  busy.retryAfterMs = 7000;
  expect(backoffMs(1, busy)).toBeGreaterThanOrEqual(7000);
  expect(backoffMs(1, new SyncError('down', 'NETWORK'))).toBeLessThan(1000);
  expect(backoffMs(30, new SyncError('down', 'NETWORK'))).toBeLessThanOrEqual(30_000 * 1.25);
});

test('close() aborts the long poll and no request is sent after it', async () => {
  const counts = countingFetch();
  const a = await liveClient('close', { fetch: counts.fetch });
  const b = await liveClient('close');
  await b.exec('CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)');
  await until(a, "SELECT name FROM sqlite_schema WHERE name = 't'", (rows) => rows.length === 1);
  await a.run("INSERT INTO t(v) VALUES ('a')");
  await a.close();
  expect(counts.inFlight).toBe(0);
  const after = counts.started;
  // A change on the server would wake a long poll of a's, if one were still running.
  const c = await liveClient('close');
  await b.run("INSERT INTO t(v) VALUES ('b')");
  await until<{ v: string }>(c, 'SELECT v FROM t', (rows) => rows.some((r) => r.v === 'b'));
  expect(counts.started).toBe(after);
});

test('an update downloaded for a revision another pull has moved past is not applied', async () => {
  const url = `${base}/db/stale`;
  const writer = await open(join(dir, `c${++n}.db`), { sync: { url } });
  opened.push(writer);
  await writer.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)');
  await writer.push();
  const { conn, engine } = await openSynced(new NodeDirectory(join(dir, `c${++n}.db`)), { durability: 'normal', intMode: 'number' }, { url });
  try {
    await writer.run("INSERT INTO t(v) VALUES ('one')");
    await writer.push();
    const older = await engine.fetchPull(0);
    await writer.run("INSERT INTO t(v) VALUES ('two')");
    await writer.push();
    const newer = await engine.fetchPull(0);
    engine.applyPull(newer!);
    // Applying the older one now would write its pages over the newer image.
    engine.applyPull(older!);
    expect(conn.value('PRAGMA integrity_check')).toBe('ok');
    expect(conn.value('SELECT group_concat(v) FROM t')).toBe('one,two');
  } finally {
    await conn.close();
    engine.close();
  }
});
