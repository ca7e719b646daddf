/**
 * The playground as a PWA, end to end: `npm run demo`'s server (demo/serve.ts: a local sync
 * server, and the playground built with its Workbox service worker) started as a child process,
 * driven by Playwright in a persistent Chromium profile. The page loads online, reloads with the
 * network off from the service worker's precache (sqlite3.wasm and the database worker
 * included), writes rows offline, and closes; the network returns and the service worker's
 * `outpost-push` sync event (dispatched through CDP, as Chromium would when it sees the network)
 * pushes the queued batch with no tab of the app open. The server then has the rows once, and
 * the page opened again finds nothing to push and nothing pending.
 *
 * Waits are on events: the page's own markers (`data-ready`, `data-sw`, the status line), CDP's
 * registration events, and a long-polling Outpost client that returns when the server commits.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, type Page, chromium } from 'playwright';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { chromiumPath } from '../scripts/chromium.js';
import { open } from '../src/node/index.js';
import { batch, rawPipeline } from '../test/support/server.js';

let server: ChildProcess;
let context: BrowserContext;
let url: string;
let syncUrl: string;
const profile = mkdtempSync(join(tmpdir(), 'outpost-pwa-profile-'));
const data = mkdtempSync(join(tmpdir(), 'outpost-pwa-data-'));
const files = mkdtempSync(join(tmpdir(), 'outpost-pwa-files-'));

beforeAll(async () => {
  server = spawn(process.execPath, ['--import', 'tsx', 'demo/serve.ts', '--port', '0', '--sync-port', '0', '--data', data], { stdio: ['ignore', 'pipe', 'inherit'] });
  [url, syncUrl] = await new Promise<[string, string]>((resolve, reject) => {
    let out = '';
    server.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const page = /^Playground: (http:\/\/127\.0\.0\.1:\d+\/)$/m.exec(out);
      const sync = /^Sync server: (http:\/\/127\.0\.0\.1:\d+)/m.exec(out);
      if (page && sync) resolve([page[1]!, sync[1]!]);
    });
    server.on('exit', (code) => reject(new Error(`demo server exited with ${code}: ${out}`)));
  });
  context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath(),
    headless: true,
    args: ['--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}, 180_000);

afterAll(async () => {
  await context?.close();
  if (server && server.exitCode === null) {
    const exited = new Promise((resolve) => server.once('exit', resolve));
    server.kill('SIGTERM');
    await exited;
  }
  for (const dir of [profile, data, files]) rmSync(dir, { recursive: true, force: true });
});

/** Opens the playground on database `db` and waits until it is open and controlled by the service worker. */
async function playground(db: string): Promise<Page> {
  const p = await context.newPage();
  await p.goto(`${url}?db=${db}`);
  await p.waitForSelector('body[data-ready="true"][data-sw="controlled"]', { state: 'attached' });
  return p;
}

/** Runs `sql` from the editor, as a person does, and returns the results pane's text. */
async function run(page: Page, sql: string): Promise<string> {
  await page.evaluate(() => {
    document.getElementById('status')!.textContent = '';
  });
  await page.click('.cm-content');
  await page.keyboard.press('ControlOrMeta+a');
  await page.keyboard.press('Delete');
  await page.locator('.cm-content').fill(sql);
  await page.keyboard.press('ControlOrMeta+Enter');
  await page.waitForFunction(() => document.getElementById('status')?.textContent?.startsWith('done'));
  return page.locator('#results').innerText();
}

/** Clicks a sync button and waits for its action to end (the panel counts the actions that ended). */
async function syncAction(page: Page, id: 'sync-connect' | 'sync-push' | 'sync-pull'): Promise<void> {
  const before = Number((await page.locator('#sync-status').getAttribute('data-actions-done')) ?? 0);
  await page.click(`#${id}`);
  await page.waitForSelector(`#sync-status[data-actions-done="${before + 1}"]`, { state: 'attached' });
}

async function serverRows(remote: string, sql: string): Promise<unknown[][]> {
  const res = await rawPipeline(remote, batch(sql));
  return res.json.results[0].response.result.step_results[0].rows.map((r: { value?: unknown }[]) => r.map((v) => v.value ?? null));
}

test('offline the PWA opens from its cache, and its offline writes reach the server once through the service worker', async () => {
  const db = `pwa${Date.now()}`;
  const remote = `${syncUrl}/db/${db}`;
  await rawPipeline(remote, batch('CREATE TABLE items(v TEXT)'));

  // Online: the service worker installs and takes the page; connect to the server's database.
  const page = await playground(db);
  await page.fill('#sync-url', remote);
  await syncAction(page, 'sync-connect');
  expect(await page.locator('#sync-connect').innerText()).toBe('Disconnect');
  // Connecting stays usable offline: a first pull that outlives its time limit on a busy machine
  // leaves the page's database without the server's table. Pull until it is there.
  for (let pulls = 0; !/\b1\b/.test(await run(page, "SELECT count(*) AS n FROM sqlite_schema WHERE name = 'items'")); pulls++) {
    if (pulls === 10) throw new Error("the page's database never received the server's table");
    await syncAction(page, 'sync-pull');
  }

  // Offline: the reload comes from the precache, and the database opens (sqlite3.wasm and the worker are cached).
  await context.setOffline(true);
  const reload = await page.goto(`${url}?db=${db}`);
  expect(reload?.fromServiceWorker()).toBe(true);
  await page.waitForSelector('body[data-ready="true"][data-sw="controlled"]', { state: 'attached' });
  expect(await page.locator('#db-name').innerText()).toBe(db);
  expect(await run(page, "INSERT INTO items VALUES ('one'), ('two'); INSERT INTO items VALUES ('three'); SELECT count(*) AS n FROM items;")).toMatch(/\b3\b/);
  // The first write asked for persistent storage; the page shows the browser's answer.
  await page.waitForSelector('#db-persist[data-persist="granted"], #db-persist[data-persist="denied"]', { state: 'attached' });

  // The push cannot reach the server; the service worker keeps its batch.
  await syncAction(page, 'sync-push');
  expect(await page.locator('#sync-error').innerText()).toContain('NETWORK');
  expect(Number(await page.locator('#sync-pending').innerText())).toBeGreaterThan(0);

  // A page of no origin keeps the browser's CDP session; every page of the app closes.
  const blank = await context.newPage();
  const cdp = await context.newCDPSession(blank);
  await page.close();
  const registration = new Promise<string>((resolve) => {
    cdp.on('ServiceWorker.workerRegistrationUpdated', ({ registrations }) => {
      const mine = registrations.find((r) => r.scopeURL === url && !r.isDeleted);
      if (mine) resolve(mine.registrationId);
    });
  });
  await cdp.send('ServiceWorker.enable');
  const registrationId = await registration;

  // A client that long-polls the server (open bootstraps it): its pull returns when the server commits the push.
  const watcher = await open(join(files, 'watcher.db'), { sync: { url: remote, longPollTimeoutMs: 60_000 } });
  await context.setOffline(false);
  const committed = watcher.pull();
  await cdp.send('ServiceWorker.dispatchSyncEvent', { origin: new URL(url).origin, registrationId, tag: 'outpost-push', lastChance: false });
  await committed;
  // The service worker sends one batch per transaction: the long poll can end at the first; each
  // further pull waits for the server's next commit.
  for (let pulls = 1; pulls < 10 && (await watcher.query<{ n: number }>('SELECT count(*) AS n FROM items'))[0]!.n < 3; pulls++) await watcher.pull();
  expect(await watcher.query('SELECT v FROM items ORDER BY v')).toEqual([{ v: 'one' }, { v: 'three' }, { v: 'two' }]);
  expect(await serverRows(remote, 'SELECT v, count(*) FROM items GROUP BY v ORDER BY v')).toEqual([
    ['one', '1'],
    ['three', '1'],
    ['two', '1'],
  ]);
  await watcher.close();

  // The app again: nothing to push, nothing pending, no duplicate.
  const again = await playground(db);
  await syncAction(again, 'sync-push');
  await syncAction(again, 'sync-pull');
  expect(await again.locator('#sync-error').innerText()).toBe('');
  expect(await again.locator('#sync-pending').innerText()).toBe('0');
  expect(await run(again, 'SELECT count(*) AS n FROM items;')).toMatch(/\b3\b/);
  expect(await serverRows(remote, 'SELECT count(*) FROM items')).toEqual([['3']]);
  await again.close();
  await cdp.detach();
  await blank.close();
});
