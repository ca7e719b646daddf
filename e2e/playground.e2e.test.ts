/**
 * The playground end to end: `npm run demo`'s server (demo/serve.ts) started as a child process,
 * driven by Playwright in a persistent Chromium profile the way a person uses it.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, type Page, chromium } from 'playwright';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { chromiumPath } from '../scripts/chromium.js';
import { spawnGroup, stopGroup } from '../test/support/processes.js';

let server: ChildProcess;
let context: BrowserContext;
let url: string;
const profile = mkdtempSync(join(tmpdir(), 'outpost-play-profile-'));
const files = mkdtempSync(join(tmpdir(), 'outpost-play-files-'));

beforeAll(async () => {
  // Its own process group, stopped whole after the tests: nothing it started outlives them.
  server = spawnGroup(process.execPath, ['--import', 'tsx', 'demo/serve.ts', '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  url = await new Promise<string>((resolve, reject) => {
    let out = '';
    server.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /^Playground: (http:\/\/127\.0\.0\.1:\d+\/)$/m.exec(out);
      if (m) resolve(m[1]!);
    });
    server.on('exit', (code) => reject(new Error(`demo server exited with ${code}: ${out}`)));
  });
  context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath(),
    headless: true,
    acceptDownloads: true,
    // The playground without its service worker (e2e/pwa.e2e.test.ts tests that): page.route
    // sees no request the service worker answers from its cache.
    serviceWorkers: 'block',
    args: ['--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  // Pages do real work (a worker, WASM, OPFS, a sync server) that takes long on a busy machine.
  context.setDefaultTimeout(90_000);
}, 120_000);

afterAll(async () => {
  await context?.close();
  if (server) await stopGroup(server, 'SIGTERM');
  rmSync(profile, { recursive: true, force: true });
  rmSync(files, { recursive: true, force: true });
});

/** Opens the playground on its own database. */
async function playground(db: string): Promise<Page> {
  const page = await context.newPage();
  await page.goto(`${url}?db=${db}`);
  await page.waitForSelector('body[data-ready="true"]');
  return page;
}

async function run(page: Page, sql: string): Promise<string> {
  await page.click('.cm-content');
  await page.keyboard.press('ControlOrMeta+a');
  await page.keyboard.press('Delete');
  await page.locator('.cm-content').fill(sql);
  await page.keyboard.press('ControlOrMeta+Enter');
  await page.waitForFunction(() => document.getElementById('status')?.textContent?.startsWith('done'));
  const text = await page.locator('#results').innerText();
  await page.evaluate(() => {
    document.getElementById('status')!.textContent = '';
  });
  return text;
}

const unique = (p: string): string => `${p}${Date.now()}`;

/**
 * Resolves once the text of `selector` matches `pattern` (or, with `not`, stops matching). The
 * page checks at each animation frame, with no deadline of its own but the context's (90 s):
 * a slow moment only makes it wait longer.
 */
async function textMatches(page: Page, selector: string, pattern: RegExp, not = false): Promise<void> {
  await page.waitForFunction(
    ({ selector, source, flags, not }) => {
      const text = (document.querySelector(selector) as HTMLElement | null)?.innerText ?? '';
      return new RegExp(source, flags).test(text) !== not;
    },
    { selector, source: pattern.source, flags: pattern.flags, not },
    { polling: 'raf' },
  );
}

test('typing SQL and running it shows the rows', async () => {
  const page = await playground(unique('rows'));
  const out = await run(page, "CREATE TABLE fruit(name, qty); INSERT INTO fruit VALUES ('apple', 3), ('pear', 5); SELECT name, qty FROM fruit ORDER BY name;");
  expect(out).toContain('2 rows');
  expect(out).toMatch(/apple\s+3/);
  expect(out).toMatch(/pear\s+5/);
  await textMatches(page, '#schema-tree', /fruit/);
  await page.close();
});

test('Run pressed before the database is open runs the statement once it is', async () => {
  const page = await context.newPage();
  // Hold SQLite's WASM back, so that the database cannot finish opening before Run is pressed.
  let release = (): void => undefined;
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  let wasmRequested: () => void = () => undefined;
  const requested = new Promise<void>((resolve) => (wasmRequested = resolve));
  await page.route('**/*.wasm*', async (route) => {
    wasmRequested();
    await held;
    await route.continue();
  });
  await page.goto(`${url}?db=${unique('early')}`);
  await page.locator('.cm-content').fill('SELECT 6 * 7 AS answer;');
  await page.click('#run');
  await requested;
  expect(await page.evaluate(() => document.body.dataset.ready)).toBeUndefined();
  expect(await page.locator('#results').innerText()).toBe('');
  release();
  await page.waitForFunction(() => document.getElementById('status')?.textContent?.startsWith('done'));
  expect(await page.locator('#results').innerText()).toMatch(/answer\s+42/);
  await page.waitForSelector('body[data-ready="true"]');
  // What was typed before the open finished stays (the welcome text does not replace it).
  expect(await page.locator('.cm-content').innerText()).toBe('SELECT 6 * 7 AS answer;');
  await page.close();
});

test('.tables and .schema list what was created', async () => {
  const page = await playground(unique('schema'));
  await run(page, 'CREATE TABLE a(x INTEGER PRIMARY KEY); CREATE TABLE b(y TEXT); CREATE INDEX by ON b(y);');
  const tables = await run(page, '.tables');
  expect(tables.split('\n').map((s) => s.trim())).toEqual(expect.arrayContaining(['a', 'b']));
  const schema = await run(page, '.schema b');
  expect(schema).toContain('CREATE TABLE b(y TEXT);');
  expect(schema).toContain('CREATE INDEX by ON b(y);');
  expect(await run(page, '.indexes')).toContain('by');
  await page.close();
});

test('a CSV file imports into a table that can be queried', async () => {
  const page = await playground(unique('csv'));
  const csv = join(files, 'people.csv');
  writeFileSync(csv, 'name,age,city\n"Smith, Ann",34,Oslo\nBo,27,"New\nYork"\n');
  const chooser = page.waitForEvent('filechooser');
  const done = run(page, '.import --csv people.csv people');
  await (await chooser).setFiles(csv);
  expect(await done).toContain('imported 2 rows into people');
  const out = await run(page, 'SELECT name, age + 1 AS next FROM people ORDER BY age;');
  expect(out).toMatch(/Bo\s+28/);
  expect(out).toMatch(/Smith, Ann\s+35/);
  await page.close();
});

test('a downloaded .db opens again, and a non-SQLite file is refused', async () => {
  const page = await playground(unique('file'));
  await run(page, "CREATE TABLE saved(v); INSERT INTO saved VALUES ('round trip');");
  const download = page.waitForEvent('download');
  await page.click('#download-db');
  const dbFile = join(files, 'saved.db');
  await (await download).saveAs(dbFile);
  expect(readFileSync(dbFile).subarray(0, 15).toString()).toBe('SQLite format 3');

  const chooser = page.waitForEvent('filechooser');
  await page.click('#open-file');
  await (await chooser).setFiles(dbFile);
  await textMatches(page, '#db-name', /^saved$/);
  expect(await run(page, 'SELECT v FROM saved;')).toContain('round trip');

  const junk = join(files, 'junk.db');
  writeFileSync(junk, 'definitely not a database');
  const chooser2 = page.waitForEvent('filechooser');
  await page.click('#open-file');
  await (await chooser2).setFiles(junk);
  await textMatches(page, '#results', /cannot be opened/);
  expect(await page.locator('#db-name').innerText()).toBe('saved');
  await page.close();
});

test('data is there again after a reload', async () => {
  const db = unique('reload');
  const page = await playground(db);
  await run(page, "CREATE TABLE kept(v); INSERT INTO kept VALUES ('still here');");
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  expect(await run(page, 'SELECT v FROM kept;')).toContain('still here');
  await page.close();
});

test("a syntax error shows SQLite's code and message at the failing statement", async () => {
  const page = await playground(unique('error'));
  const out = await run(page, 'SELECT 1; SELEC 2; SELECT 3;');
  expect(out).toContain('SQLITE_ERROR');
  expect(out).toContain('near "SELEC": syntax error');
  expect(out).not.toContain('SELECT 3');
  expect(await page.locator('.block.error').count()).toBe(1);
  await page.close();
});

test('a share link fills the editor without running it', async () => {
  const page = await context.newPage();
  await page.goto(`${url}?db=${unique('share')}#sql=${encodeURIComponent('SELECT 42 AS answer;')}`);
  await page.waitForSelector('body[data-ready="true"]');
  // The editor was filled before the open finished, and nothing ran.
  expect(await page.locator('.cm-content').innerText()).toBe('SELECT 42 AS answer;');
  expect(await page.locator('#results').innerText()).toBe('');
  await page.close();
});

test('two pages syncing live through the local server converge with no sync clicks', async () => {
  const remote = `shared${Date.now()}`;
  const a = await playground(unique('syncA'));
  const b = await playground(unique('syncB'));
  for (const page of [a, b]) {
    const field = page.locator('#sync-url');
    const prefilled = await field.inputValue();
    expect(prefilled).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/db\/playground$/);
    await field.fill(prefilled.replace(/playground$/, remote));
    await page.click('#sync-connect');
    await textMatches(page, '#sync-connect', /^Disconnect$/);
  }
  await run(a, "CREATE TABLE shared(id INTEGER PRIMARY KEY, note TEXT); INSERT INTO shared(note) VALUES ('written in page A');");
  // Live sync pushes A's commits and B pulls them: B's schema panel refreshes on the change.
  await textMatches(b, '#schema-tree', /shared/);
  expect(await run(b, 'SELECT note FROM shared;')).toContain('written in page A');
  // A shows a read-only result; B's edit reaches it through the server and A's view refreshes.
  expect(await run(a, 'SELECT note FROM shared;')).toContain('written in page A');
  await run(b, "UPDATE shared SET note = 'edited in page B' WHERE id = 1;");
  await textMatches(a, '#results', /edited in page B/);
  await textMatches(a, '#sync-pending', /^0$/);
  expect(await a.locator('#sync-error').innerText()).toBe('');
  await a.close();
  await b.close();
});

test("a page's result refreshes when another tab writes to the same database", async () => {
  const db = unique('tabs');
  const first = await playground(db);
  await run(first, "CREATE TABLE seen(v TEXT); SELECT 1;");
  expect(await run(first, 'SELECT count(*) AS n FROM seen;')).toMatch(/n\s+0/);
  const second = await playground(db);
  await run(second, "INSERT INTO seen VALUES ('from the other tab');");
  await textMatches(first, '#results', /n\s+1/);
  await first.close();
  await second.close();
});
