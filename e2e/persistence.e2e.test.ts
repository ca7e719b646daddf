/**
 * End to end: a page built with Vite that imports `outpost` by package name, served by Vite's
 * preview server (no COOP/COEP headers), driven by Playwright in a persistent Chromium profile.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, type Page, chromium } from 'playwright';
import { build, preview, type PreviewServer } from 'vite';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { chromiumPath } from '../scripts/chromium.js';

let server: PreviewServer;
let context: BrowserContext;
let url: string;
const outDir = mkdtempSync(join(tmpdir(), 'outpost-e2e-build-'));
const profile = mkdtempSync(join(tmpdir(), 'outpost-e2e-profile-'));

beforeAll(async () => {
  const root = new URL('./app/', import.meta.url).pathname;
  await build({ root, configFile: false, logLevel: 'warn', build: { outDir, emptyOutDir: true } });
  server = await preview({ root, configFile: false, logLevel: 'warn', build: { outDir }, preview: { host: '127.0.0.1', port: 0 } });
  const address = server.httpServer.address();
  if (!address || typeof address === 'string') throw new Error('preview server has no port');
  url = `http://127.0.0.1:${address.port}/`;
  context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath(),
    headless: true,
    args: ['--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}, 120_000);

afterAll(async () => {
  await context?.close();
  await server?.close();
  rmSync(outDir, { recursive: true, force: true });
  rmSync(profile, { recursive: true, force: true });
});

async function ready(page: Page): Promise<void> {
  await page.goto(url);
  await page.waitForFunction(() => document.getElementById('status')?.textContent === 'ready');
}

test('10,000 rows written in a transaction survive a page reload, without cross-origin isolation', async () => {
  const page = await context.newPage();
  await ready(page);
  const name = `e2e-${Date.now()}`;
  const first = await page.evaluate(async (name) => {
    const db = await window.outpost.open(name);
    const mode = await db.get<{ journal_mode: string }>('PRAGMA journal_mode');
    await db.exec('CREATE TABLE items(id INTEGER PRIMARY KEY, label TEXT)');
    await db.transaction(async (tx) => {
      for (let i = 0; i < 10_000; i++) await tx.run('INSERT INTO items(label) VALUES (?)', [`item ${i}`]);
    });
    // No close(): the reload tears the worker down as a closed tab would.
    return { mode: mode?.journal_mode, isolated: globalThis.crossOriginIsolated };
  }, name);
  expect(first).toEqual({ mode: 'wal', isolated: false });

  await page.reload();
  await ready(page);
  const after = await page.evaluate(async (name) => {
    const db = await window.outpost.open(name);
    const row = await db.get<{ n: number }>('SELECT count(*) AS n FROM items');
    const check = await db.get<{ integrity_check: string }>('PRAGMA integrity_check');
    await db.close();
    return { n: row?.n, check: check?.integrity_check };
  }, name);
  expect(after).toEqual({ n: 10_000, check: 'ok' });
  await page.close();
});

test('a second tab gets DatabaseLockedError while the first holds the database', async () => {
  const name = `e2e-tabs-${Date.now()}`;
  const tabA = await context.newPage();
  const tabB = await context.newPage();
  await ready(tabA);
  await ready(tabB);
  await tabA.evaluate(async (name) => {
    (window as unknown as { held: unknown }).held = await window.outpost.open(name);
  }, name);
  const error = await tabB.evaluate(async (name) => {
    try {
      await window.outpost.open(name, { lockTimeoutMs: 500 });
      return null;
    } catch (e) {
      return { name: (e as Error).name, message: (e as Error).message };
    }
  }, name);
  expect(error?.name).toBe('DatabaseLockedError');
  expect(error?.message).toContain(name);
  // Closing the first tab releases the database for the second.
  await tabA.close();
  const opened = await tabB.evaluate(async (name) => {
    const db = await window.outpost.open(name, { lockTimeoutMs: 10_000 });
    const mode = await db.get<{ journal_mode: string }>('PRAGMA journal_mode');
    await db.close();
    return mode?.journal_mode;
  }, name);
  expect(opened).toBe('wal');
  await tabB.close();
});

test('tabs that open a database without options share it, and closing the engine tab hands it over', async () => {
  const name = `e2e-shared-${Date.now()}`;
  const pages = [await context.newPage(), await context.newPage(), await context.newPage()];
  for (const page of pages) await ready(page);
  const [first, second, third] = pages as [Page, Page, Page];
  const openIn = (page: Page): Promise<void> =>
    page.evaluate(async (name) => {
      (window as unknown as { db: unknown }).db = await window.outpost.open(name);
    }, name);
  const run = (page: Page, sql: string): Promise<unknown> =>
    page.evaluate(async (sql) => {
      const db = (window as unknown as { db: { query(sql: string): Promise<unknown> } }).db;
      return db.query(sql);
    }, sql);
  // The first tab to open runs the engine.
  await openIn(first);
  await run(first, 'CREATE TABLE t(tab TEXT)');
  await openIn(second);
  await openIn(third);
  await Promise.all([run(second, "INSERT INTO t VALUES ('second')"), run(third, "INSERT INTO t VALUES ('third')")]);
  expect(await run(first, 'SELECT tab FROM t ORDER BY tab')).toEqual([{ tab: 'second' }, { tab: 'third' }]);
  await first.close();
  await run(second, "INSERT INTO t VALUES ('after')");
  expect(await run(third, 'SELECT tab FROM t ORDER BY tab')).toEqual([{ tab: 'after' }, { tab: 'second' }, { tab: 'third' }]);
  expect(await run(third, 'PRAGMA integrity_check')).toEqual([{ integrity_check: 'ok' }]);
  await second.close();
  await third.close();
});

/**
 * Multi-tab with real pages, on both paths: the broker (a SharedWorker, which these pages have)
 * and the fallback (the same pages with `SharedWorker` hidden before they open the database).
 */
interface LoopResult {
  acked: number[];
  unknown: number[];
  failed: string[];
}

for (const path of ['broker', 'fallback'] as const) {
  /** A new tab with the database `name` open on `path`, as `window.db`. */
  async function tabWith(name: string): Promise<Page> {
    const page = await context.newPage();
    await ready(page);
    await page.evaluate(
      async ([name, hide]) => {
        if (hide) Reflect.deleteProperty(window, 'SharedWorker');
        const db = await window.outpost.open(name);
        Object.assign(window, { db, progress: -1 });
      },
      [name, path === 'fallback'] as const,
    );
    return page;
  }

  /** Starts `count` inserts in `page`, one after another; resolves with what each became. */
  function writeLoop(page: Page, who: string, count: number): Promise<LoopResult> {
    return page.evaluate(
      async ([who, count]) => {
        const w = window as unknown as { db: { run(sql: string, params: unknown[]): Promise<unknown> }; progress: number };
        const result = { acked: [] as number[], unknown: [] as number[], failed: [] as string[] };
        for (let seq = 0; seq < count; seq++) {
          try {
            await w.db.run('INSERT INTO t(who, seq) VALUES (?, ?)', [who, seq]);
            result.acked.push(seq);
            w.progress = seq;
          } catch (e) {
            if ((e as { code?: string }).code === 'OUTCOME_UNKNOWN') result.unknown.push(seq);
            else result.failed.push(`${seq}: ${(e as Error).message}`);
          }
        }
        return result;
      },
      [who, count] as const,
    );
  }

  /** Whether the engine of `name` registered with a broker (it names it when asked who runs the engine). */
  const engineHasBroker = (page: Page, name: string): Promise<boolean> =>
    page.evaluate(
      (name) =>
        new Promise<boolean>((resolve) => {
          const channel = new BroadcastChannel(`outpost-tabs:${name}`);
          channel.onmessage = (event: MessageEvent<{ type: string; brokerId?: string | null }>) => {
            if (event.data.type !== 'engine') return;
            channel.close();
            resolve(typeof event.data.brokerId === 'string');
          };
          channel.postMessage({ type: 'hello' });
        }),
      name,
    );
  const progressOf = (page: Page): Promise<number> => page.evaluate(() => (window as unknown as { progress: number }).progress);
  const query = (page: Page, sql: string): Promise<unknown> =>
    page.evaluate((sql) => (window as unknown as { db: { query(sql: string): Promise<unknown> } }).db.query(sql), sql);

  test(`${path}: three tabs write at once; the engine tab closes, then the next engine tab reloads, mid-stream: nothing acknowledged is lost or doubled`, async () => {
    const name = `e2e-midstream-${path}-${Date.now()}`;
    // Tabs queue for the engine in the order they open: a runs it, then b, then c.
    const a = await tabWith(name);
    await query(a, 'CREATE TABLE t(who TEXT, seq INTEGER)');
    const b = await tabWith(name);
    const c = await tabWith(name);
    // The built app emitted the broker's script, and the engine uses it on the broker path.
    expect(await engineHasBroker(c, name)).toBe(path === 'broker');
    const count = 150;
    void writeLoop(a, 'a', count).catch(() => {});
    const bWrites = writeLoop(b, 'b', count).catch(() => null);
    const cWrites = writeLoop(c, 'c', count);
    await expect.poll(() => progressOf(b)).toBeGreaterThanOrEqual(20);
    await a.close();
    await expect.poll(() => progressOf(c)).toBeGreaterThanOrEqual(80);
    // b runs the engine now; its page reloads, and its own loop ends with it.
    await b.reload();
    await bWrites;
    const cResult = await cWrites;
    expect(cResult.failed).toEqual([]);
    expect(cResult.unknown).toEqual([]);
    expect(cResult.acked).toHaveLength(count);
    const rows = (await query(c, "SELECT who, seq, count(*) AS n FROM t GROUP BY who, seq")) as { who: string; seq: number; n: number }[];
    expect(rows.filter((r) => r.n !== 1)).toEqual([]);
    expect(rows.filter((r) => r.who === 'c').map((r) => r.seq).sort((x, y) => x - y)).toEqual(cResult.acked);
    expect(await query(c, 'PRAGMA integrity_check')).toEqual([{ integrity_check: 'ok' }]);
    await b.close();
    await c.close();
  });

  test(`${path}: the engine tab crashes mid-stream (CDP): the other tabs go on, nothing acknowledged is lost or doubled`, async () => {
    const name = `e2e-crash-${path}-${Date.now()}`;
    const a = await tabWith(name);
    await query(a, 'CREATE TABLE t(who TEXT, seq INTEGER)');
    const b = await tabWith(name);
    const count = 100;
    void writeLoop(a, 'a', count).catch(() => {});
    const bWrites = writeLoop(b, 'b', count);
    await expect.poll(() => progressOf(b)).toBeGreaterThanOrEqual(20);
    const cdp = await context.newCDPSession(a);
    const crashed = a.waitForEvent('crash');
    // The crashed page never answers the command.
    void cdp.send('Page.crash').catch(() => {});
    await crashed;
    const result = await bWrites;
    expect(result.failed).toEqual([]);
    expect(result.unknown).toEqual([]);
    expect(result.acked).toHaveLength(count);
    const rows = (await query(b, 'SELECT who, seq, count(*) AS n FROM t GROUP BY who, seq')) as { who: string; seq: number; n: number }[];
    expect(rows.filter((r) => r.n !== 1)).toEqual([]);
    expect(await query(b, 'PRAGMA integrity_check')).toEqual([{ integrity_check: 'ok' }]);
    await b.close();
    await a.close();
  });

  test(`${path}: a tab that dies inside its transaction is rolled back, and the other tabs go on`, async () => {
    const name = `e2e-tx-${path}-${Date.now()}`;
    const engine = await tabWith(name);
    await query(engine, 'CREATE TABLE t(who TEXT, seq INTEGER)');
    const dying = await tabWith(name);
    const other = await tabWith(name);
    await dying.evaluate(() => {
      const w = window as unknown as { db: { transaction(fn: (tx: { run(sql: string): Promise<unknown> }) => Promise<void>): Promise<void> }; inside: boolean };
      void w.db.transaction(async (tx) => {
        await tx.run("INSERT INTO t VALUES ('dying', 1)");
        w.inside = true;
        await new Promise(() => {});
      });
    });
    await dying.waitForFunction(() => (window as unknown as { inside?: boolean }).inside === true);
    // These wait behind the open transaction, and run once its tab is gone.
    const writes = writeLoop(other, 'other', 5);
    await dying.close();
    expect(await writes).toEqual({ acked: [0, 1, 2, 3, 4], unknown: [], failed: [] });
    expect(await query(engine, 'SELECT who, count(*) AS n FROM t GROUP BY who')).toEqual([{ who: 'other', n: 5 }]);
    await other.close();
    await engine.close();
  });
}
