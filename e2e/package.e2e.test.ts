/**
 * The way a user meets Outpost: the package is packed, the tarball installed into a fresh Vite
 * application in a temporary folder outside the repository (npm install: Vite and Outpost's
 * dependencies come from the registry or npm's cache), built with that application's own Vite
 * and no configuration, served under the strict Content-Security-Policy README recommends, and
 * run in Chromium: open, insert, query on OPFS.
 * Needs dist built (`npm test` builds it first).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium } from 'playwright';
import { preview, type PreviewServer } from 'vite';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { chromiumPath } from '../scripts/chromium.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const temp = mkdtempSync(join(tmpdir(), 'outpost-packed-app-'));
const app = join(temp, 'app');
let server: PreviewServer | undefined;
let strictServer: PreviewServer | undefined;
let browser: Browser | undefined;
let url = '';

/** The environment without the npm_* variables an enclosing `npm test` sets, which would steer the inner npm. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_')));
}

/** README's policy: no eval, WebAssembly allowed, the worker and the WASM file from the page's origin. */
const CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; connect-src 'self'";

const MAIN = `import { open } from 'outpost';

async function main() {
  const db = await open('packed-app');
  await db.exec('CREATE TABLE IF NOT EXISTS notes(id INTEGER PRIMARY KEY, body TEXT NOT NULL)');
  await db.run('INSERT INTO notes(body) VALUES (?)', ['from the tarball']);
  const rows = await db.query('SELECT body FROM notes');
  const mode = await db.get('PRAGMA journal_mode');
  // The engine names the broker it registered with (a SharedWorker the build had to emit).
  const broker = await new Promise((resolve) => {
    const channel = new BroadcastChannel('outpost-tabs:packed-app');
    channel.onmessage = (event) => {
      if (event.data.type !== 'engine') return;
      channel.close();
      resolve(typeof event.data.brokerId === 'string');
    };
    channel.postMessage({ type: 'hello' });
  });
  await db.close();
  document.body.dataset.result = JSON.stringify({ rows, mode: mode.journal_mode, broker });
}
main().catch((e) => {
  document.body.dataset.result = JSON.stringify({ error: String(e && e.stack || e) });
});
`;

beforeAll(async () => {
  if (!existsSync(join(root, 'dist/index.js'))) throw new Error('dist/ is missing: run `npx tsc -p tsconfig.build.json` first');
  const env = cleanEnv();
  execFileSync('npm', ['pack', '--ignore-scripts', '--pack-destination', temp], { cwd: root, env, stdio: 'pipe' });
  const tarball = readdirSync(temp).find((f) => f.endsWith('.tgz'));
  if (!tarball) throw new Error(`npm pack wrote no tarball into ${temp}`);
  mkdirSync(app);
  const manifest = { name: 'packed-app', private: true, type: 'module', dependencies: { outpost: `file:${join(temp, tarball)}`, vite: '8.3.8' } };
  writeFileSync(join(app, 'package.json'), JSON.stringify(manifest, null, 2));
  writeFileSync(join(app, 'index.html'), '<!doctype html><html><body><script type="module" src="/main.js"></script></body></html>\n');
  writeFileSync(join(app, 'main.js'), MAIN);
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: app, env, stdio: 'pipe' });
  // The application's own Vite, with no configuration file.
  execFileSync(process.execPath, [join(app, 'node_modules/vite/bin/vite.js'), 'build', '--logLevel', 'warn'], { cwd: app, env, stdio: 'pipe' });
  server = await preview({ root: app, configFile: false, logLevel: 'warn', preview: { host: '127.0.0.1', port: 0, headers: { 'Content-Security-Policy': CSP } } });
  url = addressOf(server);
  strictServer = await preview({ root: app, configFile: false, logLevel: 'warn', preview: { host: '127.0.0.1', port: 0, headers: { 'Content-Security-Policy': CSP.replace(" 'wasm-unsafe-eval'", '') } } });
  browser = await chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: ['--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}, 150_000);

function addressOf(preview: PreviewServer): string {
  const address = preview.httpServer.address();
  if (!address || typeof address === 'string') throw new Error('preview server has no port');
  return `http://127.0.0.1:${address.port}/`;
}

/** What the app's page wrote into document.body.dataset.result. */
async function resultAt(pageUrl: string): Promise<{ rows?: unknown; mode?: string; error?: string }> {
  const page = await browser!.newPage();
  try {
    await page.goto(pageUrl);
    await page.waitForFunction(() => document.body.dataset.result !== undefined, undefined, { timeout: 60_000 });
    return JSON.parse((await page.evaluate(() => document.body.dataset.result)) ?? '{}');
  } finally {
    await page.close();
  }
}

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await strictServer?.close();
  rmSync(temp, { recursive: true, force: true });
});

test('the build holds the worker, the broker and sqlite3.wasm as assets', () => {
  const assets = readdirSync(join(app, 'dist/assets'));
  expect(assets.some((f) => f.endsWith('.wasm'))).toBe(true);
  expect(assets.some((f) => /^worker-.*\.js$/.test(f))).toBe(true);
  expect(assets.some((f) => /^broker-.*\.js$/.test(f))).toBe(true);
});

test('the packed package opens, writes and reads a database in a fresh Vite app, under a strict CSP', async () => {
  expect(await resultAt(url)).toEqual({ rows: [{ body: 'from the tarball' }], mode: 'wal', broker: true });
});

test("without 'wasm-unsafe-eval' in the policy, open fails with an error instead of hanging", async () => {
  const result = await resultAt(addressOf(strictServer!));
  expect(result.error).toMatch(/WebAssembly|wasm|Content Security Policy/i);
});
