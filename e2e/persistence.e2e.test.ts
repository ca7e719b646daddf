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
