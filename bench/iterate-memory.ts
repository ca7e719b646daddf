/**
 * `npx tsx --expose-gc bench/iterate-memory.ts [rows]`: the memory `iterate` keeps while it
 * streams a large result, beside `query` reading the same rows at once, under `outpost/node`
 * (engine in this process, so the heap below holds both sides). Prints the peak JS heap above
 * the baseline and the peak of external + array-buffer memory (SQLite's WASM heap lives there),
 * sampled every 10,000 rows, and the time each takes.
 */
import { open } from '../src/node/index.js';

const rows = Number(process.argv[2] ?? 1_000_000);
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});

function sample(): { heap: number; outside: number } {
  const m = process.memoryUsage();
  return { heap: m.heapUsed, outside: m.external + m.arrayBuffers };
}

const MB = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MB`;

async function measure(name: string, read: (onRow: () => void) => Promise<void>): Promise<void> {
  gc();
  const base = sample();
  let peakHeap = 0;
  let peakOutside = 0;
  let seen = 0;
  const started = performance.now();
  await read(() => {
    if (++seen % 10_000 !== 0) return;
    const s = sample();
    peakHeap = Math.max(peakHeap, s.heap - base.heap);
    peakOutside = Math.max(peakOutside, s.outside - base.outside);
  });
  const ms = performance.now() - started;
  console.log(`${name}: ${seen} rows in ${ms.toFixed(0)} ms; peak JS heap above baseline ${MB(peakHeap)}; peak external+ArrayBuffer above baseline ${MB(peakOutside)}`);
}

const db = await open(':memory:', { storage: 'memory' });
await db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL)');
await db.run(
  "INSERT INTO t SELECT x, 'name number ' || x, x * 0.5 FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) SELECT x FROM c)",
  [rows],
);
await measure('iterate', async (onRow) => {
  for await (const _row of db.iterate('SELECT * FROM t')) onRow();
});
await measure('query  ', async (onRow) => {
  const all = await db.query('SELECT * FROM t');
  for (const _row of all) onRow();
});
await db.close();
