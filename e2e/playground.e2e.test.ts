/**
 * The playground end to end: `npm run demo`'s server (demo/serve.ts) started as a child process,
 * driven by Playwright in a persistent Chromium profile the way a person uses it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, type Page, chromium } from 'playwright';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { chromiumPath } from '../scripts/chromium.js';

let server: ChildProcess;
let context: BrowserContext;
let url: string;
const profile = mkdtempSync(join(tmpdir(), 'outpost-play-profile-'));
const files = mkdtempSync(join(tmpdir(), 'outpost-play-files-'));

beforeAll(async () => {
  server = spawn(process.execPath, ['--import', 'tsx', 'demo/serve.ts', '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
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
}, 120_000);

afterAll(async () => {
  await context?.close();
  server?.kill('SIGTERM');
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

test('typing SQL and running it shows the rows', async () => {
  const page = await playground(unique('rows'));
  const out = await run(page, "CREATE TABLE fruit(name, qty); INSERT INTO fruit VALUES ('apple', 3), ('pear', 5); SELECT name, qty FROM fruit ORDER BY name;");
  expect(out).toContain('2 rows');
  expect(out).toMatch(/apple\s+3/);
  expect(out).toMatch(/pear\s+5/);
  await expect.poll(() => page.locator('#schema-tree').innerText()).toContain('fruit');
  await page.close();
});

test('Run pressed before the database is open runs the statement once it is', async () => {
  const page = await context.newPage();
  // Hold SQLite's WASM back, so that the database cannot finish opening before Run is pressed.
  let release = (): void => undefined;
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  let wasmRequested = false;
  await page.route('**/*.wasm*', async (route) => {
    wasmRequested = true;
    await held;
    await route.continue();
  });
  await page.goto(`${url}?db=${unique('early')}`);
  await page.locator('.cm-content').fill('SELECT 6 * 7 AS answer;');
  await page.click('#run');
  await expect.poll(() => wasmRequested, { timeout: 30_000 }).toBe(true);
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
  await expect.poll(() => page.locator('#db-name').innerText()).toBe('saved');
  expect(await run(page, 'SELECT v FROM saved;')).toContain('round trip');

  const junk = join(files, 'junk.db');
  writeFileSync(junk, 'definitely not a database');
  const chooser2 = page.waitForEvent('filechooser');
  await page.click('#open-file');
  await (await chooser2).setFiles(junk);
  await expect.poll(() => page.locator('#results').innerText()).toContain('cannot be opened');
  await expect.poll(() => page.locator('#db-name').innerText()).toBe('saved');
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
  await expect.poll(() => page.locator('.cm-content').innerText()).toBe('SELECT 42 AS answer;');
  await expect.poll(() => page.locator('#results').innerText()).toBe('');
  await page.close();
});

test('two pages syncing through the local server converge', async () => {
  const remote = `shared${Date.now()}`;
  const a = await playground(unique('syncA'));
  const b = await playground(unique('syncB'));
  for (const page of [a, b]) {
    const field = page.locator('#sync-url');
    const prefilled = await field.inputValue();
    expect(prefilled).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/db\/playground$/);
    await field.fill(prefilled.replace(/playground$/, remote));
    await page.click('#sync-connect');
    await expect.poll(() => page.locator('#sync-connect').innerText()).toBe('Disconnect');
  }
  await run(a, "CREATE TABLE shared(id INTEGER PRIMARY KEY, note TEXT); INSERT INTO shared(note) VALUES ('written in page A');");
  // Two autocommit statements: two change records.
  await expect.poll(() => a.locator('#sync-pending').innerText()).toBe('2');
  await a.click('#sync-push');
  await expect.poll(() => a.locator('#sync-last-push').innerText()).not.toBe('never');
  await b.click('#sync-pull');
  await expect.poll(() => b.locator('#schema-tree').innerText(), { timeout: 10_000 }).toContain('shared');
  expect(await run(b, 'SELECT note FROM shared;')).toContain('written in page A');
  await run(b, "UPDATE shared SET note = 'edited in page B' WHERE id = 1;");
  await b.click('#sync-push');
  await expect.poll(() => b.locator('#sync-pending').innerText()).toBe('1');
  const revisionBefore = await a.locator('#sync-revision').innerText();
  await a.click('#sync-pull');
  await expect.poll(() => a.locator('#sync-revision').innerText(), { timeout: 10_000 }).not.toBe(revisionBefore);
  expect(await run(a, 'SELECT note FROM shared;')).toContain('edited in page B');
  expect(await a.locator('#sync-error').innerText()).toBe('');
  await a.close();
  await b.close();
});
