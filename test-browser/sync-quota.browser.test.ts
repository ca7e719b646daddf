/**
 * An OPFS quota met in the middle of a sync, in a real browser worker (the Node twin,
 * test/sync/client-disk-full.test.ts, fills a shared simulated disk): a replica opened with a
 * simulated per-file quota, in each of the three ways browsers report it, has local commits
 * pending when the server grows by more than the quota leaves room for. Its pull (or sync)
 * must fail with SqliteError SQLITE_FULL, the open database must still hold every local commit
 * and pass integrity_check, and once reopened without the quota a sync must bring the server's
 * rows in and push the local ones, each once.
 * Each run prints its seed; cases are generated from it (styles, sizes, which call meets the quota).
 */
import { expect, inject, test } from 'vitest';
import { open } from '../src/index.js';
import { SqliteError } from '../src/errors.js';
import { int, pick, rng, testSeed } from '../test/support/generate.js';

const unique = (p: string): string => `${p}-${crypto.randomUUID()}`;
const CASES = 4;

async function remote(url: string, sql: string[]): Promise<void> {
  const res = await fetch(`${url}/v2/pipeline`, {
    method: 'POST',
    body: JSON.stringify({ baton: null, requests: [{ type: 'batch', batch: { steps: sql.map((s) => ({ stmt: { sql: s } })) } }] }),
  });
  expect(res.status).toBe(200);
}

test('a sync that meets the OPFS quota fails with SQLITE_FULL and loses nothing', async () => {
  const seed = testSeed();
  console.log(`sync quota: seed ${seed} (OUTPOST_SEED=${seed} replays it)`);
  const random = rng(seed);
  for (let c = 0; c < CASES; c++) {
    const style = pick(random, ['throw', 'short', 'bogus'] as const);
    const what = `seed ${seed} case ${c} (${style})`;
    const url = `${inject('outpostServerUrl')}/db/${unique('quota')}`;
    await remote(url, ['CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)', "INSERT INTO t VALUES (1, x'01')"]);
    const name = unique('sync-quota');
    const quotaBytes = int(random, 256, 768) * 1024;
    let db = await open(name, { sync: { url }, simulatedQuota: { bytes: quotaBytes, style } });
    const local: number[] = [];
    for (let i = int(random, 1, 4); i > 0; i--) {
      const id = 1000 + local.length;
      await db.run('INSERT INTO t VALUES (?, randomblob(?))', [id, int(random, 10, 4000)]);
      local.push(id);
    }
    // The server grows past what the quota leaves for the pull's pages.
    const serverRows = int(random, 2, 6);
    for (let i = 0; i < serverRows; i++) await remote(url, [`INSERT INTO t VALUES (${10 + i}, randomblob(${Math.ceil((quotaBytes * 1.5) / serverRows)}))`]);
    const call = pick(random, ['pull', 'sync'] as const);
    const error = await db[call]().then(
      () => null,
      (e: unknown) => e,
    );
    expect(error, `${what}: ${call} past the quota`).toBeInstanceOf(SqliteError);
    expect((error as SqliteError).code, `${what}: ${(error as Error).message}`).toBe('SQLITE_FULL');
    const held = (await db.query<{ id: number }>('SELECT id FROM t WHERE id >= 1000 ORDER BY id')).map((r) => r.id);
    expect(held, `${what}: local commits after the failed ${call}`).toEqual(local);
    expect(await db.get('PRAGMA integrity_check'), what).toEqual({ integrity_check: 'ok' });
    await db.close();

    db = await open(name, { sync: { url } });
    await db.sync();
    expect((await db.syncStatus())?.pendingChanges, what).toBe(0);
    const ids = (await db.query<{ id: number }>('SELECT id FROM t ORDER BY id')).map((r) => r.id);
    expect(ids, what).toEqual([1, ...Array.from({ length: serverRows }, (_, i) => 10 + i), ...local]);
    expect(await db.get('PRAGMA integrity_check'), what).toEqual({ integrity_check: 'ok' });
    await db.close();
  }
}, 300_000);
