/**
 * HandleMap (src/sqlite/handle-map.ts): a map keyed by SQLite pointers that reuses a removed
 * key's entry. Generated operations, biased to the pattern it exists for (a key removed and
 * added again), must answer as a plain Map does, through its rebuilds.
 */
import { expect, test } from 'vitest';
import { HandleMap } from '../src/sqlite/handle-map.js';
import { int, rng, testSeed } from './support/generate.js';

test('answers every get, has, size and values as a Map does, through churn and rebuilds', () => {
  const seed = testSeed();
  const random = rng(seed);
  const subject = new HandleMap<string>();
  const model = new Map<number, string>();
  // A few hot addresses that come back, and a wide range that grows and shrinks in waves.
  const hot = Array.from({ length: 4 }, () => int(random, 1, 1 << 28) * 8);
  for (let step = 0; step < 20_000; step++) {
    const at = `seed ${seed} (OUTPOST_SEED=${seed} replays it) step ${step}`;
    const key = random() < 0.5 ? hot[int(random, 0, hot.length - 1)]! : int(random, 1, 2_000) * 8;
    const roll = random();
    // Waves: long runs of mostly removals, then of mostly additions, so rebuilds happen.
    const removing = Math.floor(step / 2_500) % 2 === 1;
    if (roll < (removing ? 0.7 : 0.3)) {
      expect(subject.delete(key), at).toBe(model.delete(key));
    } else if (roll < 0.9) {
      const value = `v${step}`;
      subject.set(key, value);
      model.set(key, value);
    } else {
      expect(subject.get(key), at).toBe(model.get(key));
      expect(subject.has(key), at).toBe(model.has(key));
    }
    expect(subject.size, at).toBe(model.size);
    if (step % 997 === 0) expect([...subject.values()].sort(), at).toEqual([...model.values()].sort());
  }
});
