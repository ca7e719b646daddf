/**
 * Binding positional parameters (engine/binding.ts): values arrive spread into a rest array,
 * so arrays of every element kind (small ints, doubles, mixed, holey) bind the same, and a
 * wrong count, even one too long to spread, is a clear INVALID_ARGUMENT.
 */
import { expect, test } from 'vitest';
import { Connection } from '../src/engine/connection.js';
import { MemoryDirectory } from '../src/opfs-vfs/storage/memory.js';
import { int, rng, sqlValue, testSeed } from './support/generate.js';

let opened = 0;
const openConnection = (): Promise<Connection> => Connection.open(new MemoryDirectory(`memory:binding-${opened++}`), { durability: 'normal', intMode: 'number' });

test('generated: arrays of every element kind bind each value as the same value bound alone', async () => {
  const seed = testSeed();
  console.log(`binding seed=${seed}`);
  const random = rng(seed);
  const conn = await openConnection();
  for (let round = 0; round < 200; round++) {
    // One array literal per kind of element V8 keeps apart, and one with any values.
    const kind = int(random, 0, 3);
    const a = int(random, -1000, 1000);
    const b = int(random, -1000, 1000);
    const values = kind === 0 ? [a, b] : kind === 1 ? [a + 0.5, b - 0.25] : kind === 2 ? [String(a), null] : [sqlValue(random), sqlValue(random)];
    const together = conn.execute('SELECT ?, ?', values).rows[0];
    const alone = [conn.execute('SELECT ?', [values[0]!]).rows[0]![0], conn.execute('SELECT ?', [values[1]!]).rows[0]![0]];
    expect(together, `seed ${seed} round ${round}`).toEqual(alone);
  }
  await conn.close();
});

test('a wrong count is INVALID_ARGUMENT, also for an array too long to spread onto the stack', async () => {
  const conn = await openConnection();
  expect(() => conn.run('SELECT ?, ?', [1])).toThrow(/expects 2 parameter\(s\), got 1/);
  expect(() => conn.run('SELECT ?', new Array<number>(500_000).fill(1))).toThrow(/expects 1 parameter\(s\), got 500000/);
  expect(() => conn.run('SELECT ?, ?', [1, , 2] as number[])).toThrow(/expects 2 parameter\(s\), got 3/);
  expect(conn.execute('SELECT ?', [-0]).rows[0]![0]).toBe(-0);
  await conn.close();
});
