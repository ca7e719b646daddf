/**
 * Seeded generators for tests that generate their cases: a small PRNG (xorshift32) and random
 * SQL values of every kind. Every test that uses them prints its seed, and `OUTPOST_SEED`
 * replays one.
 */
import type { SqlValue } from '../../src/types.js';

/**
 * A deterministic generator of numbers in [0, 1) from `seed`. The seed is scrambled first
 * (murmur3's finalizer): xorshift32 started from nearby seeds gives nearly the same first draws
 * (seeds 732678, 732679, 732680 all began 0.86…), so a run of consecutive seeds explored far
 * fewer cases than it counted, and 150 simulation seeds in a row lost no answer at all.
 */
export function rng(seed: number): () => number {
  let x = scramble(seed >>> 0) || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

function scramble(seed: number): number {
  let h = seed;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * `OUTPOST_SEED` in the browser project, where there is no `process`: written into the code by
 * vite.config.ts (`define`), also inside the tabs' workers and frames, which Vitest's `inject`
 * does not reach. Undeclared in the node project.
 */
declare const __OUTPOST_SEED__: string | undefined;

/** The seed of a generated test: `OUTPOST_SEED` when set, else one that changes per run. */
export function testSeed(): number {
  // Without the browser's constant, a browser test's printed seed did not replay: each run drew a new one.
  const fixed = typeof process === 'undefined' ? (typeof __OUTPOST_SEED__ === 'string' ? __OUTPOST_SEED__ : undefined) : process.env.OUTPOST_SEED;
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

/** Which kinds of values `sqlLiteral` may produce beyond ordinary numbers, text and blobs. */
export interface LiteralKinds {
  /** ±Infinity, -0.0, huge and tiny doubles, whole REALs, integers at ±2^63. */
  extremeNumbers: boolean;
  /** Text with NUL inside and text that is not UTF-8 (cast from a blob). */
  oddText: boolean;
  /** Blobs of 64 KiB and more. */
  largeBlobs: boolean;
  /**
   * Doubles of 6 significant digits between 1e-10 and 1e15 only: longer ones came back one
   * unit in the last place off through Turso's client, and huge ones as infinities.
   */
  roundedDoubles?: boolean;
}

const hexOf = (bytes: Uint8Array): string => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

/**
 * A double as a SQL expression every SQLite version evaluates to exactly that double: whole
 * values below 2^53 as decimals with a point, others as an integer times or divided by powers of
 * two (each step exact). Decimal literals are not enough: SQLite 3.51 reads -1e-300 one unit in
 * the last place off, where 3.54 reads it exactly.
 */
export function exactDouble(x: number): string {
  if (Number.isNaN(x)) return 'NULL';
  if (!Number.isFinite(x)) return x > 0 ? '9e999' : '-9e999';
  if (Object.is(x, -0)) return '-0.0';
  if (Number.isInteger(x) && Math.abs(x) < 2 ** 53) return `${x}.0`;
  let m = x;
  let e = 0;
  while (!Number.isInteger(m)) {
    m *= 2;
    e--;
  }
  while (Math.abs(m) >= 2 ** 53) {
    m /= 2;
    e++;
  }
  let sql = `CAST(${m} AS REAL)`;
  for (; e >= 62; e -= 62) sql = `(${sql} * 4611686018427387904)`;
  for (; e <= -62; e += 62) sql = `(${sql} / 4611686018427387904)`;
  if (e > 0) sql = `(${sql} * ${2 ** e})`;
  if (e < 0) sql = `(${sql} / ${2 ** -e})`;
  return sql;
}

/**
 * A random value written as a SQL literal or a constant expression, so that the same text run
 * by two SQLite engines (of different versions) stores the same value, storage class and bytes:
 * whole REALs keep a decimal point, integers are exact decimals, other doubles are `exactDouble`,
 * text that is not UTF-8 is a cast of a blob literal. With `textAffinity`, a double comes as the
 * text JavaScript writes for it: a TEXT column would store SQLite's rendering of it, which
 * changed between versions.
 */
export function sqlLiteral(random: Random, kinds: LiteralKinds, textAffinity = false): string {
  const value = sqlValue(random);
  const round = (x: number): number => {
    if (!kinds.roundedDoubles || !Number.isFinite(x) || x === 0) return x;
    const magnitude = Math.min(1e15, Math.max(1e-10, Math.abs(x)));
    return Math.sign(x) * Number(magnitude.toPrecision(6));
  };
  const real = (x: number): string => (textAffinity ? `'${String(round(x))}'` : exactDouble(round(x)));
  if (kinds.extremeNumbers && random() < 0.25) {
    const extreme = pick(random, [3, -0, Infinity, -Infinity, 1e308, -2.2250738585072014e-308, 5e-324, 1e21, 123456789012345680000, 0.1, 4503599627370496, '9223372036854775807', '-9223372036854775808', '9223372036854775806', '-9223372036854775807']);
    return typeof extreme === 'string' ? extreme : real(extreme);
  }
  if (kinds.oddText && random() < 0.15) {
    const bytes = pick(random, [[0x61, 0x00, 0x62], [0xff, 0xfe, 0x41], [0xc3], [0x00], [0xed, 0xa0, 0x80], [0xe2, 0x82]]);
    return `CAST(x'${hexOf(Uint8Array.from(bytes))}' AS TEXT)`;
  }
  if (kinds.largeBlobs && random() < 0.05) return random() < 0.5 ? `zeroblob(${int(random, 65_536, 300_000)})` : `x'${hexOf(Uint8Array.from({ length: int(random, 65_536, 100_000) }, (_, i) => (i * 31 + 7) & 0xff))}'`;
  if (value === null) return 'NULL';
  // A 64-bit integer stored in a REAL column becomes the nearest double, which Turso's engine
  // rounds differently: with `roundedDoubles`, integers stay within 53 bits.
  if (typeof value === 'bigint') return (kinds.roundedDoubles ? value >> 11n : value).toString();
  if (typeof value === 'number') {
    if (Number.isInteger(value) && Math.abs(value) <= Number.MAX_SAFE_INTEGER && random() < 0.8) return String(value);
    return real(value);
  }
  if (typeof value === 'string') return `'${value.replace(/'/g, "''")}'`.replace(/\u0000/g, "' || char(0) || '");
  return `x'${hexOf(value)}'`;
}
