/**
 * A refused change is kept and reported however many there are: thousands of changes the
 * server refuses, each with its own long reason (seeded), are all reported by
 * `pendingChanges()` and the status, and none is lost across pulls, reopens and crashes;
 * retrying and dropping them still work. (The marks once lived in the sync state's fixed 64 KiB
 * slot, which about 40 long reasons overflowed: push wedged and the next pull dropped them.)
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { Database } from '../../src/database.js';
import { connectionDriver } from '../../src/driver.js';
import { openSynced } from '../../src/sync/open.js';
import { CrashDisk } from '../support/crash-disk.js';
import { int, rng, testSeed } from '../support/generate.js';
import { type Endpoint, inProcessNetwork, scratchDataDir } from '../support/networks.js';

const ROWS = 2500;
let server: Endpoint;

beforeAll(async () => {
  server = await inProcessNetwork(scratchDataDir('outpost-rejections-')).open('rejections');
  await server.execTrusted('CREATE TABLE t(id INTEGER PRIMARY KEY, reason TEXT)');
});
afterAll(async () => {
  await server.close();
});

async function openClient(disk: CrashDisk): Promise<Database> {
  const { conn, engine } = await openSynced(disk.process(), { durability: 'normal', intMode: 'number' }, { url: server.url, clientName: 'rejections', retries: 0 }, server.client());
  return new Database('rejections', connectionDriver(conn, engine));
}

/** A reason of 100 to 1,500 characters, unique to the row. */
function reasonFor(random: () => number, id: number): string {
  const words = ['quota', 'policy', 'überprüfung', '拒否', 'invalid', 'customer', 'ledger', 'closed'];
  let s = `row ${id} refused:`;
  const length = int(random, 100, 1500);
  while (s.length < length) s += ` ${words[int(random, 0, words.length - 1)]}`;
  return s;
}

async function count(db: Database, sql: string): Promise<number> {
  return Number((await db.query<{ n: number }>(sql))[0]?.n);
}

async function rejectedReasons(db: Database): Promise<Map<number, string>> {
  const pending = await db.pendingChanges();
  const out = new Map<number, string>();
  for (const p of pending) {
    if (p.rejected === null) continue;
    const id = p.mutations[0]?.after?.id;
    out.set(Number(id), p.rejected);
  }
  return out;
}

test('thousands of refused changes with long reasons are all kept and reported, across pull, reopen and crash', async () => {
  const seed = testSeed();
  console.log(`rejections seed ${seed} (OUTPOST_SEED=${seed} replays it)`);
  const random = rng(seed);
  const disk = new CrashDisk();
  let db = await openClient(disk);
  await db.pull();
  const reasons = new Map<number, string>();
  for (let id = 1; id <= ROWS; id++) {
    // About one row in ten is accepted; the others carry the reason the server refuses them with.
    const reason = random() < 0.1 ? null : reasonFor(random, id);
    if (reason !== null) reasons.set(id, reason);
    await db.run('INSERT INTO t(id, reason) VALUES (?, ?)', [id, reason]);
  }
  await server.execTrusted('CREATE TEMP TRIGGER refuse BEFORE INSERT ON main.t WHEN NEW.reason IS NOT NULL BEGIN SELECT RAISE(ABORT, NEW.reason); END');

  await expect(db.push()).rejects.toMatchObject({ code: 'REJECTED' });
  const check = async (when: string): Promise<void> => {
    const reported = await rejectedReasons(db);
    expect(reported.size, `${when} (seed ${seed})`).toBe(reasons.size);
    for (const [id, reason] of reasons) expect(reported.get(id), `${when}: row ${id} (seed ${seed})`).toContain(reason);
    expect((await db.syncStatus())?.rejectedChanges.length, when).toBe(reasons.size);
    expect(await count(db, 'SELECT count(*) AS n FROM t WHERE reason IS NOT NULL'), `${when}: the refused rows stay local`).toBe(reasons.size);
  };
  await check('after the push');
  await db.sync();
  await check('after a pull');
  await db.close();
  db = await openClient(disk);
  await check('after a reopen');

  // Crash at seeded points of a sync (a pull that rebases every refused change, and a push).
  for (let round = 0; round < 4; round++) {
    disk.crashAt(int(random, 1, 60));
    await db.sync().catch(() => undefined);
    disk.crash();
    await db.close().catch(() => undefined);
    db = await openClient(disk);
    // A crash may come before the marks were written; the next push refuses those again.
    await db.push().catch(() => undefined);
    await check(`after crash ${round + 1}`);
  }

  // Retrying one the server still refuses keeps it reported.
  const [firstId] = [...reasons.keys()];
  const firstChange = (await db.pendingChanges()).find((p) => p.mutations[0]?.after?.id === firstId)!;
  await db.retryRejectedChange(firstChange.changeId);
  await expect(db.push()).rejects.toMatchObject({ code: 'REJECTED' });
  await check('after a retry the server refused again');

  // Drop a few, retry the rest once the server accepts them: every retried row arrives once.
  await server.execTrusted('DROP TRIGGER temp.refuse');
  const pending = (await db.pendingChanges()).filter((p) => p.rejected !== null);
  const dropped = new Set<number>();
  for (const p of pending) {
    const id = Number(p.mutations[0]?.after?.id);
    if (random() < 0.05) {
      dropped.add(id);
      await db.dropPendingChange(p.changeId);
    } else await db.retryRejectedChange(p.changeId);
  }
  await db.sync();
  expect((await db.syncStatus())?.rejectedChanges).toEqual([]);
  expect(await db.pendingChanges()).toEqual([]);
  const serverIds = (await server.admin.pipeline({ baton: null, requests: [{ type: 'execute', stmt: { sql: 'SELECT id FROM t ORDER BY id', want_rows: true } }] })).results[0];
  const ids = serverIds?.type === 'ok' && serverIds.response.type === 'execute' ? serverIds.response.result.rows.map((r) => Number(r[0]?.type === 'integer' ? r[0].value : NaN)) : [];
  const expected = Array.from({ length: ROWS }, (_, i) => i + 1).filter((id) => !dropped.has(id));
  expect(ids, `seed ${seed}`).toEqual(expected);
  expect(await count(db, 'SELECT count(*) AS n FROM t'), 'dropped rows converge to the server (gone)').toBe(expected.length);
  await db.close();
}, 240_000);
