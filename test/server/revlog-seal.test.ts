/**
 * A clean-close marker vouches for data: a database closed by the server's cache (evicted) or
 * by a graceful stop, then a power loss in which the device kept the revision log's writes but
 * not the WAL's (each file keeps its own subset of unflushed writes, power-loss-disk.ts), must
 * never leave the log reading clean past what the database holds. Otherwise a client that
 * pulled the lost commit keeps its pages, and the server hands out that revision again with
 * other pages (revlog.ts's header).
 *
 * Each generated case: a server (a `DatabaseCache` holding one open database) commits 1-3
 * times to database `a` while a page replica pulls, closes `a` (evicted by opening `b`, or the
 * whole cache stopped), and the power goes: at once, after `a`'s seal (database-cache.ts
 * `sealDue`), or while the seal runs (0-5 event-loop turns into it); the device keeps a chosen
 * subset: the revision log's writes only, the WAL's only, or a seeded one. A new server
 * reopens `a`, commits once more, and the replica, pulling on from the revision it holds, must
 * equal the server's whole image. The cases 'evicted' and 'stopped' with the revision log
 * kept fail on the tree before the seal (seed 1 case 4, seed 2 case 22).
 */
import { expect, test } from 'vitest';
import { DatabaseCache } from '../../src/server/database-cache.js';
import type { HostedDatabase, HostedDatabaseOptions } from '../../src/server/hosted-database.js';
import { type LogFiles, RevisionLog } from '../../src/server/revlog.js';
import { type Random, int, pick, rng, testSeed } from '../support/generate.js';
import { scratchDataDir } from '../support/networks.js';
import { PageReplica, wholeImage } from '../support/page-replica.js';
import { PowerLossDisk } from '../support/power-loss-disk.js';

const CASES = Number(process.env.OUTPOST_CASES ?? 60);
const LIMITS = { statementTimeoutMs: 60_000, valueBytesMax: 1 << 24, shareOfServer: 1 };

/** One server process on `disk`: every database it opens (or seals) lives on that process's files. */
function serverOn(disk: PowerLossDisk, dataDir: string, durability: 'normal' | 'full'): DatabaseCache {
  const processes = new Map<string, { directory: ReturnType<PowerLossDisk['process']>; logFiles: LogFiles }>();
  const processOf = (name: string): { directory: ReturnType<PowerLossDisk['process']>; logFiles: LogFiles } => {
    let p = processes.get(name);
    if (!p) {
      const directory = disk.process(`${name}/`);
      processes.set(name, (p = { directory, logFiles: disk.logFiles(directory) }));
    }
    return p;
  };
  const optionsFor = (name: string): HostedDatabaseOptions => ({ durability, cacheKiB: 256, limits: LIMITS, directory: () => processOf(name).directory, revlogFiles: processOf(name).logFiles });
  return new DatabaseCache(dataDir, 1, optionsFor);
}

async function withDatabase<T>(cache: DatabaseCache, name: string, use: (db: HostedDatabase) => Promise<T> | T): Promise<T> {
  const db = (await cache.acquire(name, true))!;
  try {
    return await use(db);
  } finally {
    cache.release(db);
  }
}

type Keep = 'revision log' | 'WAL' | 'seeded';
const CLOSES = ['evicted', 'evicted and sealed', 'evicted, loss in the seal', 'stopped'] as const;

/** One case; returns whether the revision log kept its generation across the loss. */
async function runCase(seed: number, c: number, random: Random, closes: readonly (typeof CLOSES)[number][]): Promise<{ what: string; keptGeneration: boolean }> {
  const durability = random() < 0.5 ? 'normal' : 'full';
  const close = pick(random, closes);
  const keep: Keep = pick(random, ['revision log', 'revision log', 'WAL', 'seeded'] as const);
  const what = `seed ${seed} case ${c} (${durability}, ${close}, the device kept ${keep})`;
  const disk = new PowerLossDisk(rng(seed + c));
  const dataDir = scratchDataDir('outpost-revlog-seal-');
  let server = serverOn(disk, dataDir, durability);
  const replica = new PageReplica();
  let row = 0;
  await withDatabase(server, 'a', async (db) => {
    db.execTrusted(`CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (${row++}, 'first')`);
    await replica.pull(db);
  });
  disk.settle();
  for (let n = int(random, 1, 3); n > 0; n--) {
    await withDatabase(server, 'a', async (db) => {
      db.execTrusted(`INSERT INTO t VALUES (${row++}, '${'x'.repeat(int(random, 10, 3000))}')`);
      if (random() < 0.7 || n === 1) await replica.pull(db);
    });
  }
  if (close === 'stopped') await server.closeAll();
  else await withDatabase(server, 'b', () => {});
  if (close === 'evicted and sealed') {
    // Under 'full' the eviction wrote the marker, whose fsync may be under way.
    await server.sealDue(Infinity);
    await RevisionLog.markersFlushed();
  }
  if (close === 'evicted, loss in the seal') {
    const sealed = server.sealDue(Infinity);
    for (let turns = int(random, 0, 5); turns > 0; turns--) await new Promise((resolve) => setImmediate(resolve));
    disk.loseNow(keep === 'seeded' ? undefined : (name) => name.includes(keep === 'WAL' ? 'a/db' : 'a.db-revlog'));
    await sealed;
  } else disk.loseNow(keep === 'seeded' ? undefined : (name) => name.includes(keep === 'WAL' ? 'a/db' : 'a.db-revlog'));

  const held = replica.revision;
  server = serverOn(disk, dataDir, durability);
  try {
    return await withDatabase(server, 'a', async (db) => {
      const keptGeneration = db.revision.split('.')[0] === held.split('.')[0];
      db.execTrusted(`INSERT INTO t VALUES (${row++}, 'after the loss')`);
      await replica.pull(db);
      expect(replica.differences(await wholeImage(db)), `${what}: pages the replica holds that differ from the server's (-1: its size)`).toEqual([]);
      return { what, keptGeneration };
    });
  } finally {
    await server.closeAll();
  }
}

async function generate(name: string, run: (seed: number, random: Random) => Promise<void>): Promise<void> {
  const seed = testSeed();
  try {
    await run(seed, rng(seed));
  } catch (e) {
    console.log(`${name} seed ${seed} (OUTPOST_SEED=${seed} replays it)`);
    throw e;
  }
}

test('generated: a database closed (evicted, sealed or stopped) and a power loss that keeps its revision log but not its WAL, or any other subset, never leaves a pulled revision naming other pages', async () => {
  await generate('revlog seal', async (seed, random) => {
    for (let c = 0; c < CASES; c++) await runCase(seed, c, random, CLOSES);
  });
}, 120_000);

test('generated: a database sealed (after its eviction, or by a graceful stop) keeps its generation across a power loss, whatever the device kept of the writes before it', async () => {
  await generate('revlog seal generation', async (seed, random) => {
    for (let c = 0; c < CASES / 2; c++) {
      const { what, keptGeneration } = await runCase(seed, c, random, ['evicted and sealed', 'stopped']);
      expect(keptGeneration, `${what}: a new generation`).toBe(true);
    }
  });
}, 120_000);
