/**
 * The differential fuzzer (differential.ts), first shard (differential-shard2.test.ts runs the second): Outpost clients against Outpost's
 * server in process, with the features that pass today (test/support/sql-fuzz.ts
 * `FEATURES_PASSING`). OUTPOST_SEED=<seed> replays one seed, OUTPOST_SEEDS sets how many (the
 * shards split them), OUTPOST_SEED_FROM where they start, OUTPOST_FUZZ_FEATURES which features
 * run (`passing`, `all`, or `passing,+hugeTransactions,-rebuild`).
 */
import { test } from 'vitest';
import { featuresFrom } from '../support/sql-fuzz.js';
import { runFuzzSeeds } from './differential.js';
import { seedRange } from './simulation.js';

const { first, count } = seedRange(400, 0, 2);

test.skipIf(count === 0)(`differential fuzz, in-process, shard 1 of 2: ${count} seeds from ${first}`, async () => {
  // Schema changes with lost answers here, without them in shard 2 (OUTPOST_FUZZ_LOST_ANSWERS=0
  // turns them off here).
  const features = featuresFrom(process.env.OUTPOST_FUZZ_FEATURES ?? 'passing');
  await runFuzzSeeds(first, count, { features, server: 'in-process', clients: 3, tursoClient: false, steps: 40, crashes: true, lostAnswers: process.env.OUTPOST_FUZZ_LOST_ANSWERS !== '0' }, 'differential shard 1');
}, 3_600_000);
