/**
 * DescriptorPool (src/opfs-vfs/storage/descriptors.ts) and the Node backend over it: files whose
 * descriptors the pool closes and opens again must read and write as files that hold their own.
 * Generated operations over many files and small limits, checked against in-memory models.
 */
import { fstatSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { DescriptorPool } from '../src/opfs-vfs/storage/descriptors.js';
import { NodeFileBackend } from '../src/opfs-vfs/storage/node.js';
import { int, rng, testSeed } from './support/generate.js';

const dir = mkdtempSync(join(tmpdir(), 'outpost-descriptors-'));

test('generated: pooled files read back what they wrote, and the pool never holds more than its limit', () => {
  const seed = testSeed();
  const random = rng(seed);
  let name = 0;
  for (let round = 0; round < 20; round++) {
    const limit = int(random, 1, 6);
    const pool = new DescriptorPool(limit);
    const files = Array.from({ length: int(random, 1, 12) }, () => ({ backend: new NodeFileBackend(join(dir, `r${round}-f${name++}`), pool), model: new Uint8Array(0), closed: false }));
    for (let step = 0; step < 400; step++) {
      const at = `seed ${seed} (OUTPOST_SEED=${seed} replays it) round ${round} step ${step}`;
      const f = files[int(random, 0, files.length - 1)]!;
      const roll = random();
      if (f.closed) {
        expect(() => f.backend.size(), at).toThrow(/closed/);
        continue;
      }
      if (roll < 0.4) {
        const offset = int(random, 0, 3 * 4096);
        const bytes = Uint8Array.from({ length: int(random, 1, 5000) }, () => int(random, 0, 255));
        f.backend.write(bytes, offset);
        const grown = new Uint8Array(Math.max(f.model.length, offset + bytes.length));
        grown.set(f.model);
        grown.set(bytes, offset);
        f.model = grown;
      } else if (roll < 0.75) {
        const offset = int(random, 0, f.model.length + 100);
        const dst = new Uint8Array(int(random, 0, 3000));
        const n = f.backend.read(dst, offset);
        const want = f.model.subarray(Math.min(offset, f.model.length), Math.min(offset + dst.length, f.model.length));
        expect({ at, n, bytes: Buffer.from(dst.subarray(0, n)).toString('hex') }).toEqual({ at, n: want.length, bytes: Buffer.from(want).toString('hex') });
      } else if (roll < 0.85) {
        expect(f.backend.size(), at).toBe(f.model.length);
      } else if (roll < 0.93) {
        const size = int(random, 0, f.model.length + 4096);
        f.backend.truncate(size);
        const next = new Uint8Array(size);
        next.set(f.model.subarray(0, size));
        f.model = next;
      } else if (roll < 0.97) {
        f.backend.flush();
      } else {
        f.backend.close();
        f.closed = true;
      }
      expect(pool.size <= limit, `${at}: ${pool.size} descriptors open under a limit of ${limit}`).toBe(true);
    }
    // Every descriptor the pool holds is its own file's.
    for (const f of files) {
      const pooled = (f.backend as unknown as { pooled: { fd: number | null; path: string } }).pooled;
      if (pooled.fd !== null) expect(fstatSync(pooled.fd).ino).toBe(statSync(pooled.path).ino);
      f.backend.close();
    }
    expect(pool.size).toBe(0);
  }
});

test('a file removed while its descriptor was closed fails with a message that says so, and loses nothing else', () => {
  const pool = new DescriptorPool(1);
  const a = new NodeFileBackend(join(dir, 'removed-a'), pool);
  a.write(new Uint8Array([1, 2, 3]), 0);
  const b = new NodeFileBackend(join(dir, 'removed-b'), pool);
  b.write(new Uint8Array([4]), 0);
  expect(pool.reopens).toBe(0);
  // a's descriptor was closed for b's: it opens again at its next use.
  expect(a.size()).toBe(3);
  expect(pool.reopens).toBe(1);
  b.close();
  a.close();
  const c = new NodeFileBackend(join(dir, 'removed-c'), pool);
  const d = new NodeFileBackend(join(dir, 'removed-d'), pool);
  rmSync(join(dir, 'removed-c'));
  expect(() => c.size()).toThrow(/removed-c was removed while its database had it open/);
  expect(d.size()).toBe(0);
  c.close();
  d.close();
  expect(pool.size).toBe(0);
});

test('a limit that is not a positive integer is refused', () => {
  for (const bad of [0, -1, 1.5, Number.NaN]) expect(() => new DescriptorPool(bad)).toThrow(RangeError);
});
