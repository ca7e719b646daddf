/**
 * Live sync in a real page, offline and online, and `close()`: what the browser tests cannot
 * show, since DevTools' offline emulation would also cut the Vitest runner's own connection.
 * Here Playwright drives an ordinary page (e2e/app, served by Vite's dev server with `outpost`
 * resolved to src/) and goes offline with `context.setOffline`, which fails the database
 * worker's fetches and flips its `navigator.onLine` (Chromium fires no `online` event in the
 * worker then: live sync's offline re-check is what resumes it). The page reaches the Outpost
 * server through a counting proxy in this process, so the test sees every request the page
 * starts and when each ends. A Node client on the server is the other side.
 *
 * Waits are on events: the page's `watch` and `onSyncStatus` callbacks, the proxy's request
 * events, and the Node client's `watch`.
 */
import { EventEmitter } from 'node:events';
import { type IncomingMessage, type Server, type ServerResponse, createServer as createHttpServer, request as httpRequest } from 'node:http';
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, type BrowserContext, type Page, chromium } from 'playwright';
import { type ViteDevServer, createServer } from 'vite';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import { chromiumPath } from '../scripts/chromium.js';
import { open } from '../src/node/index.js';
import type { OutpostServer } from '../src/server/server.js';
import type { Database } from '../src/types.js';
import { startServer } from '../test/support/server.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const files = mkdtempSync(join(tmpdir(), 'outpost-live-offline-'));
let sync: OutpostServer;
let syncUrl: string;
let vite: ViteDevServer;
let browser: Browser;
let proxy: CountingProxy;
let context: BrowserContext;
let page: Page;
const clients: Database[] = [];
let n = 0;

/** A proxy to the sync server that counts the requests it passes and says when each starts and ends. */
class CountingProxy extends EventEmitter {
  started = 0;
  inFlight = 0;
  readonly server: Server;

  constructor(private readonly target: URL) {
    super();
    this.server = createHttpServer((req, res) => this.forward(req, res));
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const address = this.server.address();
    if (typeof address !== 'object' || address === null) throw new Error('the proxy has no port');
    return `http://127.0.0.1:${address.port}`;
  }

  /** Resolves once `done()` holds, checked now and after every request event. */
  until(done: () => boolean): Promise<void> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (!done()) return;
        this.off('changed', check);
        resolve();
      };
      this.on('changed', check);
      check();
    });
  }

  private forward(req: IncomingMessage, res: ServerResponse): void {
    // CORS preflights are the browser's, not requests live sync makes.
    const counted = req.method !== 'OPTIONS';
    if (counted) {
      this.started++;
      this.inFlight++;
      this.emit('changed');
    }
    let ended = false;
    const end = (): void => {
      if (ended || !counted) return;
      ended = true;
      this.inFlight--;
      this.emit('changed');
    };
    const upstream = httpRequest(new URL(req.url ?? '/', this.target), { method: req.method, headers: { ...req.headers, host: this.target.host } }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    // The page aborting its request (a long poll on close) closes the socket before the answer.
    res.on('close', () => {
      upstream.destroy();
      end();
    });
    req.pipe(upstream);
  }
}

beforeAll(async () => {
  ({ server: sync, url: syncUrl } = await startServer({ auth: false }));
  proxy = new CountingProxy(new URL(syncUrl));
  const proxyUrl = await proxy.listen();
  proxy.server.unref();
  (globalThis as { proxyUrl?: string }).proxyUrl = proxyUrl;
  vite = await createServer({
    configFile: join(root, 'vite.config.ts'),
    root: join(root, 'e2e/app'),
    logLevel: 'error',
    resolve: { alias: { outpost: join(root, 'src/index.ts') } },
    // node_modules may be a link to another checkout's.
    server: { host: '127.0.0.1', port: 0, hmr: false, fs: { allow: [root, realpathSync(join(root, 'node_modules'))] } },
  });
  await vite.listen();
  browser = await chromium.launch({ executablePath: chromiumPath(), headless: true, args: ['--disable-background-networking', '--disable-component-update', '--no-first-run'] });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await vite?.close();
  await new Promise((resolve) => proxy?.server.close(resolve));
  await sync?.close();
  rmSync(files, { recursive: true, force: true });
});

afterEach(async () => {
  for (const c of clients.splice(0)) await c.close().catch(() => {});
  await context?.close();
});

/** A new page of the e2e app with `window.outpost` loaded. */
async function newPage(): Promise<Page> {
  context = await browser.newContext();
  page = await context.newPage();
  const address = vite.httpServer!.address();
  if (typeof address !== 'object' || address === null) throw new Error('vite has no port');
  await page.goto(`http://127.0.0.1:${address.port}/`);
  await page.waitForFunction(() => document.getElementById('status')?.textContent === 'ready');
  return page;
}

/** Opens `name` live in the page, syncing through the proxy to database `db`; it is `window.db`. */
async function openLiveInPage(p: Page, db: string): Promise<void> {
  const url = `${(globalThis as { proxyUrl?: string }).proxyUrl}/db/${db}`;
  await p.evaluate(
    async ({ url, name }) => {
      const w = window as unknown as { outpost: typeof import('../src/index.js'); db: Database };
      w.db = await w.outpost.open(name, { storage: 'memory', sync: { url, live: true } });
    },
    { url, name: `page-${db}` },
  );
}

/** Resolves in the page once `SELECT v FROM t ORDER BY v` gives `expected`, as `watch` reports it. */
function pageSees(p: Page, expected: string[]): Promise<void> {
  return p.evaluate(
    (expected) =>
      new Promise<void>((resolve) => {
        const db = (window as unknown as { db: Database }).db;
        const stop = db.watch<{ v: string }>('SELECT v FROM t ORDER BY v', undefined, (rows) => {
          if (JSON.stringify(rows.map((r) => r.v)) !== JSON.stringify(expected)) return;
          stop();
          resolve();
        }, { throttleMs: 0, onError: () => {} });
      }),
    expected,
  );
}

async function nodeClient(db: string): Promise<Database> {
  const c = await open(join(files, `c${++n}.db`), { sync: { url: `${syncUrl}/db/${db}`, live: true } });
  clients.push(c);
  return c;
}

/** Resolves once the Node client's `watch` of `SELECT v FROM t ORDER BY v` gives `expected` (or `expected` holds of its values). */
function nodeSees(c: Database, expected: string[] | ((values: string[]) => boolean)): Promise<void> {
  const done = typeof expected === 'function' ? expected : (values: string[]) => JSON.stringify(values) === JSON.stringify(expected);
  return new Promise((resolve) => {
    const stop = c.watch<{ v: string }>('SELECT v FROM t ORDER BY v', undefined, (rows) => {
      if (!done(rows.map((r) => r.v))) return;
      stop();
      resolve();
    }, { throttleMs: 0, onError: () => {} });
  });
}

test('offline, live sync in a page keeps its writes; online, it pushes them and pulls what it missed', async () => {
  const db = `offline${Date.now()}`;
  const other = await nodeClient(db);
  await other.exec('CREATE TABLE IF NOT EXISTS t(v TEXT PRIMARY KEY)');
  const p = await newPage();
  await openLiveInPage(p, db);
  await other.run("INSERT INTO t(v) VALUES ('before')");
  await pageSees(p, ['before']);

  await context.setOffline(true);
  expect(await p.evaluate(() => navigator.onLine)).toBe(false);
  await p.evaluate(() => (window as unknown as { db: Database }).db.run("INSERT INTO t(v) VALUES ('page offline')"));
  await other.run("INSERT INTO t(v) VALUES ('node while page offline')");
  // Its write stays pending while the page is offline (every fetch of its worker fails).
  expect(await p.evaluate(async () => (await (window as unknown as { db: Database }).db.syncStatus())?.pendingChanges)).toBe(1);

  const pageHasAll = pageSees(p, ['before', 'node while page offline', 'page offline']);
  const nodeHasAll = nodeSees(other, ['before', 'node while page offline', 'page offline']);
  await context.setOffline(false);
  await pageHasAll;
  await nodeHasAll;
  await p.evaluate(
    () =>
      new Promise<void>((resolve) => {
        const stop = (window as unknown as { db: Database }).db.onSyncStatus((s) => {
          if (s.pendingChanges !== 0) return;
          stop();
          resolve();
        });
      }),
  );
});

test('close() in a page ends the long poll and no request starts after it', async () => {
  const db = `close${Date.now()}`;
  const other = await nodeClient(db);
  await other.exec('CREATE TABLE IF NOT EXISTS t(v TEXT PRIMARY KEY)');
  const p = await newPage();
  await openLiveInPage(p, db);
  await pageSees(p, []);
  // A long poll of the page's is open at the proxy, and a commit has a push due (or running) when close() starts.
  await proxy.until(() => proxy.inFlight > 0);
  await p.evaluate(async () => {
    const db = (window as unknown as { db: Database }).db;
    await db.run("INSERT INTO t(v) VALUES ('last')");
    await db.close();
  });
  await proxy.until(() => proxy.inFlight === 0);
  const after = proxy.started;
  // A change on the server would wake a long poll of the page's, if one were still running;
  // a new client that sees it shows the server has long answered any.
  await other.run("INSERT INTO t(v) VALUES ('after close')");
  const witness = await nodeClient(db);
  await nodeSees(witness, (values) => values.includes('after close'));
  expect(proxy.started).toBe(after);
  expect(proxy.inFlight).toBe(0);
});
