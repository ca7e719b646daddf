/**
 * A server that runs out of room (SQLITE_FULL) refuses nothing for good: the push fails as a
 * condition of the server, every change stays pending and unmarked, and once there is room
 * again the same changes land, each exactly once. The server is made full for real, by capping
 * its connection's `max_page_count` (SQLite then answers SQLITE_FULL, as for a full disk).
 * Issue 10: "A server-side disk-full became a permanent rejection".
 */
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { SyncError } from '../../src/errors.js';
import { open } from '../../src/node/index.js';
import type { OutpostServer } from '../../src/server/server.js';
import { int, rng, testSeed } from '../support/generate.js';
import { batch, rawPipeline, startServer, tempDir } from '../support/server.js';

let server: OutpostServer;
let base: string;
const dir = tempDir('outpost-disk-full-');

beforeAll(async () => {
  ({ server, url: base } = await startServer({ auth: false }));
});
afterAll(() => server.close());

async function serverValue(url: string, sql: string): Promise<string> {
  const { json } = await rawPipeline(url, batch(sql));
  return String(json.results[0].response.result.step_results[0].rows[0][0].value);
}

test('generated pushes the server has no room for stay pending, unrefused, and land once there is room', async () => {
  const seed = testSeed();
  const random = rng(seed);
  const url = `${base}/db/full`;
  await rawPipeline(url, batch('CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)'));
  const client = await open(join(dir, 'client.db'), { sync: { url, retries: 0 } });
  try {
    await client.pull();
    let expectedRows = 0;
    for (let round = 0; round < 4; round++) {
      const context = `seed ${seed}, round ${round}`;
      // Pending transactions of random sizes, at least one too large for the room left.
      const transactions = int(random, 1, 4);
      for (let i = 0; i < transactions; i++) {
        const rows = int(random, 1, 5);
        await client.exec(`BEGIN; ${Array.from({ length: rows }, () => `INSERT INTO t(v) VALUES (randomblob(${int(random, 20_000, 200_000)}));`).join(' ')} COMMIT`);
        expectedRows += rows;
      }
      const pending = (await client.pendingChanges()).map((p) => p.changeId);
      const pages = Number(await serverValue(url, 'PRAGMA page_count'));
      await server.execTrusted('full', `PRAGMA max_page_count = ${pages}`);

      const error = await client.push().catch((e: unknown) => e);
      expect(error, context).toBeInstanceOf(SyncError);
      expect((error as SyncError).code, `${context}: ${(error as Error).message}`).not.toBe('REJECTED');
      const after = await client.pendingChanges();
      expect(after.map((p) => p.changeId), context).toEqual(pending);
      expect(after.every((p) => p.rejected === null), context).toBe(true);
      expect((await client.syncStatus())?.rejectedChanges ?? [], context).toEqual([]);

      await server.execTrusted('full', 'PRAGMA max_page_count = 1073741823');
      await client.push();
      // A pushed change leaves the pending list at the next pull, which finds it on the server.
      await client.pull();
      expect(await client.pendingChanges(), context).toEqual([]);
      expect(await serverValue(url, 'SELECT count(*) FROM t'), context).toBe(String(expectedRows));
      // Nothing applied twice, and the server's copy equals the client's.
      const mine = await client.query<{ h: string }>("SELECT group_concat(id || ':' || length(v) || ':' || hex(substr(v, 1, 8)), ',') AS h FROM (SELECT * FROM t ORDER BY id)");
      expect(await serverValue(url, "SELECT group_concat(id || ':' || length(v) || ':' || hex(substr(v, 1, 8)), ',') FROM (SELECT * FROM t ORDER BY id)"), context).toBe(mine[0]!.h);
    }
  } finally {
    await client.close();
  }
});
