/** The second half of the in-process simulation's seeds (see simulation.test.ts), in its own Vitest worker. */
import { rmSync } from 'node:fs';
import { expect, test } from 'vitest';
import { inProcessNetwork, scratchDataDir } from '../support/networks.js';
import { optionsFromEnv, runSeeds, seedRange } from './simulation.js';

const { first, count } = seedRange(300, 1, 2);

test.skipIf(count === 0)(`sync simulation, in-process, shard 2 of 2: ${count} seeds from ${first}`, async () => {
  const dataDir = scratchDataDir('outpost-sim-server-');
  const r = await runSeeds(inProcessNetwork(dataDir), first, count, optionsFromEnv(), 'in-process shard 2').finally(() => rmSync(dataDir, { recursive: true, force: true }));
  if (count >= 50) expect(r.crashes * r.lost).toBeGreaterThan(0);
}, 3_600_000);
