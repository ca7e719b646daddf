/**
 * Insert collisions (src/sync/conflicts.ts) against the Outpost server, in process: named
 * regression cases, then seeded generated cases (insert-collisions.ts). OUTPOST_SEED=<seed>
 * replays one generated case; OUTPOST_COLLISION_SEEDS sets how many run (default 100).
 * insert-collisions-turso.test.ts runs the same against `turso --sync-server`.
 */
import { rmSync } from 'node:fs';
import { afterAll, describe, expect, test } from 'vitest';
import { inProcessNetwork, scratchDataDir } from '../support/networks.js';
import { runCollisionCase } from './insert-collisions.js';
import { collisionRegressions } from './insert-collisions-regressions.js';

const dataDir = scratchDataDir('outpost-collisions-');
const network = inProcessNetwork(dataDir);
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe('insert collisions, Outpost server in process', () => {
  let n = 0;
  collisionRegressions(async () => network.open(`named-${++n}`));
});

const { first, count } = process.env.OUTPOST_SEED
  ? { first: Number(process.env.OUTPOST_SEED), count: 1 }
  : { first: Number(process.env.OUTPOST_SEED_FROM ?? Math.floor(Date.now() / 1000) % 1_000_000), count: Number(process.env.OUTPOST_COLLISION_SEEDS ?? 100) };

test(`generated insert collisions, in process: ${count} seeds from ${first}`, async () => {
  console.log(`insert collisions: seeds ${first}..${first + count - 1} (replay one with OUTPOST_SEED=<seed>)`);
  const failures: string[] = [];
  const totals = { rekeyed: 0, reported: 0, lost: 0 };
  for (let seed = first; seed < first + count; seed++) {
    const server = await network.open(`gen-${seed}`);
    try {
      const r = await runCollisionCase(server, seed);
      totals.rekeyed += r.rekeyed;
      totals.reported += r.reported;
      totals.lost += r.lost;
    } catch (e) {
      const message = e instanceof Error && e.message.includes(`seed ${seed}`) ? e.message : `insert collisions seed ${seed}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`;
      console.error(message);
      failures.push(message);
    } finally {
      await server.close();
    }
  }
  console.log(`insert collisions: ${count} seeds, ${totals.rekeyed} rows re-keyed, ${totals.reported} inserts reported, ${totals.lost} answers lost, ${failures.length} failed`);
  expect(failures).toEqual([]);
  // Enough seeds must have produced collisions of both kinds, or the run proved little.
  if (count >= 20) expect(totals.rekeyed * totals.reported).toBeGreaterThan(0);
}, 1_800_000);
