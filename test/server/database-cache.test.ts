/** The server's LRU of open databases: lazy opens, shared opens, eviction that spares pins, seals of closed databases. */
import { existsSync, readFileSync, symlinkSync } from 'node:fs';
import { afterEach, expect, test } from 'vitest';
import { NodeDirectory } from '../../src/opfs-vfs/storage/node.js';
import { DatabaseCache, FILES_HELD_PER_DATABASE, fileBudget, filesKept } from '../../src/server/database-cache.js';
import { int, pick, rng, testSeed } from '../support/generate.js';
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

test('generated: an open that fails because the process holds too many files closes the idle databases and tries once more; other failures are not retried', async () => {
  const seed = testSeed();
  console.log(`database cache open failure seed=${seed}`);
  const random = rng(seed);
  for (let round = 0; round < 8; round++) {
    const code = pick(random, ['EMFILE', 'EACCES', 'EIO'] as const);
    let failures = 0;
    const failing = `new${round}`;
    cache = new DatabaseCache(tempDir('outpost-cache-'), 100, (name) => ({
      ...options,
      directory: (file: string) => {
        if (name === failing && failures === 0) {
          failures++;
          throw Object.assign(new Error(`${code}: the open failed`), { code });
        }
        return new NodeDirectory(file);
      },
    }));
    const idle = int(random, 1, 6);
    for (let i = 0; i < idle; i++) cache.release((await cache.acquire(`idle${i}`, true))!);
    const pinned = (await cache.acquire('pinned', true))!;
    const label = { round, code, idle };
    if (code === 'EMFILE') {
      const db = (await cache.acquire(failing, true))!;
      // Every idle database was closed for it; the pinned one stays.
      expect({ ...label, name: db.name, open: cache.size, failures }).toEqual({ ...label, name: failing, open: 2, failures: 1 });
      cache.release(db);
    } else {
      await expect(cache.acquire(failing, true)).rejects.toMatchObject({ code });
      expect({ ...label, open: cache.size, failures }).toEqual({ ...label, open: idle + 1, failures: 1 });
    }
    cache.release(pinned);
    await cache.closeAll();
  }
});

test('generated: the file budget keeps every open database and the descriptor pool within the process limit', () => {
  const seed = testSeed();
  console.log(`file budget seed=${seed}`);
  const random = rng(seed);
  for (let i = 0; i < 200; i++) {
    const preferred = int(random, 1, 20_000);
    const soft = int(random, 0, 70_000);
    const text = `Limit                     Soft Limit           Hard Limit           Units\nMax processes             63704                63704                processes\nMax open files            ${soft}                ${soft + int(random, 0, 10_000)}                files\n`;
    const { databases, pooled } = fileBudget(preferred, text);
    const label = { preferred, soft };
    expect({ ...label, databases: databases >= 1 && databases <= preferred, pooled: pooled >= 1 }).toEqual({ ...label, databases: true, pooled: true });
    // Within the limit with the kept descriptors, unless even one database and one pooled file would not be.
    if (soft >= filesKept(soft) + FILES_HELD_PER_DATABASE + 1) expect({ ...label, fits: databases * FILES_HELD_PER_DATABASE + pooled + filesKept(soft) <= soft }).toEqual({ ...label, fits: true });
    // A small limit still keeps most of its files for databases (a quarter at most for the rest, a quarter of that for the pool).
    expect({ ...label, most: databases >= Math.min(preferred, Math.floor((soft * 9) / 16 / FILES_HELD_PER_DATABASE) - 1) }).toEqual({ ...label, most: true });
  }
  expect(fileBudget(5000, 'Max open files            unlimited            unlimited            files\n')).toEqual({ databases: 5000, pooled: 10_000 });
  expect(fileBudget(5000, null)).toEqual({ databases: 5000, pooled: 10_000 });
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

/** The kinds of the records of the revision log at `file` (revlog.ts: a 40-byte header, then kind u8, seq f64, size u32, count u32, pages, checksum u32). */
function recordKinds(file: string): number[] {
  const bytes = readFileSync(file);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const kinds: number[] = [];
  for (let at = 40; at + 21 <= bytes.length; at += 21 + 4 * view.getUint32(at + 13, true)) kinds.push(bytes[at]!);
  return kinds;
}

test('generated: a name refused for its case is never sealed: the log of the database whose files it names never reads clean while that database is open', async () => {
  const seed = testSeed();
  const random = rng(seed);
  const dataDir = tempDir('outpost-cache-');
  const sealAfterMs = 60_000;
  cache = new DatabaseCache(dataDir, 4, () => options, {}, null, sealAfterMs);
  const name = `own${int(random, 0, 1e6)}`;
  const alias = name.toUpperCase();
  const db = (await cache.acquire(name, true))!;
  db.execTrusted('CREATE TABLE t(x)');
  // A case-folding file system gives the alias every file of the database, its log too.
  for (const suffix of ['.db', '.db-wal', '.db-revlog']) symlinkSync(`${dataDir}/${name}${suffix}`, `${dataDir}/${alias}${suffix}`);
  await expect(cache.acquire(alias, true)).rejects.toMatchObject({ code: 'NAME_CONFLICT' });
  for (let i = int(random, 1, 4); i > 0; i--) {
    db.execTrusted(`INSERT INTO t VALUES (${i})`);
    // Whatever seals are due run between the writes.
    await cache.sealDue(performance.now() + 2 * sealAfterMs);
    expect({ seed, i, endsClean: recordKinds(`${dataDir}/${name}.db-revlog`).at(-1) === 2 }).toEqual({ seed, i, endsClean: false });
  }
  cache.release(db);
});
