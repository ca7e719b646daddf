/** The second half of the in-process simulation's seeds (see simulation.test.ts), in its own Vitest worker. */
import { expect, test } from 'vitest';
import { tempDir } from '../support/server.js';
import { inProcessNetwork } from '../support/networks.js';
import { runSeeds, seedRange } from './simulation.js';

const { first, count } = seedRange(300, 1, 2);

test.skipIf(count === 0)(`sync simulation, in-process, shard 2 of 2: ${count} seeds from ${first}`, async () => {
  const r = await runSeeds(inProcessNetwork(tempDir('outpost-sim-server-')), first, count, {}, 'in-process shard 2');
  if (count >= 50) expect(r.crashes * r.lost).toBeGreaterThan(0);
}, 3_600_000);
