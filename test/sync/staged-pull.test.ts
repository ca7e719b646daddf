/**
 * A large incremental pull goes through a staging file (src/sync/staging.ts). Generated crash
 * cases (seeded): the storage dies at a random mutating operation while the pull stages its
 * pages or while it applies them, on the Node fd backend and on the memory backend; a pull's
 * answer is cut after a random number of pages. After each, the database reopened from its
 * files is at the old revision or at the new one, never between, with its pending local
 * changes intact and every staging file empty, and the next pull brings it up to date.
 */
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { Database } from '../../src/database.js';
import { connectionDriver } from '../../src/driver.js';
import { SyncError } from '../../src/errors.js';
import { open } from '../../src/node/index.js';
import type { StorageDirectory } from '../../src/opfs-vfs/storage/backend.js';
import { DATABASE_FILES, PULL_FILES, nodeSuffix } from '../../src/opfs-vfs/storage/files.js';
import { MemoryDirectory } from '../../src/opfs-vfs/storage/memory.js';
import { NodeDirectory } from '../../src/opfs-vfs/storage/node.js';
import type { PageData, PullHeader, PullRequest } from '../../src/protocol/pull-updates.js';
import type { SyncTransport } from '../../src/protocol/transport.js';
import type { OutpostServer } from '../../src/server/server.js';
import { openSynced } from '../../src/sync/open.js';
import { HttpTransport } from '../../src/sync/transport.js';
import { CrashingDirectory } from '../support/crashing-directory.js';
import { int, rng, testSeed } from '../support/generate.js';
import { batch, rawPipeline, startServer, tempDir } from '../support/server.js';

/** 1,500 rows of 2,000 bytes: about 800 changed pages, several 1 MiB staging writes. */
const BIG_ROWS = 1500;
const CASES_PER_PHASE = 5;
const engineOptions = { durability: 'normal', intMode: 'number' } as const;

let server: OutpostServer;
let url: string;
let oldRevision: string;
let newRevision: string;
const dir = tempDir('outpost-staged-pull-');
const template = join(dir, 'template.db');

beforeAll(async () => {
  let base: string;
  ({ server, url: base } = await startServer({ auth: false }));
  url = `${base}/db/staged`;
  await rawPipeline(url, batch('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)', 'CREATE TABLE big(id INTEGER PRIMARY KEY, v TEXT)', "INSERT INTO t VALUES (1, 'server seed')"));
  // The template replica: synced, with two pending local changes the server lacks.
  const db = await open(template, { sync: { url } });
  await db.run("INSERT INTO t VALUES (100, 'local a')");
  await db.run("UPDATE t SET v = 'local edit' WHERE id = 1");
  oldRevision = (await db.syncStatus())!.revision!;
  await db.close();
  // Then the server changes much more than one staging write holds.
  const rows = Array.from({ length: BIG_ROWS }, (_, i) => `(${i + 1}, '${String(i).padStart(2000, 'x')}')`);
  for (let i = 0; i < rows.length; i += 100) await rawPipeline(url, batch(`INSERT INTO big VALUES ${rows.slice(i, i + 100).join(', ')}`));
}, 120_000);
afterAll(() => server.close());

/** A fresh copy of the template on `backend`: the directory to crash, and how to reopen it. */
function copyTemplate(backend: 'node' | 'memory', name: string): StorageDirectory {
  if (backend === 'node') {
    const path = join(dir, `${name}.db`);
    for (const file of DATABASE_FILES) {
      const from = template + nodeSuffix(file);
      if (existsSync(from)) copyFileSync(from, path + nodeSuffix(file));
    }
    return new NodeDirectory(path);
  }
  const memory = new MemoryDirectory(`memory:${name}`);
  const filled = DATABASE_FILES.filter((f) => existsSync(template + nodeSuffix(f))).map(async (f) => (await memory.open(f)).write(readFileSync(template + nodeSuffix(f)), 0));
  return Object.assign(memory, { ready: Promise.all(filled) });
}

async function opened(directory: StorageDirectory, transport?: SyncTransport): Promise<Database> {
  await (directory as { ready?: Promise<unknown> }).ready;
  const { conn, engine } = await openSynced(directory, engineOptions, { url, retries: 0 }, transport);
  return new Database(directory.label, connectionDriver(conn, engine));
}

/** The database is at the old revision or the new one, never between, and its local changes are there; then a pull brings it up to date. */
async function expectWholeAndCatchUp(directory: StorageDirectory, what: string): Promise<'before' | 'after'> {
  const db = await opened(directory);
  try {
    expect(await db.get('PRAGMA integrity_check'), what).toEqual({ integrity_check: 'ok' });
    const big = Number((await db.get<{ n: number }>('SELECT count(*) AS n FROM big'))!.n);
    const status = (await db.syncStatus())!;
    expect([0, BIG_ROWS], what).toContain(big);
    expect(status.revision, what).toBe(big === 0 ? oldRevision : newRevision);
    expect(status.pendingChanges, what).toBe(2);
    expect(await db.query('SELECT id, v FROM t ORDER BY id'), what).toEqual([{ id: 1, v: 'local edit' }, { id: 100, v: 'local a' }]);
    for (const f of PULL_FILES) expect((await directory.fileSize(f)) ?? 0, `${what}: ${f} is empty after the open`).toBe(0);
    await db.pull();
    expect(Number((await db.get<{ n: number }>('SELECT count(*) AS n FROM big'))!.n), what).toBe(BIG_ROWS);
    expect(await db.query('SELECT id, v FROM t ORDER BY id'), what).toEqual([{ id: 1, v: 'local edit' }, { id: 100, v: 'local a' }]);
    return big === 0 ? 'before' : 'after';
  } finally {
    await db.close();
  }
}

/** The underlying directory of a copy that can be reopened after a crash (the memory one is the same object). */
function reopenable(directory: StorageDirectory): StorageDirectory {
  return directory instanceof NodeDirectory ? new NodeDirectory(directory.mainPath) : directory;
}

test('the new revision is known (a pull without crash applies the whole change)', async () => {
  const directory = copyTemplate('node', 'plain');
  const db = await opened(directory);
  await db.pull();
  newRevision = (await db.syncStatus())!.revision!;
  expect(newRevision).not.toBe(oldRevision);
  expect(Number((await db.get<{ n: number }>('SELECT count(*) AS n FROM big'))!.n)).toBe(BIG_ROWS);
  for (const f of PULL_FILES) expect((await directory.fileSize(f)) ?? 0).toBe(0);
  await db.close();
});

for (const backend of ['node', 'memory'] as const) {
  test(`${backend}: a crash while a large pull stages or applies leaves the database before or after it, never between`, async () => {
    expect(newRevision, 'the first test ran').toBeDefined();
    // One full run counts the operations and which file each touches.
    const probe = new CrashingDirectory(copyTemplate(backend, `${backend}-probe`), Number.POSITIVE_INFINITY);
    const probeDb = await opened(probe);
    const opsBeforePull = probe.ops;
    await probeDb.pull();
    const pullOps = probe.fileOps.map((o, i) => ({ k: i + 1, ...o })).filter((o) => o.k > opsBeforePull);
    await probeDb.close();
    const lastWrite = lastStagingWrite(pullOps);
    const staging = pullOps.filter((o) => o.name.startsWith('db-pull-') && o.kind === 'write');
    const applying = pullOps.filter((o) => o.k > lastWrite);
    expect(staging.length, 'the pull stages in several writes').toBeGreaterThan(2);
    expect(applying.length).toBeGreaterThan(2);
    const seed = testSeed();
    console.log(`staged-pull ${backend} crash seed ${seed} (OUTPOST_SEED=${seed} to repeat); ${staging.length} staging and ${applying.length} apply operations`);
    const random = rng(seed);
    const cases = [
      ...Array.from({ length: CASES_PER_PHASE }, () => ({ phase: 'staging', k: staging[int(random, 0, staging.length - 1)]!.k })),
      ...Array.from({ length: CASES_PER_PHASE }, () => ({ phase: 'applying', k: applying[int(random, 0, applying.length - 1)]!.k })),
    ];
    const outcomes: string[] = [];
    for (const [i, { phase, k }] of cases.entries()) {
      const what = `seed ${seed}, ${backend}, crash at operation ${k} (${phase})`;
      const inner = copyTemplate(backend, `${backend}-${i}`);
      const crashing = new CrashingDirectory(inner, k);
      const db = await opened(crashing);
      await expect(db.pull(), what).rejects.toThrow();
      expect(crashing.crashed, what).toBe(true);
      // The process is gone (nothing is closed); a new one opens the same files.
      outcomes.push(await expectWholeAndCatchUp(reopenable(inner), what));
    }
    // A crash while staging never reaches the apply: the database is before the pull.
    expect(outcomes.slice(0, CASES_PER_PHASE)).toEqual(Array(CASES_PER_PHASE).fill('before'));
  }, 300_000);

  test(`${backend}: a pull answer cut after a random number of pages leaves nothing staged and changes nothing`, async () => {
    expect(newRevision, 'the first test ran').toBeDefined();
    const seed = testSeed();
    console.log(`staged-pull ${backend} cut seed ${seed} (OUTPOST_SEED=${seed} to repeat)`);
    const random = rng(seed);
    for (let i = 0; i < 4; i++) {
      const cutAfter = int(random, 0, 400);
      const what = `seed ${seed}, ${backend}, cut after ${cutAfter} pages`;
      const directory = copyTemplate(backend, `${backend}-cut-${i}`);
      const db = await opened(directory, cutting(new HttpTransport({ url }), cutAfter));
      await expect(db.pull(), what).rejects.toThrow(SyncError);
      expect((await db.syncStatus())!.revision, what).toBe(oldRevision);
      expect(Number((await db.get<{ n: number }>('SELECT count(*) AS n FROM big'))!.n), what).toBe(0);
      for (const f of PULL_FILES) expect((await directory.fileSize(f)) ?? 0, `${what}: ${f}`).toBe(0);
      await db.close();
      expect(await expectWholeAndCatchUp(reopenable(directory), what)).toBe('before');
    }
  }, 300_000);
}

/** The operation number of the last write to a staging file (the pull's download ends there). */
function lastStagingWrite(ops: { k: number; name: string; kind: string }[]): number {
  return ops.filter((o) => o.name.startsWith('db-pull-') && o.kind === 'write').reduce((a, o) => Math.max(a, o.k), 0);
}

/** `inner`, with every pull answer breaking off after `cutAfter` pages (NETWORK, as a dropped connection). */
function cutting(inner: HttpTransport, cutAfter: number): SyncTransport {
  return {
    traffic: inner.traffic,
    pull: (req) => inner.pull(req),
    pipeline: (req) => inner.pipeline(req),
    abort: (forever) => inner.abort(forever),
    pullStream: async (req: Partial<PullRequest>, onPage: (page: PageData, header: PullHeader) => void) => {
      let n = 0;
      return inner.pullStream(req, (page, header) => {
        if (n++ === cutAfter) throw new SyncError('pull-updates: the response broke off (test)', 'NETWORK');
        onPage(page, header);
      });
    },
  };
}
