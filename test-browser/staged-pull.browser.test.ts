/**
 * A large pull through the staging file on OPFS (sync/staging.ts), in a real browser worker
 * killed at a seeded random point while the pull downloads and stages its pages, or while it
 * applies them. After each kill the database reopens at the old revision or the new one, never
 * between, with its pending local change, and its staging files are empty once it closes.
 */
import { expect, inject, test } from 'vitest';
import { open } from '../src/index.js';
import { openInWorker } from '../src/worker/client.js';
import { int, rng, testSeed } from '../test/support/generate.js';

const ROWS = 600;
const unique = (p: string): string => `${p}-${crypto.randomUUID()}`;

async function remote(url: string, sql: string[]): Promise<void> {
  const res = await fetch(`${url}/v2/pipeline`, {
    method: 'POST',
    body: JSON.stringify({ baton: null, requests: [{ type: 'batch', batch: { steps: sql.map((s) => ({ stmt: { sql: s } })) } }] }),
  });
  expect(res.status).toBe(200);
}

/** The sizes of the staging files of OPFS database `name` (0 for one that does not exist). */
async function stagingSizes(name: string): Promise<number[]> {
  const dir = await (await (await navigator.storage.getDirectory()).getDirectoryHandle('outpost')).getDirectoryHandle(name);
  return Promise.all(
    [0, 1, 2, 3].map(async (slot) => {
      try {
        return (await (await dir.getFileHandle(`db-pull-${slot}`)).getFile()).size;
      } catch {
        return 0;
      }
    }),
  );
}

test('a worker killed while a large pull stages or applies leaves the database before or after it, with its local change', async () => {
  const url = `${inject('outpostServerUrl')}/db/${unique('staged')}`;
  await remote(url, ['CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)', 'CREATE TABLE big(id INTEGER PRIMARY KEY, tag INTEGER, v TEXT)']);
  const seed = testSeed();
  console.log(`staged-pull OPFS kill seed ${seed} (OUTPOST_SEED=${seed} to repeat)`);
  const random = rng(seed);
  for (let c = 0; c < 6; c++) {
    const phase = c % 2 === 0 ? 'staging' : 'applying';
    const delayMs = phase === 'staging' ? int(random, 0, 150) : int(random, 0, 40);
    const what = `seed ${seed}, case ${c}: killed ${delayMs} ms into the ${phase}`;
    const name = unique('staged');
    const opts = { name, storage: 'opfs' as const, durability: 'normal' as const, intMode: 'number' as const, lockTimeoutMs: 10_000, sync: { url } };
    const first = await openInWorker(opts);
    const before = (await first.driver.syncStatus())!.revision;
    await first.driver.run('INSERT INTO t(id, v) VALUES (?, ?)', [-1 - c, `local ${c}`]);
    // About 1.3 MB of new pages: more than one 1 MiB staging write.
    await remote(url, [`INSERT INTO big(tag, v) SELECT ${c}, hex(randomblob(1000)) FROM (WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i < ${ROWS}) SELECT i FROM s)`]);
    // Staging: killed while the download runs. Applying: downloaded whole first, killed while it applies.
    const work = phase === 'staging' ? first.driver.fetchPull() : await first.driver.fetchPull().then((id) => () => first.driver.applyPull(id!));
    const settled = (typeof work === 'function' ? work() : work).catch(() => 'killed');
    await new Promise((r) => setTimeout(r, delayMs));
    first.terminate();
    await Promise.race([settled, new Promise((r) => setTimeout(r, 50))]);

    const again = await open(name, { sync: { url }, lockTimeoutMs: 10_000 });
    expect(await again.get('PRAGMA integrity_check'), what).toEqual({ integrity_check: 'ok' });
    const tagged = Number((await again.get<{ n: number }>('SELECT count(*) AS n FROM big WHERE tag = ?', [c]))!.n);
    expect([0, ROWS], what).toContain(tagged);
    if (tagged === 0) expect((await again.syncStatus())!.revision, what).toBe(before);
    expect(await again.get('SELECT v FROM t WHERE id = ?', [-1 - c]), what).toEqual({ v: `local ${c}` });
    expect((await again.syncStatus())!.pendingChanges, what).toBeGreaterThan(0);
    await again.pull();
    expect(Number((await again.get<{ n: number }>('SELECT count(*) AS n FROM big WHERE tag = ?', [c]))!.n), what).toBe(ROWS);
    expect(await again.get('SELECT v FROM t WHERE id = ?', [-1 - c]), what).toEqual({ v: `local ${c}` });
    await again.close();
    expect(await stagingSizes(name), what).toEqual([0, 0, 0, 0]);
  }
}, 240_000);
