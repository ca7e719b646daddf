/**
 * The seeded sync simulation (simulation.ts) through the in-process transport, first half of
 * the seeds; simulation-shard2.test.ts runs the second half in another Vitest worker, and
 * simulation-http.test.ts a few seeds over HTTP. OUTPOST_SEED=<seed> replays one seed;
 * OUTPOST_SEEDS sets how many (default 300; `npm run simulate` runs 10,000), OUTPOST_SEED_FROM
 * where they start.
 *
 * OUTPOST_SIM_CRASH_POINTS=1 makes half the crashes strike in the middle of an operation (a
 * commit, a push, an apply, a recovery). Off by default because it fails about one seed in
 * 75 today, always the same way (seeds 139, 153, 178, 199 from 1): a crash between step e's
 * checkpoint and the write of the server's page 1 (sync/apply.ts `restorePageOne`) leaves
 * page 1 with the change counter and version-valid-for SQLite stamped (bytes 24-27, 92-95),
 * since recovery no longer has the pulled page 1. Turn it on by default once that is fixed.
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
