/**
 * The multi-tab benchmark's side in each page (tab): `bench/tabs.ts` opens several pages of
 * one browser context and drives them through `window.benchTabs`. Times are
 * `performance.timeOrigin + performance.now()`, comparable between pages to a fraction of a
 * millisecond.
 */
import { type Database, open } from '../../src/index.js';

let db: Database | null = null;
const now = (): number => performance.timeOrigin + performance.now();
const opened = (): Database => {
  if (!db) throw new Error('open first');
  return db;
};

async function openShared(name: string): Promise<void> {
  db = await open(name);
  await db.exec('CREATE TABLE IF NOT EXISTS w(id INTEGER PRIMARY KEY, at REAL)');
}

/** One write, from the time it is issued: resolves with the time it was answered. */
async function writeOnce(): Promise<number> {
  await opened().run('INSERT INTO w(at) VALUES (?)', [now()]);
  return now();
}

/** `SELECT 1` round trips, milliseconds each. */
async function select1(count: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = now();
    await opened().query('SELECT 1');
    times.push(now() - t0);
  }
  return times;
}

/**
 * A watch of `SELECT count(*) FROM w` (throttleMs 0) that says on the channel `bench-watch`
 * when it sees each count, with the time its callback ran.
 */
function watchCounts(): Promise<void> {
  const channel = new BroadcastChannel('bench-watch');
  return new Promise((ready) => {
    let first = true;
    opened().watch<{ n: number }>(
      'SELECT count(*) AS n FROM w',
      undefined,
      (rows) => {
        channel.postMessage({ n: rows[0]?.n, at: now() });
        if (first) ready();
        first = false;
      },
      { throttleMs: 0 },
    );
  });
}

/**
 * `count` writes, each issued once the watcher (this tab or another) has seen the previous
 * one: milliseconds from issuing each write to the watcher's callback for it.
 */
async function writesSeen(count: number): Promise<number[]> {
  const channel = new BroadcastChannel('bench-watch');
  const seen = new Map<number, number>();
  let waiting: { n: number; resolve: () => void } | null = null;
  channel.onmessage = (event: MessageEvent<{ n: number; at: number }>) => {
    seen.set(event.data.n, event.data.at);
    if (waiting && event.data.n >= waiting.n) waiting.resolve();
  };
  let n = Number((await opened().query<{ n: number }>('SELECT count(*) AS n FROM w'))[0]?.n ?? 0);
  const latencies: number[] = [];
  for (let i = 0; i < count; i++) {
    n += 1;
    const target = n;
    const seenIt = new Promise<void>((resolve) => (waiting = { n: target, resolve }));
    const t0 = now();
    await opened().run('INSERT INTO w(at) VALUES (?)', [t0]);
    await seenIt;
    latencies.push(seen.get(target)! - t0);
  }
  channel.close();
  return latencies;
}

declare global {
  interface Window {
    benchTabs: { openShared: typeof openShared; writeOnce: typeof writeOnce; select1: typeof select1; watchCounts: typeof watchCounts; writesSeen: typeof writesSeen; now: typeof now };
  }
}

export const benchTabs: Window['benchTabs'] = { openShared, writeOnce, select1, watchCounts, writesSeen, now };
