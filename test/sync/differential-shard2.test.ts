/** The second half of the differential fuzzer's in-process seeds (see differential.test.ts), in its own Vitest worker. */
import { test } from 'vitest';
import { featuresFrom } from '../support/sql-fuzz.js';
import { runFuzzSeeds } from './differential.js';
import { seedRange } from './simulation.js';

const { first, count } = seedRange(400, 1, 2);

test.skipIf(count === 0)(`differential fuzz, in-process, shard 2 of 2: ${count} seeds from ${first}`, async () => {
  const features = featuresFrom(process.env.OUTPOST_FUZZ_FEATURES ?? 'passing');
  // Schema changes without lost answers (shard 1 runs them with); OUTPOST_FUZZ_LOST_ANSWERS=1 adds them.
  await runFuzzSeeds(first, count, { features, server: 'in-process', clients: 3, tursoClient: false, steps: 40, crashes: true, lostAnswers: process.env.OUTPOST_FUZZ_LOST_ANSWERS === '1' }, 'differential shard 2');
}, 3_600_000);
