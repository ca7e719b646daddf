/** The server's LRU of open databases: lazy opens, shared opens, eviction that spares pins, seals of closed databases. */
import { existsSync, readFileSync } from 'node:fs';
import { afterEach, expect, test } from 'vitest';
import { DatabaseCache } from '../../src/server/database-cache.js';
import { int, rng, testSeed } from '../support/generate.js';
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

/** Whether the revision log at `file` ends with its clean-close marker (revlog.ts: a kind 2 record of 21 bytes, nothing after it). */
function endsClean(file: string): boolean {
  const bytes = readFileSync(file);
  return bytes.length >= 40 + 21 && bytes[bytes.length - 21] === 2;
}

test('generated: under durability normal, a database evicted is sealed (its log marked clean) once it stayed closed sealAfterMs, not before, unless it opened again; closeAll seals every one', async () => {
  const seed = testSeed();
  const random = rng(seed);
  const dataDir = tempDir('outpost-cache-');
  const sealAfterMs = 60_000;
  cache = new DatabaseCache(dataDir, 1, () => options, {}, null, sealAfterMs);
  /** Databases closed, with when, and whether a seal was due since (the clock passed to `sealDue` went `sealAfterMs` past it). */
  const closed = new Map<string, { atMs: number; due: boolean }>();
  for (let step = 0; step < 30; step++) {
    const what = `seed ${seed} step ${step}`;
    const name = `d${int(random, 0, 3)}`;
    const db = (await cache.acquire(name, true))!;
    db.execTrusted('CREATE TABLE IF NOT EXISTS t(x); INSERT INTO t VALUES (1)');
    cache.release(db);
    closed.delete(name);
    // Opening `name` evicted the one open before it.
    for (const other of ['d0', 'd1', 'd2', 'd3']) if (other !== name && !closed.has(other) && existsSync(`${dataDir}/${other}.db`)) closed.set(other, { atMs: performance.now(), due: false });
    // The clock the seals see: now, or 0.75 or 1.5 times sealAfterMs on.
    const nowMs = performance.now() + int(random, 0, 2) * sealAfterMs * 0.75;
    await cache.sealDue(nowMs);
    for (const [other, c] of closed) {
      c.due ||= c.atMs + sealAfterMs <= nowMs;
      expect(endsClean(`${dataDir}/${other}.db-revlog`), `${what}: ${other} sealed (its seal was due: ${c.due})`).toBe(c.due);
    }
    expect(endsClean(`${dataDir}/${name}.db-revlog`), `${what}: the open ${name} reads clean`).toBe(false);
  }
  await cache.closeAll();
  for (const name of ['d0', 'd1', 'd2', 'd3']) if (existsSync(`${dataDir}/${name}.db`)) expect(endsClean(`${dataDir}/${name}.db-revlog`), `seed ${seed}: ${name} after closeAll`).toBe(true);
  cache = undefined;
});
