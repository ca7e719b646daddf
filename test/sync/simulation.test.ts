/**
 * The seeded sync simulation (simulation.ts) through the in-process transport, first half of
 * the seeds; simulation-shard2.test.ts runs the second half in another Vitest worker, and
 * simulation-http.test.ts a few seeds over HTTP. OUTPOST_SEED=<seed> replays one seed;
 * OUTPOST_SEEDS sets how many (default 300; `npm run simulate` runs 10,000), OUTPOST_SEED_FROM
 * where they start.
 */
import { expect, test } from 'vitest';
import { tempDir } from '../support/server.js';
import { inProcessNetwork } from '../support/networks.js';
import { runSeeds, seedRange } from './simulation.js';

const { first, count } = seedRange(300, 0, 2);

test(`sync simulation, in-process, shard 1 of 2: ${count} seeds from ${first}`, async () => {
  const r = await runSeeds(inProcessNetwork(tempDir('outpost-sim-server-')), first, count, {}, 'in-process shard 1');
  // Enough seeds must have exercised the faults, or the run proved little.
  if (count >= 50) expect(r.crashes * r.lost).toBeGreaterThan(0);
}, 3_600_000);
