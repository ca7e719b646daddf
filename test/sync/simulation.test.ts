/**
 * The seeded sync simulation (simulation.ts) through the in-process transport, first half of
 * the seeds; simulation-shard2.test.ts runs the second half in another Vitest worker, and
 * simulation-http.test.ts a few seeds over HTTP. OUTPOST_SEED=<seed> replays one seed;
 * OUTPOST_SEEDS sets how many (default 300; `npm run simulate` runs 10,000), OUTPOST_SEED_FROM
 * where they start.
 *
 * Half the crashes strike in the middle of an operation (a commit, a push, an apply, a
 * recovery); OUTPOST_SIM_CRASH_POINTS=0 keeps them all between operations. (They were off
 * while a crash between step e's checkpoint and the restore of the server's page 1 left
 * SQLite's stamp in page 1: seeds 139, 153, 178, 199 from 1; the state now keeps page 1 until
 * the apply ends and recovery finishes step e.)
 */
import { rmSync } from 'node:fs';
import { expect, test } from 'vitest';
import { inProcessNetwork, scratchDataDir } from '../support/networks.js';
import { optionsFromEnv, runSeeds, seedRange } from './simulation.js';

const { first, count } = seedRange(300, 0, 2);

test(`sync simulation, in-process, shard 1 of 2: ${count} seeds from ${first}`, async () => {
  const dataDir = scratchDataDir('outpost-sim-server-');
  const r = await runSeeds(inProcessNetwork(dataDir), first, count, optionsFromEnv(), 'in-process shard 1').finally(() => rmSync(dataDir, { recursive: true, force: true }));
  // Enough seeds must have exercised the faults, or the run proved little.
  if (count >= 50) expect(r.crashes * r.lost).toBeGreaterThan(0);
}, 3_600_000);
