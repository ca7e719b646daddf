/**
 * The hot-path probe's page (`bench/hot.ts` drives it): through the public API, the `SELECT 1`
 * round trip, a bare postMessage echo (the floor of any call) and `query()` of N rows x 5
 * columns, each as `bench/page/main.ts` `runApi` measures it, but nothing else.
 */
import { open, type Database } from '../../src/index.js';

let db: Database | null = null;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Opens a fresh database (`storage`: 'opfs' or 'memory') with the `big` table of `rows` rows. */
async function prepare(name: string, storage: 'opfs' | 'memory', rows: number): Promise<void> {
  db = await open(name, { storage });
  await db.exec(`DROP TABLE IF EXISTS big; CREATE TABLE big(id INTEGER PRIMARY KEY, x REAL, label TEXT, tag TEXT, n INTEGER);
    WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ${rows})
    INSERT INTO big SELECT i, i * 1.5, 'label number ' || i, hex(i * 7919), i % 97 FROM s;`);
}

/** Median ms of `calls` `SELECT 1` round trips after 50 warm-up calls. */
async function select1(calls: number): Promise<number> {
  for (let i = 0; i < 50; i++) await db!.get('SELECT 1');
  const lat: number[] = [];
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now();
    await db!.get('SELECT 1');
    lat.push(performance.now() - t0);
  }
  return median(lat);
}

/** Median ms of `calls` bare postMessage round trips to an echoing worker. */
async function echo(calls: number): Promise<number> {
  const worker = new Worker(new URL('../page/echo-worker.ts', import.meta.url), { type: 'module' });
  try {
    const ping = (): Promise<unknown> =>
      new Promise((resolve) => {
        worker.onmessage = (e) => resolve(e.data);
        worker.postMessage([1, 'query', ['SELECT 1', undefined]]);
      });
    for (let i = 0; i < 50; i++) await ping();
    const lat: number[] = [];
    for (let i = 0; i < calls; i++) {
      const t0 = performance.now();
      await ping();
      lat.push(performance.now() - t0);
    }
    return median(lat);
  } finally {
    worker.terminate();
  }
}

/**
 * T1 of the classic suite through the public API (bench/classic.ts c01): 1,000 autocommit
 * INSERTs, each an awaited `run` of one prepared statement, on a fresh database `name` in
 * `storage`. Returns the milliseconds of the 1,000 calls.
 */
async function t1(name: string, storage: 'opfs' | 'memory', keepOpen = false): Promise<number> {
  const t = await open(name, { storage });
  // Kept open for `close()` (a profile of its worker must be taken before the worker ends).
  if (keepOpen) db = t;
  try {
    await t.exec('DROP TABLE IF EXISTS t1; CREATE TABLE t1(a INTEGER, b INTEGER, c VARCHAR(100))');
    const ins = await t.prepare('INSERT INTO t1 VALUES(?, ?, ?)');
    let seed = 1;
    const t0 = performance.now();
    for (let i = 1; i <= 1000; i++) {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      await ins.run([i, seed % 100000, `row ${seed % 100000}`]);
    }
    return performance.now() - t0;
  } finally {
    if (!keepOpen) await t.close();
  }
}

/** T1's storage floor (bench/page/bench-worker.ts `rawAppends`): ms of 1,000 raw OPFS appends of one WAL frame. */
async function appends(runId: string): Promise<number> {
  const worker = new Worker(new URL('../page/bench-worker.ts', import.meta.url), { type: 'module' });
  try {
    const reply = await new Promise<{ ok: boolean; times?: { appends: number }; error?: string }>((resolve) => {
      worker.onmessage = (e) => resolve(e.data);
      worker.postMessage({ config: 'raw-appends', runId, scale: 1 });
    });
    if (!reply.ok || !reply.times) throw new Error(reply.error ?? 'raw appends failed');
    return reply.times.appends;
  } finally {
    worker.terminate();
  }
}

/** ms of one `query()` of every row of `big`, 5 columns. */
async function query(): Promise<number> {
  const t0 = performance.now();
  const got = await db!.query('SELECT id, x, label, tag, n FROM big');
  const ms = performance.now() - t0;
  if (got.length === 0) throw new Error('no rows');
  return ms;
}

async function close(): Promise<void> {
  await db?.close();
  db = null;
}

declare global {
  interface Window {
    hot: { prepare: typeof prepare; select1: typeof select1; echo: typeof echo; query: typeof query; t1: typeof t1; appends: typeof appends; close: typeof close };
  }
}
window.hot = { prepare, select1, echo, query, t1, appends, close };
document.getElementById('status')!.textContent = 'ready';
