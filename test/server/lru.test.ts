/**
 * Lru (src/server/lru.ts), the open-database cache's order: generated uses, additions and
 * removals must leave it in the order a plain list model gives, and `oldest` must pick what the
 * model's first match is.
 */
import { expect, test } from 'vitest';
import { Lru } from '../../src/server/lru.js';
import { int, rng, testSeed } from '../support/generate.js';

test('keeps least-recently-used order through generated uses, sets and deletes', () => {
  const seed = testSeed();
  const random = rng(seed);
  const subject = new Lru<string, number>();
  // The model: [key, value] pairs, least recently used first.
  let model: [string, number][] = [];
  const keys = Array.from({ length: 40 }, (_, i) => `d${i}`);
  for (let step = 0; step < 20_000; step++) {
    const at = `seed ${seed} (OUTPOST_SEED=${seed} replays it) step ${step}`;
    const key = keys[int(random, 0, random() < 0.5 ? 3 : keys.length - 1)]!;
    const found = model.findIndex(([k]) => k === key);
    const roll = random();
    if (roll < 0.3) {
      subject.touch(key);
      if (found >= 0) model.push(...model.splice(found, 1));
    } else if (roll < 0.55) {
      subject.set(key, step);
      if (found >= 0) model.splice(found, 1);
      model.push([key, step]);
    } else if (roll < 0.75) {
      expect(subject.delete(key), at).toBe(found >= 0);
      if (found >= 0) model.splice(found, 1);
    } else if (roll < 0.9) {
      // `oldest` with a filter: the least recently used entry whose value is even.
      const even = (v: number): boolean => v % 2 === 0;
      const expected = model.find(([, v]) => even(v)) ?? null;
      expect(subject.oldest(even), at).toEqual(expected);
    } else {
      expect(subject.get(key), at).toBe(found >= 0 ? model[found]![1] : undefined);
      expect(subject.has(key), at).toBe(found >= 0);
    }
    expect(subject.size, at).toBe(model.length);
    expect(subject.oldest(), at).toEqual(model[0] ?? null);
  }
  // Emptied from the oldest, as the cache's closeAll does, it gives the model's order.
  const drained: [string, number][] = [];
  for (let entry = subject.oldest(); entry; entry = subject.oldest()) {
    drained.push(entry);
    subject.delete(entry[0]);
  }
  expect(drained, `seed ${seed}`).toEqual(model);
  model = [];
  expect(subject.size).toBe(0);
});
