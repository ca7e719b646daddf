/**
 * The storage backend conformance checks (the contract in src/opfs-vfs/storage/backend.ts), as
 * plain async functions that throw on failure. They import no test framework, so they run both
 * under Vitest (`backend-suite.ts`: memory and Node in test/backends.test.ts) and inside a
 * dedicated worker, where OPFS sync access handles exist (test-browser/backends.worker.ts).
 */
import { type StorageBackend, StorageFullError } from '../../src/opfs-vfs/storage/backend.js';
import { int, rng, testSeed } from '../support/generate.js';

export interface BackendFactory {
  /** A fresh empty file. */
  create(): Promise<StorageBackend>;
  /** A fresh empty file whose store is full past `quotaBytes`. */
  createWithQuota?(quotaBytes: number): Promise<StorageBackend>;
}

export interface BackendCheck {
  name: string;
  /** Runs only for factories that can simulate a full store. */
  needsQuota?: boolean;
  run(factory: BackendFactory): Promise<void>;
}

const bytes = (...values: number[]): Uint8Array => new Uint8Array(values);

function equal(actual: unknown, expected: unknown, what: string): void {
  if (!Object.is(actual, expected)) throw new Error(`${what}: expected ${String(expected)}, got ${String(actual)}`);
}

function equalBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  if (actual.length !== expected.length || actual.some((b, i) => b !== expected[i])) {
    throw new Error(`${what}: expected [${expected.join(', ')}], got [${actual.join(', ')}]`);
  }
}

function throwsInstance(fn: () => void, type: new (...args: never[]) => Error, what: string): void {
  try {
    fn();
  } catch (e) {
    if (e instanceof type) return;
    throw new Error(`${what}: expected ${type.name}, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
  }
  throw new Error(`${what}: expected ${type.name}, nothing was thrown`);
}

export const backendChecks: readonly BackendCheck[] = [
  {
    name: 'a new file is empty',
    async run(factory) {
      const f = await factory.create();
      equal(f.size(), 0, 'size');
      equal(f.read(new Uint8Array(4), 0), 0, 'bytes read');
      f.close();
    },
  },
  {
    name: 'reads back what was written at an offset',
    async run(factory) {
      const f = await factory.create();
      f.write(bytes(1, 2, 3, 4), 10);
      const dst = new Uint8Array(4);
      equal(f.read(dst, 10), 4, 'bytes read');
      equalBytes(dst, bytes(1, 2, 3, 4), 'read back');
      equal(f.size(), 14, 'size');
      f.close();
    },
  },
  {
    name: 'a gap before a write reads as zeros',
    async run(factory) {
      const f = await factory.create();
      f.write(bytes(9), 5);
      const dst = new Uint8Array(6).fill(7);
      equal(f.read(dst, 0), 6, 'bytes read');
      equalBytes(dst, bytes(0, 0, 0, 0, 0, 9), 'read back');
      f.close();
    },
  },
  {
    name: 'a read past the end is short and returns the count',
    async run(factory) {
      const f = await factory.create();
      f.write(bytes(1, 2, 3), 0);
      const dst = new Uint8Array(8);
      equal(f.read(dst, 1), 2, 'bytes read from 1');
      equalBytes(dst.subarray(0, 2), bytes(2, 3), 'read back');
      equal(f.read(dst, 3), 0, 'bytes read at the end');
      equal(f.read(dst, 100), 0, 'bytes read past the end');
      f.close();
    },
  },
  {
    name: 'truncate shrinks, and regrowing reads zeros',
    async run(factory) {
      const f = await factory.create();
      f.write(bytes(1, 2, 3, 4, 5, 6, 7, 8), 0);
      f.truncate(3);
      equal(f.size(), 3, 'size after shrinking');
      f.truncate(6);
      const dst = new Uint8Array(6);
      f.read(dst, 0);
      equalBytes(dst, bytes(1, 2, 3, 0, 0, 0), 'read back');
      f.close();
    },
  },
  {
    name: 'overwrites in place',
    async run(factory) {
      const f = await factory.create();
      f.write(bytes(1, 1, 1, 1), 0);
      f.write(bytes(2, 2), 1);
      const dst = new Uint8Array(4);
      f.read(dst, 0);
      equalBytes(dst, bytes(1, 2, 2, 1), 'read back');
      f.flush();
      f.close();
    },
  },
  {
    // The Node backend splits a long write into pieces (node.ts WRITE_PIECE_BYTES): every byte of
    // a write of any length must land, at any alignment, over old bytes or past the end.
    name: 'writes of any length at any offset read back whole',
    async run(factory) {
      const seed = testSeed();
      const random = rng(seed);
      const f = await factory.create();
      let model = new Uint8Array(0);
      try {
        for (let i = 0; i < 12; i++) {
          const src = new Uint8Array(int(random, 1, 300 * 1024)).map(() => int(random, 0, 255));
          const offset = int(random, 0, model.length + 70 * 1024);
          f.write(src, offset);
          if (offset + src.length > model.length) {
            const grown = new Uint8Array(offset + src.length);
            grown.set(model);
            model = grown;
          }
          model.set(src, offset);
        }
        equal(f.size(), model.length, 'size');
        const dst = new Uint8Array(model.length);
        equal(f.read(dst, 0), model.length, 'bytes read');
        const at = dst.findIndex((b, j) => b !== model[j]);
        equal(at, -1, 'first differing byte');
      } catch (e) {
        throw new Error(`seed ${seed} (OUTPOST_SEED=${seed} replays it): ${e instanceof Error ? e.message : String(e)}`);
      } finally {
        f.close();
      }
    },
  },
  {
    name: 'close is idempotent',
    async run(factory) {
      const f = await factory.create();
      f.close();
      f.close();
    },
  },
  {
    name: 'a write past the quota throws StorageFullError',
    needsQuota: true,
    async run(factory) {
      const f = await factory.createWithQuota!(8192);
      f.write(new Uint8Array(4096), 0);
      throwsInstance(() => f.write(new Uint8Array(8192), 4096), StorageFullError, 'write past the quota');
      f.close();
    },
  },
];

/** The checks that apply to `factory`. */
export function checksFor(factory: { createWithQuota?: unknown }): readonly BackendCheck[] {
  return backendChecks.filter((check) => !check.needsQuota || factory.createWithQuota !== undefined);
}
