/**
 * The storage backend conformance suite (the contract in src/opfs-vfs/storage/backend.ts), run against
 * every backend: memory and Node in test/backends.test.ts, OPFS in
 * test-browser/backends.browser.test.ts.
 */
import { describe, expect, test } from 'vitest';
import { type StorageBackend, StorageFullError } from '../../src/opfs-vfs/storage/backend.js';

export interface BackendFactory {
  /** A fresh empty file. */
  create(): Promise<StorageBackend>;
  /** A fresh empty file whose store is full past `quotaBytes`. */
  createWithQuota?(quotaBytes: number): Promise<StorageBackend>;
}

const bytes = (...values: number[]): Uint8Array => new Uint8Array(values);

export function backendSuite(name: string, factory: BackendFactory): void {
  describe(`storage backend: ${name}`, () => {
    test('a new file is empty', async () => {
      const f = await factory.create();
      expect(f.size()).toBe(0);
      expect(f.read(new Uint8Array(4), 0)).toBe(0);
      f.close();
    });

    test('reads back what was written at an offset', async () => {
      const f = await factory.create();
      f.write(bytes(1, 2, 3, 4), 10);
      const dst = new Uint8Array(4);
      expect(f.read(dst, 10)).toBe(4);
      expect(dst).toEqual(bytes(1, 2, 3, 4));
      expect(f.size()).toBe(14);
      f.close();
    });

    test('a gap before a write reads as zeros', async () => {
      const f = await factory.create();
      f.write(bytes(9), 5);
      const dst = new Uint8Array(6).fill(7);
      expect(f.read(dst, 0)).toBe(6);
      expect(dst).toEqual(bytes(0, 0, 0, 0, 0, 9));
      f.close();
    });

    test('a read past the end is short and returns the count', async () => {
      const f = await factory.create();
      f.write(bytes(1, 2, 3), 0);
      const dst = new Uint8Array(8);
      expect(f.read(dst, 1)).toBe(2);
      expect(dst.subarray(0, 2)).toEqual(bytes(2, 3));
      expect(f.read(dst, 3)).toBe(0);
      expect(f.read(dst, 100)).toBe(0);
      f.close();
    });

    test('truncate shrinks, and regrowing reads zeros', async () => {
      const f = await factory.create();
      f.write(bytes(1, 2, 3, 4, 5, 6, 7, 8), 0);
      f.truncate(3);
      expect(f.size()).toBe(3);
      f.truncate(6);
      const dst = new Uint8Array(6);
      f.read(dst, 0);
      expect(dst).toEqual(bytes(1, 2, 3, 0, 0, 0));
      f.close();
    });

    test('overwrites in place', async () => {
      const f = await factory.create();
      f.write(bytes(1, 1, 1, 1), 0);
      f.write(bytes(2, 2), 1);
      const dst = new Uint8Array(4);
      f.read(dst, 0);
      expect(dst).toEqual(bytes(1, 2, 2, 1));
      f.flush();
      f.close();
    });

    test('close is idempotent', async () => {
      const f = await factory.create();
      f.close();
      expect(() => f.close()).not.toThrow();
    });

    if (factory.createWithQuota) {
      const withQuota = factory.createWithQuota.bind(factory);
      test('a write past the quota throws StorageFullError', async () => {
        const f = await withQuota(8192);
        f.write(new Uint8Array(4096), 0);
        expect(() => f.write(new Uint8Array(8192), 4096)).toThrow(StorageFullError);
        f.close();
      });
    }
  });
}
