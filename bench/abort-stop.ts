/**
 * Abort to stop, through the public API, for the Node and the page benchmark alike: from
 * `controller.abort()` while a slow statement runs in the engine (a worker, or Node's engine
 * thread) to the call's rejection with AbortError.
 */
import type { Database } from '../src/types.js';

/** A statement that runs for hours unless stopped. */
const SLOW_SQL = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000000000) SELECT count(*) AS n FROM c';

/** Median and p99 of `times` aborts on `db`. */
export async function abortToStop(db: Database, times: number): Promise<{ ms: number; p99Ms: number }> {
  const lat: number[] = [];
  for (let i = 0; i < times; i++) {
    const controller = new AbortController();
    const slow = db.get(SLOW_SQL, [], { signal: controller.signal }).catch((e: unknown) => e);
    // Let the statement run a little first.
    await new Promise((resolve) => setTimeout(resolve, 20));
    const t0 = performance.now();
    controller.abort();
    const e = await slow;
    lat.push(performance.now() - t0);
    if (!(e instanceof Error && e.name === 'AbortError')) throw new Error(`expected an AbortError, got ${String(e)}`);
  }
  lat.sort((a, b) => a - b);
  const at = (q: number): number => lat[Math.min(lat.length - 1, Math.floor(q * lat.length))]!;
  return { ms: at(0.5), p99Ms: at(0.99) };
}
