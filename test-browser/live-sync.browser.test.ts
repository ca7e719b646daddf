/**
 * Live sync (`sync: { live: true }`) in the browser, against the Outpost server on 127.0.0.1
 * (global-setup.ts): two databases converge with no sync calls, a write reaches another
 * database's `watch` through the server, and with several tabs live sync runs where the engine
 * runs and moves with it when that tab dies. Every wait is on an event.
 */
import { afterEach, expect, inject, test } from 'vitest';
import { type Database, open } from '../src/index.js';
import { watchUntil as until } from '../test/support/watch.js';
import type { TabCommand } from './tabs.worker.js';

const unique = (prefix: string): string => `${prefix}-${crypto.randomUUID()}`;
const serverUrl = (db: string): string => `${inject('outpostServerUrl')}/db/${db}`;

/** A "tab": a dedicated worker running tabs.worker.ts, which opens the database itself. */
class Tab {
  readonly worker = new Worker(new URL('./tabs.worker.ts', import.meta.url), { type: 'module' });
  private nextId = 1;
  private readonly waiters: { match: (e: Record<string, unknown>) => boolean; resolve: () => void }[] = [];

  constructor() {
    this.worker.addEventListener('message', (event: MessageEvent<Record<string, unknown>>) => {
      if (!('event' in event.data)) return;
      for (const w of [...this.waiters]) {
        if (w.match(event.data)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    });
  }

  call(command: TabCommand): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const onMessage = (event: MessageEvent<{ id?: number; ok: boolean; value: unknown; error: { message: string } }>): void => {
        if (event.data.id !== id) return;
        this.worker.removeEventListener('message', onMessage);
        if (event.data.ok) resolve(event.data.value);
        else reject(new Error(event.data.error.message));
      };
      this.worker.addEventListener('message', onMessage);
      this.worker.postMessage({ id, command });
    });
  }

  /** The next event `match` accepts. */
  event(match: (e: Record<string, unknown>) => boolean): Promise<void> {
    return new Promise((resolve) => this.waiters.push({ match, resolve }));
  }
}

const tabs: Tab[] = [];
const databases: Database[] = [];

async function live(name: string, url: string): Promise<Database> {
  const db = await open(name, { sync: { url, live: true } });
  databases.push(db);
  return db;
}

afterEach(async () => {
  for (const t of tabs.splice(0)) t.worker.terminate();
  for (const db of databases.splice(0)) await db.close().catch(() => {});
});

test("two live databases converge, and a write reaches the other's watch through the server", async () => {
  const url = serverUrl(unique('live'));
  const a = await live(unique('live-a'), url);
  const b = await live(unique('live-b'), url);
  await a.exec('CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, who TEXT)');
  await until(b, "SELECT name FROM sqlite_schema WHERE name = 't'", (rows) => rows.length === 1);
  const seen = until<{ who: string }>(b, 'SELECT who FROM t', (rows) => rows.length === 1);
  await a.run("INSERT INTO t(who) VALUES ('a')");
  expect(await seen).toEqual([{ who: 'a' }]);
  await b.run("INSERT INTO t(who) VALUES ('b')");
  expect(await until<{ who: string }>(a, 'SELECT who FROM t ORDER BY id', (rows) => rows.length === 2)).toEqual([{ who: 'a' }, { who: 'b' }]);
});

test('a live bootstrap reports its progress', async () => {
  const url = serverUrl(unique('live-progress'));
  const writer = await live(unique('live-writer'), url);
  await writer.exec("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, pad TEXT); INSERT INTO t(pad) VALUES (printf('%.2000c', 'x'))");
  await new Promise<void>((resolve) => {
    const stop = writer.onSyncStatus((s) => {
      if (s.pendingChanges === 0 && s.lastPushAt !== null) {
        stop();
        resolve();
      }
    });
  });
  const reader = await live(unique('live-reader'), url);
  const phases: string[] = [];
  await new Promise<void>((resolve) =>
    reader.onSyncProgress((p) => {
      phases.push(p.phase);
      if (p.phase === 'idle' && phases.includes('apply')) resolve();
    }),
  );
  expect(phases).toContain('bootstrap');
  expect(await reader.get('SELECT count(*) AS n FROM t')).toEqual({ n: 1 });
});

test('with two tabs, live sync runs in the engine tab and moves with the engine when that tab dies', async () => {
  const url = serverUrl(unique('live-tabs'));
  const name = unique('live-tabs');
  const other = await live(unique('live-other'), url);
  await other.exec('CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)');
  const [first, second] = [new Tab(), new Tab()];
  tabs.push(first, second);
  await first.call({ op: 'open', name, liveSyncUrl: url });
  await second.call({ op: 'open', name, liveSyncUrl: url });
  const hasRows = (n: number) => (e: Record<string, unknown>) => e.event === 'rows' && Array.isArray(e.rows) && e.rows.length === n;
  const secondSeesOne = second.event(hasRows(1));
  await second.call({ op: 'watch', sql: "SELECT v FROM t" }).catch(() => {});
  await other.run("INSERT INTO t(v) VALUES ('one')");
  await secondSeesOne;
  // The engine's tab dies: the other takes the database over, and live sync with it.
  first.worker.terminate();
  const secondSeesTwo = second.event(hasRows(2));
  await other.run("INSERT INTO t(v) VALUES ('two')");
  await secondSeesTwo;
});
