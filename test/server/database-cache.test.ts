/** The server's LRU of open databases: lazy opens, shared opens, eviction that spares pins. */
import { afterEach, expect, test } from 'vitest';
import { DatabaseCache } from '../../src/server/database-cache.js';
import { tempDir } from '../support/server.js';

const options = { durability: 'normal' as const, cacheKiB: 256, limits: { statementTimeoutMs: 2000, valueBytesMax: 1 << 24, shareOfServer: 1 } };
let cache: DatabaseCache | undefined;

afterEach(async () => {
  await cache?.closeAll();
  cache = undefined;
});

test('a missing database is null unless it may be created', async () => {
  cache = new DatabaseCache(tempDir('outpost-cache-'), 10, () => options);
  expect(await cache.acquire('absent', false)).toBeNull();
  expect(cache.exists('absent')).toBe(false);
  const db = await cache.acquire('absent', true);
  expect(db?.name).toBe('absent');
  expect(db?.pins).toBe(1);
  cache.release(db!);
  expect(db?.pins).toBe(0);
  expect(cache.exists('absent')).toBe(true);
});

test('requests for a database that is still opening share one open', async () => {
  cache = new DatabaseCache(tempDir('outpost-cache-'), 10, () => options);
  const [a, b] = await Promise.all([cache.acquire('one', true), cache.acquire('one', true)]);
  expect(a).toBe(b);
  expect(a?.pins).toBe(2);
  expect(cache.size).toBe(1);
});

test('beyond the limit the least recently used idle database closes, never a pinned one', async () => {
  const dataDir = tempDir('outpost-cache-');
  cache = new DatabaseCache(dataDir, 2, () => options);
  const a = (await cache.acquire('a', true))!;
  const b = (await cache.acquire('b', true))!;
  cache.release(b);
  // a is pinned and the least recently used: b goes instead.
  cache.release((await cache.acquire('c', true))!);
  expect(cache.size).toBe(2);
  expect(await cache.acquire('a', false)).toBe(a);
  cache.release(a);
  cache.release(a);
  // b was closed, so this opens it again; using a made c the least recently used idle one.
  const bAgain = (await cache.acquire('b', false))!;
  expect(bAgain).not.toBe(b);
  cache.release(bAgain);
  expect(cache.size).toBe(2);
  const c = (await cache.acquire('c', false))!;
  expect(c.name).toBe('c');
  cache.release(c);
  // Evicted databases stay on disk.
  expect(['a', 'b', 'c'].every((name) => cache!.exists(name))).toBe(true);
});

test('a database opened while every other one is pinned is not evicted under its own request', async () => {
  cache = new DatabaseCache(tempDir('outpost-cache-'), 2, () => options);
  const a = (await cache.acquire('a', true))!;
  const b = (await cache.acquire('b', true))!;
  const c = (await cache.acquire('c', true))!;
  expect(c.pins).toBe(1);
  // c is usable: its connection was not closed by the eviction its own open triggered.
  expect(() => c.execTrusted('CREATE TABLE IF NOT EXISTS t(x)')).not.toThrow();
  for (const db of [a, b, c]) cache.release(db);
});
