/**
 * The server's descriptor pool (src/opfs-vfs/storage/descriptors.ts, `maxDatabaseFiles`): with
 * fewer descriptors than its open databases have files, every database still reads back every
 * row it committed, large values and checkpoints included, and again after a restart; and the
 * process holds no more descriptors than its open databases' revision logs plus the pool.
 */
import { readdirSync } from 'node:fs';
import { expect, test } from 'vitest';
import { int, rng, testSeed } from '../support/generate.js';
import { runBatch, startServer } from '../support/server.js';

const openDescriptors = (): number => readdirSync('/proc/self/fd').length;

test('generated: databases whose files share two descriptors keep every committed row, through a restart', async () => {
  const seed = testSeed();
  const random = rng(seed);
  const at = `seed ${seed} (OUTPOST_SEED=${seed} replays it)`;
  const databases = Array.from({ length: 12 }, (_, i) => `pooled${i}`);
  const model = new Map<string, Map<number, number>>(databases.map((d) => [d, new Map()]));
  const before = openDescriptors();
  let { server, url, dataDir } = await startServer({ auth: false, maxDatabaseFiles: 2 });
  try {
    for (const d of databases) expect((await runBatch(`${url}/db/${d}`, '', 'CREATE TABLE t(id INTEGER PRIMARY KEY, size INTEGER, v BLOB)')).errors, at).toEqual([null]);
    for (let step = 0; step < 300; step++) {
      const d = databases[int(random, 0, databases.length - 1)]!;
      const rows = model.get(d)!;
      const id = int(random, 1, 40);
      // Mostly small rows; some of 20-200 KiB, which grow the WAL past a checkpoint's threshold.
      const size = random() < 0.1 ? int(random, 20_000, 200_000) : int(random, 0, 100);
      const r = await runBatch(`${url}/db/${d}`, '', `INSERT OR REPLACE INTO t VALUES (${id}, ${size}, zeroblob(${size}))`);
      expect({ step, errors: r.errors }, at).toEqual({ step, errors: [null] });
      rows.set(id, size);
      if (random() < 0.2) await expectRows(url, d, rows, `${at} step ${step}`);
    }
    // Sockets aside (fetch keeps a few), the open databases' revision logs and the pool's two.
    expect(openDescriptors() - before, at).toBeLessThanOrEqual(databases.length + 2 + 16);
    await server.close();
    ({ server, url } = await startServer({ auth: false, maxDatabaseFiles: 2, dataDir }));
    for (const d of databases) await expectRows(url, d, model.get(d)!, `${at} after the restart`);
  } finally {
    await server.close();
  }
});

async function expectRows(url: string, d: string, rows: Map<number, number>, at: string): Promise<void> {
  const r = await runBatch(`${url}/db/${d}`, '', 'SELECT id, size, length(v) FROM t ORDER BY id');
  const want = [...rows].sort((a, b) => a[0] - b[0]).map(([id, size]) => [id, size, size]);
  const got = (r.rows[0] ?? []) as { value: string }[][];
  expect({ at, d, rows: got.map((row) => row.map((c) => Number(c.value))) }).toEqual({ at, d, rows: want });
}
