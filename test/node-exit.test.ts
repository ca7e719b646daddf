/**
 * A Node script that forgets `close()` still exits, as with better-sqlite3, though its engine
 * runs in a worker thread and its callbacks (a sync token function, listeners) cross to that
 * thread. Each case runs a script in a child process against the built package (dist, so
 * `npx tsc -p tsconfig.build.json` first) and waits for it to exit on its own; the timeout is
 * only a guard against a hang, never a measure.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, onTestFinished, test } from 'vitest';
import { spawnGroup, stopGroup } from './support/processes.js';
import type { OutpostServer } from '../src/server/server.js';
import { startServer, tempDir } from './support/server.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = tempDir('outpost-exit-');
let server: OutpostServer;
let base = '';

beforeAll(async () => {
  ({ server, url: base } = await startServer({ auth: false }));
});
afterAll(async () => {
  await server.close();
});

/** Runs `script` (an ES module body) in a child Node process; resolves with its exit code and output once it exits. */
function runScript(script: string, env: Record<string, string>, flags: string[] = []): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawnGroup(process.execPath, [...flags, '--input-type=module', '-e', script], { cwd: root, env: { ...process.env, ...env } });
  // A script that hangs (the bug this file guards against) must not outlive its test.
  onTestFinished(() => stopGroup(child));
  let out = '';
  let err = '';
  child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, out, err })));
}

// Both engines: inline, the sync requests' pooled keep-alive sockets (node:http) live on the script's own thread.
test.each(['thread', 'inline'])('a script that opens a synced database (engine %s) with listeners and never closes it exits on its own', { timeout: 120_000 }, async (engine) => {
  const script = `
    const { open } = await import('outpost/node');
    let tokens = 0;
    const db = await open(process.env.DB_FILE, {
      engine: process.env.ENGINE,
      sync: { url: process.env.SYNC_URL, authToken: async () => { tokens++; return 'any'; } },
    });
    const progress = [];
    db.onSyncProgress((p) => progress.push(p));
    const changed = [];
    db.onChange(['t'], (tables) => changed.push(tables));
    let rows = null;
    db.watch('SELECT count(*) AS n FROM t', undefined, (r) => (rows = r), { throttleMs: 0, onError: () => {} });
    await db.exec('CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v)');
    await db.run('INSERT INTO t(v) VALUES (1)');
    await db.sync();
    console.log(JSON.stringify({ tokens: tokens > 0, pending: (await db.syncStatus()).pendingChanges }));
  `;
  const result = await runScript(script, { DB_FILE: join(dir, `forgot-close-${engine}.db`), SYNC_URL: `${base}/db/exit-${engine}`, ENGINE: engine });
  expect(result.err).toBe('');
  expect(result.code).toBe(0);
  expect(JSON.parse(result.out)).toEqual({ tokens: true, pending: 0 });
});

test('a call in flight keeps the process alive until it answers, with nothing awaiting it', { timeout: 120_000 }, async () => {
  // Nothing awaits the query: only the call in flight can keep the process alive for its answer.
  const script = `
    import('outpost/node')
      .then(({ open }) => open(':memory:', { storage: 'memory' }))
      .then((db) => {
        void db
          .get('WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000) SELECT count(*) AS n FROM c')
          .then((row) => console.log(JSON.stringify(row)));
      });
  `;
  const result = await runScript(script, {});
  expect(result.err).toBe('');
  expect(result.code).toBe(0);
  expect(JSON.parse(result.out)).toEqual({ n: 300000 });
});

test('a process started with a flag Node refuses a worker thread (--expose-gc) still gets its engine thread', { timeout: 120_000 }, async () => {
  const script = `
    const { open } = await import('outpost/node');
    const db = await open(process.env.DB_FILE);
    console.log(JSON.stringify({ rows: await db.query('SELECT 1 AS x'), gc: typeof globalThis.gc }));
    await db.close();
  `;
  const result = await runScript(script, { DB_FILE: join(dir, 'expose-gc.db') }, ['--expose-gc']);
  expect(result.err).toBe('');
  expect(result.code).toBe(0);
  expect(JSON.parse(result.out)).toEqual({ rows: [{ x: 1 }], gc: 'function' });
});
