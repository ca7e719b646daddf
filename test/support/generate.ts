/**
 * Seeded generators for tests that generate their cases: a small PRNG (xorshift32) and random
 * SQL values of every kind. Every test that uses them prints its seed, and `OUTPOST_SEED`
 * replays one.
 */
import type { SqlValue } from '../../src/types.js';

/** A deterministic generator of numbers in [0, 1) from `seed`. */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

/** The seed of a generated test: `OUTPOST_SEED` when set, else one that changes per run. */
export function testSeed(): number {
  // The browser project has no `process`.
  const fixed = typeof process === 'undefined' ? undefined : process.env.OUTPOST_SEED;
  return fixed ? Number(fixed) : Math.floor(Math.random() * 1_000_000);
}

export type Random = () => number;

export function int(random: Random, lo: number, hi: number): number {
  return lo + Math.floor(random() * (hi - lo + 1));
}

export function pick<T>(random: Random, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

const TEXTS = ['', 'a', 'hello world', 'ünïcödé', '日本語', 'emoji 🎉', 'nul\u0000inside', "quote ' and \"", 'x'.repeat(300)];

/**
 * A random value as a JS caller binds it and reads it back from a column without type
 * affinity: integers (small, 32-bit, 53-bit, 64-bit as bigint), non-integral and extreme
 * doubles, ASCII and non-ASCII text, empty and larger blobs, and NULL.
 */
export function sqlValue(random: Random): SqlValue {
  switch (int(random, 0, 9)) {
    case 0:
      return null;
    case 1:
      return int(random, -1000, 1000);
    case 2:
      return int(random, -(2 ** 31), 2 ** 31 - 1) * 4096;
    case 3:
      return (BigInt(int(random, 1, 2 ** 30)) << 33n) * (random() < 0.5 ? -1n : 1n);
    case 4:
      return pick(random, [0.5, -1.25, 1e-300, 1.7976931348623157e308, Number.MIN_VALUE, Math.PI, 1e21 + 0.5]) * (random() < 0.5 ? -1 : 1);
    case 5:
      return (random() - 0.5) * 10 ** int(random, -20, 20);
    case 6:
      return pick(random, TEXTS);
    case 7:
      return Array.from({ length: int(random, 0, 40) }, () => String.fromCharCode(int(random, 32, 126))).join('');
    case 8:
      return Uint8Array.from({ length: pick(random, [0, 1, 16, 5000]) }, () => int(random, 0, 255));
    default:
      return Array.from({ length: int(random, 1, 12) }, () => String.fromCodePoint(int(random, 0x80, 0x2fff))).join('');
  }
}
